"""A compiled throwaway project for the state tests (HMAC auth, env secrets, local queue), its CLI and
live `orchestrate` instances; the state backend comes from the caller's `[state]` table."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runtime.tasks_auth import sign
from tests.support.cli import run_cli
from tests.support.env import clean_env, wait_until
from tests.support.projects import demo_workflows_manifest
from tests.support.server import Orchestrator

HMAC_KEY = "state-hmac-key-5b0e1c7d2a"

SETTINGS = """
[profile]
name = "two"

[profiles.two]
extends = "serverless"

[secrets]
provider = "env"

[adapters.selections]
queue = "local"

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"
shutdown_grace_seconds = 3

[runtime.supervisor]
poll_interval = 0.2

[logging]
format = "json"
{state}
"""

MANIFEST = demo_workflows_manifest("state-tests")

POSTGRES = """
[state]
backend = "postgres"
dsn = "secret://state-dsn"
lease_seconds = {lease}
"""


def make_project(root: Path, state: str = "", settings: str = SETTINGS, manifest: str = MANIFEST) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / "config" / "two.toml").write_text(settings.replace("{state}", state))
    (root / "deployment" / "manifests" / "two.yaml").write_text(manifest)
    out = run_cli(*["compile", "--project-dir", str(root)], cwd=root, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return root


def env_for(root: Path, dsn: str | None = None, **extra: str) -> dict[str, str]:
    secrets = {"ONEIRIC_SECRET_TASKS_HMAC_KEY": HMAC_KEY}
    if dsn:
        secrets["ONEIRIC_SECRET_STATE_DSN"] = dsn
    return clean_env(ONEIRIC_CONFIG=str(root / "config" / "two.toml"), **secrets, **extra)


def post(url: str, obj: Any = None, *, raw: bytes | None = None, signature: str | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int | None, dict]:
    """POST /tasks/workflow signed (now, unless `signature` is given); (None, {...}) when the connection broke."""
    body = raw if raw is not None else json.dumps(obj).encode()
    h = {"Content-Type": "application/json", "X-Oneiric-Signature": signature or sign(HMAC_KEY.encode(), body)}
    h.update(headers or {})
    request = urllib.request.Request(url + "/tasks/workflow", data=body, headers=h, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError as exc:
        return None, {"error": repr(exc)}


def pg_rows(dsn: str, sql: str, args: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def effects(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.split("\n") if line.strip()]


def start(root: Path, env: dict[str, str], http_port: int = 0, *, healthy: bool = True) -> Orchestrator:
    """`orchestrate` ready; with `healthy`, also answering /healthz 200 (a postgres store is connected),
    as Cloud Run waits for its startup probe before routing traffic."""
    inst = Orchestrator(root, ["orchestrate", "--no-remote"], dict(env), http_port=http_port).wait_ready(30)
    if healthy:
        try:
            wait_until(lambda: inst.get("/healthz")[0] == 200, timeout=30)
        except AssertionError:
            inst.close()
            raise
    return inst
