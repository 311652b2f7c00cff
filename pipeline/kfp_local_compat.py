"""A shim for kfp.local 2.17.0, applied only in offline runs (pipeline/local_child.py).

kfp.local resolves ``dsl.OneOf`` for parameters but not for artifacts ("Expected 1 artifact
in ArtifactSelectorSpec. Got: 2"), which the If/Else between synthesized and imported images
needs. Vertex AI resolves both; the compiled YAML is unchanged. Remove this module once
kfp.local handles artifact selectors itself.
"""


def enable_local_oneof_artifacts() -> None:
    """Teaches the local orchestrator to take the artifact of the one branch that ran."""
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    if getattr(OrchestratorUtils, "_oneof_artifacts_patched", False):
        return

    def get_dag_output_artifacts(cls, dag_outputs_spec, io_store):
        outputs = {}
        for key, spec in dag_outputs_spec.artifacts.items():
            selectors = list(spec.artifact_selectors)
            if len(selectors) == 1:  # the ordinary case: let a missing output raise as before
                outputs[key] = io_store.get_task_output(selectors[0].producer_subtask,
                                                        selectors[0].output_artifact_key)
                continue
            found = []
            for selector in selectors:  # dsl.OneOf: exactly one branch ran
                try:
                    found.append(io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key))
                except (KeyError, ValueError):
                    continue
            if len(found) != 1:
                raise ValueError(f"dsl.OneOf output {key!r}: {len(found)} of {len(selectors)} branches produced "
                                 "an artifact; expected exactly one")
            outputs[key] = found[0]
        return outputs

    OrchestratorUtils.get_dag_output_artifacts = classmethod(get_dag_output_artifacts)
    OrchestratorUtils._oneof_artifacts_patched = True
