"""Secrets provider `gcp.secret_manager` with `delivery = "mounted"`: the values Cloud Run mounted from
Secret Manager before the process started, read with no Google SDK and no network call.

`oneiric deploy render` mounts every `secret://NAME[@VERSION]` the profile references, either as an
environment variable (`secretKeyRef`; the default) or as a file in a secret volume, and sets
`ONEIRIC_SECRETS__DELIVERY=mounted` on the service. Secret Manager stays the source of truth (Cloud Run
reads it with the service account); the Google client is never imported, so cold start pays nothing
for it. The names:

- environment: `ONEIRIC_SECRET_<NAME>` for an unpinned reference (the `latest` version), and
  `ONEIRIC_SECRET_<NAME>__<VERSION>` for `secret://NAME@VERSION` (a pin is honoured exactly: it never
  falls back to the unpinned variable);
- volume: `<mount_dir>/<NAME>/<VERSION>`, `latest` for an unpinned reference (`mount_dir` defaults to
  `/secrets`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from runtime.adapters.base import SecretNotFoundError, SecretsAdapter, SecretValue
from runtime.adapters.secrets_env import variable_name
from runtime.adapters.secrets_file import FileSecrets

#: The environment variables' prefix (the same as the env provider's default).
PREFIX = "ONEIRIC_SECRET_"
DEFAULT_MOUNT_DIR = "/secrets"


def env_name(name: str, version: str | None) -> str:
    """The variable a mounted reference arrives in: `tasks-hmac-key@3` -> `ONEIRIC_SECRET_TASKS_HMAC_KEY__3`."""
    base = variable_name(PREFIX, name)
    return base if version in (None, "", "latest") else f"{base}__{version}"


def file_path(mount_dir: str, name: str, version: str | None) -> str:
    """The file a mounted reference arrives in: `<mount_dir>/<NAME>/<VERSION or latest>`."""
    return f"{mount_dir.rstrip('/')}/{name}/{version or 'latest'}"


class MountedSecrets(SecretsAdapter):
    """Reads what Cloud Run mounted: the environment variable first, then the volume's file."""

    name = "gcp.secret_manager"

    def __init__(self, settings: Mapping[str, Any], *, secrets: Any = None, context: Any = None) -> None:
        super().__init__(settings, secrets=secrets, context=context)
        self.mount_dir = str(self.settings.get("mount_dir") or DEFAULT_MOUNT_DIR)
        extra = getattr(context, "extra", None) or {}
        self.environ: Mapping[str, str] = extra.get("environ", os.environ)
        self._files = FileSecrets({"directory": self.mount_dir})

    def get(self, name: str, version: str | None = None) -> SecretValue:
        pinned = None if version in (None, "", "latest") else version
        var = env_name(name, pinned)
        value = self.environ.get(var)
        if value is not None:
            return SecretValue(value)
        path = Path(file_path(self.mount_dir, name, pinned))
        try:
            return self._files.get(name, pinned)
        except SecretNotFoundError:
            pass
        wanted = name if pinned is None else f"{name}@{pinned}"
        raise SecretNotFoundError(f"secret {wanted!r} is not mounted: expected ${var} or the file {path} (delivery "
                                  "= mounted: deploy the service `oneiric deploy render` writes, which mounts it "
                                  "from Secret Manager; or set ONEIRIC_SECRETS__DELIVERY=api for live reads)")

    def health(self) -> dict[str, Any]:
        return {"status": "ready", "detail": f"mounted by Cloud Run (environment {PREFIX}*, files under "
                                             f"{self.mount_dir})"}
