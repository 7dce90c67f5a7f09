"""What a workflow run request may hold: one validator for `POST /tasks/workflow` bodies and for the
`workflow enqueue|run` CLI, so the CLI never queues what the endpoint would refuse.

Rules: the body is a UTF-8 JSON object with `workflow` (a non-empty string), optional `run_id` (matched
in full by RUN_ID_PATTERN: no trailing newline, no path separators, at most 200 characters), optional
`context` and `metadata` objects; no number overflows to infinity, no string (key or value) holds a lone
surrogate (it could never be stored or answered), nothing nests past the interpreter's limit.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

BODY_FIELDS = frozenset({"workflow", "run_id", "context", "metadata"})
RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}"
_RUN_ID = re.compile(RUN_ID_PATTERN)


class BadRequest(Exception):
    """The request is malformed (answered 400, or exit 2 at the CLI); the message says which field and why."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes, what: str = "body") -> Any:
    """JSON with finite numbers and well-formed strings only; BadRequest naming `what` otherwise."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text, parse_float=_finite, parse_constant=_reject_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be encoded
    except UnicodeError:
        raise BadRequest(f"{what} is not valid UTF-8 JSON: undecodable bytes or a lone surrogate "
                         "(such as \\ud800)") from None
    except RecursionError:  # `[[[[...` nested past the interpreter's recursion limit
        raise BadRequest(f"{what} is nested too deeply") from None
    except ValueError as exc:  # includes JSONDecodeError and int("1" * 5000)'s digit limit
        raise BadRequest(f"{what} is not valid UTF-8 JSON: {exc}") from None
    return value


def check_run_id(run_id: Any, what: str = "field run_id") -> None:
    if run_id is not None and (not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id)):
        raise BadRequest(f"{what} must match {RUN_ID_PATTERN} in full")


def parse_context(text: str | None, what: str = "--context") -> dict[str, Any]:
    """A run's context from the CLI: a JSON object under the body's rules."""
    if text is None:
        return {}
    value = loads(text, what)
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def parse_body(body: bytes) -> dict[str, Any]:
    """The delivery message, checked field by field; raises BadRequest with what is wrong."""
    obj = loads(body, "body")
    if not isinstance(obj, dict):
        raise BadRequest("body must be a JSON object {workflow, run_id?, context?, metadata?}")
    unknown = sorted(set(obj) - BODY_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: workflow, run_id, context, metadata"
                         " (results and checkpoints are never taken from a request)")
    wf = obj.get("workflow")
    if not isinstance(wf, str) or not wf.strip():
        raise BadRequest("field workflow must be a non-empty string")
    check_run_id(obj.get("run_id"))
    for name in ("context", "metadata"):
        if obj.get(name) is not None and not isinstance(obj[name], dict):
            raise BadRequest(f"field {name} must be an object")
    return obj
