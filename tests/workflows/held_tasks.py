"""Tasks the node-timeout tests hold and release: what each call saw, on which thread, and whether it returned.

A held call blocks until `release(run_id, payload.key)` (key "" by default); `calls(run_id)` lists every call
of that run.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_calls: dict[str, list[dict[str, Any]]] = {}
_released: dict[str, threading.Event] = {}


def _event(run_id: str) -> threading.Event:
    with _lock:
        return _released.setdefault(run_id, threading.Event())


def _record(context: Any) -> dict[str, Any]:
    call = {"node": context.node, "attempt": context.attempt, "thread": threading.get_ident(), "returned": False}
    with _lock:
        _calls.setdefault(context.run_id, []).append(call)
    return call


def calls(run_id: str) -> list[dict[str, Any]]:
    with _lock:
        return [dict(c) for c in _calls.get(run_id, ())]


def release(run_id: str, key: str = "") -> None:
    _event(f"{run_id}/{key}").set()


def held(payload: dict[str, Any], context: Any, inputs: dict[str, Any]) -> Any:
    """Attempts up to `payload.hold_attempts` (default: all) block until the run is released."""
    call = _record(context)
    if context.attempt <= payload.get("hold_attempts", 100):
        _event(f"{context.run_id}/{payload.get('key', '')}").wait(60)
    call_done = {"node": context.node, "attempt": context.attempt}
    with _lock:
        call["returned"] = True
    return call_done


def quick(payload: dict[str, Any], context: Any, inputs: dict[str, Any]) -> Any:
    call = _record(context)
    with _lock:
        call["returned"] = True
    return {"node": context.node, "inputs": inputs}
