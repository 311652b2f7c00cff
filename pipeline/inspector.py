"""Asking an inspector about images, as ``python -m pipeline inspect`` does: which endpoint to ask
and how (``inspect_target``), and one image's answer (``ask_image``). The command's options and
output are in pipeline/commands/inspect.py; the champion's records in pipeline/champion.py."""

import os
from contextlib import contextmanager
from pathlib import Path

from pipeline.champion import LOCAL_BUCKET, LOCAL_PROJECT


class NothingToAsk(RuntimeError):
    """No endpoint given, no champion and no successful run on the data folder."""


@contextmanager
def environment(env: dict):
    """``env`` set in os.environ for the block (the SDKs read their addresses there), then restored."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def inspect_target(env: dict, inspector: str, why: str, run: dict | None, endpoint: str | None, latest: bool):
    """({"endpoint", "prompt", "system_instruction", ...}, a phrase naming it, a note or ""): what to ask.

    The champion is asked the way it was tuned (its own prompt and system instruction); without
    one, the latest successful run's chosen checkpoint, with a note saying so.

    Raises:
        NothingToAsk: no endpoint given, no champion and no successful run.
    """
    from components.labels import PROMPT
    from pipeline.champion import load_champion, storage_bucket, target_of

    params = run["params"] if run else {}
    asked_as = {"prompt": params.get("prompt", PROMPT), "system_instruction": params.get("system_instruction", "")}
    if endpoint:
        return {**asked_as, "endpoint": endpoint}, "the given endpoint", ""
    note = ""
    if not latest:
        bucket = params.get("bucket", LOCAL_BUCKET).removeprefix("gs://").split("/")[0]
        home = storage_bucket(env, bucket, params.get("project", LOCAL_PROJECT))
        champion = target_of(load_champion(home, inspector)[0])
        if champion:
            champion["prompt"] = champion["prompt"] or asked_as["prompt"]
            return champion, f"the champion of {inspector} ({why}; promoted by run {champion['run']})", ""
        note = f"note: {inspector} has no champion yet: asking the latest successful run's chosen checkpoint"
    if not run:
        raise NothingToAsk("no successful offline run on this data folder yet: `make run` tunes an inspector first")
    target = {**asked_as, "endpoint": run["result"]["tuned_endpoint"]}
    return target, f"the chosen checkpoint of run {run['run_id']}", note


def ask_image(client, target: dict, image: Path) -> dict:
    """One image's answer, parsed status and defect type; or the error that stopped it."""
    import mimetypes

    from google.genai import errors, types

    from components.labels import answer_status, defect_type_of
    from components.manifests import image_mime_types
    from platform_facts.gemini import thinking_config_for

    row = {"file": str(image), "answer": "", "status": "", "defect_type": None, "error": ""}
    mime = (
        image_mime_types().get(image.suffix.lower().lstrip(".")) or mimetypes.guess_type(image.name)[0] or "image/png"
    )
    try:  # as little thinking as the champion's base model allows, as evaluation asks it
        thinking = thinking_config_for(target.get("base_model") or "", "least")
    except ValueError:  # an endpoint of unknown base model: no thinking config
        thinking = {}
    try:
        response = client.models.generate_content(
            model=target["endpoint"],
            contents=[
                types.Part.from_text(text=target["prompt"]),
                types.Part.from_bytes(data=image.read_bytes(), mime_type=mime),
            ],
            config=types.GenerateContentConfig(
                temperature=0.0,
                system_instruction=target["system_instruction"] or None,
                thinking_config=types.ThinkingConfig(**thinking) if thinking else None,
            ),
        )
    except errors.APIError as error:
        return {**row, "error": f"{error.code} {error.status}: {error.message}"}
    answer = (response.text or "").strip()
    status = answer_status(answer)
    return {
        **row,
        "answer": answer,
        "status": status,
        "defect_type": defect_type_of(answer) if status == "Defect" else None,
    }
