"""Locate the project dir and the profile artifact to run: flags, then environment, then defaults."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from runtime.about import DEMO_DIR


class LocateError(Exception):
    """The profile artifact cannot be found; the message says where it looked and what to do."""


class Location:
    """Where the project and its profile artifact are, and which layer chose the profile."""

    __slots__ = ("project_dir", "profile_name", "profile_path", "profile_source", "config_path", "demo", "cache_base")

    def __init__(self, project_dir: Path, profile_name: str, profile_path: Path, profile_source: str,
                 config_path: Path | None = None, demo: bool = False, cache_base: Path | None = None) -> None:
        self.project_dir, self.profile_name, self.profile_path = project_dir, profile_name, profile_path
        #: "--profile", "ONEIRIC_PROFILE", "ONEIRIC_CONFIG", "--demo" or "default"
        self.profile_source = profile_source
        self.config_path, self.demo = config_path, demo
        #: base for relative runtime paths (cache dir): the project dir, or the working dir for --demo
        self.cache_base = cache_base


def project_dir_of_config(path: Path) -> Path:
    """The project a `--config` file belongs to: a settings file sits in `<project>/config/`, a profile
    artifact in `<project>/build/`; any other file's own directory is the project."""
    parent = path.parent
    if parent.name in ("config", "build"):
        return parent.parent
    return parent


def put_on_import_path(project_dir: Path) -> None:
    """Make the project's own packages importable (a factory `mysvc.tasks:extract` lives in
    `<project>/mysvc/tasks.py`), first on sys.path as `python -m` from the project dir would; the
    compiler finds the same modules the same way, so what compiles also imports."""
    path = str(project_dir.resolve())
    if path not in sys.path:
        sys.path.insert(0, path)


def _profile_of_toml(path: Path) -> str:
    import tomllib

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise LocateError(f"{path}: ONEIRIC_CONFIG names a settings file that does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LocateError(f"{path}: cannot read settings file: {exc}") from None
    name = (data.get("profile") or {}).get("name")
    return name if isinstance(name, str) and name else path.stem


def _profile_of_json(path: Path) -> str:
    import json

    try:
        obj = json.loads(path.read_bytes())
        return obj["profile"]["name"]
    except FileNotFoundError:
        raise LocateError(f"{path}: ONEIRIC_CONFIG names a profile artifact that does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocateError(f"{path}: not a readable profile artifact ({exc})") from None


def locate(*, profile: str | None = None, config: str | None = None, demo: bool = False,
           environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Location:
    """Choose the profile (`--profile` > ONEIRIC_PROFILE > ONEIRIC_CONFIG's profile > default)
    and find `<project>/build/<profile>_profile.json`.

    `config` is the `--config` flag; ONEIRIC_CONFIG is used when it is absent.
    """
    env = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    if demo:
        project = DEMO_DIR
        name = profile or "default"
        path = project / "build" / f"{name}_profile.json"
        if not path.is_file():
            raise LocateError(f"--demo has no compiled profile {name!r} (looked for {path})")
        return Location(project, name, path, "--profile" if profile else "--demo", None, True, cwd)

    config = config or env.get("ONEIRIC_CONFIG") or None
    env_profile = env.get("ONEIRIC_PROFILE") or None
    config_path = Path(config) if config else None
    if config_path is not None and not config_path.is_absolute():
        config_path = cwd / config_path

    if profile:
        name, source = profile, "--profile"
    elif env_profile:
        name, source = env_profile, "ONEIRIC_PROFILE"
    elif config_path is not None:
        reader = _profile_of_json if config_path.suffix == ".json" else _profile_of_toml
        name, source = reader(config_path), "ONEIRIC_CONFIG"
    else:
        name, source = "default", "default"

    if config_path is not None and config_path.suffix == ".json":
        project = project_dir_of_config(config_path)
        if source == "ONEIRIC_CONFIG" or config_path.name == f"{name}_profile.json":
            path = config_path
        else:
            path = config_path.parent / f"{name}_profile.json"
    elif config_path is not None:
        project = project_dir_of_config(config_path)
        path = project / "build" / f"{name}_profile.json"
    else:
        project = cwd
        path = project / "build" / f"{name}_profile.json"

    if not path.is_file():
        where = path
        try:
            where = path.relative_to(cwd)
        except ValueError:
            pass
        raise LocateError(
            f"{where}: no compiled profile artifact for profile {name!r} (chosen by {source}): "
            f"run oneiric compile in {project}")
    return Location(project, name, path, source, config_path, False, project)
