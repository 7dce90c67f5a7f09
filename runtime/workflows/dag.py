"""Plans a workflow entry's DAG: node lookup, validation (ids, targets, cycles), ordering and readiness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from runtime.model import DagNode, Entry, RetryPolicy


class PlanError(Exception):
    """A workflow's DAG cannot be executed (the compiler refuses these; the runtime re-checks)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated DAG: nodes in a deterministic topological order."""

    workflow: str
    order: tuple[DagNode, ...]

    @property
    def by_id(self) -> dict[str, DagNode]:
        return {n.id: n for n in self.order}

    def ready(self, done: Iterable[str], running: Iterable[str] = ()) -> list[DagNode]:
        """Nodes not done and not running whose dependencies are all done, in plan order."""
        done_set, running_set = set(done), set(running)
        return [n for n in self.order
                if n.id not in done_set and n.id not in running_set and all(d in done_set for d in n.depends_on)]

    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.task for n in self.order))


def _node(raw: DagNode | Mapping) -> DagNode:
    """Accept model objects or the artifact's plain JSON (as decoded by a stdlib reader)."""
    if isinstance(raw, DagNode):
        return raw
    rp = raw.get("retry_policy") or {}
    policy = rp if isinstance(rp, RetryPolicy) else RetryPolicy(**rp)
    return DagNode(id=raw["id"], task=raw["task"], depends_on=tuple(raw.get("depends_on") or ()),
                   payload=dict(raw.get("payload") or {}), retry_policy=policy)


def build_plan(entry: Entry) -> Plan:
    """Validate and order `entry.dag.nodes` (Kahn's algorithm, ties broken by manifest order)."""
    dag = entry.dag
    raw_nodes = getattr(dag, "nodes", None) if dag is not None else None
    if raw_nodes is None and isinstance(dag, Mapping):
        raw_nodes = dag.get("nodes")
    nodes = [_node(n) for n in (raw_nodes or ())]
    if not nodes:
        raise PlanError(f"workflow {entry.key!r} has no dag nodes")
    index: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.id in index:
            raise PlanError(f"workflow {entry.key!r}: duplicate node id {n.id!r}")
        index[n.id] = i
    for n in nodes:
        for d in n.depends_on:
            if d not in index:
                raise PlanError(f"workflow {entry.key!r}: node {n.id!r} depends on unknown node {d!r}")
        if n.retry_policy.attempts < 1:
            raise PlanError(f"workflow {entry.key!r}: node {n.id!r} retry_policy.attempts must be >= 1")
    remaining = {n.id: set(n.depends_on) for n in nodes}
    order: list[DagNode] = []
    while remaining:
        ready = [n for n in nodes if n.id in remaining and not remaining[n.id]]
        if not ready:
            cycle = _find_cycle({k: v for k, v in remaining.items()})
            raise PlanError(f"workflow {entry.key!r}: dependency cycle {' -> '.join(cycle)}")
        for n in ready:
            order.append(n)
            del remaining[n.id]
        for deps in remaining.values():
            deps.difference_update(n.id for n in ready)
    return Plan(entry.key, tuple(order))


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    start = sorted(graph)[0]
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = sorted(graph[node])[0]
    return path[seen[node]:] + [node]
