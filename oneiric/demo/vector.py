"""Example third-party vector-store adapters, as a team would ship them inside the factory allowlist."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from runtime.adapters.base import Adapter, AdapterError, SecretValue


def embed(text: str, dimensions: int) -> list[float]:
    """A deterministic toy embedding (sha256 bytes scaled to [-1, 1)), so the demo needs no model."""
    import hashlib

    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode("utf-8")).digest()
        out.extend(b / 128.0 - 1.0 for b in block)
        counter += 1
    return out[:dimensions]


class MemoryVectorStore(Adapter):
    """In-process store for local runs: no service needed. Shared by every run of the process."""

    name = "memory"

    def activate(self) -> None:
        import threading

        self._rows: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return int(self.settings.get("dimensions", 768))

    def upsert(self, key: str, vector: list[float]) -> None:
        if len(vector) != self.dimensions:
            raise AdapterError(f"vector has {len(vector)} dimensions, expected {self.dimensions}")
        with self._lock:
            self._rows[key] = list(vector)

    def count(self) -> int:
        return len(getattr(self, "_rows", {}))

    def get(self, key: str) -> list[float] | None:
        return getattr(self, "_rows", {}).get(key)

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
