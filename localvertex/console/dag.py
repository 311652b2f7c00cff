"""The run graph: a PipelineJob's ``pipelineSpec`` laid out for an SVG drawn on the server.

Sub-DAGs (an exit handler, a condition, a loop) are flattened into their tasks, as the
Vertex console draws them inside a group: a task inside a group waits for what the group
waits for, and a task that waits for a group waits for the group's last tasks. Layers are
the longest path from a first task; within a layer, tasks sit under their parents
(barycentre order), which keeps edges short and rarely crossing for pipelines of this size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NODE_W, NODE_H = 210, 46
GAP_X, GAP_Y = 26, 34
MARGIN = 12


@dataclass
class Node:
    key: str  # the task's name in the spec (what taskDetails[].taskName holds)
    label: str  # taskInfo.name, what people read
    group: str = ""  # the sub-DAG it belongs to, if any
    parents: list[str] = field(default_factory=list)
    layer: int = 0
    x: int = 0
    y: int = 0


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[tuple[Node, Node]]
    width: int
    height: int

    def edge_paths(self) -> list[str]:
        """SVG path data of each edge: a smooth curve from a parent's bottom to a child's top."""
        paths = []
        for a, b in self.edges:
            x1, y1 = a.x + NODE_W // 2, a.y + NODE_H
            x2, y2 = b.x + NODE_W // 2, b.y
            mid = (y1 + y2) // 2
            paths.append(f"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}")
        return paths


def _component(spec: dict, task: dict) -> dict:
    return spec.get("components", {}).get(task.get("componentRef", {}).get("name", ""), {})


def _flatten(spec: dict, dag: dict, group: str, inherited: list[str], out: dict[str, Node]) -> dict[str, list[str]]:
    """Adds the leaf tasks of ``dag`` to ``out``; returns each task key -> its sink leaves
    (itself for a leaf, the group's last tasks for a sub-DAG)."""
    tasks = dag.get("tasks", {})
    sinks: dict[str, list[str]] = {}
    order = _topological(tasks)
    for key in order:
        task = tasks[key]
        waits = [leaf for dep in task.get("dependentTasks", []) for leaf in sinks.get(dep, [])]
        parents = waits if task.get("dependentTasks") else list(inherited)
        sub = _component(spec, task).get("dag")
        if sub is not None:
            sinks[key] = _flatten(spec, sub, task.get("taskInfo", {}).get("name", key), parents, out)["__sinks__"]
            continue
        out[key] = Node(key, task.get("taskInfo", {}).get("name", key), group, parents)
        sinks[key] = [key]
    depended = {dep for t in tasks.values() for dep in t.get("dependentTasks", [])}
    sinks["__sinks__"] = [leaf for key in order if key not in depended for leaf in sinks[key]]
    return sinks


def _topological(tasks: dict[str, dict]) -> list[str]:
    """Task keys, each after the tasks it depends on (ties by name; a cycle ends the walk)."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(key: str, path: frozenset) -> None:
        if key in seen or key in path or key not in tasks:
            return
        for dep in sorted(tasks[key].get("dependentTasks", [])):
            visit(dep, path | {key})
        seen.add(key)
        done.append(key)

    for key in sorted(tasks):
        visit(key, frozenset())
    return done


def _direct(node: Node, nodes: dict[str, Node]) -> list[str]:
    """The parents to draw an edge from: a parent that another parent already waits for
    (directly or not) adds no information, only clutter (transitive reduction)."""
    ancestors: dict[str, set[str]] = {}

    def above(key: str) -> set[str]:
        if key not in ancestors:
            ancestors[key] = set()
            for p in nodes[key].parents if key in nodes else ():
                ancestors[key] |= {p} | above(p)
        return ancestors[key]

    parents = [p for p in node.parents if p in nodes]
    return [p for p in parents if not any(p in above(q) for q in parents if q != p)]


def layout(spec: dict) -> Graph:
    """The graph of ``spec`` (a compiled KFP v2 PipelineSpec) with positions."""
    nodes: dict[str, Node] = {}
    _flatten(spec, spec.get("root", {}).get("dag", {}), "", [], nodes)
    for node in nodes.values():  # nodes come parents first (topological)
        node.layer = 1 + max((nodes[p].layer for p in node.parents if p in nodes), default=-1)
    layers: dict[int, list[Node]] = {}
    for node in nodes.values():
        layers.setdefault(node.layer, []).append(node)
    width = max((len(row) for row in layers.values()), default=1)
    for depth in sorted(layers):
        row = layers[depth]
        if depth:  # under the parents: mean of their x, then by name for equal places
            row.sort(key=lambda n: (sum(nodes[p].x for p in n.parents) / max(len(n.parents), 1), n.key))
        offset = (width - len(row)) * (NODE_W + GAP_X) // 2
        for i, node in enumerate(row):
            node.x = MARGIN + offset + i * (NODE_W + GAP_X)
            node.y = MARGIN + depth * (NODE_H + GAP_Y)
    edges = [(nodes[p], n) for n in nodes.values() for p in _direct(n, nodes)]
    return Graph(
        list(nodes.values()),
        edges,
        2 * MARGIN + width * NODE_W + (width - 1) * GAP_X,
        2 * MARGIN + len(layers) * NODE_H + max(len(layers) - 1, 0) * GAP_Y,
    )
