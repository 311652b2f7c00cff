"""What the restart and fault tests share: tiny training data in the local storage and
bounded waits for a state (a state, never a fixed sleep: the suite must hold on a busy
machine)."""

import io
import json
import time

PROJECT, BUCKET = "local-project", "local-bucket"  # the local stack's defaults (a bucket name, not a URI)

PASS = "Status: Pass"
CRACK = "Status: Defect - Crack identified in main body."


def tiny_png(colour, size: int = 16) -> bytes:
    """A one-colour PNG (``colour`` as PIL takes it: a name, "#RRGGBB" or an RGB tuple)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()


def sft_line(image_uri: str, label: str, prompt: str = "Inspect.") -> str:
    """One Gemini SFT JSONL line: the prompt and the image, then the label."""
    user = {"role": "user", "parts": [{"text": prompt}, {"fileData": {"mimeType": "image/png", "fileUri": image_uri}}]}
    return json.dumps({"contents": [user, {"role": "model", "parts": [{"text": label}]}]})


def upload_training_file(prefix: str, examples=None) -> str:
    """Uploads ``examples`` ((label, colour) pairs; default two Pass and two Crack images) and
    their training JSONL under ``prefix`` in the local bucket; returns the JSONL's gs:// URI."""
    from google.cloud import storage

    examples = examples or [(PASS, (90, 90, 170)), (CRACK, (250, 250, 250))] * 2
    bucket, lines = storage.Client(project=PROJECT).bucket(BUCKET), []
    for i, (label, colour) in enumerate(examples):
        bucket.blob(f"{prefix}/{i}.png").upload_from_string(tiny_png(colour), content_type="image/png")
        lines.append(sft_line(f"gs://{BUCKET}/{prefix}/{i}.png", label))
    bucket.blob(f"{prefix}/train.jsonl").upload_from_string("\n".join(lines))
    return f"gs://{BUCKET}/{prefix}/train.jsonl"


def wait_for_job(client, name: str, states: set[str], timeout: float = 180.0):
    """The tuning job once its state is one of ``states``; fails naming it after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.tunings.get(name=name)
        if job.state.name in states:
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state.name} after {timeout} s"
        time.sleep(0.3)


def wait_until(predicate, timeout: float, what: str, poll: float = 0.3):
    """``predicate()``'s first truthy value, asked every ``poll`` s; fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")
