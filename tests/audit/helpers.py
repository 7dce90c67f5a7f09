"""The audit tests' project (a manifest and serverless settings), git in a temp repo, digest masking."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.support.env import clean_env
from tests.support.projects import write_project

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


def audit_project(root: Path, manifest: str = MANIFEST, settings: str = SETTINGS) -> Path:
    """This suite's project (MANIFEST, SETTINGS as the serverless profile) written under `root`."""
    return write_project(root, manifest, settings, profile="serverless")


def git(cwd: Path, *args: str) -> str:
    env = clean_env(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
                    GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
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
