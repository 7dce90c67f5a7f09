"""The Runtime: one serving instance's state, its gate (lifecycle + the supervisor's snapshot), the
in-flight work SIGTERM waits for, and the atomic swap of reloaded artifacts.

`runtime.start` builds it, `runtime.activate` fills its adapters, `runtime.orchestrate` serves it;
docs/runtime-interfaces.md lists the attributes other modules rely on.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from runtime import activity as activity_mod
from runtime import settings as view
from runtime.adapters.base import AdapterError, SecretsAdapter
from runtime.artifact import LoadedArtifacts
from runtime.locate import Location
from runtime.logs import Logger
from runtime.model import ManifestArtifact, ProfileArtifact, Selection
from runtime.overrides import OverrideResult
from runtime.state import StateConfig
from runtime.state.handle import StateHandle
from runtime.supervisor import Snapshot, evaluate


class Runtime:
    """What one process runs: see docs/runtime-interfaces.md for the attributes other modules rely on."""

    def __init__(self, location: Location, loaded: LoadedArtifacts, overrides: OverrideResult, logger: Logger,
                 *, environ: Mapping[str, str], cache_dir: Path, health_path: Path, no_remote: bool = False) -> None:
        self.location = location
        self.profile: ProfileArtifact = loaded.profile
        self.manifest: ManifestArtifact = loaded.manifest
        self.profile_path = loaded.profile_path
        self.manifest_path = loaded.manifest_path
        self.overrides = overrides
        self.settings: dict[str, Any] = overrides.settings
        self.environ = environ
        self.logger = logger
        self.project_dir: Path = location.project_dir
        self.cache_dir = cache_dir
        self.health_path = health_path
        #: the state store (runtime.state): runs, leases, dead letters; raises StateError on bad [state] values
        self.state = StateHandle(StateConfig.from_settings(self.settings), cache_dir=self.cache_dir,
                                 resolve=self.resolve, log=self.log)
        #: the last supervisor check of the state store (runtime.state.handle.StateHandle.tick)
        self.state_health: dict[str, Any] | None = None
        self.activity: Any = (activity_mod.SharedActivity(self.state) if self.state.remote
                              else activity_mod.ActivityStore(self.cache_dir / activity_mod.FILENAME))
        if self.state.remote:  # the shared pause/drain rows hold from the moment the store is connected
            self.state.on_ready = self.refresh_activity
        toggles = self.profile.profile.toggles
        self.supervisor_enabled = view.supervisor_enabled(self.settings, toggles)
        self.poll_interval = view.poll_interval(self.settings)
        self.watchers_enabled = bool(toggles.watchers_enabled)
        #: remote refresh needs the profile toggle (serverless never refreshes), the setting and no --no-remote
        self.remote_requested = view.remote_requested(self.settings, toggles)
        self.remote_enabled = bool(toggles.remote_enabled) and self.remote_requested and not no_remote
        #: filled by runtime.activate: adapters by (domain, key), "domain/key" -> {provider, status, required, detail}
        self.adapters: dict[tuple[str, str], Any] = {}
        self.adapter_status: dict[str, dict[str, Any]] = {}
        self.secrets: SecretsAdapter | None = None
        self.secrets_status: dict[str, Any] = {"provider": view.secrets_provider(self.settings), "status": "starting"}
        #: when secrets_status was last computed (monotonic), and the background re-check's guard
        self.secrets_checked_at = 0.0
        self.secrets_recheck_running = False
        self.secrets_recheck_lock = threading.Lock()
        #: starting -> accepting -> stopping -> stopped
        self.lifecycle = "starting"
        self.snapshot = Snapshot()
        self.supervisor = None  # set by the server when it starts one
        #: the port HTTP listens on (None without a server)
        self.http_port: int | None = None
        self._inflight = 0
        self._idle = threading.Condition()
        self._swap_lock = threading.Lock()

    def log(self, severity: str, message: str, **fields: Any) -> None:
        self.logger.log(severity, message, **fields)

    @property
    def windows(self) -> list[dict[str, Any]]:
        return view.supervisor_windows(self.settings)

    def selection(self, domain: str, key: str) -> Selection | None:
        for sel in self.profile.selections:
            if sel.domain == domain and sel.key == key:
                return sel
        return None

    def resolve(self, value: Any) -> Any:
        """A `secret://NAME[@VERSION]` string -> SecretValue through the secrets adapter; anything else as is."""
        if not isinstance(value, str) or not value.startswith("secret://"):
            return value
        name, _, version = value[len("secret://"):].partition("@")
        if self.secrets is None:
            raise AdapterError(f"cannot resolve secret {name!r}: the secrets adapter is not active")
        return self.secrets.get(name, version or None)  # unpinned: the provider's default_version

    # ------------------------------------------------------------ the gate

    def refresh_activity(self) -> Snapshot:
        """One supervisor evaluation (activity store + windows), published to `snapshot`."""
        self.snapshot = evaluate(self.activity if self.supervisor_enabled else None,
                                 self.windows if self.supervisor_enabled else (), self.snapshot)
        return self.snapshot

    def activity_state(self) -> str:
        """starting | accepting | paused | draining | stopping | stopped (global view)."""
        if self.lifecycle != "accepting":
            return self.lifecycle
        return self.snapshot.global_state or "accepting"

    def gate(self, domain: str, key: str) -> str | None:
        """None when dispatch for (domain, key) may start, else the reason."""
        if self.lifecycle == "starting":
            return "starting"
        if self.lifecycle in ("stopping", "stopped"):
            return "stopping"
        if self.state.remote and self.state.starting:  # its pause/drain rows are not known yet
            return "starting"
        return self.snapshot.state_for(domain, key)

    # ------------------------------------------------------------ in-flight work

    @contextmanager
    def inflight(self) -> Iterator[None]:
        """Count one unit of in-flight work, so SIGTERM can wait for it."""
        with self._idle:
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                if self._inflight == 0:
                    self._idle.notify_all()

    @property
    def inflight_count(self) -> int:
        return self._inflight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is in flight; False when `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout=max(timeout, 0))

    # ------------------------------------------------------------ reload (watchers, remote)

    def swap_manifest(self, manifest: ManifestArtifact, path: Path | None = None) -> None:
        with self._swap_lock:
            self.manifest = manifest
            if path is not None:
                self.manifest_path = path

    def swap_artifacts(self, loaded: LoadedArtifacts, overrides: OverrideResult) -> None:
        """Replace profile, manifest and settings at once (readers see either all old or all new)."""
        with self._swap_lock:
            self.profile, self.manifest = loaded.profile, loaded.manifest
            self.profile_path, self.manifest_path = loaded.profile_path, loaded.manifest_path
            self.overrides, self.settings = overrides, overrides.settings
