"""The ML Metadata store: contexts, artifacts, executions, the links between them and events.

Persisted in ``<data_dir>/metadata/metadata.sqlite3`` (one transaction per API call, so a
failed call leaves nothing half-written) and mirrored in memory: lists filter in Python,
and ``get_experiment_df`` over 100 runs makes ~200 list calls.

Links: ``child`` (parent context -> child context), ``attr`` (context -> artifact),
``assoc`` (context -> execution). A context's ``parentContexts`` (output only) is computed
from the ``child`` links when it is read.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import api_error, invalid, not_found
from ..ids import new_id
from ..pipelines.resource import now_rfc3339

KINDS = {"contexts": "Context", "artifacts": "Artifact", "executions": "Execution"}
LINKS = ("child", "attr", "assoc")


class MetadataStore:
    def __init__(self, data_dir: Path) -> None:
        folder = Path(data_dir) / "metadata"
        folder.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(folder / "metadata.sqlite3", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, kind TEXT, seq INTEGER, body TEXT);"
            "CREATE TABLE IF NOT EXISTS links (kind TEXT, a TEXT, b TEXT, PRIMARY KEY (kind, a, b));"
            "CREATE TABLE IF NOT EXISTS events (execution TEXT, artifact TEXT, body TEXT);"
        )
        self.nodes: dict[str, dict[str, Any]] = {}
        self.kind_of: dict[str, str] = {}
        self.seq: dict[str, int] = {}
        self.links: dict[str, dict[str, set[str]]] = {k: defaultdict(set) for k in LINKS}
        self.parents: dict[str, set[str]] = defaultdict(set)
        self.events: list[dict[str, Any]] = []
        self._load()

    def _load(self) -> None:
        for name, kind, seq, body in self.db.execute("SELECT name, kind, seq, body FROM nodes"):
            self.nodes[name], self.kind_of[name], self.seq[name] = json.loads(body), kind, seq
        for kind, a, b in self.db.execute("SELECT kind, a, b FROM links"):
            self._link(kind, a, b)
        self.events = [json.loads(b) for (b,) in self.db.execute("SELECT body FROM events ORDER BY rowid")]

    def _link(self, kind: str, a: str, b: str) -> None:
        self.links[kind][a].add(b)
        if kind == "child":
            self.parents[b].add(a)

    # -- reads
    def view(self, name: str) -> dict[str, Any]:
        node = copy.deepcopy(self.nodes[name])
        if self.kind_of[name] == "contexts" and self.parents.get(name):
            node["parentContexts"] = sorted(self.parents[name])
        return node

    def get(self, kind: str, name: str) -> dict[str, Any]:
        with self.lock:
            if self.kind_of.get(name) != kind:
                raise not_found(f"{KINDS[kind]} {name} not found.")
            return self.view(name)

    def names(self, kind: str, store: str) -> list[str]:
        """Names of ``kind`` in ``store``, oldest first."""
        prefix = f"{store}/{kind}/"
        with self.lock:
            found = [n for n, k in self.kind_of.items() if k == kind and n.startswith(prefix)]
        return sorted(found, key=self.seq.__getitem__)

    def members(self, context: str) -> set[str]:
        """The artifacts and executions in ``context``."""
        with self.lock:
            return set(self.links["attr"].get(context, ())) | set(self.links["assoc"].get(context, ()))

    def parents_of(self, context: str) -> set[str]:
        with self.lock:
            return set(self.parents.get(context, ()))

    def events_of(self, executions: set[str] | None = None, artifacts: set[str] | None = None) -> list[dict]:
        with self.lock:
            return [
                copy.deepcopy(e)
                for e in self.events
                if (executions is not None and e["execution"] in executions)
                or (artifacts is not None and e["artifact"] in artifacts)
            ]

    # -- writes
    def _save(self, name: str, kind: str, node: dict[str, Any]) -> None:
        seq = self.seq.get(name)
        if seq is None:
            self._last_seq = seq = max(getattr(self, "_last_seq", 0), max(self.seq.values(), default=0)) + 1
        self.db.execute(
            "INSERT OR REPLACE INTO nodes (name, kind, seq, body) VALUES (?, ?, ?, ?)",
            (name, kind, seq, json.dumps(node)),
        )
        self.nodes[name], self.kind_of[name], self.seq[name] = node, kind, seq

    def create(self, kind: str, store: str, resource_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
        name = f"{store}/{kind}/{resource_id or new_id()}"
        now = now_rfc3339()
        node = {k: v for k, v in body.items() if k not in ("parentContexts",)}
        node.update(name=name, createTime=now, updateTime=now, etag=new_id()[:10])
        node.setdefault("schemaVersion", "0.0.1")
        node.setdefault("metadata", {})
        if kind == "artifacts":
            node.setdefault("state", "LIVE")
        if kind == "executions":
            node.setdefault("state", "NEW")
        with self.lock:
            if name in self.nodes:
                raise api_error("ALREADY_EXISTS", f"{KINDS[kind]} {name} already exists.")
            with self.db:
                self._save(name, kind, node)
            return self.view(name)

    def update(self, kind: str, name: str, body: dict[str, Any], mask: list[str]) -> dict[str, Any]:
        """Fields in ``mask`` (all writable fields when empty); ``metadata`` is merged, as Vertex does."""
        with self.lock:
            node = copy.deepcopy(self.nodes[name]) if self.kind_of.get(name) == kind else None
            if node is None:
                raise not_found(f"{KINDS[kind]} {name} not found.")
            for key, value in body.items():
                if key in ("name", "createTime", "updateTime", "parentContexts", "etag"):
                    continue
                if mask and key not in mask:
                    continue
                node[key] = {**node.get("metadata", {}), **value} if key == "metadata" else value
            node["updateTime"] = now_rfc3339()
            with self.db:
                self._save(name, kind, node)
            return self.view(name)

    def delete(self, kind: str, name: str) -> None:
        with self.lock:
            if self.kind_of.get(name) != kind:
                raise not_found(f"{KINDS[kind]} {name} not found.")
            with self.db:
                self.db.execute("DELETE FROM nodes WHERE name = ?", (name,))
                self.db.execute("DELETE FROM links WHERE a = ? OR b = ?", (name, name))
            for links in self.links.values():
                links.pop(name, None)
                for targets in links.values():
                    targets.discard(name)
            self.parents.pop(name, None)
            for parents in self.parents.values():
                parents.discard(name)
            del self.nodes[name], self.kind_of[name], self.seq[name]

    def add_links(self, kind: str, a: str, targets: list[str], target_kind: str) -> None:
        """Link ``a`` (a context) to each target; every name must exist, or nothing is linked."""
        with self.lock:
            if self.kind_of.get(a) != "contexts":
                raise not_found(f"Context {a} not found.")
            for b in targets:
                if self.kind_of.get(b) != target_kind:
                    raise invalid(f"{KINDS[target_kind]} {b} not found.")
                if kind == "child" and (b == a or a in self._descendants(b)):
                    raise invalid(f"Adding {b} as a child of {a} would create a cycle.")
            with self.db:
                for b in targets:
                    self.db.execute("INSERT OR IGNORE INTO links (kind, a, b) VALUES (?, ?, ?)", (kind, a, b))
            for b in targets:
                self._link(kind, a, b)

    def remove_children(self, parent: str, children: list[str]) -> None:
        with self.lock:
            with self.db:
                for child in children:
                    self.db.execute("DELETE FROM links WHERE kind = 'child' AND a = ? AND b = ?", (parent, child))
            for child in children:
                self.links["child"][parent].discard(child)
                self.parents[child].discard(parent)

    def _descendants(self, context: str) -> set[str]:
        seen, stack = set(), [context]
        while stack:
            for child in self.links["child"].get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def add_events(self, execution: str, events: list[dict[str, Any]]) -> None:
        with self.lock:
            if self.kind_of.get(execution) != "executions":
                raise not_found(f"Execution {execution} not found.")
            for event in events:
                if self.kind_of.get(event.get("artifact", "")) != "artifacts":
                    raise invalid(f"Event artifact {event.get('artifact', '')!r} not found.")
            stamped = [{**e, "execution": execution, "eventTime": now_rfc3339()} for e in events]
            with self.db:
                for e in stamped:
                    self.db.execute(
                        "INSERT INTO events (execution, artifact, body) VALUES (?, ?, ?)",
                        (execution, e["artifact"], json.dumps(e)),
                    )
            self.events.extend(stamped)
