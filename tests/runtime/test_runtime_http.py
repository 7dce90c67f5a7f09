"""HTTP: readiness states, request logs, header timeout, no DNS at bind, import purity of the live process."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import pytest

from runtime.listener import Server
from tests.support.artifacts import build_artifacts
from tests.support.cli import run_cli
from tests.support.env import clean_env, wait_until
from tests.support.server import http

FORBIDDEN = {"yaml", "jsonschema", "jsonschema_rs", "jinja2", "tomlkit", "tomli", "cattrs", "click", "google", "compiler", "grpc",
             "orjson"}

ADAPTERS = '''
import os, time
from runtime.adapters.base import Adapter, AdapterError


class Slow(Adapter):
    """Activation waits until the test creates the gate file."""

    def activate(self):
        deadline = time.monotonic() + 20
        while not os.path.exists(self.settings["gate"]) and time.monotonic() < deadline:
            time.sleep(0.02)


class Broken(Adapter):
    def activate(self):
        raise AdapterError("cannot reach the vector store")
'''


def _custom_project(tmp_path, attr, required=True, extra_settings=None):
    pkg = tmp_path / "pylib" / "acme_adapters"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "store.py").write_text(ADAPTERS)
    project = tmp_path / "project"
    build_artifacts(project, settings={"security": {"factory_allowlist": ["runtime.adapters", "acme_adapters"]}},
                    selections=[
        {"domain": "adapter", "key": "secrets", "provider": "env", "factory": "runtime.adapters.secrets_env:EnvSecrets",
         "settings": {}, "origin": "builtin", "reason": "test", "required": True, "settings_path": "secrets"},
        {"domain": "adapter", "key": "vector", "provider": "acme", "factory": f"acme_adapters.store:{attr}",
         "settings": extra_settings or {}, "origin": "test", "reason": "test", "required": required,
         "settings_path": ""},
    ])
    return project, clean_env(PYTHONPATH=str(tmp_path / "pylib"))


def test_healthz_answers_starting_until_activation_ends(tmp_path, orchestrators):
    gate = tmp_path / "gate"
    project, env = _custom_project(tmp_path, "Slow", extra_settings={"gate": str(gate)})
    orch = orchestrators(project, ["orchestrate", "--profile", "serverless"], env)
    orch.port = int(orch.wait_log("listening")["port"])
    status, headers, body = orch.get("/healthz")
    assert (status, body["status"], headers["Retry-After"]) == (503, "starting", "5")
    gate.write_text("go")
    orch.wait_log("ready")
    assert orch.get("/healthz")[0] == 200
    assert orch.terminate() == 0


def test_required_adapter_failure_makes_healthz_503(tmp_path, orchestrators):
    project, env = _custom_project(tmp_path, "Broken")
    orch = orchestrators(project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    status, headers, body = orch.get("/healthz")
    assert (status, body["status"], body["adapters"]) == (503, "unavailable", ["adapter/vector"])
    assert "Retry-After" in headers
    failure = orch.wait_log("adapter adapter/vector (acme) failed to activate")
    assert failure["severity"] == "ERROR" and "cannot reach" in failure["error"]
    probe = run_cli("--profile", "serverless", "health", "--probe", "--json", cwd=project, env=env)
    assert probe.returncode == 1
    report = json.loads(probe.stdout)
    assert report["status"] == "unhealthy" and report["adapters"]["adapter/vector"]["status"] == "error"
    assert orch.terminate() == 0


def test_optional_adapter_failure_degrades_but_serves(tmp_path, orchestrators):
    project, env = _custom_project(tmp_path, "Broken", required=False)
    orch = orchestrators(project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    assert orch.get("/healthz")[0] == 200
    health = wait_until(lambda: json.loads((project / ".oneiric_cache" / "runtime_health.json").read_text()))
    assert health["status"] == "degraded"
    assert orch.terminate() == 0


def test_factory_outside_allowlist_is_not_imported(tmp_path, orchestrators):
    project, env = _custom_project(tmp_path, "Slow")
    profile = project / "build" / "serverless_profile.json"
    from tests.support.artifacts import edit_artifact

    edit_artifact(profile, lambda data: data["settings"]["security"].update(factory_allowlist=["runtime.adapters"]))
    orch = orchestrators(project, ["orchestrate", "--profile", "serverless", "--no-http"], env)
    failure = orch.wait_log("adapter adapter/vector (acme) failed to activate")
    assert "allowlist" in failure["error"]
    assert orch.terminate() == 0


#: Not needed to answer the first 200 on the embedded-default serverless profile (bench/coldstart.py): the
#: model is plain classes, the local queue opens SQLite on first use, bottle loads after that 200, and
#: orchestrate's options are read without argparse.
NOT_BEFORE_FIRST_200 = {"dataclasses", "inspect", "sqlite3", "bottle", "argparse"}


def test_serverless_profile_orchestrate_imports_no_compiler_library(embedded_project, orchestrators):
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"],
                         clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_DEBUG_MODULES="1")).wait_ready()
    ready = set(orch.wait_log("ready")["modules"])  # everything loaded when /healthz starts answering 200
    assert "runtime" in ready and FORBIDDEN.isdisjoint(ready), FORBIDDEN & ready
    assert NOT_BEFORE_FIRST_200.isdisjoint(ready), NOT_BEFORE_FIRST_200 & ready
    assert orch.wait_log("ready")["adapters"] == {"adapter/queue": "ready", "adapter/secrets": "ready",
                                                  "adapter/vector": "ready"}
    status, _, body = orch.get("/healthz")
    assert status == 200
    assert FORBIDDEN.isdisjoint(body["modules"]), FORBIDDEN & set(body["modules"])
    # the local queue opens its database on first use: the dispatcher started by the warm-up uses it
    wait_until(lambda: (embedded_project / ".oneiric_cache" / "workflow_queue.sqlite").exists())
    assert orch.get("/no-such-route")[0] == 404  # goes through the bottle app
    status, _, body = orch.get("/healthz")
    assert "bottle" in body["modules"] and FORBIDDEN.isdisjoint(body["modules"])
    assert orch.terminate() == 0


@pytest.mark.parametrize("verb", [["supervisor-info", "--json"], ["health", "--probe", "--json"], ["activity", "--json"]])
def test_operator_commands_import_no_compiler_library(embedded_project, verb):
    """`-X importtime` lists every module the command loaded, on stderr."""
    traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "oneiric.cli", *verb], cwd=embedded_project,
                            env=clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_SECRET_TASKS_HMAC_KEY="k"),
                            capture_output=True, text=True, timeout=30)
    assert traced.returncode == 0, traced.stderr[-2000:]
    json.loads(traced.stdout)
    loaded = {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+([\w.]+)\s*$", traced.stderr, re.M)}
    assert "runtime" in loaded and FORBIDDEN.isdisjoint(loaded), FORBIDDEN & loaded


def test_request_log_lines(embedded_project, orchestrators):
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"],
                         clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")).wait_ready()
    orch.get("/healthz", headers={"User-Agent": "probe/1"})
    orch.get("/healthz", headers={"X-Cloud-Trace-Context": "abcdef0123456789abcdef0123456789/7;o=1"})
    status, _, body = orch.get("/missing")
    assert status == 404 and body == {"error": "not_found", "detail": "GET /missing: 404 Not Found"}
    assert orch.terminate() == 0
    lines = [json.loads(line) for line in orch.lines]  # every stdout line is one JSON object
    requests = [r for r in lines if "httpRequest" in r]
    assert [r["message"] for r in requests] == ["GET /healthz 200", "GET /healthz 200", "GET /missing 404"]
    for record in lines:
        assert {"severity", "message", "time"} <= set(record)
    assert requests[0]["httpRequest"]["userAgent"] == "probe/1"
    assert "logging.googleapis.com/trace" not in requests[0]
    assert requests[1]["logging.googleapis.com/trace"] == \
        "projects/oneiric-demo/traces/abcdef0123456789abcdef0123456789"
    assert orch.stderr == ""


def test_text_log_format_for_terminals(ref_project, orchestrators):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    env["ONEIRIC_LOGGING__FORMAT"] = "text"
    orch = orchestrators(ref_project, ["orchestrate", "--no-remote", "--no-watch"], env)
    wait_until(lambda: any(" ready " in line for line in orch.lines), timeout=10)
    assert orch.terminate() == 0
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z INFO +listening host=127\.0\.0\.1 port=\d+", orch.lines[0])
    assert not orch.records  # no JSON in text mode


def test_slow_headers_cannot_hold_a_worker(embedded_project, orchestrators):
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"],
                         clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_HTTP__HEADER_TIMEOUT_SECONDS="0.5")
                         ).wait_ready()
    sock = socket.create_connection(("127.0.0.1", orch.port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    closed_after = None
    for _ in range(40):  # trickle one header line every 0.1 s: each recv alone would never time out
        try:
            sock.sendall(b"X-Slow: 1\r\n")
            sock.settimeout(0.1)
            if sock.recv(1) == b"":
                closed_after = time.monotonic() - started
                break
        except socket.timeout:
            continue
        except OSError:
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert closed_after is not None and closed_after < 1.5
    assert orch.get("/healthz")[0] == 200  # others were served all along
    assert orch.terminate() == 0


def test_server_binds_without_dns(monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("socket.getfqdn called")

    monkeypatch.setattr(socket, "getfqdn", no_dns)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode() + b"|" + environ.get("HTTP_X_A", "").encode()]

    server = Server(("0.0.0.0", 0), app, header_timeout=2)
    server.start()
    try:
        status, _, body = http("GET", f"http://127.0.0.1:{server.port}/a%20b?q=1", headers={"X-A": "1"})
        assert (status, body) == (200, "/a b|1")
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.0 400")
    finally:
        server.shutdown()
        server.server_close()


def test_app_errors_become_log_records_not_stderr(capfd):
    import bottle

    app = bottle.Bottle(catchall=True)

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaput")

    records = []
    server = Server(("127.0.0.1", 0), app, header_timeout=2, log=lambda sev, msg, **f: records.append((sev, msg, f)))
    server.start()
    try:
        status, _, _ = http("GET", f"http://127.0.0.1:{server.port}/boom")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 500
    (severity, message, fields), = records
    assert severity == "ERROR" and "RuntimeError: kaput" in fields["output"]
    assert capfd.readouterr().err == ""
