"""Helpers shared by several components.

KFP lightweight components carry only their own source, so each helper here is
self-contained (imports inside) and is copied into the components that use it through
``@dsl.component(additional_funcs=[...])``. Plain Python code (the CLI, the local model's
benchmark, tests) imports them directly.
"""

PROMPT = (
    "Analyze the following product image for manufacturing defects. Classify its status as "
    "'Pass' or 'Defect' and provide a brief description if a defect is present."
)


def notebook_labels():
    """The source notebook's ground-truth answers by defect type; None is a good product."""
    return {
        None: "Status: Pass",
        "Scratch": "Status: Defect - Scratch detected on product surface.",
        "Crack": "Status: Defect - Crack identified in main body.",
        "Discoloration": "Status: Defect - Discoloration spot found.",
    }


LABELS = notebook_labels()
DEFECT_TYPES = tuple(t for t in LABELS if t)


def image_mime_types():
    """The image formats Gemini tuning accepts: file extension (lower case, no dot) -> MIME type."""
    return {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
        "heic": "image/heic",
        "heif": "image/heif",
    }


def manifest_columns():
    """The image manifest's columns, in order, as every data step writes and reads them."""
    return ["image_name", "gcs_uri", "status", "defect_type", "label", "sha256"]


def write_manifest(path, rows):
    """Writes the manifest CSV whole or not at all (a full disk leaves no half manifest).

    The rows (dicts with manifest_columns()) go to ``path + ".partial"``, which is renamed
    over ``path`` only once complete; on any error it is removed and the error raised.
    """
    import csv
    import os

    partial = path + ".partial"
    try:
        with open(partial, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=manifest_columns())
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_empty_manifest(path, reason):
    """Writes a manifest with the header only: this image step stands aside (see split_manifest).

    The pipeline runs both image steps, synthesize_images and import_dataset, and the one
    that does not apply writes this; split_manifest takes the manifest that has rows. A
    static DAG needs no ``dsl.OneOf`` over artifacts, which Vertex AI does not document.
    """
    write_manifest(path, [])
    print(f"no images from this step: {reason}", flush=True)


PROGRESS_MARK = "::progress::"  # report_progress and parse_progress spell it out: they ship alone


def report_progress(done, total, unit="items", note="", elapsed_s=None):
    """Prints one progress line: readable text, then a mark and a JSON record for machines.

    ``report_progress(20, 200, "images", "uploaded")`` prints
    ``uploaded 20/200 images ::progress:: {"done": 20, "total": 200, "unit": "images"}``.
    With ``elapsed_s`` (seconds the work has run so far) an unfinished line also estimates
    the time left at the rate so far: ``..., ETA 2m05s`` and ``"eta_s": 125`` in the record,
    so a long job on Vertex AI says in its log when it will end. The offline CLI reads the
    record after the mark (parse_progress) instead of parsing free text.
    """
    import json

    text = " ".join(part for part in (note, f"{int(done)}/{int(total)}", unit) if part)
    record = {"done": int(done), "total": int(total), "unit": unit}
    if elapsed_s is not None and 0 < done < total:
        eta = round(elapsed_s * (total - done) / done)
        text += f", ETA {eta // 60}m{eta % 60:02d}s"
        record["eta_s"] = eta
    print(f"{text} ::progress:: {json.dumps(record)}", flush=True)


def parse_progress(line):
    """The record ``{"done", "total", "unit"}`` of a report_progress line, or None."""
    import json

    _, mark, payload = line.partition("::progress:: ")
    if not mark:
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict) or not all(type(record.get(k)) is int for k in ("done", "total")):
        return None
    return record


def is_pass_answer(text):
    """True when an answer says exactly "Status: Pass" (case, spacing, a final period aside)."""
    import re

    return re.fullmatch(r"\s*status\s*:\s*pass\s*[.!]?\s*", text or "", re.IGNORECASE) is not None


def defect_type_of(label):
    """The defect type named by a label such as "Status: Defect - Crack identified ...".

    Returns None for a Pass label or a label that names no type.
    """
    import re

    match = re.search(r"\bdefect\b\s*[-:\u2013\u2014]\s*([A-Za-z][\w-]*)", label or "", re.IGNORECASE)
    return match.group(1) if match else None


def answer_status(text):
    """What an answer says of the product: "Pass", "Defect" or "Unparseable".

    "Pass" only for exactly "Status: Pass" (see is_pass_answer). "Defect" when the
    answer's "Status:" says Defect or, stating no status, it contains the word "Defect"
    not negated ("no defect"). "Status: Pass - no Defect" is therefore Unparseable.
    """
    import re

    text = text or ""
    if is_pass_answer(text):
        return "Pass"
    declared = re.search(r"\bstatus\s*:\s*(pass|defect)\b", text, re.IGNORECASE)
    if declared:
        said_defect = declared.group(1).lower() == "defect"
    else:
        said_defect = (
            re.search(r"\bdefect\b", text, re.IGNORECASE) is not None
            and re.search(r"\b(?:no|not|without|zero)\s+(?:a\s+|any\s+)?defects?\b", text, re.IGNORECASE) is None
        )
    return "Defect" if said_defect else "Unparseable"


def judge_answer(expected_label, predicted, classes=None):
    """Scores one answer with the source notebook's rule, tolerant of harmless variants.

    Expected Pass: the answer must be "Status: Pass" (case, spacing and a final period
    aside; "Status: Passed" or "Status: Pass - no defect" are not a clean Pass).
    Expected Defect: the answer must call the product defective and, for the type to
    count, name the expected defect type as a whole word, case-insensitive, and no other
    known type (naming every type does not earn type credit).

    Whether the answer calls the product defective is answer_status's verdict, so
    "Status: Pass - no Defect" is neither a defect call nor a clean Pass.

    Args:
        expected_label: the ground-truth answer text.
        predicted: the model's answer text (None counts as empty).
        classes: the defect types in play (e.g. the types found in the test labels);
            None means the notebook's three (Scratch, Crack, Discoloration).

    Returns:
        A dict with expected_class ("Pass", the expected defect type, or "Defect" for a
        defect label naming no type), predicted_class ("Pass", exactly one named defect
        type, or "Unparseable"), predicted_status ("Pass", "Defect" or "Unparseable"),
        status_correct, type_correct and exact_match.
    """
    import re

    if classes is None:
        classes = ("Scratch", "Crack", "Discoloration")
    text = predicted or ""

    def names(word):
        return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None

    predicted_status = answer_status(text)
    said_pass, said_defect = predicted_status == "Pass", predicted_status == "Defect"

    named = []
    for c in classes:
        if c and names(c) and c.lower() not in [n.lower() for n in named]:
            named.append(c)
    if said_pass:
        predicted_class = "Pass"
    elif said_defect and len(named) == 1:
        predicted_class = named[0]
    else:
        predicted_class = "Unparseable"

    if is_pass_answer(expected_label):
        expected_class = "Pass"
        status_correct = type_correct = said_pass
    else:
        expected_type = defect_type_of(expected_label)
        status_correct = said_defect
        if expected_type is None:  # a defect label that names no type: status is all there is
            expected_class = "Defect"
            type_correct = said_defect and not named
        else:
            expected_class = next((c for c in classes if c and c.lower() == expected_type.lower()), expected_type)
            type_correct = (
                said_defect and names(expected_type) and all(n.lower() == expected_type.lower() for n in named)
            )
    return {
        "expected_class": expected_class,
        "predicted_class": predicted_class,
        "predicted_status": predicted_status,
        "status_correct": bool(status_correct),
        "type_correct": bool(type_correct),
        "exact_match": text.strip() == (expected_label or "").strip(),
    }


def parse_gcs_uri(uri):
    """Splits "gs://bucket/path/to/object" into ("bucket", "path/to/object")."""
    if not isinstance(uri, str) or not uri.startswith("gs://") or "/" not in uri[5:].strip("/"):
        raise ValueError(f"expected a gs://bucket/object URI, got {uri!r}")
    bucket, _, name = uri[5:].partition("/")
    return bucket, name


def storage_client(project, connections=10):
    """A google-cloud-storage client for ``connections`` threads at once (requests keeps 10
    connections per host unless told otherwise). Against a storage emulator on this machine
    (STORAGE_EMULATOR_HOST names a loopback address), its session ignores the environment's
    proxy, netrc and CA-bundle settings: none applies to a loopback plain-HTTP server (a proxy
    would only break it), and looking them up took 15 % of each upload's CPU."""
    import ipaddress
    import os
    import socket
    from urllib.parse import urlsplit

    from google.cloud import storage

    client = storage.Client(project=project)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    host = urlsplit(emulator if "://" in emulator else f"http://{emulator}").hostname
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)} if host else set()
        loopback = bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    except OSError:  # a name that does not resolve
        loopback = False
    http = getattr(client, "_http", None)
    if loopback and http is not None:
        http.trust_env = False
    if connections > 10 and http is not None:
        from requests.adapters import HTTPAdapter

        for prefix in ("https://", "http://"):
            http.mount(prefix, HTTPAdapter(pool_connections=4, pool_maxsize=connections))
    return client


def genai_client(project, location, attempts=6, timeout_seconds=120):
    """A google-genai client for Vertex AI that retries transient errors with backoff.

    Every request is bounded by ``timeout_seconds``. Use ``attempts=1`` for calls that must
    not be repeated blindly (creating a tuning job: a retried POST could start two).
    Offline, GOOGLE_VERTEX_BASE_URL and GOOGLE_APPLICATION_CREDENTIALS point the SDK at
    the local Vertex AI; this code is the same in both worlds.
    """
    from google import genai
    from google.genai import types

    retry = types.HttpRetryOptions(
        attempts=attempts,
        initial_delay=1.0,
        max_delay=30.0,
        exp_base=2.0,
        http_status_codes=[408, 429, 500, 502, 503, 504],
    )
    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        http_options=types.HttpOptions(retry_options=retry, timeout=timeout_seconds * 1000),
    )


def endpoint_location(resource_name, default):
    """The location in ``projects/P/locations/L/...`` (``default`` for another form): a model
    tuned from Gemini 3 is served on a multi-region endpoint ("us", "eu"), not in the
    tuning region, and its client must be made for that location."""
    parts = (resource_name or "").split("/")
    return parts[3] if len(parts) > 3 and parts[0] == "projects" and parts[2] == "locations" else default


def vertex_resource_uri(location, resource_name):
    """``https://{location}-aiplatform.googleapis.com/v1/{resource_name}``, or the local API's.

    The URI form Google Cloud Pipeline Components give the jobs and artifacts they create;
    offline GOOGLE_VERTEX_BASE_URL names the local Vertex AI instead.
    """
    import os

    api = os.environ.get("GOOGLE_VERTEX_BASE_URL") or f"https://{location}-aiplatform.googleapis.com"
    return f"{api.rstrip('/')}/v1/{resource_name}"


def write_gcp_resources(path, location, resource_name, resource_type="TuningJob"):
    """Writes the ``gcp_resources`` output that names a long-running job.

    Built with Google Cloud Pipeline Components' own GcpResources proto, as their launchers
    do, so the Vertex console reads it the same way.
    """
    from google.protobuf import json_format
    from google_cloud_pipeline_components.proto.gcp_resources_pb2 import GcpResources

    resources = GcpResources()
    resource = resources.resources.add()
    resource.resource_type = resource_type
    resource.resource_uri = vertex_resource_uri(location, resource_name)
    with open(path, "w") as f:
        f.write(json_format.MessageToJson(resources))


def read_gcp_resources(path):
    """The resource names in a ``gcp_resources`` file an earlier attempt wrote ([] if none)."""
    import os

    from google.protobuf import json_format
    from google_cloud_pipeline_components.proto.gcp_resources_pb2 import GcpResources

    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []
    with open(path) as f:
        try:
            resources = json_format.Parse(f.read(), GcpResources())
        except json_format.ParseError:
            return []
    return [r.resource_uri.split("/v1/", 1)[-1] for r in resources.resources if r.resource_uri]


def earlier_attempts_job(client, gcp_resources_path, launch_key):
    """The tuning job an earlier attempt of this task started, if it can still succeed.

    Looks first in the task's own ``gcp_resources`` output, then for a job labelled
    ``kfp_launch=<launch_key>`` (the label is checked here too, whatever the server's
    filter did). Jobs that ended FAILED, CANCELLED or EXPIRED are not resumed.
    """
    from google.genai import types

    def usable(job):
        state = job.state.name if job.state else ""
        return state not in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")

    for name in read_gcp_resources(gcp_resources_path):
        if "/tuningJobs/" in name:
            job = client.tunings.get(name=name)
            if usable(job):
                return job
    if not launch_key:
        return None
    config = types.ListTuningJobsConfig(filter=f'labels.kfp_launch="{launch_key}"', page_size=100)
    for job in client.tunings.list(config=config):
        if (job.labels or {}).get("kfp_launch") == launch_key and usable(job):
            return job
    return None
