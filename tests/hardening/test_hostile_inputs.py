"""Issue 11's hostile inputs, each through a real HTTP client against a running `orchestrate` or the real CLI:
overflowing numbers and lone surrogates, non-UTF-8 header bytes, run ids with a trailing newline, the CLI's
own validation and its corrupt runs database, header and connection caps, unusable secrets."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support.env import clean_env, wait_until
from tests.support.procs import assert_clean_failure, oneiric
from tests.support.server import Orchestrator

from .project import HMAC_KEY, SETTINGS, env_for, make_project, post, query, start
from .test_security import _raw_request

pytestmark = pytest.mark.area("security")


def _start_with(root: Path, **env: str):
    """`orchestrate` with the project's environment, `env` replacing any of it (the HMAC key too)."""
    return Orchestrator(root, ["orchestrate", "--no-remote"], {**env_for(root), **env}).wait_ready(30)


def _runs(root: Path) -> set[str]:
    return {r for (r,) in query(root, "SELECT run_id FROM runs")}


def _wf(root: Path, *args: str, **env: str):
    return oneiric("workflow", *args, cwd=root, env=env_for(root, **env))


# ---------------------------------------------------------------- request bodies and headers

def test_overflowing_numbers_lone_surrogates_and_newline_run_ids_are_400(hard_project, orchestrators, reliability):
    orch = start(hard_project)
    orchestrators.append(orch)
    cases = {
        "1e400 in the context": b'{"workflow": "noop3", "run_id": "big-1", "context": {"x": 1e400}}',
        "-1e400 in metadata": b'{"workflow": "noop3", "run_id": "big-2", "metadata": {"x": -1e400}}',
        "lone surrogate value": b'{"workflow": "noop3", "run_id": "sur-1", "context": {"s": "\\ud800"}}',
        "lone surrogate key": b'{"workflow": "noop3", "run_id": "sur-2", "context": {"\\udfff": 1}}',
        "run_id with a trailing newline": b'{"workflow": "noop3", "run_id": "abc\\n"}',
        "run_id ../../etc": b'{"workflow": "noop3", "run_id": "../../etc"}',
    }
    answers = {}
    for name, raw in cases.items():
        code, body = post(orch.url, raw=raw)
        answers[name] = code
        assert code == 400 and body["error"] == "bad_request", (name, code, body)
    assert _runs(hard_project) == set()
    code, body = post(orch.url, {"workflow": "noop3", "run_id": "abc"})
    assert code == 200, body
    assert orch.terminate() == 0
    assert not [r for r in orch.records if r.get("http_status") == 500]
    reliability.set(injects="signed bodies: " + "; ".join(cases), must_hold="400 bad_request each, nothing stored",
                    figure=f"{sum(c == 400 for c in answers.values())} of {len(cases)} answered 400")


def test_non_utf8_header_bytes_are_decoded_leniently(hard_project, orchestrators, reliability):
    orch = start(hard_project)
    orchestrators.append(orch)
    # http.client sends str header values as latin-1: "caf\xe9" goes out as the single byte 0xE9
    code, body = post(orch.url, {"workflow": "noop3", "run_id": "hdr-1"},
                      headers={"X-CloudTasks-TaskName": "caf\xe9", "User-Agent": "\xff\xfe"})
    assert code == 200, body
    line = orch.wait_log("workflow delivery")
    assert line["task"] == "caf\ufffd"
    assert orch.terminate() == 0
    reliability.set(injects="X-CloudTasks-TaskName: caf\\xe9 and a User-Agent of 0xFF 0xFE on a signed delivery",
                    must_hold="answered (200), the bytes logged as U+FFFD, no 500", figure=f"status {code}")


def test_total_header_bytes_and_open_connections_are_capped(hard_project, orchestrators, reliability):
    orch = start(hard_project, ONEIRIC_HTTP__MAX_CONNECTIONS="4", ONEIRIC_HTTP__MAX_HEADER_BYTES="8192",
                 ONEIRIC_HTTP__HEADER_TIMEOUT_SECONDS="20")
    orchestrators.append(orch)
    # 20 header lines of 1 KiB: each line is fine, the head as a whole is over 8 KiB
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1024)
                                                              for i in range(20)) + b"\r\n"
    assert _raw_request(orch.port, head).startswith(b"HTTP/1.0 431")
    held = []
    for _ in range(4):  # four slow clients hold every slot (a request line, never the end of the head)
        sock = socket.create_connection(("127.0.0.1", orch.port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        held.append(sock)
    try:
        reply = wait_until(lambda: (r := _raw_request(orch.port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.0 503") and r, timeout=10)
        assert b"Retry-After: 1" in reply and b"overloaded" in reply
    finally:
        for sock in held:
            sock.close()
    healthy = wait_until(lambda: _raw_request(orch.port, b"GET /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 200"),
                       timeout=10)
    assert healthy
    assert orch.terminate() == 0
    reliability.set(injects="a 21 KiB head against max_header_bytes 8192; 4 held connections against "
                            "max_connections 4, then a fifth", must_hold="431; 503 + Retry-After past the cap; "
                    "served again once they close", figure="431, 503 with Retry-After, then 200")


# ---------------------------------------------------------------- the CLI applies the endpoint's validation

@pytest.mark.parametrize("args, says", [
    (["enqueue", "noop3", "--run-id", "a b"], "--run-id must match"),
    (["enqueue", "noop3", "--run-id", "x" * 300], "--run-id must match"),
    (["enqueue", "noop3", "--run-id", "../../etc"], "--run-id must match"),
    (["enqueue", "noop3", "--run-id", "abc\n"], "--run-id must match"),
    (["enqueue", "noop3", "--context", '{"x": 1e400}'], "out of range"),
    (["run", "noop3", "--context", '{"s": "\\ud800"}'], "lone surrogate"),
    (["run", "noop3", "--context", "[1]"], "must be a JSON object"),
], ids=["space", "300 chars", "path", "newline", "1e400", "surrogate", "not an object"])
def test_workflow_cli_refuses_what_the_endpoint_refuses(hard_project, args, says):
    result = _wf(hard_project, *args)
    assert_clean_failure(result, exit_code=2)
    assert says in result.stderr.splitlines()[0], result.stderr
    assert _runs(hard_project) == set()


def test_workflow_cli_on_a_corrupt_runs_database_is_one_line(hard_project):
    db = hard_project / ".oneiric_cache" / "workflow_runs.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    for args in (["list"], ["status", "r1"], ["run", "noop3"], ["enqueue", "noop3"]):
        result = _wf(hard_project, *args)
        assert_clean_failure(result, exit_code=1)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "workflow_runs.sqlite" in errors[0], (args, result.stderr)


# ---------------------------------------------------------------- secrets the runtime needs

@pytest.mark.parametrize("state", ["empty", "missing"])
def test_empty_or_missing_hmac_key_is_unhealthy_and_healthz_503_naming_it(hard_project, orchestrators, reliability,
                                                                           state):
    env = {**env_for(hard_project), "ONEIRIC_SECRET_TASKS_HMAC_KEY": ""}
    if state == "missing":
        del env["ONEIRIC_SECRET_TASKS_HMAC_KEY"]
    probe = oneiric("health", "--probe", "--json", cwd=hard_project, env=env)
    report = json.loads(probe.stdout)
    assert probe.returncode == 1 and report["status"] == "unhealthy"
    assert report["secrets"]["status"] in ("error", "missing") and "tasks-hmac-key" in report["secrets"]["detail"]
    orch = Orchestrator(hard_project, ["orchestrate", "--no-remote"], env).wait_ready(30)
    orchestrators.append(orch)
    code, _, body = orch.get("/healthz")
    assert code == 503 and body["secrets"] == ["tasks-hmac-key"], body
    code, body = post(orch.url, {"workflow": "noop3", "run_id": "e-1"}, key="")
    assert code == 503 and body["error"] == "auth_unavailable", body
    assert orch.terminate() == 0
    reliability.set(injects=f"ONEIRIC_SECRET_TASKS_HMAC_KEY {state}",
                    must_hold="health unhealthy (exit 1), /healthz 503 naming tasks-hmac-key, deliveries 503",
                    figure="health exit 1; /healthz 503; delivery 503")


def test_a_secret_created_after_start_turns_healthz_ready_without_a_restart(orchestrators, tmp_path):
    """Secrets not ready are re-checked in the background (activate.RECHECK_SECONDS): creating the missing one
    is enough, as when an operator adds a Secret Manager version after deploying."""
    assert 'provider = "env"' in SETTINGS
    root = make_project(tmp_path / "late", SETTINGS.replace('provider = "env"', 'provider = "file"\ndirectory = "secrets"'))
    (root / "secrets").mkdir()
    env = {k: v for k, v in env_for(root).items() if k != "ONEIRIC_SECRET_TASKS_HMAC_KEY"}
    orch = Orchestrator(root, ["orchestrate", "--no-remote"], env).wait_ready(30)
    orchestrators.append(orch)
    code, _, body = orch.get("/healthz")
    assert code == 503 and body["secrets"] == ["tasks-hmac-key"], body
    (root / "secrets" / "tasks-hmac-key").write_text(HMAC_KEY)
    wait_until(lambda: orch.get("/healthz")[0] == 200, timeout=20)
    code, body = post(orch.url, {"workflow": "noop3", "run_id": "late-1"})
    assert code == 200 and body["status"] == "succeeded", body
    assert orch.terminate() == 0


def test_non_utf8_secret_is_named_never_shown(hard_project, orchestrators, reliability):
    bad = "k\udce9y-" + HMAC_KEY  # what os.environ holds for the byte 0xE9: a lone surrogate
    orch = _start_with(hard_project, ONEIRIC_SECRET_TASKS_HMAC_KEY=bad)
    orchestrators.append(orch)
    code, _, body = orch.get("/healthz")
    assert code == 503 and body["secrets"] == ["tasks-hmac-key"], body
    code, body = post(orch.url, {"workflow": "noop3", "run_id": "u-1"})
    assert code == 503 and body["error"] == "auth_unavailable", body
    assert "UTF-8" in body["detail"]
    assert orch.terminate() == 0
    said = "\n".join(orch.lines) + orch.stderr + json.dumps(body)
    for leak in ("\\udce9", "\udce9", "\xe9", "position 1", HMAC_KEY, "k\\"):
        assert leak not in said, leak
    reliability.set(injects="ONEIRIC_SECRET_TASKS_HMAC_KEY holding the byte 0xE9",
                    must_hold="/healthz 503 naming the secret; deliveries 503 (not 500); no character or position "
                              "of the value in any log line or answer", figure="503/503, nothing leaked")


# ---------------------------------------------------------------- values that compiled but broke the runtime

@pytest.mark.parametrize("setting, value, says", [
    ("header_timeout_seconds = 1", "header_timeout_seconds = 1e300", "http.header_timeout_seconds"),
    ("header_timeout_seconds = 1", "header_timeout_seconds = 1e-9", "http.header_timeout_seconds"),
    ("poll_interval = 0.05", "poll_interval = 1e10", "runtime.supervisor.poll_interval"),
    ("max_body_bytes = 65536", "max_body_bytes = 0", "http.max_body_bytes"),
], ids=["timeout 1e300", "timeout 1e-9", "poll 1e10", "body 0"])
def test_out_of_range_settings_fail_at_compile_time_with_a_position(tmp_path, setting, value, says):
    from .project import MANIFEST, SETTINGS

    root = tmp_path / "p"
    (root / "config").mkdir(parents=True)
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / "config" / "hard.toml").write_text(SETTINGS.replace(setting, value))
    (root / "deployment" / "manifests" / "hard.yaml").write_text(MANIFEST)
    result = oneiric("compile", "--project-dir", str(root), cwd=root, env=clean_env())
    assert_clean_failure(result, exit_code=1)
    line = next(line for line in result.error_lines if f"$.{says}:" in line)
    assert line.startswith("config/hard.toml:"), line


def test_retry_delays_out_of_range_fail_at_compile_time_with_a_position(tmp_path):
    from .project import MANIFEST, SETTINGS

    root = tmp_path / "p"
    (root / "config").mkdir(parents=True)
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / "config" / "hard.toml").write_text(SETTINGS)
    manifest = MANIFEST.replace("- {id: n1, task: noop}",
                                "- {id: n1, task: noop, retry_policy: {attempts: 3, base_delay: 1e10, max_delay: 1e10}}")
    (root / "deployment" / "manifests" / "hard.yaml").write_text(manifest)
    result = oneiric("compile", "--project-dir", str(root), cwd=root, env=clean_env())
    assert_clean_failure(result, exit_code=1)
    lines = [line for line in result.error_lines if "retry_policy" in line]
    assert len(lines) == 2 and all(line.startswith("deployment/manifests/hard.yaml:") for line in lines), lines
