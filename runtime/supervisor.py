"""The Service Supervisor: a thread that, every poll_interval, merges the activity store with the
scheduled pause/drain windows into one snapshot and writes runtime_health.json."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Mapping

from runtime.activity import ANY, ActivityError, ActivityRecord, ActivityStore

#: Severity of refusing states: a higher one wins when rules overlap.
_SEVERITY = {"active": 0, "paused": 1, "draining": 2}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Rule:
    """One pause/drain (or explicit active) rule: an activity row or an active window."""

    __slots__ = ("domain", "key", "state", "source", "note", "updated_at", "updated_by")

    def __init__(self, domain: str, key: str, state: str, source: str, note: str | None = None,
                 updated_at: str | None = None, updated_by: str | None = None) -> None:
        self.domain, self.key, self.state, self.source = domain, key, state, source  # state: active|paused|draining
        self.note, self.updated_at, self.updated_by = note, updated_at, updated_by

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "key": self.key, "state": self.state, "source": self.source,
                "note": self.note, "updated_at": self.updated_at, "updated_by": self.updated_by}

    def __repr__(self) -> str:
        return f"Rule({self.domain!r}, {self.key!r}, {self.state!r}, {self.source!r})"


class Snapshot:
    """What the supervisor decided at one tick; read lock-free by /healthz and `Runtime.gate`.

    (Plain slotted classes here and in the other cold-start modules: a dataclass costs about a
    millisecond to create at import.)
    """

    __slots__ = ("records", "windows", "last_update", "error")

    def __init__(self, records: tuple[Rule, ...] = (), windows: tuple[Rule, ...] = (),
                 last_update: str | None = None, error: str | None = None) -> None:
        self.records, self.windows, self.last_update, self.error = records, windows, last_update, error

    def state_for(self, domain: str, key: str) -> str | None:
        """`paused`/`draining` when dispatch for (domain, key) is held, else None.

        Activity records: the most specific one wins ((d, k) > (d, *) > (*, k) > (*, *)),
        so one key can be resumed inside a paused domain. Active windows apply on top.
        """
        best: Rule | None = None
        best_rank = -1
        for rule in self.records:
            if rule.domain not in (ANY, domain) or rule.key not in (ANY, key):
                continue
            rank = (rule.domain != ANY) * 2 + (rule.key != ANY)
            if rank > best_rank:
                best, best_rank = rule, rank
        state = best.state if best is not None else "active"
        for rule in self.windows:
            if rule.domain in (ANY, domain) and rule.key in (ANY, key) and _SEVERITY[rule.state] > _SEVERITY[state]:
                state = rule.state
        return None if state == "active" else state

    @property
    def global_state(self) -> str | None:
        return self.state_for(ANY, ANY)


# ---------------------------------------------------------------- windows

def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    return int(hours) * 60 + int(minutes)


def window_active(window: Mapping[str, Any], now: time.struct_time) -> bool:
    """Whether a `[runtime.supervisor] windows` item covers `now` (UTC).

    `end` before `start` crosses midnight (the day list names the day it starts);
    `end` equal to `start` covers the whole day.
    """
    start, end = _minutes(window["start"]), _minutes(window["end"])
    days = window.get("days") or _DAYS
    current = now.tm_hour * 60 + now.tm_min
    today = _DAYS[now.tm_wday]
    yesterday = _DAYS[(now.tm_wday - 1) % 7]
    if start == end:
        return today in days
    if start < end:
        return today in days and start <= current < end
    return (today in days and current >= start) or (yesterday in days and current < end)


def active_windows(windows: Iterable[Mapping[str, Any]], now: time.struct_time) -> tuple[Rule, ...]:
    rules = []
    for window in windows:
        try:
            active = window_active(window, now)
        except (KeyError, ValueError, TypeError):
            continue  # the compiler validated windows; a malformed env override is skipped, not fatal
        if active:
            state = "draining" if window.get("action") == "drain" else "paused"
            rules.append(Rule(window.get("domain") or ANY, window.get("key") or ANY, state, "window",
                              window.get("note"), f"{window['start']}-{window['end']} UTC", "schedule"))
    return tuple(rules)


def evaluate(store: ActivityStore | None, windows: Iterable[Mapping[str, Any]],
             previous: Snapshot | None = None, now: float | None = None) -> Snapshot:
    """One supervisor decision: read the store and the windows. On a read error the previous rows are kept
    (a busy or unreachable store), except when the store is corrupt: then everything is paused."""
    now = time.time() if now is None else now
    error = None
    records: tuple[Rule, ...] = previous.records if previous else ()
    if store is not None:
        try:
            records = tuple(_rule(r) for r in store.records())
        except ActivityError as exc:
            error = str(exc)
            if exc.corrupt:  # fail closed: an unreadable store must not silently lift a pause
                records = (Rule(ANY, ANY, "paused", "activity-store", f"fail closed: {exc}", None, "supervisor"),)
    when = time.gmtime(now)
    return Snapshot(records, active_windows(windows, when), time.strftime("%Y-%m-%dT%H:%M:%SZ", when), error)


def _rule(record: ActivityRecord) -> Rule:
    return Rule(record.domain, record.key, record.state, "activity", record.note, record.updated_at,
                record.updated_by)


# ---------------------------------------------------------------- thread

class Supervisor:
    """Daemon thread: `tick()` every `interval` seconds until stopped; `status` is idle|running|stopped|error.

    :param tick: called each round (evaluate, publish, write the health file)
    """

    def __init__(self, tick: Callable[[], None], interval: float, log: Callable[..., None] | None = None) -> None:
        self.interval = max(float(interval), 0.05)
        self._tick = tick
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "idle"
        self.ticks = 0

    def tick(self) -> None:
        try:
            self._tick()
            self.ticks += 1
            if self.status == "error":
                self.status = "running"
        except Exception as exc:  # the loop must survive a bad tick (full disk, locked db)
            self.status = "error"
            if self._log:
                self._log("ERROR", "supervisor tick failed", error=f"{type(exc).__name__}: {exc}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def start(self) -> None:
        if self._thread is not None:
            return
        self.status = "running"
        self._thread = threading.Thread(target=self._run, name="oneiric-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.status = "stopped"

    def __enter__(self) -> "Supervisor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
