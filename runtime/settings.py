"""The settings view: what the compiled settings plus the environment's overrides mean to a running process.

The compiled profile artifact holds every value already defaulted and checked; this module is the one
place that reads those values for the runtime (cache dir, supervisor, remote, secrets provider,
factory allowlist) and the one that decides which layer set the supervisor switch, so `supervisor-info`
and `oneiric report` cannot disagree. Standard library only: it runs on the cold-start path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from runtime.model import ProfileArtifact, Selection, Toggles
from runtime.overrides import alt_name, get_path, parse_bool

#: Factory module prefix that is always allowed (the built-in adapters).
BUILTIN_PREFIX = "runtime.adapters"
#: Built-in secrets providers, for ONEIRIC_SECRETS__PROVIDER overriding the compiled selection
#: (e.g. `env` for a local run of a Secret Manager profile) and for artifacts without a secrets selection.
SECRETS_FACTORIES = {
    "env": "runtime.adapters.secrets_env:EnvSecrets",
    "file": "runtime.adapters.secrets_file:FileSecrets",
    "gcp.secret_manager": "runtime.adapters.secrets_gcp:SecretManagerSecrets",
    "gcp": "runtime.adapters.secrets_gcp:SecretManagerSecrets",
}
SUPERVISOR_PATH = "runtime.supervisor.enabled"
#: The override's name as the artifact's env_keys spell it (docs/artifacts.md).
SUPERVISOR_ENV = "ONEIRIC_RUNTIME_SUPERVISOR__ENABLED"


def cache_dir(settings: Mapping[str, Any], base: Path) -> Path:
    """`runtime.cache_dir`, relative to `base` (the project dir, or the working dir for --demo)."""
    cache = Path(str(get_path(settings, "runtime.cache_dir", ".oneiric_cache")))
    return cache if cache.is_absolute() else base / cache


def supervisor_enabled(settings: Mapping[str, Any], toggles: Toggles) -> bool:
    return bool(get_path(settings, SUPERVISOR_PATH, toggles.supervisor_enabled))


def poll_interval(settings: Mapping[str, Any]) -> float:
    return float(get_path(settings, "runtime.supervisor.poll_interval", 2.0) or 2.0)


def supervisor_windows(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(get_path(settings, "runtime.supervisor.windows", []) or [])


def remote_requested(settings: Mapping[str, Any], toggles: Toggles) -> bool:
    """`remote.enabled` as set; it takes effect only where the profile's toggle allows remote refresh."""
    return bool(get_path(settings, "remote.enabled", toggles.remote_enabled))


def secrets_provider(settings: Mapping[str, Any]) -> str:
    provider = str(get_path(settings, "secrets.provider", "env"))
    return "gcp.secret_manager" if provider == "gcp" else provider  # the alias, as the compiler rewrites it


def factory_allowlist(settings: Mapping[str, Any]) -> list[str]:
    allowed = get_path(settings, "security.factory_allowlist", None)
    allowed = list(allowed) if isinstance(allowed, list) else ["oneiric.demo"]
    return [BUILTIN_PREFIX] + allowed


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
    if current is not None and (current.provider == provider or provider not in SECRETS_FACTORIES):
        return current
    options = {k: v for k, v in (settings.get("secrets") or {}).items() if k != "provider"}
    if current is not None:  # the compiled provider's options do not apply to another provider
        options = {k: v for k, v in options.items() if k not in current.settings}
    return Selection("adapter", "secrets", provider, SECRETS_FACTORIES[provider], options, "builtin",
                     "ONEIRIC_SECRETS__PROVIDER" if current is not None else "no secrets selection", True, "")


# ---------------------------------------------------------------- which layer decided the supervisor

def env_override(environ: Mapping[str, str], name: str, path: str) -> tuple[str, str] | None:
    """(variable, raw value) overriding `path` in `environ`, under either spelling and any case; when both
    are set, the one `runtime.overrides.apply_env` applies (the last in sorted order)."""
    names = {name.upper(), alt_name(path)}
    found = None
    for key in sorted(environ):
        if key.upper() in names:
            found = key, environ[key]
    return found


class SupervisorDecision:
    """Which layer set `runtime.supervisor.enabled` and to what.

    `layer` is `env_override` (a variable holding a boolean word), `runtime_config` (a settings file) or
    `profile_default` (the built-in profile's toggle, or the schema's default); `at` is the variable's
    name or the compiled provenance.
    """

    __slots__ = ("layer", "at", "value", "compiled", "provenance", "env_name", "env_raw", "env_value")

    def __init__(self, profile: ProfileArtifact, environ: Mapping[str, str]) -> None:
        self.provenance = profile.provenance.get(SUPERVISOR_PATH, "schema default")
        self.compiled = get_path(profile.settings, SUPERVISOR_PATH, profile.profile.toggles.supervisor_enabled)
        found = env_override(environ, SUPERVISOR_ENV, SUPERVISOR_PATH)
        self.env_name, self.env_raw = found if found is not None else (None, None)
        self.env_value = parse_bool(self.env_raw)
        if self.env_value is not None:
            self.layer, self.at, self.value = "env_override", self.env_name, self.env_value
        elif self.provenance.startswith("profile:") or self.provenance == "schema default":
            self.layer, self.at, self.value = "profile_default", self.provenance, self.compiled
        else:
            self.layer, self.at, self.value = "runtime_config", self.provenance, self.compiled
