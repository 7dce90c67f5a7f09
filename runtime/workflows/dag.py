"""Plans a workflow entry's DAG: node lookup, validation (ids, targets, cycles), ordering and readiness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from runtime.model import DEFAULT_NODE_TIMEOUT, DagNode, Entry, RetryPolicy


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
                   payload=dict(raw.get("payload") or {}), retry_policy=policy,
                   timeout_seconds=float(DEFAULT_NODE_TIMEOUT if raw.get("timeout_seconds") is None
                                         else raw["timeout_seconds"]))


#: What a node's retry_policy may hold: the manifest schema's bounds (a test keeps them equal), re-checked
#: here because a manifest also arrives by remote refresh, and a delay of 1e10 must never reach sleep().
RETRY_LIMITS = {"attempts": (1, 100), "base_delay": (0, 3600), "max_delay": (0, 3600), "jitter": (0, 1)}


class Problem:
    """One reason a DAG cannot run: `code` (dag.duplicate-id, dag.unknown-dependency, dag.cycle,
    dag.retry-policy), the JSON pointer inside the entry, a message, and the offending name (for hints)."""

    __slots__ = ("code", "pointer", "message", "name")

    def __init__(self, code: str, pointer: str, message: str, name: str) -> None:
        self.code, self.pointer, self.message, self.name = code, pointer, message, name


def check_nodes(workflow: str, nodes: Sequence[DagNode]) -> list[Problem]:
    """Every problem of a workflow's nodes: duplicate ids, dependencies on no node, the first cycle, retry
    policies out of bounds. The compiler reports them with positions; `build_plan` refuses the first."""
    out: list[Problem] = []
    ids: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.id in ids:
            out.append(Problem("dag.duplicate-id", f"/dag/nodes/{i}/id",
                               f"workflow {workflow!r}: node id {n.id!r} is used twice", n.id))
        ids.setdefault(n.id, i)
        for field, (low, high) in RETRY_LIMITS.items():
            value = getattr(n.retry_policy, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                out.append(Problem("dag.retry-policy", f"/dag/nodes/{i}/retry_policy/{field}",
                                   f"workflow {workflow!r}: node {n.id!r} retry_policy.{field} = {value!r} is "
                                   f"outside {low}..{high}", field))
    for i, n in enumerate(nodes):
        for j, dep in enumerate(n.depends_on):
            if dep not in ids:
                out.append(Problem("dag.unknown-dependency", f"/dag/nodes/{i}/depends_on/{j}",
                                   f"workflow {workflow!r}: node {n.id!r} depends on {dep!r}, which is not a node "
                                   "of this workflow", dep))
    if len(ids) == len(nodes):  # with ambiguous ids the duplicate comes first
        cycle = find_cycle({n.id: [d for d in n.depends_on if d in ids] for n in nodes})
        if cycle:
            out.append(Problem("dag.cycle", f"/dag/nodes/{ids[cycle[0]]}/depends_on",
                               f"workflow {workflow!r} has a dependency cycle: " + " -> ".join(cycle), cycle[0]))
    return out


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The first cycle found by depth-first search (nodes in sorted order), as a closed path a -> b -> a."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def build_plan(entry: Entry) -> Plan:
    """Validate (check_nodes) and order `entry.dag.nodes` (Kahn's algorithm, ties broken by manifest order)."""
    dag = entry.dag
    raw_nodes = getattr(dag, "nodes", None) if dag is not None else None
    if raw_nodes is None and isinstance(dag, Mapping):
        raw_nodes = dag.get("nodes")
    nodes = [_node(n) for n in (raw_nodes or ())]
    if not nodes:
        raise PlanError(f"workflow {entry.key!r} has no dag nodes")
    problems = check_nodes(entry.key, nodes)
    if problems:
        raise PlanError(problems[0].message)
    for n in nodes:
        if not 0 < n.timeout_seconds <= 86400:
            raise PlanError(f"workflow {entry.key!r}: node {n.id!r} timeout_seconds must be in (0, 86400]")
    remaining = {n.id: set(n.depends_on) for n in nodes}
    order: list[DagNode] = []
    while remaining:
        ready = [n for n in nodes if n.id in remaining and not remaining[n.id]]
        for n in ready:
            order.append(n)
            del remaining[n.id]
        for deps in remaining.values():
            deps.difference_update(n.id for n in ready)
    return Plan(entry.key, tuple(order))
