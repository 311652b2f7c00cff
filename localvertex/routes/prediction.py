"""Prediction: ``generateContent`` on tuned endpoints; publisher (base Gemini) models are
404 because there is no local Gemini, so callers fall back."""

from typing import Any

from fastapi import APIRouter, Depends, Request

from .. import generate
from ..datasets import camelize
from ..errors import not_found, unimplemented
from ..ids import check_id
from ..jobs import SUCCEEDED, endpoint_name, model_name, now_rfc3339, state_word
from .deps import LOCATION_PREFIX, Location, LocationDep, Services, ServicesDep, json_body, location_path

UNIMPLEMENTED_METHODS = ("streamGenerateContent", "countTokens", "predict", "rawPredict")

router = APIRouter(prefix=LOCATION_PREFIX, dependencies=[Depends(location_path)])
# Publisher models without projects/locations (the SDK's global form): no version check.
global_router = APIRouter()


def check_endpoint_method(action: str) -> None:
    if action == "generateContent":
        return
    if action in UNIMPLEMENTED_METHODS:
        raise unimplemented(f"{action} is not implemented by the local Vertex AI; use generateContent.")
    raise not_found(f"unknown method {action[:40]!r} on endpoints")


def deployed_job(services: Services, loc: Location, endpoint_id: str) -> dict[str, Any]:
    """The SUCCEEDED tuning job behind an endpoint; 404 otherwise."""
    job = services.store.by_endpoint(endpoint_id)
    if job is None or not loc.owns(job):
        raise not_found(f"Endpoint {loc.name}/endpoints/{endpoint_id} not found.")
    if job["state"] != SUCCEEDED:
        raise not_found(f"Endpoint {endpoint_name(job)} is not deployed: its tuning job is {state_word(job)}.")
    return job


@router.post("/endpoints/{endpoint_action}")
async def endpoint_action(loc: LocationDep, services: ServicesDep, endpoint_action: str, request: Request):
    endpoint_id, _, action = endpoint_action.partition(":")
    check_id(endpoint_id, "endpoint id")
    check_endpoint_method(action)
    job = deployed_job(services, loc, endpoint_id)
    body = camelize(await json_body(request))
    prompt = generate.parse_prompt(body)
    data = await generate.image_bytes(prompt.image_part, services.reader.read_bytes, services.io.run)
    image = await generate.decode_image(data, services.io.run)
    config = generate.parse_generation_config(body)
    text, finish = await services.predictor.generate(
        job["_local"]["modelId"], image, config.temperature, config.max_new_tokens, config.seed
    )
    return generate.response_body(text, finish, prompt, model_name(job), now_rfc3339())


@router.post("/publishers/{publisher}/models/{model_action}")
async def publisher_model(publisher: str, model_action: str):
    model = model_action.partition(":")[0]
    raise not_found(
        f"Publisher model publishers/{publisher[:40]}/models/{model[:80]} is not "
        "available: the local Vertex AI has no local Gemini (only tuned "
        "endpoints answer). Fall back or use the real Vertex AI."
    )


@global_router.post("/{version}/publishers/{publisher}/models/{model_action}")
async def global_publisher_model(version: str, publisher: str, model_action: str):
    raise not_found(
        "Publisher models are not available: the local Vertex AI has no local Gemini (only tuned endpoints answer)."
    )
