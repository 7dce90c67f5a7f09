"""The runtime's link to its state store: opened once per process, in the background when it is remote.

`StateHandle` is what the Runtime holds (`rt.state`). `start()` opens the store: at once for sqlite
(a local file, milliseconds), from a background thread for postgres (psycopg's import and the
connection take hundreds of milliseconds; meanwhile `/healthz` answers 503 starting, see `status`).
`store(timeout)` waits for it and raises StateError when it failed; `health()` is the block `health`
and `/healthz` report.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from runtime.state import SQLITE_FILENAME, StateConfig, StateError, open_store

if TYPE_CHECKING:  # pragma: no cover
    from runtime.state.store import Store

#: how often the supervisor prunes finished rows, and how many 500-row batches per table each time
PRUNE_EVERY_SECONDS = 60.0
#: how often the supervisor tries to open a store that failed to open
RETRY_EVERY_SECONDS = 5.0
PRUNE_BATCHES_PER_TICK = 4


class StateHandle:
    def __init__(self, config: StateConfig, *, cache_dir: Any, resolve: Callable[[Any], Any] | None = None,
                 log: Callable[..., None] | None = None) -> None:
        self.config = config
        self._cache_dir = cache_dir
        self._resolve = resolve
        self._log = log
        self._store: "Store | None" = None
        self._error: str | None = None
        #: idle -> connecting -> ready | error
        self.status = "idle"
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._prune_at = 0.0
        #: called (from the connecting thread) once the store is open, e.g. to read the shared activity rows
        self.on_ready: Callable[[], Any] | None = None
        #: False: activation does not open a remote store (`oneiric state migrate` opens its own)
        self.autostart = True
        self._retry_at = 0.0

    @property
    def backend(self) -> str:
        return self.config.backend

    @property
    def remote(self) -> bool:
        return self.config.backend == "postgres"

    def start(self, *, background: bool | None = None) -> None:
        """Open the store (idempotent); `background` defaults to True for postgres."""
        with self._lock:
            if self.status != "idle":
                return
            self.status = "connecting"
        if background if background is not None else self.remote:
            threading.Thread(target=self._open, name="oneiric-state-connect", daemon=True).start()
        else:
            self._open()

    def _open(self) -> None:
        try:
            store = open_store(self.config, cache_dir=self._cache_dir, resolve=self._resolve)
        except StateError as exc:
            first = self._error is None
            self._error, self.status = str(exc), "error"
            if self._log is not None and first:
                self._log("ERROR", "state store unavailable", backend=self.backend, error=str(exc))
        else:
            self._store, self.status, self._error = store, "ready", None
            if self._log is not None and self.remote:
                self._log("INFO", "state store connected", backend=self.backend, location=store.location)
            if self.on_ready is not None:
                try:
                    self.on_ready()
                except Exception as exc:  # reported; the supervisor's next tick tries again
                    if self._log is not None:
                        self._log("ERROR", "state store ready hook failed", error=f"{type(exc).__name__}: {exc}")
        self._ready.set()

    def store(self, timeout: float | None = None) -> "Store":
        """The open store; starts it if needed, waits up to `timeout` (None: the connect timeout + 5 s)."""
        if self._store is not None:
            return self._store
        self.start()
        wait = self.config.connect_timeout_seconds + 5 if timeout is None else timeout
        if not self._ready.wait(wait):
            raise StateError(f"state store ({self.backend}) is still connecting")
        if self._store is None:
            raise StateError(self._error or "state store unavailable")
        return self._store

    @property
    def starting(self) -> bool:
        """Not open yet and no attempt failed so far (a retry after a failure still counts as failed)."""
        return self._store is None and self._error is None and self.status in ("idle", "connecting")

    def retry(self) -> None:
        """After an error: try to open again (the supervisor calls this each tick). The error stays
        reported until an attempt succeeds."""
        with self._lock:
            if self.status != "error":
                return
            self.status = "idle"
            self._ready.clear()
        self.start()

    def health(self) -> dict[str, Any]:
        """`{status, backend, detail, ...}`: `ready` only when the store answers now."""
        if self._store is None:
            return {"status": "error" if self._error else "starting", "backend": self.backend,
                    "detail": self._error}
        return self._store.check()

    def probe(self) -> dict[str, Any]:
        """The health block now, for `health --probe`: opens the store (waiting for a remote one), no pruning."""
        if self.remote:
            try:
                self.store()
            except StateError:
                pass
        return self.tick(now=0.0, prune=False)

    def tick(self, *, now: float, prune_every: float = PRUNE_EVERY_SECONDS, prune: bool = True) -> dict[str, Any]:
        """The supervisor's round: reopen after an error, check the store, prune when due.

        Returns the health block (`status`, `backend`, `location`, `detail`, `dead_letters`). An sqlite
        store nobody opened yet (no run so far) is only opened here when its file exists.
        """
        if self.status == "error" and now >= self._retry_at and prune:
            self._retry_at = now + RETRY_EVERY_SECONDS
            self.retry()
        if self._store is None and not self.remote and self.status == "idle":
            from pathlib import Path

            if not (Path(self._cache_dir) / SQLITE_FILENAME).exists():
                return {"status": "ready", "backend": self.backend, "location": None,
                        "detail": "no run stored yet", "dead_letters": 0}
            self.start()
        block = self.health()
        store = self._store
        if store is None or block.get("status") != "ready":
            return block
        try:
            block["dead_letters"] = store.count_dead_letters()
            if prune and now >= self._prune_at:
                self._prune_at = now + prune_every
                pruned = store.prune(self.config.retention_seconds, max_batches=PRUNE_BATCHES_PER_TICK)
                if any(pruned.values()) and self._log is not None:
                    self._log("INFO", "state store pruned", retention_days=self.config.retention_days, **pruned)
        except Exception as exc:  # reported, retried next tick
            block.update(status="error", detail=f"state store {store.location}: {type(exc).__name__}: {exc}")
        return block

    @property
    def location(self) -> str:
        return self._store.location if self._store is not None else f"the {self.backend} state store"

    def close(self) -> None:
        """Close the store; a later `store()` opens it again."""
        with self._lock:
            store, self._store = self._store, None
            self.status, self._error = "idle", None
            self._ready.clear()
        if store is not None:
            store.close()


_attach_lock = threading.Lock()


def handle_for(rt: Any) -> StateHandle:
    """`rt.state`, made from `rt.settings` and attached on first use when the runtime has none yet."""
    handle = getattr(rt, "state", None)
    if isinstance(handle, StateHandle):
        return handle
    with _attach_lock:
        handle = getattr(rt, "state", None)
        if not isinstance(handle, StateHandle):
            handle = StateHandle(StateConfig.from_settings(rt.settings), cache_dir=rt.cache_dir,
                                 resolve=getattr(rt, "resolve", None), log=getattr(rt, "log", None))
            rt.state = handle
    return handle
