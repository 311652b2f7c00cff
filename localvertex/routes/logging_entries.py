"""Cloud Logging v2 ``POST /v2/entries:list``, the read API of the pipeline tasks' logs
(https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list). Served on the
twin's one address, bearer token required; the request checks and the filter subset are in
localvertex/cloud_logging.py."""

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from .. import cloud_logging
from ..paging import page_token, parse_page_token
from .deps import json_body, require_token

router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/v2/entries:list")
async def list_log_entries(request: Request) -> JSONResponse:
    query = cloud_logging.parse_request(await json_body(request))
    offset = parse_page_token(query.page_token, query.key) if query.page_token else 0
    page, more = await request.app.state.services.io.run(request.app.state.task_logs.page, query, offset)
    out: dict[str, Any] = {}
    if page:  # proto3 JSON leaves an empty list out
        out["entries"] = page
    if more:
        out["nextPageToken"] = page_token(offset + query.page_size, query.key)
    return JSONResponse(out)
