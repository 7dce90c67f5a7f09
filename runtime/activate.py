"""Adapter activation and secrets readiness: the profile's selections -> live adapters, each one's status.

Secrets come first (every other adapter's settings may hold `secret://` references); only the selected
factories' modules are imported. A failure is recorded per adapter, never raised: `/healthz` and `health`
report it. The state lives on the Runtime (`adapters`, `adapter_status`, `secrets`, `secrets_status`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection

from runtime import settings as view
from runtime.adapters.base import AdapterContext, AdapterError, SecretsAdapter, load_factory
from runtime.model import Selection

if TYPE_CHECKING:  # pragma: no cover
    from runtime.instance import Runtime


#: While secrets are not ready, /healthz re-checks them at most this often (in the background), so a
#: secret created or fixed after start is noticed without a restart.
RECHECK_SECONDS = 2.0


def _secret_refs(rt: "Runtime") -> list[tuple[str, str | None]]:
    return view.secret_refs(rt.profile, rt.overrides.applied)


def _context(rt: "Runtime") -> AdapterContext:
    return AdapterContext(project_dir=rt.project_dir, cache_dir=rt.cache_dir, profile=rt.profile.profile.name,
                          log=rt.log, extra={"environ": rt.environ, "runtime": rt, "secret_refs": tuple(_secret_refs(rt))})


def _build(rt: "Runtime", sel: Selection, context: AdapterContext) -> Any:
    factory = load_factory(sel.factory, view.factory_allowlist(rt.settings))
    settings = view.selection_settings(sel, rt.overrides.applied)
    if sel.key != "secrets":  # a secret value beats every other layer (SPEC 3)
        settings = {k: rt.resolve(v) for k, v in settings.items()}
    return factory(settings, secrets=rt.secrets, context=context)


def activate(rt: "Runtime", *, only: Collection[str] | None = None) -> None:
    """Build and activate each selected adapter (secrets first), importing only their modules.

    `only`: the secrets adapter and the adapters of these keys alone, for commands that only resolve a
    `secret://` reference (the state store's DSN for `activity`, `state`, `workflow list`) or read one
    adapter (`workflow status`: the queue): an operator's laptop or a CI job need not reach, import or
    authenticate every other adapter the service uses."""
    context = _context(rt)
    selections = [s for s in rt.profile.selections if s.domain == "adapter"]
    secrets_sel = view.secrets_selection(selections, rt.settings)
    rest = sorted((s for s in selections if s.key != "secrets" and (only is None or s.key in only)),
                  key=lambda s: s.key)
    for sel in [secrets_sel] + rest:
        label = f"{sel.domain}/{sel.key}"
        try:
            adapter = _build(rt, sel, context)
            adapter.activate()
        except Exception as exc:  # any failure in third-party code is reported, not fatal
            detail = str(exc) if isinstance(exc, AdapterError) else f"{type(exc).__name__}: {exc}"
            rt.adapter_status[label] = {"provider": sel.provider, "status": "error",
                                        "required": sel.required, "detail": detail}
            rt.log("ERROR", f"adapter {label} ({sel.provider}) failed to activate", error=detail,
                   required=sel.required)
            continue
        rt.adapters[(sel.domain, sel.key)] = adapter
        rt.adapter_status[label] = {"provider": sel.provider, "status": "ready",
                                    "required": sel.required, "detail": None}
        if sel.key == "secrets" and isinstance(adapter, SecretsAdapter):
            rt.secrets = adapter
    rt.secrets_status = check_secrets(rt)
    import time

    rt.secrets_checked_at = time.monotonic()
    if rt.state.remote and rt.state.autostart:  # psycopg's import and connection run while /healthz is 503
        rt.state.start()


def check_secrets(rt: "Runtime", live: bool = False) -> dict[str, Any]:
    """`{provider, status, ...}`: ready only when the adapter answers and every referenced secret exists."""
    block: dict[str, Any] = {"provider": view.secrets_provider(rt.settings)}
    if rt.secrets is None:
        failed = rt.adapter_status.get("adapter/secrets", {})
        block.update(status="error", detail=failed.get("detail") or "secrets adapter not active", missing=[])
        return block
    try:
        if live:
            probe = rt.secrets.health() or {}
            if probe.get("status", "ready") != "ready":
                block.update(status=probe.get("status"), detail=probe.get("detail"), missing=[])
                return block
        result = rt.secrets.readiness(_secret_refs(rt))
    except Exception as exc:
        block.update(status="error", detail=f"{type(exc).__name__}: {exc}", missing=[])
        return block
    block.update(status=result.get("status", "error"), detail=result.get("detail"),
                 missing=list(result.get("missing", [])))
    if result.get("unusable"):
        block["unusable"] = list(result["unusable"])
    block["references"] = result.get("references",
                                     [{"name": n, "version": v or "latest"} for n, v in _secret_refs(rt)])
    return block


def unavailable_secrets(rt: "Runtime") -> list[str] | None:
    """The names of the referenced secrets that are missing or unusable (never a value), or None when
    the secrets are ready; while they are not, a background re-check runs at most every RECHECK_SECONDS."""
    block = rt.secrets_status
    if block.get("status") == "ready":
        return None
    _recheck_later(rt)
    names = list(block.get("missing") or []) + list(block.get("unusable") or [])
    return names or [block.get("detail") or "secrets adapter not ready"]


def _recheck_later(rt: "Runtime") -> None:
    import threading
    import time

    now = time.monotonic()
    with rt.secrets_recheck_lock:
        if rt.secrets_recheck_running or now - rt.secrets_checked_at < RECHECK_SECONDS:
            return
        rt.secrets_recheck_running = True

    def run() -> None:
        try:
            rt.secrets_status = check_secrets(rt)
        finally:
            rt.secrets_checked_at = time.monotonic()
            rt.secrets_recheck_running = False

    threading.Thread(target=run, name="oneiric-secrets-recheck", daemon=True).start()


def probe_adapters(rt: "Runtime") -> dict[str, dict[str, Any]]:
    """Call `health()` on every active adapter now; failed activations stay as recorded."""
    result = {}
    for label, status in rt.adapter_status.items():
        domain, _, key = label.partition("/")
        adapter = rt.adapters.get((domain, key))
        entry = dict(status)
        if adapter is not None:
            try:
                live = adapter.health() or {}
                entry["status"] = live.get("status", "ready")
                entry["detail"] = live.get("detail")
            except Exception as exc:
                entry["status"], entry["detail"] = "error", f"{type(exc).__name__}: {exc}"
        result[label] = entry
    return result


def failed_required(rt: "Runtime") -> list[str]:
    return [k for k, v in rt.adapter_status.items() if v["status"] != "ready" and v.get("required", True)]


def close(rt: "Runtime") -> None:
    """Close every active adapter; a failure is logged, the others still close."""
    for (domain, key), adapter in list(rt.adapters.items()):
        try:
            adapter.close()
        except Exception as exc:
            rt.log("WARNING", f"adapter {domain}/{key} failed to close", error=f"{type(exc).__name__}: {exc}")
    state = getattr(rt, "state", None)
    if state is not None:
        state.close()
