"""Progress lines a long task prints and the offline CLI reads back (``::progress::``)."""

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
