"""Secrets provider `env`: `ONEIRIC_SECRET_<NAME>` environment variables (local development)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from runtime.adapters.base import SecretNotFoundError, SecretsAdapter, SecretValue


def variable_name(prefix: str, name: str) -> str:
    """`tasks-hmac-key` -> `ONEIRIC_SECRET_TASKS_HMAC_KEY` (upper-cased, `-` and `.` become `_`)."""
    return prefix + name.upper().replace("-", "_").replace(".", "_")


class EnvSecrets(SecretsAdapter):
    """Reads secrets from the process environment.

    The environment has no versions: a pinned `NAME@VERSION` reads `<VAR>__<VERSION>`
    when set, else `<VAR>`.
    """

    name = "env"

    def __init__(self, settings: Mapping[str, Any], *, secrets: Any = None, context: Any = None) -> None:
        super().__init__(settings, secrets=secrets, context=context)
        self.prefix = str(self.settings.get("prefix") or "ONEIRIC_SECRET_")
        extra = getattr(context, "extra", None) or {}
        #: the mapping read; tests and `health --probe` may pass their own through context.extra["environ"]
        self.environ: Mapping[str, str] = extra.get("environ", os.environ)

    def get(self, name: str, version: str | None = None) -> SecretValue:
        var = variable_name(self.prefix, name)
        candidates = [var] if version in (None, "", "latest") else [f"{var}__{version.upper()}", var]
        for candidate in candidates:
            value = self.environ.get(candidate)
            if value is not None:
                return SecretValue(value)
        raise SecretNotFoundError(f"secret {name!r} not found: set {var}")

    def health(self) -> dict[str, Any]:
        return {"status": "ready", "detail": f"environment variables {self.prefix}*"}
