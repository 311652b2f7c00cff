"""Child process of an offline run: executes the compiled YAML with kfp.local.

Kept apart from the parent so that kfp.local's raw log stream can be captured whole
(into the run's log file) while the parent shows a compact progress view. The parent
passes one JSON argument and reads the result file this process writes.
"""

import json
import sys
import traceback
from pathlib import Path


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
        outputs = load_component_from_file(spec["yaml"])(**spec["params"]).outputs
    except Exception as error:  # reported to the parent, which shows it
        traceback.print_exc()
        result_path.write_text(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    metrics = outputs["eval_metrics"]
    result_path.write_text(
        json.dumps(
            {
                "ok": True,
                "tuned_endpoint": outputs["tuned_endpoint"],
                "metrics": {k: v for k, v in metrics.metadata.items() if isinstance(v, (int, float))},
                "report": outputs["eval_report"].path,
                "predictions": outputs["predictions"].path,
                "summary": outputs["summary"].path,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
