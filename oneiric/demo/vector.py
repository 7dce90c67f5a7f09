"""Example third-party vector-store adapters, as a team would ship them inside the factory allowlist."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from runtime.adapters.base import Adapter, AdapterError, SecretValue


class MemoryVectorStore(Adapter):
    """In-process store for local runs: no service needed."""

    name = "memory"

    def activate(self) -> None:
        self._rows: dict[str, list[float]] = {}

    def upsert(self, key: str, vector: list[float]) -> None:
        if len(vector) != int(self.settings.get("dimensions", len(vector))):
            raise AdapterError(f"vector has {len(vector)} dimensions, expected {self.settings['dimensions']}")
        self._rows[key] = list(vector)

    def health(self) -> dict[str, Any]:
        return {"status": "ready", "detail": f"{len(getattr(self, '_rows', {}))} vectors in memory"}


class PgVectorStore(Adapter):
    """pgvector over a DSN held in a secret; connects on first query, so cold start does no I/O."""

    name = "pgvector"

    def activate(self) -> None:
        dsn = self.settings.get("dsn")
        if isinstance(dsn, SecretValue):
            dsn = dsn.reveal()
        if not isinstance(dsn, str) or urlsplit(dsn).scheme not in ("postgres", "postgresql"):
            raise AdapterError("pgvector dsn must be a postgresql:// URL")
        self._target = urlsplit(dsn).hostname or "localhost"

    def health(self) -> dict[str, Any]:
        if not hasattr(self, "_target"):
            return {"status": "error", "detail": "not activated"}
        return {"status": "ready", "detail": "connects on first query"}
