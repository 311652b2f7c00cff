"""What the routes share: the services they use, and the checks of the common path prefix
``/{version}/projects/{project}/locations/{location}`` as a FastAPI dependency."""

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ..auth import Auth
from ..errors import invalid, not_found
from ..ids import check_segment
from ..jobs import JobStore, TrainingRunner
from ..prediction import Predictor
from ..storage import GcsReader

API_VERSIONS = ("v1", "v1beta1")
LOCATION_PREFIX = "/{version}/projects/{project}/locations/{location}"


class BlockingIO:
    """A small thread pool for blocking calls (storage reads, image decoding), so the
    event loop never waits on them."""

    def __init__(self, workers: int = 8) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="localvertex-io")

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Services:
    """Everything a route may use; set as ``app.state.services`` by server.build_app."""

    auth: Auth
    store: JobStore
    runner: TrainingRunner
    reader: GcsReader
    predictor: Predictor
    io: BlockingIO


def get_services(request: Request) -> Services:
    return request.app.state.services


@dataclass(frozen=True)
class Location:
    """The ``projects/P/locations/L`` of a request, checked."""

    project: str
    location: str

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def owns(self, job: dict[str, Any]) -> bool:
        return (job["_local"]["project"], job["_local"]["location"]) == (self.project, self.location)


def location_path(version: str, project: str, location: str) -> Location:
    """The dependency behind every route under LOCATION_PREFIX: 404 for an unknown API
    version, 400 for a project or location that is not a valid name segment."""
    if version not in API_VERSIONS:
        raise not_found(f"API version {version[:20]!r} not found (use v1 or v1beta1)")
    check_segment(project, "project")
    check_segment(location, "location")
    return Location(project, location)


ServicesDep = Annotated[Services, Depends(get_services)]
LocationDep = Annotated[Location, Depends(location_path)]


async def json_body(request: Request) -> Any:
    """The decoded JSON body ({} when empty); 400 when it is not JSON."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid JSON payload received: {exc}") from None
