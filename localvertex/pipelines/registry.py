"""A Kubeflow Pipelines repository of Artifact Registry, as ``kfp.registry.RegistryClient``
uses one: packages (one per pipeline name), versions (``sha256:<content hash>``) and tags.

On Google the repository's host is ``https://<location>-kfp.pkg.dev/<project>/<repo>``; here
it is ``<vertex url>/kfp/<location>/<project>/<repo>`` (``host_url``), which RegistryClient
takes as ``RegistryClient(host=...)``: for a host that is not ``*-kfp.pkg.dev`` the client
uses kfp's default context, every URL relative to the host (upload ``POST {host}``,
download ``GET {host}/{package}/{version or tag}``, ``{host}/packages/...`` for the rest).

One repository exists per location, ``local-repo`` (as the stack makes one bucket); any other
repository is 404, as Artifact Registry answers for a repository nobody created. Uploading
the same content again gives the same version and moves the given tags to it; a tag that
already exists cannot be created again (409 ALREADY_EXISTS); a tagged version cannot be
deleted without ``force`` (FAILED_PRECONDITION), as Artifact Registry refuses it.

Files: ``<data_dir>/registry/<project>/<location>/<repo>/index.json`` (packages, versions,
tags; written whole) and ``blobs/<sha256>.yaml`` (content-addressed, so a name never
becomes a path).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import api_error, failed_precondition, invalid, not_found
from ..ids import check_segment, new_id
from ..jobs.store import atomic_write_json

DEFAULT_REPOSITORY = "local-repo"
VERSION_PREFIX = "sha256:"
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION_RE = re.compile(r"sha256:[0-9a-f]{64}")
# Template URIs a PipelineJob may name: Artifact Registry's, or this twin's host.
_AR_URI = re.compile(
    r"https://(?P<location>[\w-]+)-kfp\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)/(?P<package>[^/]+)/(?P<ref>[^/?#]+)"
)
_TWIN_URI = re.compile(
    r"https?://[^/]+/kfp/(?P<location>[^/]+)/(?P<project>[^/]+)/(?P<repo>[^/]+)/(?P<package>[^/]+)/(?P<ref>[^/?#]+)"
)


def host_url(vertex_url: str, project: str, location: str, repository: str = DEFAULT_REPOSITORY) -> str:
    """The repository's host for ``RegistryClient(host=...)`` and ``make upload``'s REPO."""
    return f"{vertex_url.rstrip('/')}/kfp/{location}/{project}/{repository}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def pipeline_name_of(content: bytes) -> str:
    """The package a file uploads to: its pipeline's name (``pipelineInfo.name``); 400 if
    the file is not a compiled KFP pipeline."""
    try:
        docs = list(yaml.safe_load_all(content.decode("utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise invalid(f"The uploaded file is not YAML: {str(exc)[:200]}") from None
    spec = docs[0] if docs and isinstance(docs[0], dict) else {}
    spec = spec.get("pipelineSpec", spec)  # a PipelineJob JSON carries its spec inside
    name = (spec.get("pipelineInfo") or {}).get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not isinstance(spec.get("root"), dict):
        raise invalid("The uploaded file is not a compiled KFP pipeline (no pipelineInfo.name and root).")
    if not _PACKAGE_RE.fullmatch(name):
        raise invalid(f"Pipeline name {name[:80]!r} is not a valid package name (a-z, 0-9, -).")
    return name


class Repository:
    """One KFP repository: its index and blobs, under one lock."""

    def __init__(self, root: Path, project: str, location: str, repo: str) -> None:
        self.dir = root / project / location / repo
        self.prefix = f"projects/{project}/locations/{location}/repositories/{repo}"
        self.lock = threading.RLock()

    # -- files
    def _index(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / "index.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"packages": {}}

    def _save(self, index: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / "index.json", index)

    def _blob(self, version: str) -> Path:
        return self.dir / "blobs" / f"{version[len(VERSION_PREFIX) :]}.yaml"

    # -- views
    def package_view(self, name: str, package: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": f"{self.prefix}/packages/{name}",
            "displayName": name,
            "createTime": package["createTime"],
            "updateTime": package["updateTime"],
        }

    def version_view(self, name: str, package: dict[str, Any], version: str) -> dict[str, Any]:
        item = package["versions"][version]
        out = {
            "name": f"{self.prefix}/packages/{name}/versions/{version}",
            "createTime": item["createTime"],
            "updateTime": item["updateTime"],
            "relatedTags": [self.tag_view(name, t, v) for t, v in sorted(package["tags"].items()) if v == version],
        }
        if item.get("description"):
            out["description"] = item["description"]
        return out

    def tag_view(self, name: str, tag: str, version: str) -> dict[str, Any]:
        return {
            "name": f"{self.prefix}/packages/{name}/tags/{tag}",
            "version": f"{self.prefix}/packages/{name}/versions/{version}",
        }

    # -- lookups (404s name the resource, as Artifact Registry does)
    def _package(self, index: dict[str, Any], name: str) -> dict[str, Any]:
        package = index["packages"].get(name)
        if package is None:
            raise not_found(f"Package {self.prefix}/packages/{name[:100]} not found.")
        return package

    def _version(self, package: dict[str, Any], name: str, version: str) -> str:
        if version not in package["versions"]:
            raise not_found(f"Version {self.prefix}/packages/{name}/versions/{version[:80]} not found.")
        return version

    def resolve(self, name: str, ref: str) -> str:
        """The version a version or tag names."""
        with self.lock:
            package = self._package(self._index(), name)
            if ref.startswith(VERSION_PREFIX):
                return self._version(package, name, ref)
            if ref not in package["tags"]:
                raise not_found(f"Tag {self.prefix}/packages/{name}/tags/{ref[:80]} not found.")
            return package["tags"][ref]

    # -- operations
    def upload(self, content: bytes, tags: list[str], description: str | None) -> tuple[str, str]:
        name = pipeline_name_of(content)
        for tag in tags:
            check_tag(tag)
        version = VERSION_PREFIX + hashlib.sha256(content).hexdigest()
        now = _now()
        with self.lock:
            index = self._index()
            package = index["packages"].setdefault(name, {"createTime": now, "versions": {}, "tags": {}})
            blob = self._blob(version)
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                tmp = blob.with_name(f".{blob.name}.{new_id()}.tmp")
                tmp.write_bytes(content)
                tmp.replace(blob)
            item = package["versions"].setdefault(version, {"createTime": now})
            item["updateTime"] = package["updateTime"] = now
            if description:
                item["description"] = description[:2000]
            for tag in tags:
                package["tags"][tag] = version  # an upload moves its tags to the new version
            self._save(index)
        return name, version

    def download(self, name: str, ref: str) -> bytes:
        version = self.resolve(name, ref)
        return self._blob(version).read_bytes()

    def read(self, fn) -> Any:
        with self.lock:
            return fn(self._index())

    def write(self, fn) -> Any:
        with self.lock:
            index = self._index()
            result = fn(index)
            self._save(index)
            return result


def check_tag(tag: str) -> str:
    if tag.startswith(VERSION_PREFIX) or not _TAG_RE.fullmatch(tag):
        raise invalid(f"Invalid tag {tag[:80]!r}: use letters, digits, '.', '_' and '-', not starting with sha256:.")
    return tag


def check_version(version: str) -> str:
    if not _VERSION_RE.fullmatch(version):
        raise invalid(f"Invalid version {version[:80]!r}: expected sha256:<64 hex digits>.")
    return version


class TemplateRegistry:
    """The repositories of the local Artifact Registry."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "registry"
        self._repos: dict[tuple[str, str, str], Repository] = {}
        self._lock = threading.Lock()

    def repository(self, project: str, location: str, repo: str) -> Repository:
        check_segment(project, "project")
        check_segment(location, "location")
        if repo != DEFAULT_REPOSITORY:
            raise not_found(
                f"Repository projects/{project}/locations/{location}/repositories/{repo[:80]} not found "
                f"(the local Artifact Registry has one KFP repository per location: {DEFAULT_REPOSITORY})."
            )
        with self._lock:
            return self._repos.setdefault((project, location, repo), Repository(self.root, project, location, repo))

    def resolve_template(self, uri: str) -> dict[str, Any]:
        """What a PipelineJob's ``templateUri`` names: ``{"pipelineSpec", "templateMetadata"}``
        (the spec of the version it names, and ``{"version": "sha256:..."}``). The URI is
        Artifact Registry's (``https://L-kfp.pkg.dev/P/R/PACKAGE/TAG_OR_VERSION``) or this
        twin's host; anything else is 400, a missing package, tag or version 404."""
        match = _AR_URI.fullmatch(uri) or _TWIN_URI.fullmatch(uri)
        if match is None:
            raise invalid(
                f"template_uri {uri[:200]!r} is not a template of Artifact Registry "
                "(https://LOCATION-kfp.pkg.dev/PROJECT/REPOSITORY/PACKAGE/TAG_OR_VERSION)."
            )
        repo = self.repository(match["project"], match["location"], match["repo"])
        version = repo.resolve(match["package"], match["ref"])
        spec = next(iter(yaml.safe_load_all(repo.download(match["package"], version).decode("utf-8"))))
        return {"pipelineSpec": copy.deepcopy(spec.get("pipelineSpec", spec)), "templateMetadata": {"version": version}}


def delete_operation(repo: Repository) -> dict[str, Any]:
    """Artifact Registry's deletes are long-running operations; these are done at once."""
    project, location = repo.prefix.split("/")[1], repo.prefix.split("/")[3]
    return {"name": f"projects/{project}/locations/{location}/operations/{new_id()}", "done": True}


def conflict(message: str) -> Exception:
    return api_error("ALREADY_EXISTS", message)


def tagged(message: str) -> Exception:
    return failed_precondition(message)
