"""Project writers: a project is `config/<profile>.toml` plus `deployment/manifests/<name>.yaml`, as
`oneiric compile` reads it; the repository's reference project copied; a prepared project cloned."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.cli import compile_project
from tests.support.env import ROOT


def write_project(root: Path, manifest: str | bytes, settings: str | bytes | None, *, profile: str = "default",
                  manifest_name: str = "app.yaml") -> Path:
    """`manifest` as deployment/manifests/<manifest_name>, `settings` (unless None) as config/<profile>.toml."""
    (root / "deployment" / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "config").mkdir(exist_ok=True)
    _write(root / "deployment" / "manifests" / manifest_name, manifest)
    if settings is not None:
        _write(root / "config" / f"{profile}.toml", settings)
    return root


def _write(path: Path, text: str | bytes) -> None:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)


def copy_reference(dest: Path, parts: tuple[str, ...] = ("config", "deployment")) -> Path:
    """The repository's reference project (by default its sources, not its committed build/) in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        shutil.copytree(ROOT / part, dest / part)
    return dest


def clone(src: Path, dest: Path) -> Path:
    """A private copy of a prepared project (git repo included, runtime cache left out), so tests share one
    compile but not its files."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".oneiric_cache"))
    return dest


#: Serverless settings on embedded defaults: env secrets, memory vector store, local queue, HMAC (bench/coldstart).
EMBEDDED_SERVERLESS = """\
[profile]
name = "serverless"

[secrets]
provider = "env"

[adapters.selections]
vector = "memory"
queue = "local"

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"

[logging]
format = "json"
"""
#: The runtime tests' variant: logs carry trace fields, the supervisor ticks every 0.2 s.
EMBEDDED_SERVERLESS_TESTS = EMBEDDED_SERVERLESS + """\
project_id = "oneiric-demo"

[runtime.supervisor]
poll_interval = 0.2
"""


def make_embedded_project(root: Path, settings_text: str = EMBEDDED_SERVERLESS_TESTS) -> Path:
    """The reference manifests with serverless settings on embedded defaults, compiled."""
    copy_reference(root, ("deployment",))
    (root / "config").mkdir()
    _write(root / "config" / "serverless.toml", settings_text)
    compile_project(root)
    return root
