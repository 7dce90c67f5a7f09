"""Secrets provider `file`: a directory holding one file per secret, as Cloud Run mounts secret volumes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from runtime.adapters.base import SecretAccessError, SecretNotFoundError, SecretsAdapter, SecretValue

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION = re.compile(r"^([0-9]+|latest)$")


class FileSecrets(SecretsAdapter):
    """`directory/NAME` holds the latest value; a pin `NAME@VERSION` reads `NAME@VERSION` or `NAME/VERSION`.

    When `directory/NAME` is itself a directory (a volume with versioned items), the latest
    value is `NAME/latest`. Relative directories resolve against the project dir.
    """

    name = "file"

    def __init__(self, settings: Mapping[str, Any], *, secrets: Any = None, context: Any = None) -> None:
        super().__init__(settings, secrets=secrets, context=context)
        directory = Path(str(self.settings.get("directory") or "/secrets"))
        if not directory.is_absolute() and context is not None:
            directory = Path(context.project_dir) / directory
        self.directory = directory
        self.strip_newline = bool(self.settings.get("strip_newline", True))

    def _candidates(self, name: str, version: str) -> list[Path]:
        base = self.directory / name
        if version in (None, "", "latest"):
            return [base / "latest" if base.is_dir() else base]
        return [self.directory / f"{name}@{version}", base / version]

    def get(self, name: str, version: str | None = None) -> SecretValue:
        if not _NAME.match(name):
            raise SecretAccessError(f"secret name {name!r} is not a valid secret name")
        if version and not _VERSION.match(version):
            raise SecretAccessError(f"secret {name!r}: version {version!r} is not a number or 'latest'")
        for path in self._candidates(name, version or "latest"):
            try:
                data = path.read_text(encoding="utf-8")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            except UnicodeDecodeError:  # never the byte or its position: that is part of the value
                raise SecretAccessError(f"secret {name!r}: {path.name} is not valid UTF-8 text") from None
            except OSError as exc:
                raise SecretAccessError(f"secret {name!r}: cannot read {path.name}: "
                                        f"{exc.strerror or type(exc).__name__}") from None
            if self.strip_newline:
                data = data.removesuffix("\n").removesuffix("\r")
            return SecretValue(data)
        wanted = name if version in (None, "", "latest") else f"{name}@{version}"
        raise SecretNotFoundError(f"secret {wanted!r} not found in {self.directory}")

    def health(self) -> dict[str, Any]:
        if not self.directory.is_dir():
            return {"status": "error", "detail": f"secrets directory {self.directory} does not exist"}
        return {"status": "ready", "detail": f"directory {self.directory}"}
