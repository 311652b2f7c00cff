"""Component: make the challenger the champion, atomically; mark it in the Model Registry when possible."""

from components.champion import check_champion_record, history_object, inspector_paths, run_object
from components.champion_store import replace_champion, write_json_object
from components.clients import parse_gcs_uri
from components.packages import BASE_IMAGE, STORAGE_PACKAGES
from components.shipping import lightweight_component


def set_champion_alias(location, model, previous_model="", alias="champion"):
    """Best effort: gives the promoted model version the Model Registry alias ``alias`` and takes
    it off the previous champion's model (each tuning job makes a model of its own, so the alias
    does not move by itself). Returns a line saying what happened; never raises.

    Uses ``models.mergeVersionAliases`` (POST /v1/{model@version}:mergeVersionAliases, body
    {"versionAliases": ["champion"]}, "-champion" removes it). Whether Vertex AI accepts it for
    tuned Gemini models is not confirmed; a refusal is reported, not raised. The local Vertex AI
    has no Model Registry, so nothing is sent there.
    """
    import ipaddress
    import os
    import socket
    from urllib.parse import urlparse

    def loopback(url):
        try:
            addresses = socket.getaddrinfo(urlparse(url).hostname or "", None)
            return all(ipaddress.ip_address(address[4][0]).is_loopback for address in addresses)
        except (OSError, ValueError):
            return False

    base = os.environ.get("GOOGLE_VERTEX_BASE_URL", "")
    if base and loopback(base):
        return f"the local Vertex AI ({base}) has no Model Registry: version alias '{alias}' not set"
    if "@" not in (model or ""):
        return f"model {model!r} names no version: version alias '{alias}' not set"
    api = (base or f"https://{location}-aiplatform.googleapis.com").rstrip("/")
    try:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        session = AuthorizedSession(credentials)
        notes = []
        for name, aliases in ((model, [alias]), (previous_model, [f"-{alias}"])):
            if (
                not name
                or "@" not in name
                or (aliases[0].startswith("-") and name.split("@")[0] == model.split("@")[0])
            ):
                continue
            response = session.post(
                f"{api}/v1/{name}:mergeVersionAliases", json={"versionAliases": aliases}, timeout=60
            )
            verb = "set on" if not aliases[0].startswith("-") else "removed from"
            notes.append(
                f"alias '{alias}' {verb} {name}"
                if response.ok
                else f"alias '{alias}' not {verb} {name}: HTTP {response.status_code} {response.text[:300]}"
            )
        return "; ".join(notes)
    except Exception as error:  # best effort: the champion record is what clients read
        return f"version alias '{alias}' not set: {type(error).__name__}: {str(error)[:300]}"


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=STORAGE_PACKAGES, install_kfp_package=False)
def promote_champion(
    project: str,
    location: str,
    bucket: str,
    decision_record: str,
    tuned_model_display_name: str = "visual-defect-inspector",
    run_name: str = "",
) -> str:
    """Replaces the champion with the challenger, unless another run did so first.

    The champion record is written with ``if_generation_match`` set to the generation the
    decision read (0: "there was none"), so of two runs that decided against the same
    champion exactly one succeeds. The other is not promoted (its comparison no longer
    holds; the next run compares against the new champion) and says which run won. Losing
    is an outcome, not a failure. A promotion is also kept as
    ``inspectors/<inspector>/history/<time>-<run>.json`` and the outcome as
    ``runs/<run>/promotion.json``; then the model version gets the Model Registry alias
    ``champion`` where Vertex AI allows it (best effort, see set_champion_alias).

    Args:
        project: Google Cloud project of the bucket and model.
        location: Vertex AI region of the model.
        bucket: ``gs://`` URI holding the inspector's records.
        decision_record: decide_promotion's record (JSON).
        tuned_model_display_name: the inspector, unless the decision names one (its
            ``inspector``: the name derived from the dataset, champion_store ``inspector_name``).
        run_name: the pipeline run's name.

    Returns:
        "promoted" or "not promoted".
    """
    import json
    from datetime import UTC, datetime

    from google.cloud import storage

    decision = json.loads(decision_record)
    if decision.get("decision") != "promote":
        raise ValueError(f"promote_champion was run for a decision to {decision.get('decision')!r}")
    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    home = storage.Client(project=project).bucket(bucket_name)
    # The decision names the inspector (with the default name, a dataset run's own inspector).
    inspector = decision.get("inspector") or tuned_model_display_name
    paths = inspector_paths(inspector)
    promoted_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    record = check_champion_record({**decision["candidate"], "promoted_at": promoted_at})
    previous = decision.get("champion") or {}

    won, generation, current = replace_champion(home, paths["champion"], record, decision["champion_generation"])
    if won:
        outcome = {
            "promoted": True,
            "run": run_name,
            "champion": record,
            "generation": generation,
            "previous_run": previous.get("run"),
        }
        history = history_object(inspector, promoted_at, run_name)
        write_json_object(
            home,
            history,
            {**record, "previous_run": previous.get("run"), "previous_endpoint": previous.get("endpoint")},
            if_generation_match=0,
        )
        outcome["registry"] = set_champion_alias(location, record["model"], previous.get("model", ""))
        print(
            f"promoted: {record['endpoint']} (run {run_name}, checkpoint {record['checkpoint_id'] or '-'}, "
            f"epoch {record['epoch']}) is the champion of {inspector}; history {history}",
            flush=True,
        )
        print(outcome["registry"], flush=True)
    else:
        winner = (current or {}).get("run", "unknown")
        outcome = {
            "promoted": False,
            "run": run_name,
            "champion": current,
            "generation": generation,
            "reason": f"another run ({winner}) changed the champion after this run's decision; "
            "not promoted (the next run compares against the new champion)",
        }
        print(f"not promoted: {outcome['reason']}", flush=True)
    write_json_object(home, run_object(inspector, run_name, "promotion.json"), outcome)
    return "promoted" if won else "not promoted"
