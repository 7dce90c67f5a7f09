"""The settings view: what the compiled settings plus the environment's overrides mean to a running process.

The compiled profile artifact holds every value already defaulted and checked, and `runtime.overrides`
checks every override against the contract (`runtime.contract`) before this view reads it; this module
is the one place that reads those values for the runtime (cache dir, supervisor, HTTP limits, remote,
secrets provider, factory allowlist) and the one that decides which layer set the supervisor switch, so
`supervisor-info` and `oneiric report` cannot disagree. Standard library only: it runs on the cold-start path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from runtime import contract
from runtime.contract import SUPERVISOR_PATH, get_path
from runtime.model import ProfileArtifact, Selection, Toggles

#: The override's name as the artifact's env_keys spell it (docs/artifacts.md).
SUPERVISOR_ENV = contract.env_name(SUPERVISOR_PATH)


def cache_dir(settings: Mapping[str, Any], base: Path) -> Path:
    """`runtime.cache_dir`, relative to `base` (the project dir, or the working dir for --demo)."""
    cache = Path(str(get_path(settings, "runtime.cache_dir", ".oneiric_cache")))
    return cache if cache.is_absolute() else base / cache


def supervisor_enabled(settings: Mapping[str, Any], toggles: Toggles) -> bool:
    return bool(get_path(settings, SUPERVISOR_PATH, toggles.supervisor_enabled))


def poll_interval(settings: Mapping[str, Any]) -> float:
    return float(get_path(settings, "runtime.supervisor.poll_interval", 2.0))


def http_limits(settings: Mapping[str, Any]) -> dict[str, float]:
    """The listener's and the endpoint's limits (checked against their constraints at start)."""
    http = settings.get("http") or {}
    return {"header_timeout": float(http.get("header_timeout_seconds", 10)),
            "max_body_bytes": int(http.get("max_body_bytes", 1048576)),
            "max_header_bytes": int(http.get("max_header_bytes", 65536)),
            "max_connections": int(http.get("max_connections", 256)),
            "shutdown_grace": float(http.get("shutdown_grace_seconds", 8))}


def supervisor_windows(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(get_path(settings, "runtime.supervisor.windows", []) or [])


def remote_requested(settings: Mapping[str, Any], toggles: Toggles) -> bool:
    """`remote.enabled` as set; it takes effect only where the profile's toggle allows remote refresh."""
    return bool(get_path(settings, "remote.enabled", toggles.remote_enabled))


def secrets_provider(settings: Mapping[str, Any]) -> str:
    return contract.canonical_provider("adapter", "secrets", str(get_path(settings, "secrets.provider", "env")))


def factory_allowlist(settings: Mapping[str, Any]) -> list[str]:
    allowed = get_path(settings, "security.factory_allowlist", None)
    allowed = list(allowed) if isinstance(allowed, list) else ["oneiric.demo"]
    return list(contract.BUILTIN_FACTORY_PREFIXES) + allowed


def secret_refs(profile: ProfileArtifact, applied: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(name, pinned version or None) of every secret the running settings reference: the compiled
    references, less those whose every user an override replaced, plus the overrides' own."""
    refs: dict[tuple[str, str | None], None] = {}
    for ref in profile.secrets:
        if not ref.used_by or not all(path in applied for path in ref.used_by):
            refs[(ref.name, ref.version if "@" in ref.ref else None)] = None
    for value in applied.values():
        parsed = contract.parse_secret_ref(value)
        if parsed:
            refs[parsed] = None
    return list(refs)


def secret_prefixes(profile: ProfileArtifact) -> list[str]:
    """The env secrets provider's own prefix is not an override, whatever it is."""
    prefix = get_path(profile.settings, "secrets.prefix")
    return [prefix] if isinstance(prefix, str) and prefix.upper().startswith("ONEIRIC_") else []


def selection_settings(sel: Selection, applied: Mapping[str, Any]) -> dict[str, Any]:
    """The selection's settings with the applied env overrides that fall under its `settings_path`."""
    result = dict(sel.settings)
    base = getattr(sel, "settings_path", "") or ""
    if base:
        prefix = base + "."
        for path, value in applied.items():
            if path.startswith(prefix):
                leaf = path[len(prefix):]
                if "." not in leaf and leaf != "provider":
                    result[leaf] = value
    return result


def secrets_selection(selections: Iterable[Selection], settings: Mapping[str, Any]) -> Selection:
    """The adapter/secrets selection, swapped for a built-in when ONEIRIC_SECRETS__PROVIDER names another."""
    current = next((s for s in selections if s.key == "secrets"), None)
    provider = secrets_provider(settings)
    factory = contract.builtin_factory("adapter", "secrets", provider)
    if current is not None and (current.provider == provider or factory is None):
        return current
    options = {k: v for k, v in (settings.get("secrets") or {}).items() if k != "provider"}
    if current is not None:  # the compiled provider's options do not apply to another provider
        options = {k: v for k, v in options.items() if k not in current.settings}
    return Selection("adapter", "secrets", provider, factory, options, "builtin",
                     "ONEIRIC_SECRETS__PROVIDER" if current is not None else "no secrets selection", True, "")


# ---------------------------------------------------------------- which layer decided the supervisor

class SupervisorDecision:
    """Which layer set `runtime.supervisor.enabled` and to what.

    `layer` is `env_override` (a variable holding a boolean word, under either spelling), `runtime_config`
    (a settings file) or `profile_default` (the built-in profile's toggle, or the schema's default); `at`
    is the variable's name or the compiled provenance. When both spellings are set to different values
    start-up refuses them (runtime.overrides); here neither counts, and `env_conflict` names them.
    """

    __slots__ = ("layer", "at", "value", "compiled", "provenance", "env_name", "env_raw", "env_value",
                 "env_conflict")

    def __init__(self, profile: ProfileArtifact, environ: Mapping[str, str]) -> None:
        self.provenance = profile.provenance.get(SUPERVISOR_PATH, "schema default")
        self.compiled = get_path(profile.settings, SUPERVISOR_PATH, profile.profile.toggles.supervisor_enabled)
        found = [(var, raw, contract.parse_bool(raw)) for var, raw in contract.find_env(environ, SUPERVISOR_PATH)]
        self.env_conflict = " and ".join(v for v, _, _ in found) if len({p for _, _, p in found}) > 1 else None
        self.env_name, self.env_raw, self.env_value = found[-1] if found and not self.env_conflict else (None,) * 3
        if self.env_value is not None:
            self.layer, self.at, self.value = "env_override", self.env_name, self.env_value
        elif self.provenance.startswith("profile:") or self.provenance == "schema default":
            self.layer, self.at, self.value = "profile_default", self.provenance, self.compiled
        else:
            self.layer, self.at, self.value = "runtime_config", self.provenance, self.compiled
