"""Prediction: ``generateContent`` on tuned endpoints and on the endpoints of a tuning job's
intermediate checkpoints; publisher (base Gemini) models are 404 because there is no local
Gemini, so callers fall back.

An endpoint answers at its job's serving location only (jobs.serving_location: the ``us`` or
``eu`` multi-region endpoint for a Gemini 3 model, the tuning region for 2.5); elsewhere it
is 404, as Vertex AI does not serve it there. A tuned model's own endpoint answers once its
job has SUCCEEDED. A checkpoint's endpoint
answers from the moment the checkpoint is listed ("each intermediate checkpoint is
deployed to a new endpoint" as tuning progresses), with that checkpoint's weights, until
the job fails or is cancelled.
"""

from typing import Any

from fastapi import APIRouter, Depends, Request

from platform_facts.gemini import lifecycle_problem

from .. import generate
from ..errors import method_not_found, not_found, unimplemented
from ..ids import check_id
from ..jobs import SERVING_STATES, SUCCEEDED, endpoint_path, model_name, now_rfc3339, serving_key, state_word
from .deps import LOCATION_PREFIX, Location, LocationDep, Services, ServicesDep, location_path, respond, schema_body

# Real Vertex AI methods on endpoints that the local server does not implement (501).
UNIMPLEMENTED_METHODS = (
    "streamGenerateContent",
    "countTokens",
    "computeTokens",
    "predict",
    "rawPredict",
    "streamRawPredict",
    "directPredict",
    "explain",
)

router = APIRouter(prefix=LOCATION_PREFIX, dependencies=[Depends(location_path)])
# Publisher models without projects/locations (the SDK's global form): no version check.
global_router = APIRouter()


def check_endpoint_method(action: str) -> None:
    if action == "generateContent":
        return
    if action in UNIMPLEMENTED_METHODS:
        raise unimplemented(f"{action} is not implemented by the local Vertex AI; use generateContent.")
    raise method_not_found()


def deployed_model(services: Services, loc: Location, endpoint_id: str) -> tuple[dict, str]:
    """(the tuning job, the model key to serve) behind an endpoint; 404 when the endpoint
    does not exist or serves nothing (yet, or any more)."""
    job = services.store.by_endpoint(endpoint_id, read_only=True)  # read, never changed here
    # At the tuning region a model served on a multi-region endpoint is not found, as on Vertex AI.
    target = serving_key(job, endpoint_id) if job is not None and loc.serves(job) else None
    if target is None:
        raise not_found(f"Endpoint {loc.name}/endpoints/{endpoint_id} not found.")
    model_key, is_tuned_model = target
    serving = job["state"] == SUCCEEDED if is_tuned_model else job["state"] in SERVING_STATES
    if not serving:
        raise not_found(
            f"Endpoint {endpoint_path(job, endpoint_id)} is not deployed: its tuning job is {state_word(job)}."
        )
    # A tuned model shares its base model's retirement date: after it, the endpoint answers nothing.
    retired = lifecycle_problem(job["_local"].get("localBaseModel", ""))
    if retired:
        raise not_found(f"Endpoint {endpoint_path(job, endpoint_id)} no longer serves: {retired}.")
    return job, model_key


@router.post("/endpoints/{endpoint_action}")
async def endpoint_action(
    version: str, loc: LocationDep, services: ServicesDep, endpoint_action: str, request: Request
):
    endpoint_id, sep, action = endpoint_action.partition(":")
    if not sep:
        raise method_not_found()
    check_id(endpoint_id, "endpoint id")
    check_endpoint_method(action)
    body = await schema_body(request, version, "GenerateContentRequest")
    job, model_key = deployed_model(services, loc, endpoint_id)
    prompt = generate.parse_prompt(body)
    data = await generate.image_bytes(prompt.image_part, services.reader.read_bytes, services.io.run)
    config = generate.parse_generation_config(body)
    generate.check_thinking(body, job["_local"]["localBaseModel"])
    generate.check_media_resolution(prompt, job["_local"]["localBaseModel"])
    text, finish = await services.predictor.generate(
        model_key,
        data,
        config.temperature,
        config.max_new_tokens,
        config.seed,  # decoded by the worker
    )
    out: dict[str, Any] = generate.response_body(
        text, finish, prompt, model_name(job), now_rfc3339(), job["_local"]["localBaseModel"]
    )
    return respond(request, version, "GenerateContentResponse", out)


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
