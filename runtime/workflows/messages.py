"""The delivery message shared by enqueue, the queue adapters and the endpoint: path, body, task name."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from runtime.canonical import compact_bytes

DELIVERY_PATH = "/tasks/workflow"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def task_name_for(run_id: str) -> str:
    """The queue task id of a run: deterministic (so a repeated enqueue deduplicates), hash-prefixed
    (Cloud Tasks spreads hashed names better than sequential ones) and within `[A-Za-z0-9_-]{1,500}`."""
    digest = hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:16]
    return f"{digest}-{_UNSAFE.sub('_', run_id)[:120]}"


def build_body(workflow: str, run_id: str, context: dict[str, Any] | None, metadata: dict[str, Any]) -> bytes:
    """The JSON body `POST /tasks/workflow` expects: `{workflow, run_id, context, metadata}`."""
    obj = {"workflow": workflow, "run_id": run_id, "context": context or {}, "metadata": metadata}
    return compact_bytes(obj)
