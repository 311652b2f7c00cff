"""Child process of an offline run: executes the compiled YAML with kfp.local.

Kept apart from the parent so that kfp.local's raw log stream can be captured whole
(into the run's log file) while the parent shows a compact progress view. The parent
passes one JSON argument and reads the result file this process writes.

The pipeline returns no outputs (its tasks run inside a dsl.ExitHandler, and KFP takes
pipeline outputs only from the top level), so the result is read from the tasks' own
``executor_output.json`` files under the run's pipeline root.
"""

import json
import sys
import traceback
from pathlib import Path


def task_outputs(run_root: Path, task: str) -> tuple[dict, dict]:
    """(parameter outputs, {artifact output: {"uri", "metadata"}}) of one finished task; empty if it did not run."""
    path = run_root / task / "executor_output.json"
    if not path.exists():
        return {}, {}
    output = json.loads(path.read_text())
    artifacts = {
        name: entry["artifacts"][0] for name, entry in output.get("artifacts", {}).items() if entry.get("artifacts")
    }
    # Return values are in executor_output.json; OutputPath(str) outputs are files named after them.
    parameters = {
        f.name: f.read_text()
        for f in (run_root / task).iterdir()
        if f.is_file() and f.name != "executor_output.json" and f.name not in artifacts
    }
    return {**parameters, **output.get("parameterValues", {})}, artifacts


def metrics_outputs(yaml_path: Path) -> dict[str, set[str]]:
    """{task name: names of its ``system.Metrics`` outputs}, read from the compiled pipeline."""
    import yaml

    spec = yaml.safe_load(Path(yaml_path).read_text())
    components = spec["components"]
    metric_names = {
        name: {
            output
            for output, a in c.get("outputDefinitions", {}).get("artifacts", {}).items()
            if a.get("artifactType", {}).get("schemaTitle") == "system.Metrics"
        }
        for name, c in components.items()
    }
    tasks = {}
    for dag in [spec["root"]["dag"], *(c["dag"] for c in components.values() if "dag" in c)]:
        for task, body in dag["tasks"].items():
            tasks[task] = metric_names.get(body["componentRef"]["name"], set())
    return tasks


def collect_result(pipeline_root: Path, yaml_path: Path) -> dict:
    """What the parent shows of a finished run: every task's scalar metrics (names are distinct
    across components, as Vertex AI Experiments shows them), the challenger's endpoint, the
    test-split report, predictions and summary, and the promotion decision."""
    run_root = sorted(p for p in pipeline_root.iterdir() if p.is_dir() and not p.name.startswith("."))[-1]
    metrics = {}
    for task, names in sorted(metrics_outputs(yaml_path).items()):
        _, artifacts = task_outputs(run_root, task)
        for name in names & set(artifacts):
            metrics.update(
                {
                    k: v
                    for k, v in artifacts[name].get("metadata", {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
    selected, _ = task_outputs(run_root, "select-checkpoint")
    _, evaluated = task_outputs(run_root, "evaluate-inspector")
    _, summarized = task_outputs(run_root, "summarize-run")
    decided, _ = task_outputs(run_root, "decide-promotion")
    promoted, _ = task_outputs(run_root, "promote-champion")
    record = json.loads(decided["decision_record"]) if decided.get("decision_record") else {}
    return {
        "ok": True,
        "run_name": run_root.name,
        "tuned_endpoint": selected.get("challenger_endpoint", ""),
        "metrics": metrics,
        "report": evaluated.get("report", {}).get("uri", ""),
        "predictions": evaluated.get("predictions", {}).get("uri", ""),
        "summary": summarized.get("summary", {}).get("uri", ""),
        "decision": decided.get("Output", ""),
        "decision_reason": record.get("reason", ""),
        # The inspector this run competed for (its champion is what `inspect` asks by default).
        "inspector": record.get("candidate", {}).get("inspector", ""),
        "promotion": promoted.get("Output", ""),
    }


def main(spec: dict) -> int:
    """Runs the pipeline described by ``spec`` and writes ``spec["result"]``."""
    from kfp import local
    from kfp.components import load_component_from_file

    result_path = Path(spec["result"])
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=spec["pipeline_root"],
        raise_on_error=True,
        enable_caching=spec.get("enable_caching", False),
    )
    try:
        load_component_from_file(spec["yaml"])(**spec["params"])
    except Exception as error:  # reported to the parent, which shows it
        traceback.print_exc()
        result_path.write_text(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    result_path.write_text(json.dumps(collect_result(Path(spec["pipeline_root"]), Path(spec["yaml"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
