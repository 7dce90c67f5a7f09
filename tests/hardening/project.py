"""A compiled project for the fault, load and security tests, and a live `orchestrate` around it.

Settings: serverless-based profile `hard`, env secrets (the HMAC key in ONEIRIC_SECRET_TASKS_HMAC_KEY),
local queue, HMAC auth, 64 KiB body limit, 1 s header timeout, supervisor every 0.05 s. Workflows:
`noop3` (3 no-op nodes), `slow3` (3 sleep nodes a -> b -> c), `ingest` (extract -> transform -> load).
The orchestrator itself is `tests.support.server.Orchestrator` (a real subprocess on 127.0.0.1).
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runtime.tasks_auth import sign
from tests.support.cli import compile_project
from tests.support.env import clean_env
from tests.support.projects import demo_workflows_manifest, write_project
from tests.support.server import Orchestrator

HMAC_KEY = "hardening-hmac-key-7c1d9a0e5b"

SETTINGS = """
[profile]
name = "hard"

[profiles.hard]
extends = "serverless"

[secrets]
provider = "env"

[adapters.selections]
queue = "local"

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"
max_body_bytes = 65536
header_timeout_seconds = 1
shutdown_grace_seconds = 8

[runtime.supervisor]
poll_interval = 0.05

[logging]
format = "json"
"""

MANIFEST = demo_workflows_manifest("hardening")


def make_project(root: Path, settings: str = SETTINGS, manifest: str = MANIFEST) -> Path:
    """This suite's project (profile `hard`) written under `root` and compiled."""
    write_project(root, manifest, settings, profile="hard", manifest_name="hard.yaml")
    compile_project(root)
    return root


def env_for(root: Path, **extra: str) -> dict[str, str]:
    return clean_env(ONEIRIC_CONFIG=str(root / "config" / "hard.toml"), ONEIRIC_SECRET_TASKS_HMAC_KEY=HMAC_KEY,
                     **extra)


def start(root: Path, **extra_env: str) -> Orchestrator:
    """`orchestrate --no-remote` on a free port, waited until ready."""
    return Orchestrator(root, ["orchestrate", "--no-remote"], env_for(root, **extra_env)).wait_ready(30)


def post(url: str, obj: Any = None, *, raw: bytes | None = None, signed: bool = True, t: int | None = None,
         headers: dict[str, str] | None = None, key: str = HMAC_KEY, timeout: float = 30) -> tuple[int, dict]:
    body = raw if raw is not None else json.dumps(obj).encode()
    h = {"Content-Type": "application/json"}
    if signed:
        h["X-Oneiric-Signature"] = sign(key.encode(), body, t)
    h.update(headers or {})
    request = urllib.request.Request(url + "/tasks/workflow", data=body, headers=h, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw_reply = exc.read()
        try:
            return exc.code, json.loads(raw_reply or b"{}")
        except ValueError:
            return exc.code, {"raw": raw_reply.decode("latin-1")}


def runs_db(root: Path) -> Path:
    return root / ".oneiric_cache" / "workflow_runs.sqlite"


def query(root: Path, sql: str, args: tuple = ()) -> list[tuple]:
    path = runs_db(root)
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql, args).fetchall()
