"""What every page gets: the console's state (where the API is), and the guards as
FastAPI dependencies (``PageDep``: a session; ``ActionDep``: a session, a same-site request
and its CSRF token) that hand a handler its ``Page``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from . import security
from .api import VertexApi
from .forms import read_form
from .views import render

LOCATION_ENV = "LOCALVERTEX_CONSOLE_LOCATION"
DEFAULT_LOCATION = "us-central1"


class ConsoleState:
    """What the console keeps between requests: where the API is, and its client."""

    def __init__(self, parent: FastAPI) -> None:
        self.parent = parent
        self.location = os.environ.get(LOCATION_ENV, DEFAULT_LOCATION)
        self.transport = None  # tests put an httpx transport here instead of HTTP
        self.base_url = ""  # set from the first request: this server's own address
        self._api: VertexApi | None = None

    @property
    def services(self):
        return self.parent.state.services

    @property
    def auth_dir(self):
        return self.services.auth.dir

    def api(self, request: Request) -> VertexApi:
        if self._api is None:
            host, port = request.scope.get("server") or ("127.0.0.1", 80)
            base = self.base_url or f"http://{'127.0.0.1' if host in ('testserver', None) else host}:{port}"
            services = self.services
            self._api = VertexApi(
                base,
                services.auth.project,
                self.location,
                services.auth.issue,
                storage_url=services.reader.endpoint,
                transport=self.transport,
            )
        return self._api


@dataclass
class Page:
    """One request's view of the console: the API, the session and its CSRF token."""

    request: Request
    api: VertexApi
    keys: security.Keys
    sid: str

    @property
    def csrf(self) -> str:
        return security.csrf_token(self.keys, self.sid)

    def render(self, template: str, status: int = 200, /, **context) -> Response:
        return render(template, status, csrf=self.csrf, api=self.api, nav=template.split(".")[0], **context)


def state_of(request: Request) -> ConsoleState:
    return request.app.state.console


async def page(request: Request) -> Page:
    """The guard of every page: a valid session cookie (the login token was presented)."""
    state = state_of(request)
    keys = security.read_keys(state.auth_dir)
    sid = security.session_id(keys, request.cookies.get(security.COOKIE))
    if sid is None:
        raise security.Refused(401, "Open the console with the URL that `make console` prints (it logs you in).")
    return Page(request, state.api(request), keys, sid)


async def action(request: Request) -> Page:
    """The guard of every POST: a session, a same-site request, and this session's CSRF token."""
    current = await page(request)
    security.check_same_site(request)
    form = await read_form(request)
    security.check_csrf(current.keys, current.sid, str(form.get("csrf") or ""))
    return current


PageDep = Annotated[Page, Depends(page)]
ActionDep = Annotated[Page, Depends(action)]
