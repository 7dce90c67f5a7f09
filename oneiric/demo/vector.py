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


class _VectorStore(Adapter):
    """What both stores share: the settings' `dimensions` and the check every upsert makes against it."""

    @property
    def dimensions(self) -> int:
        return int(self.settings.get("dimensions", 768))

    def _checked(self, vector: list[float]) -> list[float]:
        if len(vector) != self.dimensions:
            raise AdapterError(f"vector has {len(vector)} dimensions, expected {self.dimensions}")
        return [float(v) for v in vector]


class MemoryVectorStore(_VectorStore):
    """In-process store for local runs: no service needed. Shared by every run of the process."""

    name = "memory"

    def activate(self) -> None:
        import threading

        self._rows: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def upsert(self, key: str, vector: list[float]) -> None:
        vector = self._checked(vector)
        with self._lock:
            self._rows[key] = vector

    def count(self) -> int:
        return len(getattr(self, "_rows", {}))

    def get(self, key: str) -> list[float] | None:
        return getattr(self, "_rows", {}).get(key)

    def health(self) -> dict[str, Any]:
        return {"status": "ready", "detail": f"{len(getattr(self, '_rows', {}))} vectors in memory"}


class PgVectorStore(_VectorStore):
    """pgvector over a DSN held in a secret. Cold start does no I/O: the first `upsert`/`count`/`get` connects
    (psycopg, the `postgres` extra) and creates the settings' `table` if it is missing. The database needs the
    `vector` extension (`CREATE EXTENSION vector`, run once by whoever provisions it; on Cloud SQL the
    database owner may). One connection per process, shared by the run threads under a lock."""

    name = "pgvector"

    def activate(self) -> None:
        import threading

        dsn = self.settings.get("dsn")
        if isinstance(dsn, SecretValue):
            dsn = dsn.reveal()
        if not isinstance(dsn, str) or urlsplit(dsn).scheme not in ("postgres", "postgresql"):
            raise AdapterError("pgvector dsn must be a postgresql:// URL")
        self._dsn = dsn
        self._target = urlsplit(dsn).hostname or "localhost"
        self._lock = threading.Lock()
        self._conn: Any = None

    @property
    def table(self) -> str:
        return str(self.settings.get("table", "embeddings"))

    def _run(self, query: str, args: tuple = ()) -> list[tuple]:
        """Run one statement on the shared connection (made, with the table, on first use)."""
        try:
            import psycopg
            from psycopg import sql
        except ImportError:
            raise AdapterError("pgvector needs psycopg: pip install 'oneiric[postgres]'") from None
        if not hasattr(self, "_lock"):
            raise AdapterError("pgvector adapter used before activate()")
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
                    self._conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, "
                                               "embedding vector NOT NULL)").format(sql.Identifier(self.table)))
                cur = self._conn.execute(sql.SQL(query).format(table=sql.Identifier(self.table)), args)
                return cur.fetchall() if cur.description else []
            except psycopg.Error as exc:  # the DSN's password never reaches the message: only host and reason
                raise AdapterError(f"pgvector at {self._target}: {type(exc).__name__}: "
                                   f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None

    def upsert(self, key: str, vector: list[float]) -> None:
        self._run("INSERT INTO {table} (key, embedding) VALUES (%s, CAST(%s::float8[] AS vector)) "
                  "ON CONFLICT (key) DO UPDATE SET embedding = EXCLUDED.embedding", (key, self._checked(vector)))

    def count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM {table}")[0][0])

    def get(self, key: str) -> list[float] | None:
        rows = self._run("SELECT embedding::real[] FROM {table} WHERE key = %s", (key,))
        return [float(v) for v in rows[0][0]] if rows else None

    def health(self) -> dict[str, Any]:
        if not hasattr(self, "_target"):
            return {"status": "error", "detail": "not activated"}
        return {"status": "ready", "detail": "connects on first query"}

    def close(self) -> None:
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            conn.close()
