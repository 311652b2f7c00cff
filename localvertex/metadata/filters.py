"""The ``filter`` of the metadata list calls (AIP-160, see pipelines/aip160.py), with what
the SDK sends: ``schema_title="system.Run"`` (or several, OR-ed), ``in_context("...")``,
``parent_contexts:"a","b"``, ``display_name="..."``, ``uri="..."``, ``state=...``,
``labels.KEY``, ``create_time`` / ``update_time`` comparisons."""

from __future__ import annotations

from .. import aip160
from .store import MetadataStore

ARTIFACT_STATES = ("STATE_UNSPECIFIED", "PENDING", "LIVE")
EXECUTION_STATES = ("STATE_UNSPECIFIED", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELLED")


def fields(md: MetadataStore, kind: str) -> aip160.Fields:
    def in_context(args: list[str]):
        members = set().union(*(md.members(a) for a in args))
        return lambda node: node["name"] in members

    f = aip160.Fields(
        strings={
            "display_name": lambda n: n.get("displayName"),
            "schema_title": lambda n: n.get("schemaTitle"),
            "schema_version": lambda n: n.get("schemaVersion"),
            "name": lambda n: n.get("name"),
        },
        times={"create_time": lambda n: n.get("createTime"), "update_time": lambda n: n.get("updateTime")},
        maps={"labels": lambda n: n.get("labels")},
    )
    if kind == "contexts":
        f.lists["parent_contexts"] = lambda n: md.parents_of(n["name"])
    else:
        f.functions["in_context"] = in_context
        states = ARTIFACT_STATES if kind == "artifacts" else EXECUTION_STATES
        f.enums["state"] = (lambda n: n.get("state"), states)
    if kind == "artifacts":
        f.strings["uri"] = lambda n: n.get("uri")
    return f


def parse(md: MetadataStore, kind: str, text: str):
    return aip160.parse(text, fields(md, kind))
