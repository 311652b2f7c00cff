"""Cloud Storage access for the nightly loop: JSON and text objects, and the champion's
atomic update with generation preconditions.

Shipped to components with ``additional_funcs`` (functions only, imports inside); the CLI
and the tests import them directly. Every function takes a ``google.cloud.storage`` bucket.
"""


def read_json_object(bucket, name):
    """(the JSON object stored at ``name``, its generation), or (None, 0) when it does not exist.

    Generation 0 is what ``if_generation_match`` takes for "must not exist", so the pair can
    be handed straight to ``write_json_object``.
    """
    import json

    blob = bucket.get_blob(name)
    if blob is None:
        return None, 0
    # Read exactly the generation we report: a concurrent writer cannot slip in between.
    data = blob.download_as_bytes(if_generation_match=blob.generation)
    return json.loads(data.decode("utf-8")), int(blob.generation)


def write_json_object(bucket, name, data, if_generation_match=None):
    """Writes ``data`` as JSON at ``name``; returns the new generation.

    With ``if_generation_match`` (0: the object must not exist; otherwise the generation it
    must still have) Cloud Storage refuses the write with 412, raised as
    ``google.api_core.exceptions.PreconditionFailed``, when another writer got there first.
    """
    import json

    blob = bucket.blob(name)
    blob.upload_from_string(
        json.dumps(data, indent=2, sort_keys=True),
        content_type="application/json",
        if_generation_match=if_generation_match,
    )
    return int(blob.generation or 0)


def read_text_object(bucket, name):
    """The text stored at ``name``, or None when it does not exist."""
    blob = bucket.get_blob(name)
    return None if blob is None else blob.download_as_text()


def replace_champion(bucket, name, record, expected_generation):
    """Makes ``record`` the champion if the champion object still has ``expected_generation``.

    One conditional write (compare-and-swap): of two runs that decided against the same
    champion, exactly one wins; the other learns who did and is not promoted (its decision
    was made against a champion that no longer holds).

    Returns:
        (True, new generation, None) on success; (False, current generation, current
        champion record or None) when another run changed the champion first.
    """
    from google.api_core import exceptions

    try:
        return True, write_json_object(bucket, name, record, if_generation_match=int(expected_generation)), None
    except exceptions.PreconditionFailed:
        current, generation = read_json_object(bucket, name)
        return False, generation, current


def list_json_objects(bucket, prefix, limit=0):
    """The JSON objects under ``prefix``, newest name last (history entries sort by time);
    only the last ``limit`` when it is positive."""
    import json

    names = sorted(
        blob.name for blob in bucket.list_blobs(prefix=prefix.rstrip("/") + "/") if blob.name.endswith(".json")
    )
    if limit and limit > 0:
        names = names[-limit:]
    return [json.loads(bucket.blob(n).download_as_text()) for n in names]


def inspector_name(display_name, dataset_uri="", default_name="visual-defect-inspector"):
    """The inspector a run belongs to: its champion, golden set and records live under
    ``inspectors/<this name>/``.

    ``display_name`` (``tuned_model_display_name``) as given, except when it is the pipeline's
    default and the run imports a dataset (``dataset_uri``): then the dataset's name is added,
    ``visual-defect-inspector-photos`` for ``gs://b/datasets/photos/`` or ``.../photos.csv``.
    So the synthesized demo and each of your own image sets have a champion and a golden set
    of their own and never compete. Pure: the CLI computes the same name from a run's
    parameters (``inspect``, ``champion``).
    """
    import posixpath
    import re

    name = (display_name or "").strip() or default_name
    uri = (dataset_uri or "").strip()
    if name != default_name or not uri:
        return name
    path = uri.split("://", 1)[-1].rstrip("/")
    leaf = posixpath.splitext(posixpath.basename(path))[0] if "/" in path else path
    slug = re.sub(r"[^a-z0-9._-]+", "-", leaf.lower()).strip("-.")
    return f"{name}-{slug}" if slug else name


def list_champions(bucket):
    """Every inspector's champion record in ``bucket``, the most recently promoted last.

    For a client that must pick one champion without knowing the inspector (``inspect``
    after runs on several data sources): the last is the newest promotion."""
    import json

    records = []
    for blob in bucket.list_blobs(prefix="inspectors/"):
        parts = blob.name.split("/")
        if len(parts) == 3 and parts[2] == "champion.json":
            record = json.loads(blob.download_as_text())
            if isinstance(record, dict):
                records.append(record)
    return sorted(records, key=lambda r: str(r.get("promoted_at", "")))
