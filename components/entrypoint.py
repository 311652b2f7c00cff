"""Python as the container's entry process, so a pod's SIGTERM reaches the component.

KFP compiles a lightweight component to ``sh -c 'pip install ... && "$0" "$@"' sh -ec
'...; python3 -m kfp.dsl.executor_main ...'``. Debian's ``sh`` (dash, also in
python:3.11-slim) runs the last command as a child instead of exec'ing it, and a shell
that is PID 1 ignores SIGTERM, so when Vertex AI stops the pod (a cancelled run) the
signal never reaches Python and a component's SIGTERM handler never runs. Google's own
long-running-job components avoid this by running ``python3 -m ...launcher`` as the
container command; ``exec_python`` gets the same effect by adding ``exec`` to both shell
steps, so the shell becomes Python, PID 1, with its handlers. kfp.local runs the same
command, so offline and Vertex behave alike.
"""

PIP_STEP_END = '&& "$0" "$@"'
EXECUTOR_START = "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"


def exec_python(component):
    """Rewrites a lightweight component's command so that Python replaces the shells.

    Use it on the outside of ``@dsl.component``. Fails loudly if KFP's command template
    changes, rather than silently compiling a component that cannot be cancelled.
    """
    command = component.component_spec.implementation.container.command
    pip_step = next((i for i, part in enumerate(command) if PIP_STEP_END in part), None)
    executor_step = next((i for i, part in enumerate(command) if EXECUTOR_START in part), None)
    if pip_step is None or executor_step is None:
        raise RuntimeError(f"{component.name}: KFP's component command changed; update components/entrypoint.py")
    command[pip_step] = command[pip_step].replace(PIP_STEP_END, '&& exec "$0" "$@"')
    # ``exec env VAR=value cmd``: exec alone would not pass the assignment on in every shell.
    command[executor_step] = command[executor_step].replace(
        EXECUTOR_START, "exec env _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
    )
    return component
