"""Component: tell a chat space how the run ended (the pipeline's exit task: it runs whether the
run succeeded or failed)."""

from kfp.dsl import PipelineTaskFinalStatus

from components.champion import run_object
from components.champion_store import inspector_name, read_json_object, read_text_object
from components.clients import parse_gcs_uri
from components.packages import BASE_IMAGE, STORAGE_PACKAGES
from components.shipping import lightweight_component

EXECUTOR = "python3 -m kfp.dsl.executor_main"
# KFP's executor logs every input of the task ("Got executor_input: {...}") at INFO before the
# component runs, on Vertex AI as offline: a webhook URL given as a parameter would land in the
# task's log. This runs the same executor with logging at WARNING, so it does not.
QUIET_EXECUTOR = (
    "python3 -c 'import logging, runpy; logging.basicConfig(level=logging.WARNING); "
    "runpy.run_module(\"kfp.dsl.executor_main\", run_name=\"__main__\", alter_sys=True)'"
)


def quiet_inputs(component):
    """Rewrites a lightweight component's command so KFP's executor does not log its inputs.

    Use it on the outside of ``@dsl.component``. Fails loudly if KFP's command template changes
    rather than compiling a component that would log a secret.
    """
    command = component.component_spec.implementation.container.command
    step = next((i for i, part in enumerate(command) if EXECUTOR in part), None)
    if step is None:
        raise RuntimeError(f"{component.name}: KFP's component command changed; update components/notify_run.py")
    command[step] = command[step].replace(EXECUTOR, QUIET_EXECUTOR)
    return component


def webhook_host(url):
    """The host of a webhook URL, the only part of it ever logged (the path and query carry its key)."""
    from urllib.parse import urlparse

    return urlparse(url).hostname or "an unparseable URL"


def webhook_kind(url):
    """ "Google Chat", "Slack" or "webhook", by the URL's host."""
    host = webhook_host(url)
    return "Google Chat" if host == "chat.googleapis.com" else "Slack" if host.endswith("slack.com") else "webhook"


def read_webhook_secret(name, session=None, base_url="https://secretmanager.googleapis.com"):
    """The webhook URL stored in Secret Manager under ``name`` (projects/P/secrets/S[/versions/V];
    V defaults to latest), read with the REST API (GET /v1/{name}:access) and Application
    Default Credentials. Errors name the secret, never its value."""
    import base64
    import re

    if not re.fullmatch(r"projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?", name or ""):
        raise ValueError(f"notify_webhook_secret must look like projects/P/secrets/S/versions/V, got {name!r}")
    if "/versions/" not in name:
        name += "/versions/latest"
    if session is None:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        session = AuthorizedSession(credentials)
    response = session.get(f"{base_url.rstrip('/')}/v1/{name}:access", timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"Secret Manager did not give {name}: HTTP {response.status_code}")
    return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8").strip()


def post_webhook(url, text, attempts=4, base_delay=1.0, max_delay=20.0, timeout=30.0, sleep=None):
    """POSTs {"text": text} to a Google Chat or Slack incoming webhook (both take this shape).

    Retries 429 and 5xx answers and connection errors with exponential backoff (a
    ``Retry-After`` of at most ``max_delay`` seconds is honoured), at most ``attempts`` tries in
    all; other answers are final. Returns (delivered, a line for the log that names only the
    host). Never raises and never includes the URL's path or query.
    """
    import json
    import time
    import urllib.error
    import urllib.request

    sleep = sleep or time.sleep
    body = json.dumps({"text": text}).encode("utf-8")
    host, last = webhook_host(url), ""
    for attempt in range(1, max(1, int(attempts)) + 1):
        retry_after = None
        try:
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json; charset=UTF-8"}
            )
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return True, f"delivered to {host} (HTTP {response.status}, attempt {attempt})"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
            if error.code != 429 and error.code < 500:
                return False, f"{host} refused the message: {last} (not retried)"
            header = error.headers.get("Retry-After") if error.headers else None
            retry_after = float(header) if header and header.strip().isdigit() else None
        except (urllib.error.URLError, OSError) as error:  # no answer: the reason, without the URL
            last = type(getattr(error, "reason", error)).__name__
        if attempt < attempts:
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            sleep(min(max_delay, retry_after) if retry_after is not None else delay)
    return False, f"not delivered to {host} after {attempts} attempts (last: {last})"


def notification_text(inspector, run_name, state, decision=None, promotion=None, summary="", error="", link=""):
    """The chat message: outcome, decision with its reason, champion vs challenger, summary.

    ``decision`` and ``promotion`` are the run's decision.json and promotion.json (None when
    the run did not get that far); ``summary`` the summary Markdown.
    """

    def pct(figures, key):
        return f"{100 * float(figures[key]):.1f}%" if figures and key in figures else "n/a"

    ok = state == "SUCCEEDED"
    lines = [f"{'✅' if ok else '❌'} *{inspector}*: run {run_name} {state.lower() if state else 'ended'}"]
    if decision:
        challenger = (decision.get("candidate") or {}).get("golden") or {}
        champion = decision.get("champion")
        if promotion is not None and not promotion.get("promoted"):
            verdict = f"*not promoted*: {promotion.get('reason', '')}"
        elif decision.get("decision") == "promote":
            verdict = "*promoted* to champion" + ("" if promotion else " (promotion step did not finish)")
        else:
            verdict = "*champion kept*"
        lines.append(f"Decision: {verdict}. Why: {decision.get('reason', '')}.")
        best = (champion or {}).get("golden")
        lines.append(
            f"Golden set ({int(float(challenger.get('examples', 0)))} images): challenger "
            f"{pct(challenger, 'status_accuracy')} status accuracy, {pct(challenger, 'miss_rate')} miss rate"
            + (
                f"; champion (run {champion.get('run')}) {pct(best, 'status_accuracy')}, {pct(best, 'miss_rate')}"
                if champion
                else "; no champion before"
            )
        )
    elif ok:
        lines.append("No promotion decision was recorded.")
    else:
        lines.append("The run stopped before the promotion decision; the champion is unchanged.")
    if error and not ok:
        lines.append(f"Error: {' '.join(str(error).split())[:600]}")
    paragraphs = [
        p.strip()
        for p in (summary or "").split("\n\n")
        if p.strip() and not p.lstrip().startswith(("#", "|", "*Source"))
    ]
    if paragraphs:
        lines.append(paragraphs[0][:1200])
    # The summary's warnings (a champion whose base model retires soon) go out too.
    for line in (summary or "").splitlines():
        if "**Warning:" in line:
            lines.append("⚠️ " + line.strip().lstrip("- ").replace("**", "")[:600])
    if link:
        lines.append(f"<{link}|Open the run>")
    return "\n".join(lines)[:3800]


@quiet_inputs  # the webhook URL parameter must not reach the task's log
@lightweight_component(base_image=BASE_IMAGE, packages_to_install=STORAGE_PACKAGES, install_kfp_package=False)
def notify_run(
    project: str,
    bucket: str,
    status: PipelineTaskFinalStatus,
    tuned_model_display_name: str = "visual-defect-inspector",
    run_name: str = "",
    location: str = "us-central1",
    notify_webhook_url: str = "",
    notify_webhook_secret: str = "",
    dataset_uri: str = "",
):
    """Posts the run's outcome, promotion decision and summary to a chat webhook.

    The exit task of the pipeline's ``dsl.ExitHandler``: it runs when the run ends, succeeded
    or failed. It learns what happened from the run's records in the bucket
    (``inspectors/<inspector>/runs/<run>/decision.json``, ``promotion.json``, ``summary.md``)
    and from the run's final status. With no webhook configured it only logs the message.
    Delivery failures are logged, never raised: the run's outcome does not depend on a chat.

    The webhook URL is a credential. It is never logged (only its host), and KFP's executor
    is kept from logging this task's inputs (``quiet_inputs``). As a parameter it is still
    visible in the run's parameters in the Vertex AI console; ``notify_webhook_secret`` keeps
    it in Secret Manager instead (the runner's service account needs
    ``roles/secretmanager.secretAccessor`` on that secret).

    Args:
        project: Google Cloud project of the bucket.
        bucket: ``gs://`` URI holding the run's records.
        status: the run's final status (KFP fills it in).
        tuned_model_display_name: the inspector.
        run_name: the pipeline run's name.
        location: Vertex AI region (for the console link).
        notify_webhook_url: a Google Chat or Slack incoming webhook URL; "" for none.
        notify_webhook_secret: a Secret Manager secret version holding the URL
            (projects/P/secrets/S/versions/V); used when ``notify_webhook_url`` is "".
        dataset_uri: the run's imported dataset (it names the inspector, as for the records).
    """
    import re

    from google.cloud import storage

    records, summary = {}, ""
    try:
        bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
        home = storage.Client(project=project).bucket(bucket_name)
        inspector = inspector_name(tuned_model_display_name, dataset_uri)
        for leaf in ("decision", "promotion"):
            records[leaf], _ = read_json_object(home, run_object(inspector, run_name, f"{leaf}.json"))
        summary = read_text_object(home, run_object(inspector, run_name, "summary.md")) or ""
    except Exception as error:  # the message still goes out, with what is known
        print(f"could not read the run's records: {type(error).__name__}: {str(error)[:300]}", flush=True)

    job = status.pipeline_job_resource_name or ""
    found = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/]+)", job)
    link = (
        (
            f"https://console.cloud.google.com/vertex-ai/locations/{found.group(2)}/pipelines/runs/"
            f"{found.group(3)}?project={found.group(1)}"
        )
        if found
        else ""
    )
    text = notification_text(
        tuned_model_display_name,
        run_name,
        status.state,
        records.get("decision"),
        records.get("promotion"),
        summary,
        status.error_message or "",
        link,
    )
    print(f"notification:\n{text}", flush=True)

    url = notify_webhook_url.strip()
    if not url and notify_webhook_secret.strip():
        try:
            url = read_webhook_secret(notify_webhook_secret.strip())
        except Exception as error:
            print(f"no notification sent: {type(error).__name__}: {str(error)[:300]}", flush=True)
            return
    if not url:
        print("no notify_webhook_url or notify_webhook_secret: nothing sent", flush=True)
        return
    if not url.startswith(("https://", "http://")):
        print("no notification sent: the webhook URL must start with https://", flush=True)
        return
    delivered, line = post_webhook(url, text)
    print(f"{webhook_kind(url)} notification {line}", flush=True)
