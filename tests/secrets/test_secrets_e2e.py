"""Secrets end to end: `oneiric compile` and `python -m oneiric.cli ...` as subprocesses, Secret Manager faked.

The reference project is compiled with `[secrets] emulator_host` pointed at the in-suite gRPC fake
(and the Cloud Tasks adapter at the Cloud Tasks emulator); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import time

import grpc
import pytest

from conftest import PYTHON, clean_env, run

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
DSN = "postgresql://vectors:Pw-e2e-7Hq2@db.internal:5432/embeddings"

#: The guide's section 10 transcript of `health --probe --json` (last_update is a time, checked apart).
GUIDE_HEALTH = {
    "status": "healthy",
    "profile": {"name": "serverless", "watchers_enabled": False, "remote_enabled": False,
                "inline_manifest_only": True},
    "secrets": {"provider": "gcp.secret_manager", "status": "ready"},
    "lifecycle_state": {"activity_state": "accepting", "supervisor": {"enabled": True, "last_update": "<time>"}},
}


def guide_view(report: dict, shape: dict) -> dict:
    """`report` cut down to the keys of `shape`, in the report's own order; times become "<time>"."""
    view = {}
    for key in report:
        if key not in shape:
            continue
        value = report[key]
        if isinstance(shape[key], dict) and isinstance(value, dict):
            view[key] = guide_view(value, shape[key])
        elif isinstance(value, str) and _TIME.match(value):
            view[key] = "<time>"
        else:
            view[key] = value
    return view


def probe(project, tmp_path, *args, **env):
    # $ ONEIRIC_PROFILE=serverless uv run python -m oneiric.cli health --probe --json \
    #     --manifest build/serverless_manifest.json
    argv = [PYTHON, "-m", "oneiric.cli", "health", "--probe", "--json", *args]
    result = run(argv, project, clean_env(tmp_path, ONEIRIC_PROFILE="serverless", **env))
    try:
        report = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    except ValueError:
        pytest.fail(f"health --probe --json printed no JSON (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}")
    return result, report


def test_serverless_profile_health_probe_transcript_ready(ref_project, sm, tmp_path):
    sm.put("pgvector-dsn", DSN)
    result, report = probe(ref_project, tmp_path, "--manifest", "build/serverless_manifest.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(report)[:4] == ["status", "profile", "secrets", "lifecycle_state"]
    assert guide_view(report, GUIDE_HEALTH) == GUIDE_HEALTH
    assert list(report["secrets"])[:2] == ["provider", "status"]
    assert report["secrets"]["references"] == [
        {"name": "pgvector-dsn", "version": "latest", "resolved_version": "1", "status": "ready"}]
    assert report["adapters"]["adapter/secrets"]["status"] == "ready"
    assert sm.calls["AccessSecretVersion"] >= 1  # it really asked, over the wire
    assert f"projects/oneiric-demo/secrets/pgvector-dsn/versions/latest" in sm.access_log
    assert DSN not in result.stdout + result.stderr


def test_serverless_profile_health_probe_missing_secret_exits_1(ref_project, sm, tmp_path):
    result, report = probe(ref_project, tmp_path)
    assert result.returncode == 1
    assert report["status"] == "unhealthy"
    secrets = report["secrets"]
    assert (secrets["provider"], secrets["status"]) == ("gcp.secret_manager", "missing")
    assert secrets["missing"] == ["pgvector-dsn"]
    assert "pgvector-dsn" in secrets["detail"]


def test_serverless_profile_health_probe_permission_denied_is_error(ref_project, sm, tmp_path):
    sm.put("pgvector-dsn", DSN)
    sm.deny("pgvector-dsn")
    result, report = probe(ref_project, tmp_path)
    assert result.returncode == 1
    assert report["status"] == "unhealthy"
    assert report["secrets"]["status"] == "error"
    assert report["secrets"]["detail"].startswith("permission denied reading secret pgvector-dsn")
    assert "roles/secretmanager.secretAccessor" in report["secrets"]["detail"]
    assert DSN not in result.stdout + result.stderr


def test_serverless_profile_health_probe_unavailable_is_error(ref_project, sm, tmp_path):
    sm.put("pgvector-dsn", DSN)
    sm.fail(grpc.StatusCode.UNAVAILABLE)
    result, report = probe(ref_project, tmp_path)
    assert result.returncode == 1
    assert report["secrets"]["status"] == "error"
    assert report["secrets"]["detail"].startswith("unavailable")
    assert report["adapters"]["adapter/secrets"]["status"] == "error"


def test_serverless_profile_missing_credentials_fail_fast_and_clearly(ref_project, sm, tmp_path):
    """Without emulator_host the real client looks for ADC; none here, and no metadata-server stall."""
    sm.put("pgvector-dsn", DSN)
    started = time.monotonic()
    result, report = probe(ref_project, tmp_path, ONEIRIC_SECRETS__EMULATOR_HOST="")
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert report["secrets"]["status"] == "error"
    detail = report["secrets"]["detail"]
    assert "Application Default Credentials" in detail and "roles/secretmanager.secretAccessor" in detail
    assert sm.calls["AccessSecretVersion"] == 0
