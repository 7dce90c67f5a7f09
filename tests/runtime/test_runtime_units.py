"""Small units: built-in secrets adapters, artifact decoding, locate, health file writes, log helpers."""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import pytest

from runtime.adapters.base import AdapterContext, SecretAccessError, SecretNotFoundError, SecretValue
from runtime.adapters.secrets_env import EnvSecrets, variable_name
from runtime.adapters.secrets_file import FileSecrets
from runtime.artifact import ArtifactError, load_artifacts
from runtime.health import read_file, write_file
from runtime.locate import LocateError, locate
from runtime.logs import Logger, trace_fields
from tests.support.artifacts import build_artifacts


def _ctx(tmp_path, environ=None):
    return AdapterContext(project_dir=tmp_path, cache_dir=tmp_path / ".c", profile="t",
                          extra={"environ": environ or {}})


# ---------------------------------------------------------------- secrets

def test_env_secret_names_and_pins(tmp_path):
    assert variable_name("ONEIRIC_SECRET_", "tasks-hmac.key") == "ONEIRIC_SECRET_TASKS_HMAC_KEY"
    environ = {"ONEIRIC_SECRET_DB_PASSWORD": "latest-value", "ONEIRIC_SECRET_DB_PASSWORD__3": "v3"}
    secrets = EnvSecrets({}, context=_ctx(tmp_path, environ))
    assert secrets.get("db-password").reveal() == "latest-value"
    assert secrets.get("db-password", "3").reveal() == "v3"
    assert secrets.get("db-password", "2").reveal() == "latest-value"  # env has no versions
    with pytest.raises(SecretNotFoundError, match="ONEIRIC_SECRET_NOPE"):
        secrets.get("nope")
    readiness = secrets.readiness([("db-password", "latest"), ("nope", "latest"), ("nope", "4")])
    assert readiness["status"] == "missing" and readiness["missing"] == ["nope", "nope@4"]


def test_env_secret_custom_prefix_and_redaction(tmp_path):
    secrets = EnvSecrets({"prefix": "APP_"}, context=_ctx(tmp_path, {"APP_TOKEN": "s3cret"}))
    value = secrets.get("token")
    assert isinstance(value, SecretValue) and "s3cret" not in repr(value) and "s3cret" not in str(value)


def test_file_secrets_layout_like_cloud_run_volumes(tmp_path):
    root = tmp_path / "secrets"
    root.mkdir()
    (root / "api-key").write_text("k-latest\n")
    (root / "api-key@2").write_text("k2")
    (root / "dsn").mkdir()
    (root / "dsn" / "latest").write_text("postgresql://x")
    (root / "dsn" / "5").write_text("postgresql://five")
    secrets = FileSecrets({"directory": "secrets"}, context=_ctx(tmp_path))  # relative to the project dir
    assert secrets.get("api-key").reveal() == "k-latest"  # trailing newline stripped
    assert secrets.get("api-key", "2").reveal() == "k2"
    assert secrets.get("dsn").reveal() == "postgresql://x"
    assert secrets.get("dsn", "5").reveal() == "postgresql://five"
    with pytest.raises(SecretNotFoundError, match="api-key@9"):
        secrets.get("api-key", "9")
    for bad in ("../etc/passwd", "a/b", ".hidden", ""):
        with pytest.raises(SecretAccessError):
            secrets.get(bad)
    with pytest.raises(SecretAccessError):
        secrets.get("api-key", "../x")
    assert secrets.health()["status"] == "ready"
    assert FileSecrets({"directory": str(tmp_path / "absent")}).health()["status"] == "error"
    keep = FileSecrets({"directory": str(root), "strip_newline": False})
    assert keep.get("api-key").reveal() == "k-latest\n"


# ---------------------------------------------------------------- artifacts and locate

def test_decoded_artifacts_are_model_objects(tmp_path):
    path = build_artifacts(tmp_path)
    loaded = load_artifacts(path, base=tmp_path)
    assert loaded.profile.profile.toggles.inline_manifest_only is True
    secrets = next(s for s in loaded.profile.selections if s.key == "secrets")
    assert secrets.factory == "runtime.adapters.secrets_env:EnvSecrets" and secrets.settings_path == "secrets"
    assert loaded.profile.env_keys and loaded.manifest.entries == ()
    assert loaded.manifest_path == tmp_path / "build" / "serverless_manifest.json"


def test_wrong_format_is_named(tmp_path):
    path = build_artifacts(tmp_path)
    with pytest.raises(ArtifactError, match="format"):
        load_artifacts(path, manifest_path=path, base=tmp_path)


def test_locate_rules(tmp_path):
    project = tmp_path / "proj"
    build_artifacts(project, profile="serverless")
    build_artifacts(project, profile="default")
    assert locate(environ={}, cwd=project).profile_name == "default"
    loc = locate(environ={"ONEIRIC_PROFILE": "serverless"}, cwd=project)
    assert (loc.profile_name, loc.profile_source) == ("serverless", "ONEIRIC_PROFILE")
    toml = project / "config" / "serverless.toml"
    toml.write_text('[profile]\nname = "serverless"\n')
    loc = locate(environ={"ONEIRIC_CONFIG": str(toml)}, cwd=tmp_path)
    assert (loc.project_dir, loc.profile_name, loc.profile_source) == (project, "serverless", "ONEIRIC_CONFIG")
    # a TOML outside config/: project dir is its parent, profile its stem when [profile] is absent
    loose = project / "serverless.toml"
    loose.write_text("")
    assert locate(environ={"ONEIRIC_CONFIG": str(loose)}, cwd=tmp_path).profile_name == "serverless"
    with pytest.raises(LocateError, match="run oneiric compile"):
        locate(profile="staging", environ={}, cwd=project)
    with pytest.raises(LocateError, match="does not exist"):
        locate(environ={"ONEIRIC_CONFIG": str(project / "config" / "nope.toml")}, cwd=tmp_path)


# ---------------------------------------------------------------- health file and logs

def test_health_file_writes_are_atomic(tmp_path):
    path = tmp_path / "h" / "runtime_health.json"
    stop = threading.Event()
    seen_bad = []

    def reader() -> None:
        while not stop.is_set():
            try:
                data = read_file(path)
                if "n" not in data:
                    seen_bad.append(data)
            except FileNotFoundError:
                pass
            except ValueError as exc:  # a torn write would show up here
                seen_bad.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(300):
        write_file(path, {"n": n, "pad": "x" * 5000})
    stop.set()
    thread.join()
    assert seen_bad == [] and read_file(path)["n"] == 299
    assert [p.name for p in path.parent.iterdir()] == ["runtime_health.json"]  # no temp files left


def test_pid_alive_tells_dead_from_running_and_refuses_non_pids():
    import subprocess
    import sys

    from runtime.process import pid_alive

    assert pid_alive(os.getpid()) and pid_alive(str(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    assert not pid_alive(child.pid)
    assert not any(pid_alive(v) for v in (None, "x", 2 ** 80))


def test_utc_now_text_digits():
    from runtime.logs import utc_now_text

    when = 1767322445.678901
    assert utc_now_text(when, digits=0) == "2026-01-02T02:54:05Z"
    assert utc_now_text(when) == "2026-01-02T02:54:05.678Z"
    assert utc_now_text(when, digits=6) == "2026-01-02T02:54:05.678901Z"


def test_trace_fields():
    assert trace_fields("abc123/42;o=1", "proj") == {"logging.googleapis.com/trace": "projects/proj/traces/abc123",
                                                     "logging.googleapis.com/spanId": "000000000000002a",
                                                     "logging.googleapis.com/trace_sampled": True}
    # Cloud Run sends the span as a decimal uint64; Cloud Logging wants it as 16 hex digits
    assert trace_fields("abc123/18446744073709551615;o=0", "proj")["logging.googleapis.com/spanId"] == "ffffffffffffffff"
    assert "logging.googleapis.com/trace_sampled" not in trace_fields("abc123/1;o=0", "proj")
    for bad in ("abc123/18446744073709551616", "abc123/0", "abc123/-1", "abc123/0x2a", "abc123/４２"):
        assert "logging.googleapis.com/spanId" not in trace_fields(bad, "proj"), bad
    assert trace_fields("abc123", None) == {}
    assert trace_fields(None, "proj") == {}
    assert trace_fields("not hex!/1", "proj") == {}


def test_logger_json_and_text_and_levels():
    out = io.StringIO()
    log = Logger(out, "json", "WARNING")
    log("INFO", "hidden")
    log("ERROR", "shown", detail={"a": 1})
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert (record["severity"], record["message"], record["detail"]) == ("ERROR", "shown", {"a": 1})
    assert record["time"].endswith("Z")
    text = io.StringIO()
    Logger(text, "text")("INFO", "hello", port=8080)
    assert text.getvalue().rstrip().endswith("INFO    hello port=8080")
