"""The local Artifact Registry's KFP repositories, at the URLs ``kfp.registry.RegistryClient``
derives from a host ``<vertex url>/kfp/<location>/<project>/<repo>`` (kfp's default
context): upload (multipart ``content`` + ``tags``), download by version or tag, packages,
versions and tags (list, get, delete; create and move a tag). Bearer token required, as
Artifact Registry requires one. The work is in localvertex/pipelines/registry.py.
"""

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..errors import invalid, not_found
from ..pipelines.registry import Repository, check_tag, check_version, conflict, delete_operation, tagged
from .deps import json_body, require_token

router = APIRouter(prefix="/kfp/{location}/{project}/{repo}", dependencies=[Depends(require_token)])


def repository(request: Request, project: str, location: str, repo: str) -> Repository:
    return request.app.state.registry.repository(project, location, repo)


def _form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """multipart/form-data fields: name -> (file name, bytes). Parsed with the standard
    library (the email package), so no multipart dependency is needed."""
    if not content_type.startswith("multipart/form-data"):
        raise invalid("Upload a pipeline as multipart/form-data with a 'content' file.")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


@router.post("")
async def upload(project: str, location: str, repo: str, request: Request):
    target = repository(request, project, location, repo)
    fields = _form(request.headers.get("content-type", ""), await request.body())
    if "content" not in fields:
        raise invalid("The upload has no 'content' file.")
    tags_text = fields.get("tags", (None, b""))[1].decode("utf-8", "replace")
    tags = [t.strip() for t in tags_text.split(",") if t.strip()]
    name, version = await request.app.state.services.io.run(
        target.upload, fields["content"][1], tags, request.headers.get("description")
    )
    return PlainTextResponse(f"{name}/{version}")


@router.get("/packages")
async def list_packages(project: str, location: str, repo: str, request: Request):
    target = repository(request, project, location, repo)
    return target.read(
        lambda index: {"packages": [target.package_view(n, p) for n, p in sorted(index["packages"].items())]}
    )


@router.get("/packages/{package}")
async def get_package(project: str, location: str, repo: str, package: str, request: Request):
    target = repository(request, project, location, repo)
    return target.read(lambda index: target.package_view(package, target._package(index, package)))


@router.delete("/packages/{package}")
async def delete_package(project: str, location: str, repo: str, package: str, request: Request):
    target = repository(request, project, location, repo)

    def delete(index: dict[str, Any]) -> None:
        target._package(index, package)
        del index["packages"][package]  # blobs stay: another package may share the content

    target.write(delete)
    return delete_operation(target)


@router.get("/packages/{package}/versions")
async def list_versions(project: str, location: str, repo: str, package: str, request: Request):
    target = repository(request, project, location, repo)

    def versions(index: dict[str, Any]) -> dict[str, Any]:
        item = target._package(index, package)
        return {"versions": [target.version_view(package, item, v) for v in sorted(item["versions"])]}

    return target.read(versions)


@router.get("/packages/{package}/versions/{version}")
async def get_version(project: str, location: str, repo: str, package: str, version: str, request: Request):
    target = repository(request, project, location, repo)

    def get(index: dict[str, Any]) -> dict[str, Any]:
        item = target._package(index, package)
        return target.version_view(package, item, target._version(item, package, check_version(version)))

    return target.read(get)


@router.delete("/packages/{package}/versions/{version}")
async def delete_version(
    project: str, location: str, repo: str, package: str, version: str, request: Request, force: bool = False
):
    target = repository(request, project, location, repo)

    def delete(index: dict[str, Any]) -> None:
        item = target._package(index, package)
        target._version(item, package, check_version(version))
        tags = sorted(t for t, v in item["tags"].items() if v == version)
        if tags and not force:
            raise tagged(f"Version {version} is tagged ({', '.join(tags)}); delete its tags first or pass force=true.")
        for tag in tags:
            del item["tags"][tag]
        del item["versions"][version]

    target.write(delete)
    return delete_operation(target)


@router.get("/packages/{package}/tags")
async def list_tags(project: str, location: str, repo: str, package: str, request: Request):
    target = repository(request, project, location, repo)

    def tags(index: dict[str, Any]) -> dict[str, Any]:
        item = target._package(index, package)
        return {"tags": [target.tag_view(package, t, v) for t, v in sorted(item["tags"].items())]}

    return target.read(tags)


@router.get("/packages/{package}/tags/{tag}")
async def get_tag(project: str, location: str, repo: str, package: str, tag: str, request: Request):
    target = repository(request, project, location, repo)
    return target.tag_view(package, tag, target.resolve(package, check_tag(tag)))


def _version_named(target: Repository, package: str, name: str) -> str:
    """A Tag's ``version``: a full resource name, or kfp's short ``packages/P/versions/V``."""
    for prefix in (f"{target.prefix}/packages/{package}/versions/", f"packages/{package}/versions/"):
        if isinstance(name, str) and name.startswith(prefix):
            return check_version(name[len(prefix) :])
    raise invalid(f"Tag version {str(name)[:200]!r} is not a version of package {package}.")


@router.post("/packages/{package}/tags")
async def create_tag(project: str, location: str, repo: str, package: str, request: Request, tagId: str = ""):
    target = repository(request, project, location, repo)
    body = await json_body(request)
    version = _version_named(target, package, (body or {}).get("version", ""))
    check_tag(tagId)

    def create(index: dict[str, Any]) -> dict[str, Any]:
        item = target._package(index, package)
        target._version(item, package, version)
        if tagId in item["tags"]:
            raise conflict(f"Tag {target.prefix}/packages/{package}/tags/{tagId} already exists.")
        item["tags"][tagId] = version
        return target.tag_view(package, tagId, version)

    return target.write(create)


@router.patch("/packages/{package}/tags/{tag}")
async def update_tag(
    project: str, location: str, repo: str, package: str, tag: str, request: Request, updateMask: str = ""
):
    target = repository(request, project, location, repo)
    if updateMask.strip() != "version":
        raise invalid("update_mask must be 'version' (only a tag's version can change).")
    version = _version_named(target, package, ((await json_body(request)) or {}).get("version", ""))

    def move(index: dict[str, Any]) -> dict[str, Any]:
        item = target._package(index, package)
        target._version(item, package, version)
        if check_tag(tag) not in item["tags"]:
            raise invalid(f"Tag {tag} does not exist; create it first.")
        item["tags"][tag] = version
        return target.tag_view(package, tag, version)

    return target.write(move)


@router.delete("/packages/{package}/tags/{tag}")
async def delete_tag(project: str, location: str, repo: str, package: str, tag: str, request: Request):
    target = repository(request, project, location, repo)

    def delete(index: dict[str, Any]) -> None:
        item = target._package(index, package)
        if check_tag(tag) not in item["tags"]:
            raise not_found(f"Tag {target.prefix}/packages/{package}/tags/{tag[:80]} not found.")
        del item["tags"][tag]

    target.write(delete)
    return JSONResponse({})


@router.get("/{package}/{ref}")
async def download(project: str, location: str, repo: str, package: str, ref: str, request: Request):
    """The file of a version or a tag (what ``download_pipeline`` and a PipelineJob's
    ``template_path`` read)."""
    target = repository(request, project, location, repo)
    content = await request.app.state.services.io.run(target.download, package, ref)
    return Response(content, media_type="application/x-yaml")
