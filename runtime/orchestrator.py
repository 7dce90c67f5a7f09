"""The Runtime: verified artifacts + env overrides -> activated adapters, gating and in-flight accounting.

`build_runtime(options)` is the one constructor other modules use (see docs/runtime-interfaces.md);
`runtime.serve` runs it as a server.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from runtime import activity as activity_mod
from runtime.adapters.base import AdapterContext, AdapterError, SecretsAdapter, load_factory
from runtime.artifact import ArtifactError, LoadedArtifacts, check_stale, load_artifacts
from runtime.locate import LocateError, Location, locate
from runtime.logs import Logger
from runtime.model import ManifestArtifact, ProfileArtifact, Selection
from runtime.overrides import OverrideError, OverrideResult, apply_env, get_path
from runtime.supervisor import Snapshot, evaluate

#: Factory module prefix that is always allowed (the built-in adapters).
BUILTIN_PREFIX = "runtime.adapters"
SUPERVISOR_ENV = "ONEIRIC_RUNTIME_SUPERVISOR__ENABLED"
#: Built-in secrets providers, for ONEIRIC_SECRETS__PROVIDER overriding the compiled selection
#: (e.g. `env` for a local run of a Secret Manager profile) and for artifacts without a secrets selection.
SECRETS_FACTORIES = {
    "env": "runtime.adapters.secrets_env:EnvSecrets",
    "file": "runtime.adapters.secrets_file:FileSecrets",
    "gcp.secret_manager": "runtime.adapters.secrets_gcp:SecretManagerSecrets",
    "gcp": "runtime.adapters.secrets_gcp:SecretManagerSecrets",
}


class StartupError(Exception):
    """Cold start cannot proceed; the message names the file or variable and the fix."""


class RuntimeOptions:
    """Everything `build_runtime` reads; any object with these attributes works (missing ones take defaults)."""

    def __init__(self, config: str | None = None, profile: str | None = None, demo: bool = False,
                 manifest: str | None = None, health_path: str | None = None, no_remote: bool = False,
                 environ: Mapping[str, str] | None = None, log_stream: Any = None, cwd: Path | None = None,
                 **extra: Any) -> None:
        self.config, self.profile, self.demo = config, profile, demo
        self.manifest, self.health_path, self.no_remote = manifest, health_path, no_remote
        self.environ, self.log_stream, self.cwd = environ, log_stream, cwd
        for key, value in extra.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"RuntimeOptions({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k != 'environ')})"


def _opt(options: Any, name: str, default: Any = None) -> Any:
    value = getattr(options, name, default)
    return default if value is None else value


class Runtime:
    """What one process runs: see docs/runtime-interfaces.md for the attributes other modules rely on."""

    def __init__(self, location: Location, loaded: LoadedArtifacts, overrides: OverrideResult, logger: Logger,
                 *, environ: Mapping[str, str], health_path: str | None = None, no_remote: bool = False) -> None:
        self.location = location
        self.profile: ProfileArtifact = loaded.profile
        self.manifest: ManifestArtifact = loaded.manifest
        self.profile_path = loaded.profile_path
        self.manifest_path = loaded.manifest_path
        self.overrides = overrides
        self.settings: dict[str, Any] = overrides.settings
        self.environ = environ
        self.logger = logger
        self.project_dir: Path = location.project_dir
        cache = Path(str(get_path(self.settings, "runtime.cache_dir", ".oneiric_cache")))
        self.cache_dir: Path = cache if cache.is_absolute() else (location.cache_base or location.project_dir) / cache
        from runtime.health import FILENAME as HEALTH_FILENAME

        self.health_path = Path(health_path) if health_path else self.cache_dir / HEALTH_FILENAME
        self.activity = activity_mod.ActivityStore(self.cache_dir / activity_mod.FILENAME)
        toggles = self.profile.profile.toggles
        self.supervisor_enabled = bool(get_path(self.settings, "runtime.supervisor.enabled", toggles.supervisor_enabled))
        self.poll_interval = float(get_path(self.settings, "runtime.supervisor.poll_interval", 2.0) or 2.0)
        self.watchers_enabled = bool(toggles.watchers_enabled)
        #: remote refresh needs the profile toggle (serverless never refreshes), the setting and no --no-remote
        self.remote_requested = bool(get_path(self.settings, "remote.enabled", toggles.remote_enabled))
        self.remote_enabled = bool(toggles.remote_enabled) and self.remote_requested and not no_remote
        self.adapters: dict[tuple[str, str], Any] = {}
        #: "domain/key" -> {"provider", "status", "required", "detail"}
        self.adapter_status: dict[str, dict[str, Any]] = {}
        self.secrets: SecretsAdapter | None = None
        self.secrets_status: dict[str, Any] = {"provider": self.secrets_provider, "status": "starting"}
        #: starting -> accepting -> stopping -> stopped
        self.lifecycle = "starting"
        self.snapshot = Snapshot()
        self.supervisor = None  # set by the server when it starts one
        #: the port HTTP listens on (None without a server)
        self.http_port: int | None = None
        self._inflight = 0
        self._idle = threading.Condition()
        self._swap_lock = threading.Lock()

    # ------------------------------------------------------------ logging and lookups

    def log(self, severity: str, message: str, **fields: Any) -> None:
        self.logger.log(severity, message, **fields)

    @property
    def secrets_provider(self) -> str:
        provider = str(get_path(self.settings, "secrets.provider", "env"))
        return "gcp.secret_manager" if provider == "gcp" else provider  # the alias, as the compiler rewrites it

    @property
    def windows(self) -> list[dict[str, Any]]:
        return list(get_path(self.settings, "runtime.supervisor.windows", []) or [])

    def selection(self, domain: str, key: str) -> Selection | None:
        for sel in self.profile.selections:
            if sel.domain == domain and sel.key == key:
                return sel
        return None

    def selection_settings(self, sel: Selection) -> dict[str, Any]:
        """The selection's settings with the env overrides that fall under its `settings_path`."""
        result = dict(sel.settings)
        base = getattr(sel, "settings_path", "") or ""
        if base:
            prefix = base + "."
            for path, value in self.overrides.applied.items():
                if path.startswith(prefix):
                    leaf = path[len(prefix):]
                    if "." not in leaf and leaf != "provider":
                        result[leaf] = value
        return result

    def allowlist(self) -> list[str]:
        allowed = get_path(self.settings, "security.factory_allowlist", None)
        allowed = list(allowed) if isinstance(allowed, list) else ["oneiric.demo"]
        return [BUILTIN_PREFIX] + allowed

    def resolve(self, value: Any) -> Any:
        """A `secret://NAME[@VERSION]` string -> SecretValue through the secrets adapter; anything else as is."""
        if not isinstance(value, str) or not value.startswith("secret://"):
            return value
        name, _, version = value[len("secret://"):].partition("@")
        if self.secrets is None:
            raise AdapterError(f"cannot resolve secret {name!r}: the secrets adapter is not active")
        return self.secrets.get(name, version or None)  # unpinned: the provider's default_version

    # ------------------------------------------------------------ activation

    def _context(self) -> AdapterContext:
        refs = tuple((s.name, s.version if "@" in s.ref else None) for s in self.profile.secrets)
        return AdapterContext(project_dir=self.project_dir, cache_dir=self.cache_dir,
                              profile=self.profile.profile.name, log=self.log,
                              extra={"environ": self.environ, "runtime": self, "secret_refs": refs})

    def _build(self, sel: Selection, context: AdapterContext) -> Any:
        factory = load_factory(sel.factory, self.allowlist())
        settings = self.selection_settings(sel)
        if sel.key != "secrets":  # a secret value beats every other layer (SPEC 3)
            settings = {k: self.resolve(v) for k, v in settings.items()}
        return factory(settings, secrets=self.secrets, context=context)

    def _secrets_selection(self, selections: list[Selection]) -> Selection:
        """The adapter/secrets selection, swapped for a built-in when ONEIRIC_SECRETS__PROVIDER names another."""
        current = next((s for s in selections if s.key == "secrets"), None)
        provider = self.secrets_provider
        if current is not None and (current.provider == provider or provider not in SECRETS_FACTORIES):
            return current
        options = {k: v for k, v in (self.settings.get("secrets") or {}).items() if k != "provider"}
        if current is not None:  # the compiled provider's options do not apply to another provider
            options = {k: v for k, v in options.items() if k not in current.settings}
        return Selection("adapter", "secrets", provider, SECRETS_FACTORIES[provider], options, "builtin",
                         "ONEIRIC_SECRETS__PROVIDER" if current is not None else "no secrets selection", True, "")

    def activate(self) -> None:
        """Build and activate each selected adapter (secrets first), importing only their modules.

        A failure is recorded per adapter, never raised: /healthz and `health` report it.
        """
        context = self._context()
        selections = [s for s in self.profile.selections if s.domain == "adapter"]
        secrets_sel = self._secrets_selection(selections)
        selections = [secrets_sel] + sorted((s for s in selections if s.key != "secrets"), key=lambda s: s.key)
        for sel in selections:
            label = f"{sel.domain}/{sel.key}"
            try:
                adapter = self._build(sel, context)
                adapter.activate()
            except Exception as exc:  # any failure in third-party code is reported, not fatal
                detail = str(exc) if isinstance(exc, AdapterError) else f"{type(exc).__name__}: {exc}"
                self.adapter_status[label] = {"provider": sel.provider, "status": "error",
                                              "required": sel.required, "detail": detail}
                self.log("ERROR", f"adapter {label} ({sel.provider}) failed to activate", error=detail,
                         required=sel.required)
                continue
            self.adapters[(sel.domain, sel.key)] = adapter
            self.adapter_status[label] = {"provider": sel.provider, "status": "ready",
                                          "required": sel.required, "detail": None}
            if sel.key == "secrets" and isinstance(adapter, SecretsAdapter):
                self.secrets = adapter
        self.secrets_status = self.check_secrets()

    def check_secrets(self, live: bool = False) -> dict[str, Any]:
        """`{provider, status, ...}`: ready only when the adapter answers and every referenced secret exists."""
        block: dict[str, Any] = {"provider": self.secrets_provider}
        refs = [(s.name, s.version if "@" in s.ref else None) for s in self.profile.secrets]
        if self.secrets is None:
            failed = self.adapter_status.get("adapter/secrets", {})
            block.update(status="error", detail=failed.get("detail") or "secrets adapter not active", missing=[])
            return block
        try:
            if live:
                probe = self.secrets.health() or {}
                if probe.get("status", "ready") != "ready":
                    block.update(status=probe.get("status"), detail=probe.get("detail"), missing=[])
                    return block
            result = self.secrets.readiness(refs)
        except Exception as exc:
            block.update(status="error", detail=f"{type(exc).__name__}: {exc}", missing=[])
            return block
        block.update(status=result.get("status", "error"), detail=result.get("detail"),
                     missing=list(result.get("missing", [])))
        block["references"] = result.get("references",
                                         [{"name": s.name, "version": s.version} for s in self.profile.secrets])
        return block

    def probe_adapters(self) -> dict[str, dict[str, Any]]:
        """Call `health()` on every active adapter now; failed activations stay as recorded."""
        result = {}
        for label, status in self.adapter_status.items():
            domain, _, key = label.partition("/")
            adapter = self.adapters.get((domain, key))
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

    def failed_required(self) -> list[str]:
        return [k for k, v in self.adapter_status.items() if v["status"] != "ready" and v.get("required", True)]

    def failed_optional(self) -> list[str]:
        return [k for k, v in self.adapter_status.items() if v["status"] != "ready" and not v.get("required", True)]

    def close(self) -> None:
        for (domain, key), adapter in list(self.adapters.items()):
            try:
                adapter.close()
            except Exception as exc:
                self.log("WARNING", f"adapter {domain}/{key} failed to close", error=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ activity and gating

    def refresh_activity(self) -> Snapshot:
        """One supervisor evaluation (activity store + windows), published to `snapshot`."""
        self.snapshot = evaluate(self.activity if self.supervisor_enabled else None,
                                 self.windows if self.supervisor_enabled else (), self.snapshot)
        return self.snapshot

    def activity_state(self) -> str:
        """starting | accepting | paused | draining | stopping | stopped (global view)."""
        if self.lifecycle != "accepting":
            return self.lifecycle
        return self.snapshot.global_state or "accepting"

    def gate(self, domain: str, key: str) -> str | None:
        """None when dispatch for (domain, key) may start, else the reason."""
        if self.lifecycle == "starting":
            return "starting"
        if self.lifecycle in ("stopping", "stopped"):
            return "stopping"
        return self.snapshot.state_for(domain, key)

    def component_states(self) -> dict[str, dict[str, Any]]:
        """lifecycle per component: every selection plus every key named by an activity rule."""
        names: dict[str, str | None] = {}
        for sel in self.profile.selections:
            names[f"{sel.domain}/{sel.key}"] = sel.provider
        for rule in self.snapshot.records + self.snapshot.windows:
            if rule.domain != "*" and rule.key != "*":
                names.setdefault(f"{rule.domain}/{rule.key}", None)
        result = {}
        for label in sorted(names):
            domain, _, key = label.partition("/")
            status = self.adapter_status.get(label)
            if status is not None and status["status"] != "ready":
                state = "failed"
            elif self.lifecycle != "accepting":
                state = self.lifecycle
            else:
                state = self.snapshot.state_for(domain, key) or "active"
            result[label] = {"state": state, "provider": names[label]}
        return result

    def supervisor_status(self) -> str:
        if not self.supervisor_enabled:
            return "disabled"
        return self.supervisor.status if self.supervisor is not None else "not running"

    @contextmanager
    def inflight(self) -> Iterator[None]:
        """Count one unit of in-flight work, so SIGTERM can wait for it."""
        with self._idle:
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                if self._inflight == 0:
                    self._idle.notify_all()

    @property
    def inflight_count(self) -> int:
        return self._inflight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is in flight; False when `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout=max(timeout, 0))

    # ------------------------------------------------------------ reload (watchers, remote)

    def swap_manifest(self, manifest: ManifestArtifact, path: Path | None = None) -> None:
        with self._swap_lock:
            self.manifest = manifest
            if path is not None:
                self.manifest_path = path

    def swap_artifacts(self, loaded: LoadedArtifacts, overrides: OverrideResult) -> None:
        """Replace profile, manifest and settings at once (readers see either all old or all new)."""
        with self._swap_lock:
            self.profile, self.manifest = loaded.profile, loaded.manifest
            self.profile_path, self.manifest_path = loaded.profile_path, loaded.manifest_path
            self.overrides, self.settings = overrides, overrides.settings


# ---------------------------------------------------------------- construction

def prepare(options: Any) -> Runtime:
    """Locate, load and verify the artifacts, refuse stale ones, apply env overrides: no adapter yet."""
    environ = _opt(options, "environ", os.environ)
    logger = Logger(_opt(options, "log_stream", sys.stdout))
    try:
        location = locate(profile=_opt(options, "profile"), config=_opt(options, "config"),
                          demo=bool(_opt(options, "demo", False)), environ=environ, cwd=_opt(options, "cwd"))
        manifest = _opt(options, "manifest")
        manifest_path = Path(manifest) if manifest else None
        if manifest_path is not None and not manifest_path.is_absolute():
            manifest_path = (_opt(options, "cwd") or Path.cwd()) / manifest_path
        loaded = load_artifacts(location.profile_path, manifest_path=manifest_path, base=location.project_dir)
        check_stale(loaded.profile, location.project_dir)
        overrides = apply_env(loaded.profile.settings, loaded.profile.env_keys, environ,
                              extra_reserved=_secret_prefixes(loaded.profile))
    except (LocateError, ArtifactError, OverrideError) as exc:
        raise StartupError(str(exc)) from None
    logger.configure(fmt=get_path(overrides.settings, "logging.format"),
                     level=get_path(overrides.settings, "logging.level"),
                     project_id=get_path(overrides.settings, "logging.project_id"))
    rt = Runtime(location, loaded, overrides, logger, environ=environ,
                 health_path=_opt(options, "health_path"), no_remote=bool(_opt(options, "no_remote", False)))
    for warning in overrides.warnings:
        rt.log("WARNING", warning)
    return rt


def _secret_prefixes(profile: ProfileArtifact) -> list[str]:
    """The env secrets provider's own prefix is not an override, whatever it is."""
    prefix = get_path(profile.settings, "secrets.prefix")
    return [prefix] if isinstance(prefix, str) and prefix.upper().startswith("ONEIRIC_") else []


def build_runtime(options: Any, *, activate: bool = True) -> Runtime:
    """The interface in docs/runtime-interfaces.md: a verified, overridden, activated Runtime (no server).

    Raises StartupError with a message for the operator.
    """
    rt = prepare(options)
    if activate:
        rt.activate()
        rt.refresh_activity()
        rt.lifecycle = "accepting"
    return rt
