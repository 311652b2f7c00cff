"""The console in a real browser (Debian's Chromium driven by Playwright), the whole path a
QC engineer takes: log in with the printed URL, upload a template, create a small run from
the form (a wrong value first: the error shows next to its field), watch the DAG reach
Succeeded and a task's log fill without reloading, open the report, compare with a second run, create and pause
a schedule, and ask the inspector about a photo. Screenshots of each page go to the test's
output folder (``$CONSOLE_SCREENSHOTS`` to keep them elsewhere).

Needs ``chromium`` (``apt-get install -y chromium``, as root) and the ``playwright``
package; where either is missing the module skips with one line saying so."""

import importlib.util
import io
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
HAS_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
# One line saying what is missing and the command that enables the test, before any server starts.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM, reason="console browser tests: no Chromium; `apt-get install -y chromium` (as root) enables them"
    ),
    pytest.mark.skipif(
        not HAS_PLAYWRIGHT, reason="console browser tests: `pip install playwright` (it drives Debian's Chromium)"
    ),
]
SMALL = {
    "num_images": "80",  # enough for a golden set of every class, so the run promotes a champion
    "epoch_count": "2",
    "min_test_per_class": "1",
    "min_golden_per_class": "1",
    "min_status_accuracy": "0.5",
    "max_miss_rate": "0.5",
    "promotion_margin": "0",
    "eval_concurrency": "4",
    "tuned_model_display_name": "console-inspector",
}
RUN_TIMEOUT_MS = 420_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from localvertex import LocalStack

    with LocalStack(tmp_path_factory.mktemp("console-browser"), bucket="local-bucket") as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("console-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def page(stack):
    from playwright.sync_api import sync_playwright

    from localvertex.console.security import read_keys

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(f"{stack.vertex_url}/console/login?token={read_keys(stack.data_dir / 'auth').login_token}")
        yield tab
        browser.close()


def _fill(page, values: dict) -> None:
    for name, value in values.items():
        page.fill(f"#p-{name}", value)


def _wait_succeeded(page) -> None:
    """The run page's own script turns the state to succeeded: no reload here."""
    page.wait_for_function(
        "() => ['succeeded', 'failed', 'cancelled'].includes(document.getElementById('run-state').textContent.trim())",
        timeout=RUN_TIMEOUT_MS,
    )
    assert page.text_content("#run-state").strip() == "succeeded", page.text_content("#run-error")


def test_whole_path_in_chromium(page, stack, shots):
    assert page.url.endswith("/console/runs"), "the login URL leads to the runs, without the token"
    page.screenshot(path=shots / "01-runs-empty.png", full_page=True)
    _upload_checked_in_template(page, stack, shots)
    _create_first_run(page, shots)
    _watch_first_run_succeed(page, shots)
    _run_again_and_compare(page, stack, shots)
    _create_and_pause_schedule(page, stack, shots)
    _ask_inspector(page, stack, shots)


def _upload_checked_in_template(page, stack, shots) -> None:
    """Upload the checked-in pipeline as a template; its page lists the parameters."""
    page.goto(f"{stack.vertex_url}/console/templates")
    page.check("input[name=checked_in]")
    page.click("#upload")
    assert "Uploaded visual-defect-sft/sha256:" in page.text_content("#uploaded")
    page.screenshot(path=shots / "02-templates.png", full_page=True)
    page.click("section.package h2 a")
    names = page.locator("#parameters tbody td:first-child code").all_text_contents()
    assert {"base_model", "num_images", "thinking"} <= set(names)
    page.screenshot(path=shots / "03-template.png", full_page=True)


def _create_first_run(page, shots) -> None:
    """Create a small run from the template's form: a wrong value first, shown at its field."""
    page.click("text=Create run from this template")
    _fill(page, {**SMALL, "num_images": "0"})
    page.fill("#experiment", "console-e2e")
    page.fill("#display_name", "first <b>run</b>")
    page.click("#submit-run")
    assert "must be at least 1" in page.text_content("#error-num_images")
    page.screenshot(path=shots / "04-create-error.png", full_page=True)
    page.fill("#p-num_images", SMALL["num_images"])
    page.click("#submit-run")
    page.wait_for_url("**/console/runs/*")
    assert page.text_content("h1").startswith("first <b>run</b>"), "the display name is shown as text"
    page.screenshot(path=shots / "05-run-started.png", full_page=True)


def _watch_first_run_succeed(page, shots) -> None:
    """A task's log, live: opened before the task starts, it fills without a reload; then the
    DAG, the report and the tuning job show on the succeeded run's page."""
    waiting = page.locator('#tasks tr[data-task="wait-for-tuning"]')
    waiting.locator("summary").click()
    page.wait_for_function(
        """() => document.querySelector('#tasks tr[data-task="wait-for-tuning"] [data-field="log"]')
                    .textContent.includes(': JOB_STATE_')""",
        timeout=RUN_TIMEOUT_MS,
    )
    _wait_succeeded(page)
    log = waiting.locator('[data-field="log"]')
    assert log.is_visible() and ": JOB_STATE_SUCCEEDED" in log.text_content(), "its last lines came in too"
    assert page.locator("svg.dag g.state-succeeded").count() >= 12
    page.wait_for_selector("iframe.report")
    page.wait_for_selector("table.matrix")
    page.locator("iframe.report").first.scroll_into_view_if_needed()
    report = page.frame_locator("iframe.report").first
    assert report.locator("body").inner_text(timeout=30_000).strip(), "the report renders inside its frame"
    assert "tuningJobs/" in page.text_content("#tuning") and page.is_visible("#tuning"), "shown without a reload"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "06-run-succeeded.png")
    page.screenshot(path=shots / "06-run-succeeded-full.png", full_page=True)


def _run_again_and_compare(page, stack, shots) -> None:
    """A second run ("Run again"), one epoch: then compare the two in their experiment."""
    page.click("text=Run again…")
    page.fill("#p-epoch_count", "1")
    page.fill("#experiment", "console-e2e")
    page.click("#submit-run")
    page.wait_for_url("**/console/runs/*")
    _wait_succeeded(page)
    page.goto(f"{stack.vertex_url}/console/experiments/console-e2e")
    assert page.locator("#experiment-runs tbody tr").count() == 2
    page.wait_for_selector("#chart circle")
    page.screenshot(path=shots / "07-experiment.png", full_page=True)
    for box in page.locator("#experiment-runs input[name=run]").all():
        box.check()
    page.click("#diff")
    assert page.locator("#diff-table tr.differs", has_text="param.epoch_count").count() == 1
    page.screenshot(path=shots / "08-compare.png")


def _create_and_pause_schedule(page, stack, shots) -> None:
    """A schedule from the template, then paused."""
    page.goto(f"{stack.vertex_url}/console/schedules")
    page.click("a.label:has-text('visual-defect-sft')")
    page.fill("#display_name", "nightly")
    page.fill("#cron", "0 2 * * *")
    page.fill("#limit", "1")
    page.click("#create-schedule")
    page.wait_for_url("**/console/schedules")
    row = page.locator("#schedules tbody tr", has_text="nightly")
    assert "active" in row.text_content()
    row.locator("text=Pause…").click()
    page.click("#confirm")
    page.wait_for_url("**/console/schedules")
    assert "paused" in page.locator("#schedules tbody tr", has_text="nightly").text_content()
    page.screenshot(path=shots / "09-schedules.png", full_page=True)


def _ask_inspector(page, stack, shots) -> None:
    """The inspector: the champion's answer for a photo."""
    page.goto(f"{stack.vertex_url}/console/inspector")
    page.set_input_files("#photo", files=[{"name": "part.png", "mimeType": "image/png", "buffer": _photo()}])
    page.click("#ask")
    page.wait_for_selector("#verdict")
    assert page.text_content("#verdict").strip().split(":")[0] in ("Pass", "Defect")
    page.screenshot(path=shots / "10-inspector.png", full_page=True)


def _photo() -> bytes:
    """A drawn product image with a defect, as the pipeline draws its data."""
    import random

    from components.drawing import draw_product_image

    image = draw_product_image(random.Random(7), "Scratch")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_experiment_rows_are_get_experiment_dfs(page, stack):
    """The Experiments page's rows (experiment_rows.py, read over REST) are the rows the real
    ``aiplatform.get_experiment_df`` builds for the runs the whole-path test made."""
    import asyncio
    import concurrent.futures
    import math

    import google.auth.transport.requests
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer
    from google.oauth2 import service_account

    from localvertex.console.api import VertexApi
    from localvertex.console.experiment_rows import experiment_rows

    credentials = service_account.Credentials.from_service_account_file(
        str(stack.credentials_path), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(google.auth.transport.requests.Request())
    aiplatform.init(
        project="local-project",
        location="us-central1",
        credentials=credentials,
        api_endpoint=stack.vertex_url,
        api_transport="rest",
    )
    try:
        df = aiplatform.get_experiment_df("console-e2e", include_time_series=False)
    finally:
        initializer.global_config.__init__()

    async def console_rows():
        api = VertexApi(stack.vertex_url, "local-project", "us-central1", lambda: credentials.token)
        try:
            return await experiment_rows(api, "console-e2e", include_labelled=False)
        finally:
            await api.close()

    # Playwright's sync API holds this thread's event loop: the console's client runs in another.
    with concurrent.futures.ThreadPoolExecutor(1) as other_thread:
        rows = other_thread.submit(asyncio.run, console_rows()).result()
    ours = {r.columns["run_name"]: r.columns for r in rows}
    assert sorted(ours) == sorted(df.run_name) and len(ours) == 2
    for record in df.to_dict("records"):
        mine = ours[record["run_name"]]
        for column, value in record.items():
            if isinstance(value, float) and math.isnan(value):
                assert mine.get(column) is None, column
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                assert float(mine[column]) == pytest.approx(float(value)), column
            else:
                assert mine[column] == value, column
