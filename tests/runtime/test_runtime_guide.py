"""The seed guide's sections 3, 6, 8 and 10, run as printed against the compiled reference project.

Serverless uses the real Secret Manager adapter against the gRPC fake and the Cloud Tasks adapter
against the Cloud Tasks emulator, both on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.support.cli import run_cli
from tests.support.env import clean_env, free_port, wait_until
from tests.support.server import http

GUIDE_SUPERVISOR_KEYS = ["profile_default", "runtime_config", "env_override", "supervisor_enabled",
                         "watchers_enabled", "remote_enabled", "inline_manifest_only"]
GUIDE_HEALTH_KEYS = ["status", "profile", "secrets", "lifecycle_state"]
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def mask(value, key=""):
    """Replace volatile values (times, pids, digests, tmp paths, adapters' free-text details) so snapshots
    only hold the contract."""
    if key == "detail" and value is not None:  # free-form, owned by each adapter
        return "<detail>"
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if key == "pid":
        return "<pid>"
    if isinstance(value, str) and _TIME.match(value):
        return "<time>"
    if isinstance(value, str) and value.startswith("sha256:"):
        return "<digest>"
    if key in ("store", "path") and isinstance(value, str) and value.startswith("/"):
        return "<path>"
    return value


def serverless_env(fakes, **extra):
    return clean_env(ONEIRIC_PROFILE="serverless", **fakes, **extra)


def test_serverless_profile_supervisor_info_json_matches_guide(ref_project, snapshot):
    # $ ONEIRIC_PROFILE=serverless uv run python -m oneiric.cli supervisor-info --json
    result = run_cli("supervisor-info", "--json", cwd=ref_project, env=clean_env(ONEIRIC_PROFILE="serverless"))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    assert list(info)[:7] == GUIDE_SUPERVISOR_KEYS
    assert {k: info[k] for k in GUIDE_SUPERVISOR_KEYS} == {
        "profile_default": "serverless", "runtime_config": "serverless", "env_override": None,
        "supervisor_enabled": True, "watchers_enabled": False, "remote_enabled": False,
        "inline_manifest_only": True}
    assert info["decided_by"] == "profile_default"
    assert mask(info) == snapshot


def test_serverless_profile_health_probe_json_matches_guide(ref_project, cloud_fakes, snapshot):
    # $ ONEIRIC_PROFILE=serverless uv run python -m oneiric.cli health --probe --json \
    #     --manifest build/serverless_manifest.json
    result = run_cli("health", "--probe", "--json", "--manifest", "build/serverless_manifest.json",
                     cwd=ref_project, env=serverless_env(cloud_fakes))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert list(report)[:4] == GUIDE_HEALTH_KEYS
    assert report["status"] == "healthy"
    assert report["profile"] == {"name": "serverless", "watchers_enabled": False, "remote_enabled": False,
                                 "inline_manifest_only": True}
    assert list(report["secrets"])[:2] == ["provider", "status"]
    assert report["secrets"]["provider"] == "gcp.secret_manager"
    assert report["secrets"]["status"] == "ready"
    lifecycle = report["lifecycle_state"]
    assert list(lifecycle)[:2] == ["activity_state", "supervisor"]
    assert lifecycle["activity_state"] == "accepting"
    assert list(lifecycle["supervisor"])[:2] == ["enabled", "last_update"]
    assert lifecycle["supervisor"]["enabled"] is True
    assert _TIME.match(lifecycle["supervisor"]["last_update"])
    assert {k: v["status"] for k, v in report["adapters"].items()} == {
        "adapter/secrets": "ready", "adapter/queue": "ready", "adapter/vector": "ready"}
    assert report["manifest"]["path"] == "build/serverless_manifest.json"
    assert "postgresql" not in result.stdout + result.stderr  # the secret value never shows
    assert mask(report) == snapshot


def test_serverless_profile_health_probe_reports_missing_secret(ref_project, cloud_fakes):
    """With the secret absent from the provider the probe says so and exits 1."""
    result = run_cli("health", "--probe", "--json",
                     cwd=ref_project, env=serverless_env(cloud_fakes, ONEIRIC_SECRETS__PROJECT_ID="other-project"))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "unhealthy"
    assert report["secrets"]["status"] != "ready"


def test_serverless_profile_procfile_command_serves_and_drains(ref_project, cloud_fakes, orchestrators, tmp_path):
    # web: uv run python -m oneiric.cli orchestrate --profile serverless --no-remote  (port from $PORT)
    health_path = tmp_path / "runtime_health.json"
    port = free_port()
    orch = orchestrators(ref_project, ["orchestrate", "--profile", "serverless", "--no-remote",
                                       "--health-path", str(health_path)],
                         clean_env(PORT=str(port), **cloud_fakes), http_port=None)
    # default bind is 0.0.0.0 as on Cloud Run; we only ever talk to 127.0.0.1
    orch.wait_ready()
    assert orch.port == port
    status, _, body = orch.get("/healthz")
    assert (status, body["status"], body["profile"]) == (200, "ok", "serverless")
    ready = orch.wait_log("ready")
    assert ready["watchers_enabled"] is False and ready["remote_enabled"] is False
    saved = json.loads(health_path.read_text())
    assert saved["lifecycle_state"]["activity_state"] == "accepting"
    assert saved["profile"]["name"] == "serverless" and saved["pid"] == orch.proc.pid
    assert saved["manifest"]["digest"].startswith("sha256:")
    # the operator's view of the live process, from its health file
    view = run_cli("health", "--json", "--health-path", str(health_path),
                   cwd=ref_project, env=clean_env(ONEIRIC_PROFILE="serverless"))
    assert view.returncode == 0, view.stdout + view.stderr
    assert json.loads(view.stdout)["source"] == "orchestrate"
    activity = run_cli("activity", "--json", "--health-path", str(health_path),
                       cwd=ref_project, env=clean_env(ONEIRIC_PROFILE="serverless"))
    assert activity.returncode == 0 and json.loads(activity.stdout)["activity_state"] == "accepting"
    assert not any("remote manifest" in r["message"] or "artifacts" in r["message"] for r in orch.records)
    assert orch.terminate() == 0
    final = json.loads(health_path.read_text())
    assert final["activity_state"] == "stopped"
    assert final["lifecycle_state"]["activity_state"] == "stopped"


def test_default_profile_guide_commands(ref_project, snapshot):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    info = run_cli("supervisor-info", "--json", cwd=ref_project, env=env)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert {k: data[k] for k in GUIDE_SUPERVISOR_KEYS} == {
        "profile_default": "default", "runtime_config": "default", "env_override": None,
        "supervisor_enabled": True, "watchers_enabled": True, "remote_enabled": True,
        "inline_manifest_only": False}
    probe = run_cli("health", "--probe", "--json", cwd=ref_project, env=env)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    report = json.loads(probe.stdout)
    assert report["status"] == "healthy" and report["secrets"] == {
        **report["secrets"], "provider": "env", "status": "ready"}
    assert mask({"supervisor_info": data, "health": report}) == snapshot


def test_demo_health_probe_needs_no_files(tmp_path):
    # (or `--demo health --probe --json`)
    result = run_cli("--demo", "health", "--probe", "--json", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "healthy" and report["profile"]["name"] == "default"
    text = run_cli("--demo", "supervisor-info", cwd=tmp_path, env=clean_env())
    assert text.returncode == 0 and "supervisor_enabled: true" in text.stdout


def test_text_outputs_for_terminals(ref_project):
    env = clean_env(ONEIRIC_PROFILE="serverless")
    result = run_cli("supervisor-info", cwd=ref_project, env=env)
    assert result.returncode == 0
    assert result.stdout.splitlines()[:3] == ["profile_default: serverless", "runtime_config: serverless",
                                              "env_override: null"]


def test_health_file_view_detects_a_dead_or_silent_orchestrator(ref_project, tmp_path):
    path = tmp_path / "runtime_health.json"
    record = {"status": "healthy", "activity_state": "accepting", "pid": 2 ** 22 + 7,
              "lifecycle_state": {"activity_state": "accepting", "supervisor": {"enabled": True}},
              "written_at": "2026-01-01T00:00:00Z"}
    path.write_text(json.dumps(record))
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    dead = run_cli("health", "--json", "--health-path", str(path), cwd=ref_project, env=env)
    assert dead.returncode == 1 and "is not running" in json.loads(dead.stdout)["detail"]
    import os

    path.write_text(json.dumps({**record, "pid": os.getpid()}))  # alive, but silent since January
    silent = run_cli("health", "--json", "--health-path", str(path), cwd=ref_project, env=env)
    assert silent.returncode == 1 and "has not written" in json.loads(silent.stdout)["detail"]
    missing = run_cli("health", "--health-path", str(tmp_path / "absent.json"), cwd=ref_project, env=env)
    assert missing.returncode == 1 and "is orchestrate running?" in missing.stdout


def test_serverless_profile_probe_status_follows_live_adapter_health(ref_project, cloud_fakes):
    """Activation builds the Cloud Tasks client without I/O; the probe's get_queue finds no such queue."""
    env = serverless_env(cloud_fakes, ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__QUEUE="no-such-queue")
    result = run_cli("health", "--probe", "--json", cwd=ref_project, env=env)
    report = json.loads(result.stdout)
    assert report["adapters"]["adapter/queue"]["status"] != "ready"
    assert report["status"] == "unhealthy" and result.returncode == 1
