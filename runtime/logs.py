"""Logs: one JSON object per line (Cloud Logging's structured format) or plain text for a terminal."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

#: Severity names in increasing order; Cloud Logging understands these words.
SEVERITIES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RANK = {name: i for i, name in enumerate(SEVERITIES)}
TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"


def utc_now_text(when: float | None = None, *, digits: int = 3) -> str:
    """`2026-01-02T03:04:05.678Z`, always UTC: the time every record the runtime writes carries, with
    `digits` of the second's fraction (0, 3 for logs, 6 for queue timestamps that order deliveries)."""
    when = time.time() if when is None else when
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    if not digits:
        return base + "Z"
    scale = 10 ** digits
    return f"{base}.{int(when * scale) % scale:0{digits}d}Z"


def trace_fields(header: str | None, project_id: str | None) -> dict[str, Any]:
    """The trace, span and sampled fields for `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` as Cloud Logging
    reads them from a structured log line; empty without a project id."""
    if not header or not project_id:
        return {}
    trace_id, _, rest = header.partition("/")
    trace_id = trace_id.strip()
    if not trace_id or not all(c in "0123456789abcdefABCDEF" for c in trace_id):
        return {}
    fields = {TRACE_FIELD: f"projects/{project_id}/traces/{trace_id}"}
    span, _, options = rest.partition(";")
    span_id = span_hex(span)
    if span_id is not None:
        fields[SPAN_FIELD] = span_id
    if options.strip() == "o=1":
        fields[SAMPLED_FIELD] = True
    return fields


def span_hex(span: str) -> str | None:
    """The header's decimal span id as Cloud Logging's spanId: 16 lowercase hex digits (`42` ->
    `000000000000002a`); None when it is not a decimal number in 1..2**64-1."""
    span = span.strip()
    if not span.isascii() or not span.isdigit() or len(span) > 20:
        return None
    value = int(span)
    return f"{value:016x}" if 0 < value < 2 ** 64 else None


class Logger:
    """Writes log records to one stream, one line each, thread-safe.

    :param stream: where lines go (stdout for a server; stderr while a `--json` command prints its result)
    :param fmt: ``json`` or ``text``
    :param level: the lowest severity written
    """

    def __init__(self, stream: IO[str] | None = None, fmt: str = "json", level: str = "INFO",
                 project_id: str | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.fmt = fmt
        self.level = level.upper() if level.upper() in _RANK else "INFO"
        self.project_id = project_id
        self._lock = threading.Lock()

    def configure(self, *, fmt: str | None = None, level: str | None = None, project_id: str | None = None) -> None:
        if fmt in ("json", "text"):
            self.fmt = fmt
        if level and level.upper() in _RANK:
            self.level = level.upper()
        if project_id:
            self.project_id = project_id

    def enabled(self, severity: str) -> bool:
        return _RANK.get(severity.upper(), 1) >= _RANK[self.level]

    def __call__(self, severity: str, message: str, **fields: Any) -> None:
        self.log(severity, message, **fields)

    def log(self, severity: str, message: str, **fields: Any) -> None:
        severity = severity.upper()
        if not self.enabled(severity):
            return
        now = time.time()
        if self.fmt == "text":
            extra = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
            line = f"{utc_now_text(now)} {severity:<7} {message}" + (f" {extra}" if extra else "")
        else:
            record = {"severity": severity, "message": message, "time": utc_now_text(now)}
            record.update(fields)
            line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # closed pipe at shutdown: nothing sensible left to do
                pass


def _text_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
