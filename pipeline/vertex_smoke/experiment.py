"""Check 2: the run is linked to its Vertex AI Experiment (``get_experiment_df`` lists it)."""

from pipeline.vertex_smoke.checklist import CHECK_TITLES, Check
from pipeline.vertex_smoke.observe import error_line
from pipeline.vertex_smoke.plan import experiment_url
from pipeline.vertex_smoke.session import Smoke


def experiment_row(
    experiment: str, run_id: str, run_names: list[str], project: str, location: str, error: str = ""
) -> Check:
    """``run_names``: the ``run_name`` column of ``get_experiment_df(experiment)``."""
    ok = run_id in run_names and not error
    if error:
        found = f"get_experiment_df({experiment!r}) failed: {error}"
    elif ok:
        found = f"experiment {experiment} lists run {run_id} (of {len(run_names)} run(s))"
    else:
        found = f"experiment {experiment} does not list run {run_id} ({len(run_names)} run(s) listed)"
    return Check(2, CHECK_TITLES[2], ok, [found, experiment_url(experiment, project, location)])


def experiment_check(smoke: Smoke, job) -> Check:
    """Check 2 for the run ``job``: its ID among the experiment's ``run_name`` column."""
    run_id = job.resource_name.rsplit("/", 1)[-1]
    try:
        df = smoke.aiplatform.get_experiment_df(smoke.experiment, include_time_series=False)
    except Exception as error:
        return experiment_row(smoke.experiment, run_id, [], smoke.project, smoke.location, error=error_line(error))
    run_names = [str(n) for n in df["run_name"]] if "run_name" in df.columns else []
    return experiment_row(smoke.experiment, run_id, run_names, smoke.project, smoke.location)
