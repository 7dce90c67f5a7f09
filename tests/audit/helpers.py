"""Shared helpers for the audit tests: a small project written into a temp dir, the real CLI, git."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

MANIFEST = """\
source: audit-test
entries:
  - domain: adapter
    key: vector
    provider: memory
    factory: oneiric.demo.vector:MemoryVectorStore
    settings_schema:
      type: object
      properties:
        dimensions: {type: integer, default: 8}
  - domain: task
    key: extract
    provider: demo
    factory: oneiric.demo.tasks:extract
  - domain: task
    key: load
    provider: demo
    factory: oneiric.demo.tasks:load
  - domain: workflow
    key: ingest
    provider: dag
    factory: oneiric.demo.tasks:load
    dag:
      nodes:
        - id: a
          task: extract
        - id: b
          task: load
          depends_on: [a]
"""

SETTINGS = """\
[profile]
name = "serverless"

[secrets]
provider = "env"

[adapters.selections]
vector = "memory"
queue = "local"

[http]
port = 8080
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"
"""


def write_project(root: Path, manifest: str = MANIFEST, settings: str = SETTINGS) -> Path:
    (root / "deployment" / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "config").mkdir(exist_ok=True)
    (root / "deployment" / "manifests" / "app.yaml").write_text(manifest, encoding="utf-8")
    (root / "config" / "serverless.toml").write_text(settings, encoding="utf-8")
    return root


def copy_reference(dest: Path) -> Path:
    """The repository's reference project (config, manifests, committed build) in `dest`."""
    for part in ("config", "deployment", "build"):
        shutil.copytree(REPO / part, dest / part)
    return dest


def clone(src: Path, dest: Path) -> Path:
    """A copy of a prepared project (git repo included), so tests share one compile but not its files."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def clean_env(extra: dict | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_") and k != "SOURCE_DATE_EPOCH"}
    env.update(extra or {})
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oneiric.cli", *args], cwd=cwd, env=clean_env(env),
                          capture_output=True, text=True, timeout=120)


def git(cwd: Path, *args: str) -> str:
    env = clean_env({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                     "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_GLOBAL": os.devnull,
                     "GIT_CONFIG_NOSYSTEM": "1"})
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def git_init(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def stable(text: str) -> str:
    """`text` with artifact digests masked, so snapshots survive compiler changes that are not under test."""
    return _DIGEST.sub("sha256:<digest>", text)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
