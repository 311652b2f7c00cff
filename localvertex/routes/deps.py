"""What the routes share: the services they use, the checks of the common path prefix
``/{version}/projects/{project}/locations/{location}`` as a FastAPI dependency, request
bodies parsed against the published schema, and responses written the way the client
asked (``$alt=json;enum-encoding=int``)."""

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from ..auth import Auth, bearer_token
from ..errors import invalid, not_found, unauthenticated, unimplemented
from ..ids import check_segment
from ..jobs import JobStore, TrainingRunner, serving_location
from ..prediction import Predictor
from ..schema.walker import MAX_DEPTH, SchemaError, api_schema, other_version
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


async def get_services(request: Request) -> Services:
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
        """Whether the job is one of this location's (a tuning job lives in its tuning region)."""
        return (job["_local"]["project"], job["_local"]["location"]) == (self.project, self.location)

    def serves(self, job: dict[str, Any]) -> bool:
        """Whether the job's endpoints answer here: at its serving location, which is a
        multi-region endpoint (``us``) for a model Vertex AI serves only there."""
        return (job["_local"]["project"], serving_location(job)) == (self.project, self.location)


async def location_path(version: str, project: str, location: str) -> Location:
    """The dependency behind every route under LOCATION_PREFIX: 404 for an unknown API
    version, 400 for a project or location that is not a valid name segment."""
    if version not in API_VERSIONS:
        raise not_found(f"API version {version[:20]!r} not found (use v1 or v1beta1)")
    return _checked(project, location)


def _checked(project: str, location: str) -> Location:
    check_segment(project, "project")
    check_segment(location, "location")
    return Location(project, location)


# Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its thread
# pool, two thread hand-offs per request for a dictionary lookup and a name check.
ServicesDep = Annotated[Services, Depends(get_services)]
LocationDep = Annotated[Location, Depends(location_path)]


async def json_body(request: Request) -> Any:
    """The decoded JSON body ({} when empty); 400 when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid(f"Invalid JSON payload received. {exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    except UnicodeDecodeError:
        raise invalid("Invalid JSON payload received. The body is not UTF-8.") from None
    except RecursionError:  # the json module's nesting limit
        raise invalid(f"Invalid JSON payload received. Message too deep. Max recursion depth is {MAX_DEPTH}.") from None


async def schema_body(request: Request, version: str, message: str, root: str = "") -> dict:
    """The request body as message ``message`` of API ``version``, in canonical form
    (camelCase keys, enum names; see localvertex/schema). 400 with Google's messages and a
    ``google.rpc.BadRequest`` detail for unknown fields or values of the wrong type."""
    body = await json_body(request)
    try:
        return api_schema(version).parse_request(message, body, root)
    except SchemaError as exc:
        raise invalid(str(exc), exc.details()) from None


def int_enums(request: Request) -> bool:
    """Whether the client asked for enums as numbers: ``$alt=json;enum-encoding=int``, as
    google-cloud-aiplatform's REST transport does. Only ``json`` is served."""
    alt = request.query_params.get("$alt") or request.query_params.get("alt") or "json"
    kind, *options = [p.strip() for p in alt.split(";")]
    if kind != "json":
        raise unimplemented(f"alt={kind[:20]!r} is not served by the local Vertex AI; use json")
    return "enum-encoding=int" in options


def respond(request: Request, version: str, message: str, body: dict[str, Any]) -> JSONResponse:
    """``body`` (canonical form) as message ``message`` of ``version``: checked against the
    schema (an unknown field is a server bug), fields only the other API version has left
    out, enums as numbers when the client asked for them."""
    encoded = api_schema(version).encode(message, body, int_enums(request), fallback=api_schema(other_version(version)))
    return JSONResponse(encoded)


async def require_token(request: Request) -> None:
    """The bearer-token check, for routes outside the API versions (``/local/...``)."""
    token = bearer_token(request.scope)
    if token is None or not request.app.state.services.auth.check(token):
        from ..auth import UNAUTHENTICATED_MESSAGE

        raise unauthenticated(UNAUTHENTICATED_MESSAGE)


async def local_location_path(project: str, location: str) -> Location:
    """The path check of the local-only routes under ``/local/v1/projects/P/locations/L``."""
    return _checked(project, location)
