"""Routes outside the API versions: the OAuth token endpoint and the health check."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..auth import token_grant
from .deps import ServicesDep

router = APIRouter()


@router.get("/healthz")
async def healthz():
    return {"status": "ok"}


@router.post("/token")
async def token(services: ServicesDep, request: Request):
    status, answer = token_grant(services.auth, await request.body())
    return JSONResponse(answer, status_code=status)
