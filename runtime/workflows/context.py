"""The task contract's `context`: the run's context object, plus who is running and the activated adapters.

A task is called ``fn(payload, context, inputs)`` (see runtime.workflows.engine). ``context`` is a
`TaskContext`: a dict holding the run's ``context`` object exactly as before (a fresh copy per call), with
attributes for what the run needs beyond JSON:

- ``context.adapters``: the adapters this profile activated, by key (``context.adapters["vector"]``,
  ``["queue"]``, ``["secrets"]``): the same objects `/healthz` reports on, shared by every run of the
  process, so a task never builds its own clients and never reads settings or secrets itself;
- ``context.secrets``: the secrets adapter (``context.secrets.get("NAME").reveal()``);
- ``context.run_id``, ``context.workflow``, ``context.node``, ``context.task``, ``context.attempt``;
- ``context.log(severity, message, **fields)``: the runtime's structured log, tagged with the run.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from runtime.adapters.base import AdapterError

CONTRACT = "fn(payload, context, inputs)"


class UnknownAdapterError(AdapterError, KeyError):
    """`context.adapters[key]` for a key this profile did not activate; says which keys it did."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class Adapters(Mapping[str, Any]):
    """Read-only view of the activated adapters (domain `adapter`) by key."""

    __slots__ = ("_by_key",)

    def __init__(self, activated: Mapping[tuple[str, str], Any]) -> None:
        self._by_key = {key: adapter for (domain, key), adapter in activated.items() if domain == "adapter"}

    def __getitem__(self, key: str) -> Any:
        try:
            return self._by_key[key]
        except KeyError:
            active = ", ".join(sorted(self._by_key)) or "none"
            raise UnknownAdapterError(f"no adapter {key!r} is active in this profile (active: {active}); select "
                                      f"one in [adapters.selections] and check `oneiric health --probe`") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"Adapters({sorted(self._by_key)})"


class TaskContext(dict):
    """The run's context object (a dict) with the run's identity and adapters as attributes."""

    __slots__ = ("run_id", "workflow", "node", "task", "attempt", "adapters", "_log")

    def __init__(self, data: Mapping[str, Any], *, run_id: str, workflow: str, node: str, task: str,
                 attempt: int, adapters: Adapters, log: Callable[..., None] | None = None) -> None:
        super().__init__(data)
        self.run_id, self.workflow, self.node, self.task, self.attempt = run_id, workflow, node, task, attempt
        self.adapters = adapters
        self._log = log

    @property
    def secrets(self) -> Any:
        return self.adapters["secrets"]

    def log(self, severity: str, message: str, **fields: Any) -> None:
        if self._log is not None:
            self._log(severity, message, workflow=self.workflow, run_id=self.run_id, node=self.node, **fields)


def check_task_signature(task: str, factory: str, fn: Callable[..., Any]) -> None:
    """Refuse a task callable that cannot be called as `fn(payload, context, inputs)`, naming the task, its
    parameters and the contract (a bare TypeError at the first call would name none of them)."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable without a signature: it gets the call as is
        return
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise AdapterError(f"task {task!r}: {factory} has the signature {signature}, but a task is called as "
                           f"{CONTRACT} (three positional arguments; see docs/getting-started.md, "
                           "\"The task contract\")") from None
