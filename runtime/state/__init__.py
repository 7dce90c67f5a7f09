"""Shared runtime state: one small interface (`store.Store`), two backends.

- `[state] backend = "sqlite"` (default): `<cache_dir>/workflow_runs.sqlite`, for local runs and one
  instance; `sqlite3` is imported only when the store is opened.
- `backend = "postgres"`: `dsn = "secret://NAME"` resolved through the secrets adapter; every Cloud Run
  instance sees the same runs, leases, dead letters and pause/drain rows. psycopg is imported only here.

Modules: `store` (the interface and its SQL), `schema` (tables + migrations, `schema_version`),
`sqlite` / `postgres` (the backends), `cli` (`oneiric state migrate|status`).
Importing this package imports neither backend nor the store (the Runtime builds its `StateConfig` and
handle on the cold path; the store's names load on first use, through `__getattr__`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from runtime.state.errors import LeaseLost, RunConflictError, StateError

if TYPE_CHECKING:  # pragma: no cover
    from runtime.state.store import DeadLetter, NodeRecord, Run, Store, dumps

__all__ = ["StateConfig", "open_store", "Store", "StateError", "LeaseLost", "RunConflictError", "Run",
           "NodeRecord", "DeadLetter", "dumps"]
_LAZY = frozenset({"Store", "Run", "NodeRecord", "DeadLetter", "Claim", "dumps"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from runtime.state import store

        return getattr(store, name)
    raise AttributeError(f"module 'runtime.state' has no attribute {name!r}")

BACKENDS = ("sqlite", "postgres")
#: the sqlite backend's file under the cache dir (named here, where no sqlite3 import comes with it)
SQLITE_FILENAME = "workflow_runs.sqlite"
#: (default, minimum, maximum) of each numeric `[state]` key; the schema says the same
LIMITS = {
    "retention_days": (14, 1, 3650),
    "lease_seconds": (30.0, 2.0, 3600.0),
    "pool_size": (8, 1, 100),
    "connect_timeout_seconds": (10.0, 1.0, 120.0),
}


class StateConfig:
    """The `[state]` settings, bounds-checked (a value out of range is a StateError naming the key)."""

    __slots__ = ("backend", "dsn", "retention_days", "lease_seconds", "pool_size", "connect_timeout_seconds")

    def __init__(self, section: Mapping[str, Any] | None) -> None:
        section = dict(section or {})
        self.backend = str(section.get("backend") or "sqlite")
        if self.backend not in BACKENDS:
            raise StateError(f"state.backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        self.dsn = section.get("dsn")
        if self.backend == "postgres" and not (isinstance(self.dsn, str) and self.dsn.startswith("secret://")):
            raise StateError('state.backend "postgres" needs state.dsn = "secret://NAME"')
        for key, (default, low, high) in LIMITS.items():
            value = section.get(key)
            value = default if value is None else value
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise StateError(f"state.{key} = {value!r} is outside {low:g}..{high:g}")
            setattr(self, key, type(default)(value))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "StateConfig":
        section = settings.get("state") if isinstance(settings, Mapping) else None
        return cls(section if isinstance(section, Mapping) else None)

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0


def open_store(config: StateConfig, *, cache_dir: Any, resolve: Callable[[Any], Any] | None = None,
               migrate: bool = True, **kwargs: Any) -> "Store":
    """Open (and migrate) the configured backend; raises StateError saying what failed and where."""
    from runtime.state.store import Store

    if config.backend == "postgres":
        if resolve is None:
            raise StateError("state.dsn is a secret reference but no secrets adapter is active to resolve it")
        try:
            value = resolve(config.dsn)
        except Exception as exc:
            raise StateError(f"cannot resolve state.dsn {config.dsn}: {exc}") from None
        dsn = value.reveal() if hasattr(value, "reveal") else str(value)
        from runtime.state import postgres

        db = postgres.open_database(dsn, pool_size=config.pool_size,
                                    connect_timeout=config.connect_timeout_seconds, migrate=migrate)
        return Store(db, lease_seconds=config.lease_seconds, **kwargs)
    from runtime.state import sqlite

    db = sqlite.open_database(cache_dir, migrate=migrate)
    return Store(db, lease_seconds=config.lease_seconds, local_owners=True, **kwargs)
