"""Example workflow tasks: small JSON-in/JSON-out callables `fn(payload, context, inputs)`.

`context` is the run's context object (a dict) with the activated adapters by key as
`context.adapters` (runtime/workflows/context.py); `load` writes to the `vector` adapter through it.

When the run context names a file in `effects`, every call appends one JSON
line `{"task", "label", "outcome"}` to it, so tests can count exactly how many
times each task body ran (exactly-once checks across redeliveries).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from oneiric.demo.vector import embed


def _record(context: dict[str, Any], task: str, payload: dict[str, Any], outcome: str) -> None:
    path = context.get("effects")
    if not path:
        return
    line = json.dumps({"task": task, "label": payload.get("label", task), "outcome": outcome}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)


def _calls(context: dict[str, Any], label: str) -> int:
    path = context.get("effects")
    if not path or not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip() and json.loads(line).get("label") == label)


def extract(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Emit the records named in the run context (or the node payload)."""
    records = context.get("records", payload.get("records", []))
    _record(context, "extract", payload, "ok")
    return {"records": list(records), "count": len(records)}


def transform(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Upper-case every record produced by the upstream nodes."""
    records = [r for out in inputs.values() for r in out.get("records", [])]
    case = payload.get("case", "upper")
    _record(context, "transform", payload, "ok")
    return {"records": [r.upper() if case == "upper" else r.lower() for r in records]}


def load(payload: dict[str, Any], context: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """Write what the upstream nodes produced to the sink the node's payload names.

    `target: vector` embeds each record and upserts it into the profile's activated `vector` adapter,
    reached through the context by key (`context.adapters["vector"]`), and reports the store's size as
    `stored`. A profile without a vector adapter (a bare test project) only counts, as does any other target.
    """
    records = [r for out in inputs.values() for r in out.get("records", [])]
    target = payload.get("target", "memory")
    result: dict[str, Any] = {"loaded": len(records), "target": target}
    adapters = getattr(context, "adapters", {})
    if target == "vector" and "vector" in adapters:
        store = adapters["vector"]
        for record in records:
            store.upsert(f"{context.run_id}:{record}", embed(str(record), store.dimensions))
        result["stored"] = store.count()
    _record(context, "load", payload, "ok")
    return result


def flaky(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Fail the first `payload.fail_times` calls (counted in the effects file by `label`), then succeed.

    Without an effects file it cannot count, so it always fails when `fail_times` > 0.
    """
    label = payload.get("label", "flaky")
    previous = _calls(context, label)
    if previous < int(payload.get("fail_times", 0)):
        _record(context, "flaky", payload, "error")
        raise RuntimeError(f"{label}: planned failure {previous + 1} of {payload.get('fail_times')}")
    _record(context, "flaky", payload, "ok")
    return {"label": label, "calls": previous + 1, "upstream": sorted(inputs)}


def noop(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Do nothing (benchmarks): returns `{"ok": true}`."""
    return {"ok": True}


def sleep(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Sleep `payload.seconds` (or `context.sleep_seconds`), for concurrency and in-progress tests."""
    seconds = float(context.get("sleep_seconds", payload.get("seconds", 0.1)))
    started = time.time()
    time.sleep(seconds)
    _record(context, "sleep", payload, "ok")
    return {"slept": seconds, "started": started, "finished": time.time()}
