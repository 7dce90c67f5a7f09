"""What ships with Oneiric: the built-in profiles and the built-in providers."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.model import Toggles

#: The built-in runtime profiles (SPEC 3).
PROFILES: dict[str, Toggles] = {
    "default": Toggles(watchers_enabled=True, remote_enabled=True, inline_manifest_only=False, supervisor_enabled=True),
    "serverless": Toggles(watchers_enabled=False, remote_enabled=False, inline_manifest_only=True, supervisor_enabled=True),
}

#: Settings keys whose profile default comes from a toggle.
TOGGLE_SETTINGS: dict[str, str] = {
    "runtime.supervisor.enabled": "supervisor_enabled",
    "remote.enabled": "remote_enabled",
}

#: Provider aliases, by (domain, key).
ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("adapter", "secrets"): {"gcp": "gcp.secret_manager"},
}


@dataclass(frozen=True, slots=True)
class BuiltinProvider:
    domain: str
    key: str
    provider: str
    factory: str
    priority: int
    schema: str  # settings schema file under schemas/


BUILTIN_PROVIDERS: tuple[BuiltinProvider, ...] = (
    BuiltinProvider("adapter", "secrets", "env", "runtime.adapters.secrets_env:EnvSecrets", 0, "providers/env.json"),
    BuiltinProvider("adapter", "secrets", "file", "runtime.adapters.secrets_file:FileSecrets", -1, "providers/file.json"),
    BuiltinProvider("adapter", "secrets", "gcp.secret_manager", "runtime.adapters.secrets_gcp:SecretManagerSecrets", -1,
                    "providers/gcp.secret_manager.json"),
    BuiltinProvider("adapter", "queue", "local", "runtime.adapters.queue_local:LocalQueue", 0, "providers/local.json"),
    BuiltinProvider("adapter", "queue", "cloudtasks", "runtime.adapters.queue_cloudtasks:CloudTasksQueue", -1,
                    "providers/cloudtasks.json"),
)

#: Module prefixes of built-in factories; always allowed, whatever the allowlist says.
BUILTIN_FACTORY_PREFIXES = ("runtime.adapters", "runtime.workflows")

#: Settings sections that hold `selections`, by manifest domain.
SELECTION_SECTIONS: dict[str, str] = {
    "adapter": "adapters",
    "action": "actions",
    "service": "services",
    "task": "tasks",
    "event": "events",
    "workflow": "workflows",
}
