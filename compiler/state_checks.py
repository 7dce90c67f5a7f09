"""Resolve-stage checks for shared state and delivery windows (issue 10): `[state]` and HMAC vs Cloud Tasks.

- postgres needs `[state] dsn = "secret://NAME"` (a literal DSN is refused without being repeated);
- finished runs must outlive an HMAC signature (`retention_days` vs `hmac_window_seconds`), else a
  replay after pruning would run again;
- Cloud Tasks resends the headers signed at enqueue on every retry, so with HMAC the queue's retry
  duration (`max_retry_duration_seconds` of the cloudtasks provider) must fit in `hmac_window_seconds`.
"""

from __future__ import annotations

from typing import Any, Iterable

from compiler.checks import SECRET_REF, resolve_category
from compiler.diagnostics import Diagnostic, Document
from compiler.layering import Layers


def _span(doc: Document | None, pointer: str) -> Any:
    return doc.span(pointer) if doc else None


def check_state(layers: Layers, doc: Document | None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    dsn = layers.get(("state", "dsn"))
    if isinstance(dsn, str) and not SECRET_REF.match(dsn):
        out.append(Diagnostic("state.dsn", "state.dsn must be a secret reference \"secret://NAME\" (a connection"
                              " string holds a password)", _span(doc, "/state/dsn"), "/state/dsn",
                              "store the connection string in your secrets provider and write \"secret://state-dsn\""))
    elif layers.get(("state", "backend")) == "postgres" and not dsn:
        out.append(Diagnostic("state.dsn", "state.backend = \"postgres\" needs [state] dsn = \"secret://NAME\"",
                              _span(doc, "/state/backend"), "/state/backend",
                              "store the connection string in your secrets provider and reference it"))
    window = max(layers.get(("http", "hmac_window_seconds"), 300), layers.get(("http", "hmac_skew_seconds"), 300))
    retention = layers.get(("state", "retention_days"), 14)
    if layers.get(("http", "tasks_auth")) == "hmac" and retention * 86400 <= window:
        out.append(Diagnostic("state.retention", f"state.retention_days = {retention} prunes runs before an HMAC"
                              f" signature expires (http.hmac_window_seconds = {window:g}): a replay could run again",
                              _span(doc, "/state/retention_days"), "/state/retention_days",
                              "keep runs longer than the signature window"))
    return out


def check_hmac_window(entries: Iterable[Any], chosen: dict, adapter_keys: Iterable[str], layers: Layers,
                      doc: Document | None) -> list[Diagnostic]:
    """HMAC deliveries through Cloud Tasks: the signature must stay valid for the queue's whole retry duration."""
    if layers.get(("http", "tasks_auth")) != "hmac" or not any(e.domain == "workflow" for e in entries):
        return []
    key = resolve_category(layers.get(("workflows", "options", "queue_category"), "queue"), adapter_keys)
    choice = chosen.get(("adapter", key)) if key else None
    if choice is None or choice.candidate.provider != "cloudtasks":
        return []
    window = layers.get(("http", "hmac_window_seconds"), 300)
    retry = layers.get(("adapters", "provider_settings", "cloudtasks", "max_retry_duration_seconds"))
    if retry and retry <= window:
        return []
    pointer = "/http/hmac_window_seconds" if doc and doc.positions.get("/http/hmac_window_seconds") \
        else "/http/tasks_auth"
    limit = "is unlimited (max_retry_duration_seconds unset or 0)" if not retry else f"is {retry:g} s"
    return [Diagnostic("auth.hmac-window", f"Cloud Tasks resends the signature made at enqueue on every retry and"
                       f" the queue's retry duration {limit}, longer than [http] hmac_window_seconds = {window:g}:"
                       " late retries would be refused forever", _span(doc, pointer), pointer,
                       "use tasks_auth = \"oidc\" with Cloud Tasks (recommended), or set [adapters.provider_settings."
                       "cloudtasks] max_retry_duration_seconds to the queue's retryConfig.maxRetryDuration and"
                       " hmac_window_seconds at least that")]
