"""Task callables only the tests use (allowlisted under the module name pytest gives it)."""

from __future__ import annotations

from typing import Any


def returns_a_set(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> Any:
    return {1, 2}


def mutates_its_arguments(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> Any:
    payload["seen"] = payload.get("seen", 0) + 1
    context["seen"] = context.get("seen", 0) + 1
    for out in inputs.values():
        out["mutated"] = True
    return {"payload_seen": payload["seen"], "context_seen": context["seen"]}


class NotForUs(ValueError):
    """A task's own permanent error: the `permanent = True` attribute is the whole contract."""

    permanent = True


def rejects_without_id(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> Any:
    if "customer_id" not in context:
        raise NotForUs("context has no customer_id")
    return {"customer": context["customer_id"]}
