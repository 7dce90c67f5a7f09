"""Shared helpers for compiler tests: a tiny valid project written into a temp dir, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BASE_MANIFEST = """\
source: test
entries:
  - domain: task
    key: extract
    provider: demo
    factory: oneiric.demo.tasks:extract
  - domain: adapter
    key: cache
    provider: redis
    factory: oneiric.demo.vector:MemoryVectorStore
    settings_schema:
      type: object
      properties:
        url: {type: string}
        port: {type: integer, default: 6379}
  - domain: workflow
    key: ingest
    provider: dag
    factory: oneiric.demo.tasks:load
    dag:
      nodes:
        - id: a
          task: extract
        - id: b
          task: extract
          depends_on: [a]
"""

BASE_SETTINGS = """\
[profile]
name = "default"

[http]
tasks_auth = "none"
"""


def write_project(root: Path, manifest: str = BASE_MANIFEST, settings: str | None = BASE_SETTINGS,
                  settings_name: str = "default.toml") -> Path:
    (root / "deployment" / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "config").mkdir(exist_ok=True)
    data = manifest.encode("utf-8") if isinstance(manifest, str) else manifest
    (root / "deployment" / "manifests" / "app.yaml").write_bytes(data)
    if settings is not None:
        raw = settings.encode("utf-8") if isinstance(settings, str) else settings
        (root / "config" / settings_name).write_bytes(raw)
    return root


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "oneiric.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj")
