"""The console's only way to data: the same Vertex AI REST API (and Cloud Storage JSON API,
and Artifact Registry KFP API) that the SDKs call, over HTTP to this server, with a bearer
token like theirs. The console never opens the server's files, so every page shows exactly
what a client of the API would see.

The token is an access token from :meth:`Auth.issue`, the same kind ``/token`` gives a
client that signed a JWT with ``credentials.json``; it is renewed before it expires.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import httpx

from ..auth import TOKEN_TTL_S

API = "v1"
REPOSITORY = "local-repo"  # the local Artifact Registry has one KFP repository per location


class ApiFailure(Exception):
    """An API call that answered an error: its HTTP status and Google's message."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _failure(resp: httpx.Response) -> ApiFailure:
    try:
        error = resp.json().get("error", {})
        message = error.get("message") or resp.text[:300]
    except ValueError:
        message = resp.text[:300] or resp.reason_phrase
    return ApiFailure(resp.status_code, str(message))


class VertexApi:
    """Async calls to one project and location of the local Vertex AI.

    ``base_url`` is this server's own address; ``transport`` replaces HTTP in tests."""

    def __init__(
        self,
        base_url: str,
        project: str,
        location: str,
        issue_token,
        storage_url: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.project, self.location = project, location
        self.base_url = base_url.rstrip("/")
        self.parent = f"projects/{project}/locations/{location}"
        self.storage_url = storage_url.rstrip("/")
        self._issue = issue_token
        self._token, self._token_until = "", 0.0
        self._http = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60.0)

    async def close(self) -> None:
        await self._http.aclose()

    def _auth(self) -> dict[str, str]:
        if time.time() > self._token_until:
            self._token, self._token_until = self._issue(), time.time() + TOKEN_TTL_S - 300
        return {"Authorization": f"Bearer {self._token}"}

    async def call(self, method: str, url: str, **kwargs) -> Any:
        """The decoded JSON answer; ApiFailure on an error status."""
        resp = await self._http.request(method, url, headers=self._auth(), **kwargs)
        if resp.status_code >= 400:
            raise _failure(resp)
        return resp.json() if resp.content else {}

    async def raw(self, url: str, params: dict | None = None) -> bytes:
        resp = await self._http.get(url, headers=self._auth(), params=params)
        if resp.status_code >= 400:
            raise _failure(resp)
        return resp.content

    def url(self, path: str) -> str:
        return f"/{API}/{self.parent}/{path}"

    # -- PipelineJobs
    async def list_jobs(self, filter_text: str = "", page_size: int = 25, page_token: str = "") -> dict:
        params = {"pageSize": page_size, "orderBy": "create_time desc"}
        if filter_text:
            params["filter"] = filter_text
        if page_token:
            params["pageToken"] = page_token
        return await self.call("GET", self.url("pipelineJobs"), params=params)

    async def get_job(self, job_id: str) -> dict:
        return await self.call("GET", self.url(f"pipelineJobs/{_seg(job_id)}"))

    async def create_job(self, body: dict, job_id: str = "") -> dict:
        params = {"pipelineJobId": job_id} if job_id else None
        return await self.call("POST", self.url("pipelineJobs"), json=body, params=params)

    async def cancel_job(self, job_id: str) -> dict:
        return await self.call("POST", self.url(f"pipelineJobs/{_seg(job_id)}:cancel"), json={})

    # -- Schedules
    async def list_schedules(self, page_size: int = 100, page_token: str = "") -> dict:
        params = {"pageSize": page_size, "orderBy": "create_time desc"}
        if page_token:
            params["pageToken"] = page_token
        return await self.call("GET", self.url("schedules"), params=params)

    async def create_schedule(self, body: dict) -> dict:
        return await self.call("POST", self.url("schedules"), json=body)

    async def schedule_action(self, schedule_id: str, verb: str) -> dict:
        if verb == "delete":
            return await self.call("DELETE", self.url(f"schedules/{_seg(schedule_id)}"))
        return await self.call("POST", self.url(f"schedules/{_seg(schedule_id)}:{verb}"), json={})

    # -- ML Metadata
    async def metadata_list(self, kind: str, filter_text: str, page_size: int = 1000) -> list[dict]:
        """Every context, execution or artifact matching the AIP-160 filter, all pages."""
        items, token = [], ""
        while True:
            params = {"filter": filter_text, "pageSize": page_size}
            if token:
                params["pageToken"] = token
            page = await self.call("GET", self.url(f"metadataStores/default/{kind}"), params=params)
            items.extend(page.get(kind, []))
            token = page.get("nextPageToken", "")
            if not token:
                return items

    async def ensure_experiment(self, experiment: str) -> str:
        """The experiment's context, created if missing, as ``aiplatform.init(experiment=)``
        does (metadata store first, then a ``system.Experiment`` context)."""
        name = f"{self.parent}/metadataStores/default/contexts/{experiment}"
        try:
            found = await self.call("GET", f"/{API}/{name}")
        except ApiFailure as failure:
            if failure.status != 404:
                raise
        else:  # a context of another kind (a pipeline's) is no experiment, as the SDK says
            if found.get("schemaTitle") != "system.Experiment":
                raise ApiFailure(400, f"{experiment!r} names a {found.get('schemaTitle')} context, not an experiment")
            return name
        body = {"displayName": experiment, "schemaTitle": "system.Experiment", "schemaVersion": "0.0.1"}
        body["metadata"] = {"experiment_deleted": False}
        try:
            await self.call(
                "POST", self.url("metadataStores/default/contexts"), json=body, params={"contextId": experiment}
            )
        except ApiFailure as failure:
            if failure.status != 409:  # created meanwhile by someone else: as good
                raise
        return name

    async def add_context_child(self, parent_context: str, child_context: str) -> None:
        await self.call("POST", f"/{API}/{parent_context}:addContextChildren", json={"childContexts": [child_context]})

    # -- templates: the KFP repository API kfp.registry.RegistryClient calls (its default
    # context: {host}/packages/..., download at {host}/PACKAGE/VERSION_OR_TAG)
    @property
    def registry_path(self) -> str:
        return f"/kfp/{self.location}/{self.project}/{REPOSITORY}"

    def template_uri(self, package: str, ref: str) -> str:
        """What a PipelineJob's ``templateUri`` holds for a template, as the SDK records it."""
        return f"{self.base_url}{self.registry_path}/{_seg(package)}/{_seg(ref)}"

    async def list_packages(self) -> list[dict]:
        return (await self.call("GET", f"{self.registry_path}/packages")).get("packages", [])

    async def list_versions(self, package: str) -> list[dict]:
        return (await self.call("GET", f"{self.registry_path}/packages/{_seg(package)}/versions")).get("versions", [])

    async def list_tags(self, package: str) -> list[dict]:
        return (await self.call("GET", f"{self.registry_path}/packages/{_seg(package)}/tags")).get("tags", [])

    async def download_template(self, package: str, ref: str) -> bytes:
        return await self.raw(f"{self.registry_path}/{_seg(package)}/{_seg(ref)}")

    async def upload_template(self, content: bytes, tags: list[str]) -> str:
        """``PACKAGE/VERSION`` of the uploaded file, as RegistryClient.upload_pipeline reads it."""
        resp = await self._http.post(
            self.registry_path,
            headers=self._auth(),
            data={"tags": ",".join(tags)} if tags else {},
            files={"content": ("pipeline.yaml", content, "application/x-yaml")},
        )
        if resp.status_code >= 400:
            raise _failure(resp)
        return resp.text.strip()

    # -- tuning and prediction
    async def get_tuning_job(self, name: str) -> dict:
        return await self.call("GET", f"/{API}/{name}")

    async def tuning_epochs(self, name: str) -> dict:
        return await self.call("GET", f"/local/v1/{name}:epochs")

    async def generate(self, endpoint: str, body: dict) -> dict:
        return await self.call("POST", f"/v1beta1/{endpoint}:generateContent", json=body)

    # -- Cloud Logging: entries:list, as google-cloud-logging and gcloud call it
    # (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list)
    async def list_log_entries(self, filter_text: str, page_size: int, order_by: str = "timestamp desc") -> list[dict]:
        body = {
            "resourceNames": [f"projects/{self.project}"],
            "filter": filter_text,
            "orderBy": order_by,
            "pageSize": page_size,
        }
        return (await self.call("POST", "/v2/entries:list", json=body)).get("entries", [])

    # -- Cloud Storage (JSON API of the storage server the SDKs use)
    async def list_buckets(self) -> list[str]:
        page = await self._storage_get("/storage/v1/b", {"project": self.project})
        return [b["name"] for b in page.json().get("items", [])]

    async def list_objects(self, bucket: str, prefix: str) -> list[dict]:
        page = await self._storage_get(f"/storage/v1/b/{_q(bucket)}/o", {"prefix": prefix})
        return page.json().get("items", [])

    async def read_object(self, uri: str, limit: int = 8 * 1024 * 1024) -> bytes:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        resp = await self._storage_get(f"/storage/v1/b/{_q(bucket)}/o/{_q(name)}", {"alt": "media"})
        return resp.content[:limit]

    async def _storage_get(self, path: str, params: dict) -> httpx.Response:
        # With the bearer token, as google-cloud-storage sends its credentials' token.
        resp = await self._http.get(f"{self.storage_url}{path}", params=params, headers=self._auth())
        if resp.status_code >= 400:
            raise _failure(resp)
        return resp


def _seg(value: str) -> str:
    """One path segment, so an id from a URL can never reach another resource."""
    return urllib.parse.quote(value, safe="")


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")
