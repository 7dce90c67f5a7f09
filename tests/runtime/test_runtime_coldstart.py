"""Cold start refuses what it cannot trust: tampered artifacts, stale settings, a mismatched manifest."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.support.artifacts import flip_byte, write_artifact
from tests.support.cli import run_cli
from tests.support.env import clean_env, free_port


def _refused(project, env=None, extra=()):
    """Run orchestrate on a fixed port and prove nothing started: exit 1, no listener, no health file."""
    port = free_port()
    result = run_cli("orchestrate", "--profile", "serverless", "--http-host", "127.0.0.1", "--http-port",
                      str(port), *extra, cwd=project, env=env or clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k"), timeout=20)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "listening" not in result.stdout and "ready" not in result.stdout
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    assert not (project / ".oneiric_cache" / "runtime_health.json").exists()
    return result.stderr


@pytest.mark.parametrize("artifact", ["serverless_profile.json", "serverless_manifest.json"])
def test_serverless_profile_flipped_byte_refuses_start(embedded_project, artifact):
    flip_byte(embedded_project / "build" / artifact, b'"key": "')
    err = _refused(embedded_project)
    assert f"build/{artifact}" in err
    assert "digest mismatch" in err and "run oneiric compile" in err


def test_whitespace_edit_refuses_start(embedded_project):
    """A change that keeps the JSON value (and so the digest) is still a changed file."""
    path = embedded_project / "build" / "serverless_profile.json"
    path.write_bytes(path.read_bytes().replace(b'  "compiler_version"', b'\t"compiler_version"', 1))
    err = _refused(embedded_project)
    assert "build/serverless_profile.json" in err and "canonical" in err


def test_invalid_utf8_refuses_start(embedded_project):
    path = embedded_project / "build" / "serverless_manifest.json"
    data = bytearray(path.read_bytes())
    data[data.index(b'"format"') + 2] = 0xFF
    path.write_bytes(bytes(data))
    assert "build/serverless_manifest.json" in _refused(embedded_project)


def test_serverless_profile_changed_settings_refuses_start(embedded_project):
    settings = embedded_project / "config" / "serverless.toml"
    settings.write_text(settings.read_text().replace("poll_interval = 0.2", "poll_interval = 0.3"))
    err = _refused(embedded_project)
    assert "config/serverless.toml" in err and "run oneiric compile" in err
    # the operator commands refuse too, with the same message
    info = run_cli("supervisor-info", "--json", cwd=embedded_project, env=clean_env(ONEIRIC_PROFILE="serverless"))
    assert info.returncode == 1 and "run oneiric compile" in info.stderr and info.stdout == ""


def test_absent_settings_file_is_not_stale(embedded_project):
    """A runtime-only image may ship build/ without config/: nothing to compare, start allowed."""
    (embedded_project / "config" / "serverless.toml").unlink()
    result = run_cli("supervisor-info", "--json", cwd=embedded_project, env=clean_env(ONEIRIC_PROFILE="serverless"))
    assert result.returncode == 0, result.stderr


def test_profile_pinned_to_another_manifest_refuses_start(hand_built):
    project = hand_built(manifest_digest="sha256:" + "0" * 64)
    err = _refused(project, clean_env())
    assert "build/serverless_manifest.json" in err and "not the manifest" in err


def test_manifest_option_must_match_the_pinned_digest(embedded_project, tmp_path):
    other = tmp_path / "other_manifest.json"
    write_artifact(other, {"compiler_version": "test", "entries": [], "format": "oneiric.manifest/1",
                           "inputs": [], "sources": ["elsewhere"]})
    err = _refused(embedded_project, extra=["--manifest", str(other)])
    assert "other_manifest.json" in err
    ok = run_cli("health", "--probe", "--json", "--manifest", "build/serverless_manifest.json",
                 cwd=embedded_project, env=clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_SECRET_TASKS_HMAC_KEY="k"))
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_missing_artifact_says_compile(tmp_path):
    result = run_cli("orchestrate", "--profile", "serverless", "--no-http", cwd=tmp_path, env=clean_env())
    assert result.returncode == 1
    assert "build/serverless_profile.json" in result.stderr and "run oneiric compile" in result.stderr


def test_bad_port_env_refuses_start(embedded_project):
    result = run_cli("orchestrate", "--profile", "serverless", cwd=embedded_project, env=clean_env(PORT="http"))
    assert result.returncode == 1 and "PORT='http'" in result.stderr


# ---------------------------------------------------------------- which profile runs

def _profile_name(project, args, env, cwd=None):
    argv = [*args, "supervisor-info", "--json"] if "supervisor-info" not in args else args
    result = run_cli(*argv, cwd=cwd or project, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["runtime_config"]


def test_profile_precedence(ref_project, tmp_path):
    env = clean_env()
    assert _profile_name(ref_project, [], env) == "default"
    config = str(ref_project / "config" / "serverless.toml")
    # ONEIRIC_CONFIG names the TOML: project dir = its parent's parent, profile = its [profile] name
    assert _profile_name(ref_project, [], clean_env(ONEIRIC_CONFIG=config), cwd=tmp_path) == "serverless"
    # ONEIRIC_PROFILE beats ONEIRIC_CONFIG's profile; --profile beats both (before or after the verb)
    both = clean_env(ONEIRIC_CONFIG=config, ONEIRIC_PROFILE="default")
    assert _profile_name(ref_project, [], both, cwd=tmp_path) == "default"
    assert _profile_name(ref_project, ["--profile", "serverless"], both, cwd=tmp_path) == "serverless"
    assert _profile_name(ref_project, ["supervisor-info", "--json", "--profile", "serverless"], both,
                         cwd=tmp_path) == "serverless"
    # --config is ONEIRIC_CONFIG as a flag; a profile artifact works as well as the TOML
    artifact = str(ref_project / "build" / "serverless_profile.json")
    assert _profile_name(ref_project, ["--config", artifact], env, cwd=tmp_path) == "serverless"
    assert _profile_name(ref_project, [], clean_env(ONEIRIC_CONFIG=artifact), cwd=tmp_path) == "serverless"


def test_usage_errors_exit_2(ref_project):
    env = clean_env()
    for args in (["health", "--bogus"], ["activity", "pause", "--domain", "workflow"], ["--bogus", "health"],
                 ["orchestrate", "--http-port", "x"], ["activity", "--note", "x"]):
        result = run_cli(*args, cwd=ref_project, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == ""


def test_demo_runs_without_project_files(tmp_path, orchestrators):
    orch = orchestrators(tmp_path, ["--demo", "orchestrate", "--no-remote"], clean_env()).wait_ready()
    status, _, body = orch.get("/healthz")
    assert status == 200 and body["profile"] == "default"
    assert orch.terminate() == 0
    assert json.loads((tmp_path / ".oneiric_cache" / "runtime_health.json").read_text())["activity_state"] == "stopped"
