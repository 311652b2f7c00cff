"""What KFP ships with a lightweight component, derived from the code instead of listed by hand.

KFP puts a lightweight component's own source in the container, plus the source of each
function in ``additional_funcs``; nothing else of the project is there, so every project
function the component reaches must be shipped, and each one is self-contained (imports
inside, tables are functions). ``shipped_functions`` follows the names a function uses,
transitively, through ``components`` and ``platform_facts``; ``lightweight_component`` is
``@dsl.component`` with that list filled in, so no component keeps a list that can go stale.
"""

import inspect
import types

from kfp import dsl

PROJECT_PACKAGES = ("components.", "platform_facts.")


def _names(code: types.CodeType):
    """Every global name a code object uses, nested functions and closures included."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def shipped_functions(func) -> list:
    """The project functions ``func`` reaches by name, transitively, in a stable order
    (by module, then by line), ``func`` itself excluded."""
    seen: dict = {}
    pending = [func]
    while pending:
        current = pending.pop()
        for name in _names(current.__code__):
            value = current.__globals__.get(name)
            if inspect.isfunction(value) and value.__module__.startswith(PROJECT_PACKAGES) and value not in seen:
                seen[value] = None
                pending.append(value)
    seen.pop(func, None)
    return sorted(seen, key=lambda f: (f.__module__, f.__code__.co_firstlineno))


def lightweight_component(**options):
    """``@dsl.component(**options)`` shipping every project function the component reaches."""

    def decorate(func):
        return dsl.component(additional_funcs=shipped_functions(func), **options)(func)

    return decorate
