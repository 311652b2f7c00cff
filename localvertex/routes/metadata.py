"""ML Metadata, the part google-cloud-aiplatform uses (Experiments, PipelineJob lineage):
``metadataStores/default`` and its contexts, artifacts and executions: create (with an id
or without), get, list (AIP-160 ``filter``, ``orderBy``, paged), patch (``updateMask``,
``allowMissing``), delete (a done Operation); contexts' ``:addContextChildren``,
``:removeContextChildren``, ``:addContextArtifactsAndExecutions``,
``:queryContextLineageSubgraph``; executions' ``:addExecutionEvents`` and
``:queryExecutionInputsAndOutputs``.
"""

import re
from typing import Any

from fastapi import APIRouter, Depends, Request

from ..errors import invalid, method_not_found, not_found
from ..metadata import KINDS
from ..metadata import filters as md_filters
from ..paging import Page, parse_page
from .deps import LOCATION_PREFIX, Location, LocationDep, location_path, respond, schema_body

router = APIRouter(prefix=LOCATION_PREFIX, dependencies=[Depends(location_path)])
DEFAULT_PAGE_SIZE = 100
RESOURCE_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
ID_PARAM = {"contexts": "contextId", "artifacts": "artifactId", "executions": "executionId"}
ORDER_FIELDS = {"create_time": "createTime", "update_time": "updateTime", "display_name": "displayName"}


def md(request: Request):
    return request.app.state.pipelines.metadata


def store_name(loc: Location, store: str) -> str:
    if store != "default":
        raise not_found(f"MetadataStore {loc.name}/metadataStores/{store[:80]} not found.")
    return f"{loc.name}/metadataStores/default"


def resource_name(loc: Location, store: str, kind: str, rid: str) -> str:
    if not RESOURCE_ID_RE.fullmatch(rid):
        raise invalid(f"Invalid {KINDS[kind]} id {rid[:140]!r}: [a-z0-9-], 128 at most.")
    return f"{store_name(loc, store)}/{kind}/{rid}"


@router.get("/metadataStores/{store}")
async def get_store(version: str, loc: LocationDep, store: str, request: Request):
    name = store_name(loc, store)
    return respond(request, version, "MetadataStore", {"name": name, "description": "The default metadata store."})


@router.get("/metadataStores")
async def list_stores(version: str, loc: LocationDep, request: Request):
    body = {"metadataStores": [{"name": store_name(loc, "default")}]}
    return respond(request, version, "ListMetadataStoresResponse", body)


def _sorted(nodes: list[dict], order_by: str) -> list[dict]:
    if not order_by:
        return nodes
    for part in reversed([p.strip() for p in order_by.split(",")]):
        words = part.split()
        if not words or words[0] not in ORDER_FIELDS or words[1:] not in ([], ["asc"], ["desc"]):
            raise invalid(f"Invalid order_by {order_by[:200]!r}: fields are {', '.join(ORDER_FIELDS)}.")
        nodes.sort(key=lambda n, f=ORDER_FIELDS[words[0]]: n.get(f) or "", reverse=words[1:] == ["desc"])
    return nodes


def _register(kind: str) -> None:
    """The routes of one kind of metadata resource (contexts, artifacts or executions)."""
    _register_create_and_list(kind)
    _register_get_patch_delete(kind)


def _register_create_and_list(kind: str) -> None:
    message = KINDS[kind]
    base = f"/metadataStores/{{store}}/{kind}"

    @router.post(base, name=f"create_{kind}")
    async def create(version: str, loc: LocationDep, store: str, request: Request):
        rid = request.query_params.get(ID_PARAM[kind]) or None
        if rid is not None:
            resource_name(loc, store, kind, rid)
        body = await schema_body(request, version, message, root=message.lower())
        node = md(request).create(kind, store_name(loc, store), rid, body)
        return respond(request, version, message, node)

    @router.get(base, name=f"list_{kind}")
    async def list_(
        version: str,
        loc: LocationDep,
        store: str,
        request: Request,
        pageSize: int = 0,
        pageToken: str = "",
        filter: str = "",
        orderBy: str = "",
    ):
        page = parse_page(pageSize, pageToken, f"{filter}|{orderBy}", DEFAULT_PAGE_SIZE)
        out = _list_page(md(request), kind, store_name(loc, store), page, filter, orderBy)
        return respond(request, version, f"List{message}sResponse", out)


def _list_page(store_, kind: str, parent: str, page: Page, filter_: str, order_by: str) -> dict:
    """One page of a kind's resources under ``parent``, filtered and ordered, with the next token."""
    matches = md_filters.parse(store_, kind, filter_)
    with store_.lock:
        nodes = _sorted([n for n in (store_.nodes[n] for n in store_.names(kind, parent)) if matches(n)], order_by)
        views = [store_.view(n["name"]) for n in page.of(nodes)]
    out: dict[str, Any] = {kind: views}
    if next_token := page.next_token(len(nodes)):
        out["nextPageToken"] = next_token
    return out


def _register_get_patch_delete(kind: str) -> None:
    message = KINDS[kind]
    base = f"/metadataStores/{{store}}/{kind}"

    @router.get(base + "/{rid_action}", name=f"get_{kind}")
    async def get(version: str, loc: LocationDep, store: str, rid_action: str, request: Request):
        rid, sep, action = rid_action.partition(":")
        name = resource_name(loc, store, kind, rid)
        if not sep:
            return respond(request, version, message, md(request).get(kind, name))
        if (kind, action) in (
            ("contexts", "queryContextLineageSubgraph"),
            ("executions", "queryExecutionInputsAndOutputs"),
        ):
            return respond(request, version, "LineageSubgraph", lineage(md(request), kind, name))
        raise method_not_found()

    @router.patch(base + "/{rid}", name=f"patch_{kind}")
    async def patch(
        version: str,
        loc: LocationDep,
        store: str,
        rid: str,
        request: Request,
        updateMask: str = "",
        allowMissing: bool = False,
    ):
        name = resource_name(loc, store, kind, rid)
        body = await schema_body(request, version, message, root=message.lower())
        store_ = md(request)
        mask = [_camel(m.strip()) for m in updateMask.split(",") if m.strip()]
        if allowMissing and store_.kind_of.get(name) is None:
            node = store_.create(kind, store_name(loc, store), rid, body)
        else:
            node = store_.update(kind, name, body, mask)
        return respond(request, version, message, node)

    @router.delete(base + "/{rid}", name=f"delete_{kind}")
    async def delete(version: str, loc: LocationDep, store: str, rid: str, request: Request):
        md(request).delete(kind, resource_name(loc, store, kind, rid))
        op = request.app.state.pipelines.record_operation(loc.project, loc.location, "DeleteOperationMetadata")
        return respond(request, version, "GoogleLongrunningOperation", op)


@router.post("/metadataStores/{store}/contexts/{rid_action}", name="context_action")
async def context_action(version: str, loc: LocationDep, store: str, rid_action: str, request: Request):
    """``:addContextChildren``, ``:removeContextChildren``, ``:addContextArtifactsAndExecutions``."""
    rid, _, action = rid_action.partition(":")
    name = resource_name(loc, store, "contexts", rid)
    store_ = md(request)
    if action == "addContextChildren":
        body = await schema_body(request, version, "AddContextChildrenRequest")
        store_.add_links("child", name, body.get("childContexts", []), "contexts")
        return respond(request, version, "AddContextChildrenResponse", {})
    if action == "removeContextChildren":
        body = await schema_body(request, version, "RemoveContextChildrenRequest")
        store_.remove_children(name, body.get("childContexts", []))
        return respond(request, version, "RemoveContextChildrenResponse", {})
    if action == "addContextArtifactsAndExecutions":
        body = await schema_body(request, version, "AddContextArtifactsAndExecutionsRequest")
        _attribute(store_, name, body)
        return respond(request, version, "AddContextArtifactsAndExecutionsResponse", {})
    raise method_not_found()


def _attribute(store_, context: str, body: dict) -> None:
    """Links existing artifacts and executions to ``context``; 400 naming the first missing one."""
    with store_.lock:
        for target in ("artifacts", "executions"):
            missing = [n for n in body.get(target, []) if store_.kind_of.get(n) != target]
            if missing:
                raise invalid(f"{KINDS[target]} {missing[0]} not found.")
        store_.add_links("attr", context, body.get("artifacts", []), "artifacts")
        store_.add_links("assoc", context, body.get("executions", []), "executions")


@router.post("/metadataStores/{store}/executions/{rid_action}", name="execution_action")
async def execution_action(version: str, loc: LocationDep, store: str, rid_action: str, request: Request):
    """``:addExecutionEvents``."""
    rid, _, action = rid_action.partition(":")
    if action != "addExecutionEvents":
        raise method_not_found()
    body = await schema_body(request, version, "AddExecutionEventsRequest")
    md(request).add_events(resource_name(loc, store, "executions", rid), body.get("events", []))
    return respond(request, version, "AddExecutionEventsResponse", {})


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def lineage(store_, kind: str, name: str) -> dict[str, Any]:
    """A context's artifacts and executions with their events; or an execution's inputs and outputs."""
    with store_.lock:
        store_.get(kind, name)  # 404 when missing
        if kind == "contexts":
            members = store_.members(name)
            executions = {n for n in members if store_.kind_of.get(n) == "executions"}
            events = store_.events_of(executions=executions)
            artifacts = {n for n in members if store_.kind_of.get(n) == "artifacts"} | {e["artifact"] for e in events}
        else:
            executions = {name}
            events = store_.events_of(executions=executions)
            artifacts = {e["artifact"] for e in events}
        return {
            "artifacts": [store_.view(n) for n in sorted(artifacts) if n in store_.nodes],
            "executions": [store_.view(n) for n in sorted(executions)],
            "events": events,
        }


for _kind in KINDS:
    _register(_kind)
