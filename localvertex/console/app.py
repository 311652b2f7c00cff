"""The console as its own small ASGI app, mounted at ``/console`` on the local Vertex AI.

Mounted, not merged into the API's routes: it has its own error pages (HTML, not Google's
JSON errors), its own guards (Host, session, CSRF: security.py) and its own headers (CSP),
and none of them touch the API. Its data comes only from the REST API (api.py).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from . import security
from .api import ApiFailure
from .context import ConsoleState, PageDep, state_of
from .views import TEMPLATES, render

PREFIX = "/console"


class GuardMiddleware:
    """Host check on every request, and the security headers on every answer."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            security.check_host(Request(scope))
        except security.Refused as refused:
            return await _refused_page(refused)(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {k.lower() for k, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", security.CSP.encode()))
                headers.extend((k.lower().encode(), v.encode()) for k, v in security.SECURITY_HEADERS.items())
            await send(message)

        return await self.app(scope, receive, with_headers)


def _refused_page(refused: security.Refused) -> Response:
    return render("error.html", refused.status, title="Not allowed", message=refused.reason, csrf="", nav="")


def build_console(parent: FastAPI) -> FastAPI:
    from . import (
        page_create,
        page_experiments,
        page_inspector,
        page_run,
        page_runs,
        page_schedules,
        page_templates,
    )

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = ConsoleState(parent)

    async def refused(request: Request, exc: security.Refused):
        return _refused_page(exc)

    async def api_failed(request: Request, exc: ApiFailure):
        title = f"The API answered {exc.status}"
        return render("error.html", exc.status, title=title, message=exc.message, csrf="", nav="")

    app.add_exception_handler(security.Refused, refused)
    app.add_exception_handler(ApiFailure, api_failed)
    app.add_middleware(GuardMiddleware)
    app.mount("/static", StaticFiles(directory=TEMPLATES.parent / "static"), name="static")
    app.add_api_route("/login", login, methods=["GET"])
    app.add_api_route("/", home, methods=["GET"])
    for module in (page_runs, page_run, page_create, page_templates, page_experiments, page_schedules, page_inspector):
        app.include_router(module.router)
    return app


async def login(request: Request, token: str = "") -> Response:
    """``/console/login?token=T``: a session cookie for the right token, then the runs page
    at a URL without the token."""
    keys = security.read_keys(state_of(request).auth_dir)
    security.check_login_token(keys, token)
    resp = RedirectResponse(f"{PREFIX}/runs", status_code=303)
    resp.headers["set-cookie"] = security.cookie_header(security.new_session(keys))
    return resp


async def home(current: PageDep) -> Response:
    return RedirectResponse(f"{PREFIX}/runs", status_code=303)


def mount(parent: FastAPI) -> None:
    """Serve the console at /console on ``parent`` (the local Vertex AI app)."""
    parent.mount(PREFIX, build_console(parent))
