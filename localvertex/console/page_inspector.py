"""Inspector: the champion of each inspector (its record and promotion history, read from
the bucket through the Cloud Storage API, where the pipeline's promote step writes them),
its golden-set figures, and a photo asked of the champion's endpoint through the
generateContent API, the way ``make inspect`` asks it (its prompt and system instruction,
temperature 0, the least thinking its base model allows)."""

from __future__ import annotations

import base64
import json
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .api import ApiFailure
from .context import ActionDep, PageDep
from .forms import read_form

router = APIRouter()

MAX_IMAGE = 20 * 1024 * 1024  # Vertex AI's limit for an inline image
HISTORY_SHOWN = 20
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
SLUG_RE = re.compile(r"[a-z0-9._-]{1,100}")


def image_type(data: bytes) -> str:
    """The image's type from its first bytes (never from the name or the browser's word)."""
    for signature, mime in SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


async def champions(api) -> list[dict]:
    """Every inspector's champion record in the project's buckets, newest promotion first."""
    found = []
    for bucket in await api.list_buckets():
        for item in await api.list_objects(bucket, "inspectors/"):
            parts = item["name"].split("/")
            if len(parts) == 3 and parts[2] == "champion.json":
                record = await _json(api, f"gs://{bucket}/{item['name']}")
                if isinstance(record, dict):
                    found.append({**record, "_bucket": bucket, "_slug": parts[1]})
    return sorted(found, key=lambda r: str(r.get("promoted_at", "")), reverse=True)


async def history(api, bucket: str, slug: str) -> list[dict]:
    items = sorted(await api.list_objects(bucket, f"inspectors/{slug}/history/"), key=lambda i: i["name"])
    records = [await _json(api, f"gs://{bucket}/{i['name']}") for i in items[-HISTORY_SHOWN:]]
    return [r for r in reversed(records) if isinstance(r, dict)]


async def _json(api, uri: str):
    try:
        return json.loads(await api.read_object(uri))
    except (ApiFailure, ValueError):
        return None


async def _page(current, name: str, answer: dict | None = None, problem: str = "", status: int = 200) -> Response:
    records = await champions(current.api)
    chosen = next((r for r in records if r["_slug"] == name), records[0] if records else None)
    past = await history(current.api, chosen["_bucket"], chosen["_slug"]) if chosen else []
    return current.render(
        "inspector.html", status, records=records, champion=chosen, history=past, answer=answer, problem=problem
    )


@router.get("/inspector")
async def inspector_page(current: PageDep, name: str = "") -> Response:
    return await _page(current, name)


def generate_body(champion: dict, image: bytes, mime: str) -> dict:
    """The generateContent request ``make inspect`` sends for one photo."""
    from components.labels import PROMPT
    from platform_facts.gemini import thinking_config_for

    try:
        thinking = thinking_config_for(champion.get("base_model") or "", "least")
    except ValueError:  # an endpoint of unknown base model: no thinking config
        thinking = {}
    config: dict = {"temperature": 0.0}
    if thinking:
        key, value = next(iter(thinking.items()))
        config["thinkingConfig"] = {
            {"thinking_level": "thinkingLevel", "thinking_budget": "thinkingBudget"}[key]: value
        }
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": champion.get("prompt") or PROMPT},
                    {"inlineData": {"mimeType": mime, "data": base64.b64encode(image).decode("ascii")}},
                ],
            }
        ],
        "generationConfig": config,
    }
    if champion.get("system_instruction"):
        body["systemInstruction"] = {"parts": [{"text": champion["system_instruction"]}]}
    return body


def answer_text(response: dict) -> str:
    parts = ((response.get("candidates") or [{}])[0].get("content") or {}).get("parts") or []
    return "".join(p.get("text", "") for p in parts if not p.get("thought")).strip()


@router.post("/inspector/ask")
async def ask(current: ActionDep, request: Request) -> Response:
    form = await read_form(request)
    name = str(form.get("name") or "")
    upload = form.files.get("photo")
    image = upload.data if upload else b""
    mime = image_type(image)
    if not image or len(image) > MAX_IMAGE or not mime:
        problem = "Choose a PNG, JPEG, GIF or WebP photo of at most 20 MB."
        return await _page(current, name, problem=problem, status=400)
    records = await champions(current.api)
    champion = next((r for r in records if r["_slug"] == name), records[0] if records else None)
    if champion is None:
        return await _page(current, name, problem="No champion yet: a run that promotes one comes first.", status=400)
    from components.labels import answer_status, defect_type_of

    try:
        response = await current.api.generate(champion["endpoint"], generate_body(champion, image, mime))
    except ApiFailure as failure:
        return await _page(current, name, problem=f"The endpoint answered {failure.status}: {failure.message}")
    text = answer_text(response)
    status = answer_status(text)
    answer = {
        "text": text,
        "status": status,
        "defect_type": defect_type_of(text) if status == "Defect" else "",
        "thumbnail": f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}" if len(image) < 2_000_000 else "",
        "file": upload.filename,
    }
    return await _page(current, champion["_slug"], answer=answer)
