"""Templates: the KFP repository's packages, their versions and tags (the API that
``kfp.registry.RegistryClient`` and ``make upload`` use), a template's parameters with
types, defaults and descriptions, and an upload form (a compiled YAML file, or the
checked-in one)."""

from __future__ import annotations

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .api import ApiFailure
from .context import ActionDep, PageDep
from .forms import read_form
from .run_form import build_fields

router = APIRouter()

CHECKED_IN = "compiled/visual_defect_sft.yaml"
MAX_TEMPLATE = 4 * 1024 * 1024
TYPE_WORDS = {
    "STRING": "string",
    "NUMBER_INTEGER": "integer",
    "NUMBER_DOUBLE": "number",
    "BOOLEAN": "boolean",
    "LIST": "list (JSON)",
    "STRUCT": "object (JSON)",
}


def checked_in_yaml() -> bytes:
    """The repository's compiled pipeline (a file of the project, not of the server)."""
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / CHECKED_IN).read_bytes()


def short_version(name: str) -> str:
    version = name.rsplit("/", 1)[-1]
    return version[: len("sha256:") + 12]


async def package_rows(api) -> list[dict]:
    rows = []
    for package in await api.list_packages():
        pid = package["name"].rsplit("/", 1)[-1]
        versions = await api.list_versions(pid)
        tags = await api.list_tags(pid)
        rows.append(
            {
                "id": pid,
                "updated": package.get("updateTime", ""),
                "tags": [(t["name"].rsplit("/", 1)[-1], t["version"].rsplit("/", 1)[-1]) for t in tags],
                "versions": sorted(
                    (
                        {
                            "id": v["name"].rsplit("/", 1)[-1],
                            "short": short_version(v["name"]),
                            "created": v.get("createTime", ""),
                            "description": v.get("description", ""),
                            "tags": [t["name"].rsplit("/", 1)[-1] for t in v.get("relatedTags", [])],
                        }
                        for v in versions
                    ),
                    key=lambda v: v["created"],
                    reverse=True,
                ),
            }
        )
    return rows


@router.get("/templates")
async def templates_page(current: PageDep, uploaded: str = "", problem: str = "") -> Response:
    return current.render(
        "templates.html", packages=await package_rows(current.api), uploaded=uploaded, problem=problem
    )


async def template_spec(api, package: str, ref: str) -> dict:
    """The pipeline spec of a template version or tag, downloaded through the registry API."""
    content = await api.download_template(package, ref)
    doc = next(iter(yaml.safe_load_all(content.decode("utf-8"))), None) or {}
    return doc.get("pipelineSpec", doc)


@router.get("/templates/{package}")
async def template_page(current: PageDep, package: str, ref: str = "latest") -> Response:
    spec = await template_spec(current.api, package, ref)
    fields = build_fields(spec)
    return current.render(
        "template.html",
        package=package,
        ref=ref,
        spec=spec,
        fields=fields,
        type_words=TYPE_WORDS,
        description=(spec.get("pipelineInfo") or {}).get("description", ""),
    )


@router.post("/templates/upload")
async def upload_template(current: ActionDep, request: Request) -> Response:
    """Uploads a compiled pipeline (the chosen file, or the checked-in one) with tags."""
    form = await read_form(request)
    tags = [t.strip() for t in str(form.get("tags") or "").split(",") if t.strip()]
    upload = form.files.get("file")
    content = upload.data if upload else b""
    if not content and form.get("checked_in"):
        content = checked_in_yaml()
    if not content or len(content) > MAX_TEMPLATE:
        problem = "choose a compiled pipeline YAML (at most 4 MB), or upload the checked-in one"
        return RedirectResponse(f"/console/templates?problem={_q(problem)}", status_code=303)
    try:
        uploaded = await current.api.upload_template(content, tags)
    except ApiFailure as failure:
        return RedirectResponse(f"/console/templates?problem={_q(failure.message)}", status_code=303)
    return RedirectResponse(f"/console/templates?uploaded={_q(uploaded)}", status_code=303)


def _q(text: str) -> str:
    import urllib.parse

    return urllib.parse.quote(text[:300], safe="")
