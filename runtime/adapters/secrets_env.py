"""Secrets provider `env`: `ONEIRIC_SECRET_<NAME>` environment variables, then an optional git-ignored
dotenv file (`env_file`, local development: `oneiric init` puts a random HMAC key in `.env`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from runtime.adapters.base import AdapterError, SecretNotFoundError, SecretsAdapter, SecretValue


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
        #: `env_file` (local use): a dotenv file for what the environment does not set; the environment wins
        self.env_file: Path | None = None
        self._file_values: dict[str, str] = {}
        if self.settings.get("env_file"):
            path = Path(str(self.settings["env_file"]))
            if not path.is_absolute() and context is not None:
                path = Path(context.project_dir) / path
            self.env_file = path
            self._file_values = read_env_file(path)

    def get(self, name: str, version: str | None = None) -> SecretValue:
        var = variable_name(self.prefix, name)
        candidates = [var] if version in (None, "", "latest") else [f"{var}__{version.upper()}", var]
        for source in (self.environ, self._file_values):
            for candidate in candidates:
                value = source.get(candidate)
                if value is not None:
                    return SecretValue(value)
        where = f" (or add it to {self.env_file})" if self.env_file is not None else ""
        raise SecretNotFoundError(f"secret {name!r} not found: set {var}{where}")

    def health(self) -> dict[str, Any]:
        also = f", then {self.env_file}" if self.env_file is not None else ""
        return {"status": "ready", "detail": f"environment variables {self.prefix}*{also}"}


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines of a dotenv file (`#` comments, `export NAME=...`, one level of matching quotes);
    a missing file is empty. Values are never logged."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AdapterError(f"env_file {path}: cannot read it ({getattr(exc, 'strerror', None) or type(exc).__name__})"
                           ) from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values
