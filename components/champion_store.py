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


STORE_FUNCS = [read_json_object, write_json_object, read_text_object, replace_champion, list_json_objects]
