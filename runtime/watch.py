"""Watchers (default profile only): poll the artifacts' mtimes and reload them atomically when they change;
a reload that fails verification keeps the running artifacts."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any


def _stamp(paths: list[Path]) -> tuple:
    stamp = []
    for path in paths:
        try:
            st = os.stat(path)
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


class ArtifactWatcher:
    """Daemon thread: every `interval` seconds, compare mtimes of the profile and manifest artifacts
    (and the settings inputs); on a change, load + verify + re-apply env overrides, then swap."""

    def __init__(self, rt: Any, interval: float) -> None:
        self.rt = rt
        self.interval = max(float(interval), 0.05)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stamp = _stamp(self._paths())
        self.reloads = 0
        self.failures = 0

    def _paths(self) -> list[Path]:
        rt = self.rt
        paths = [Path(rt.profile_path), Path(rt.manifest_path)]
        paths += [rt.project_dir / i.path for i in rt.profile.inputs if i.kind == "settings"]
        return paths

    def check_once(self) -> bool:
        """True when new artifacts were swapped in."""
        stamp = _stamp(self._paths())
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        from runtime.artifact import ArtifactError, check_stale, load_artifacts
        from runtime import settings as view
        from runtime.contract import ContractError
        from runtime.overrides import apply_overrides

        rt = self.rt
        try:
            loaded = load_artifacts(Path(rt.profile_path), base=rt.project_dir)
            check_stale(loaded.profile, rt.project_dir)
            overrides = apply_overrides(loaded.profile, rt.environ, extra_reserved=view.secret_prefixes(loaded.profile))
        except (ArtifactError, ContractError) as exc:
            self.failures += 1
            rt.log("ERROR", "artifacts changed but failed verification; keeping the running ones", error=str(exc))
            return False
        if loaded.profile.digest == rt.profile.digest and loaded.manifest.digest == rt.manifest.digest:
            return False
        changed = _adapter_changes(rt.profile, loaded.profile)
        rt.swap_artifacts(loaded, overrides)
        self._stamp = _stamp(self._paths())
        self.reloads += 1
        rt.log("INFO", "artifacts reloaded", profile_digest=loaded.profile.digest,
               manifest_digest=loaded.manifest.digest)
        if changed:
            rt.log("WARNING", "adapter selections changed; they take effect at the next restart",
                   adapters=sorted(changed))
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception as exc:  # never let the watcher die silently
                self.rt.log("ERROR", "watcher check failed", error=f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oneiric-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)


def _adapter_changes(old: Any, new: Any) -> set[str]:
    def index(profile: Any) -> dict:
        return {f"{s.domain}/{s.key}": (s.provider, s.factory, repr(sorted(s.settings.items())))
                for s in profile.selections if s.domain == "adapter"}

    a, b = index(old), index(new)
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
