"""Building a Runtime: locate the artifacts, load and verify them, refuse stale ones, apply env overrides.

`prepare(options)` stops there (no adapter yet: `health`, `activity`, `supervisor-info` need no more);
`build_runtime(options)` also activates the adapters and opens the gate, for callers without a server
(see docs/runtime-interfaces.md). `runtime.orchestrate` activates after it listens.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from runtime import activate, health
from runtime import settings as view
from runtime.artifact import ArtifactError, check_stale, load_artifacts
from runtime.instance import Runtime
from runtime.locate import LocateError, locate, put_on_import_path
from runtime.logs import Logger
from runtime.contract import ContractError, get_path
from runtime.overrides import apply_overrides
from runtime.state import StateError


class StartupError(Exception):
    """Cold start cannot proceed; the message names the file or variable and the fix."""


class RuntimeOptions:
    """Everything `build_runtime` reads; any object with these attributes works (missing ones take defaults)."""

    def __init__(self, config: str | None = None, profile: str | None = None, demo: bool = False,
                 manifest: str | None = None, health_path: str | None = None, no_remote: bool = False,
                 environ: Mapping[str, str] | None = None, log_stream: Any = None, cwd: Path | None = None,
                 **extra: Any) -> None:
        self.config, self.profile, self.demo = config, profile, demo
        self.manifest, self.health_path, self.no_remote = manifest, health_path, no_remote
        self.environ, self.log_stream, self.cwd = environ, log_stream, cwd
        for key, value in extra.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"RuntimeOptions({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k != 'environ')})"


def _opt(options: Any, name: str, default: Any = None) -> Any:
    value = getattr(options, name, default)
    return default if value is None else value


def _shown(path: Path, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return Path(path).name


def prepare(options: Any) -> Runtime:
    """Locate, load and verify the artifacts, refuse stale ones, apply env overrides: no adapter yet."""
    environ = _opt(options, "environ", os.environ)
    logger = Logger(_opt(options, "log_stream", sys.stdout))
    try:
        location = locate(profile=_opt(options, "profile"), config=_opt(options, "config"),
                          demo=bool(_opt(options, "demo", False)), environ=environ, cwd=_opt(options, "cwd"))
        manifest = _opt(options, "manifest")
        manifest_path = Path(manifest) if manifest else None
        if manifest_path is not None and not manifest_path.is_absolute():
            manifest_path = (_opt(options, "cwd") or Path.cwd()) / manifest_path
        loaded = load_artifacts(location.profile_path, manifest_path=manifest_path, base=location.project_dir)
        check_stale(loaded.profile, location.project_dir)
        if not location.demo:
            put_on_import_path(location.project_dir)
        overrides = apply_overrides(loaded.profile, environ, where=_shown(loaded.profile_path, location.project_dir),
                                    extra_reserved=view.secret_prefixes(loaded.profile))
    except (LocateError, ArtifactError, ContractError) as exc:
        raise StartupError(str(exc)) from None
    logger.configure(fmt=get_path(overrides.settings, "logging.format"),
                     level=get_path(overrides.settings, "logging.level"),
                     project_id=get_path(overrides.settings, "logging.project_id"))
    cache_dir = view.cache_dir(overrides.settings, location.cache_base or location.project_dir)
    health_path = _opt(options, "health_path")
    try:
        rt = Runtime(location, loaded, overrides, logger, environ=environ, cache_dir=cache_dir,
                     health_path=Path(health_path) if health_path else cache_dir / health.FILENAME,
                     no_remote=bool(_opt(options, "no_remote", False)))
    except StateError as exc:
        raise StartupError(f"{exc} (settings or ONEIRIC_STATE__* environment)") from None
    for warning in overrides.warnings:
        rt.log("WARNING", warning)
    return rt


def build_runtime(options: Any) -> Runtime:
    """The interface in docs/runtime-interfaces.md: a verified, overridden, activated Runtime (no server).

    Raises StartupError with a message for the operator.
    """
    rt = prepare(options)
    activate.activate(rt)
    rt.refresh_activity()
    rt.lifecycle = "accepting"
    return rt
