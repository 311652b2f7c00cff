"""KFP ships a lightweight component as its own source plus its ``additional_funcs``: every
function a component reaches must be in that list, for every component of the pipeline."""

import inspect
import re
import types

import pytest

from pipeline import pipeline as dag

COMPONENTS = sorted(
    {value for value in vars(dag).values() if hasattr(value, "component_spec") and hasattr(value, "python_func")},
    key=lambda c: c.name,
)
PROJECT_MODULES = ("components.", "platform_facts.")


def reached_functions(func, seen=None):
    """Every project function ``func`` calls by name, transitively (nested functions too)."""
    seen = set() if seen is None else seen

    def names(code):
        yield from code.co_names
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from names(const)

    for name in names(func.__code__):
        value = func.__globals__.get(name)
        if inspect.isfunction(value) and value.__module__.startswith(PROJECT_MODULES) and value not in seen:
            seen.add(value)
            reached_functions(value, seen)
    return seen


def test_every_component_of_the_pipeline_is_checked():
    assert len(COMPONENTS) == 14, [c.name for c in COMPONENTS]


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_every_function_a_component_calls_is_shipped_with_it(component):
    shipped_source = component.component_spec.implementation.container.command[-1]
    shipped = re.findall(r"^def (\w+)\(", shipped_source, re.MULTILINE)
    assert len(shipped) == len(set(shipped)), f"shipped twice: {sorted({n for n in shipped if shipped.count(n) > 1})}"
    missing = {f.__name__ for f in reached_functions(component.python_func)} - set(shipped)
    assert not missing, f"{component.name} calls {sorted(missing)} without shipping them (additional_funcs)"
    namespace = {}
    exec(compile(shipped_source, component.name, "exec"), namespace)  # the shipped module defines them all
    assert all(inspect.isfunction(namespace[name]) for name in shipped)
