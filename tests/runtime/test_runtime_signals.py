"""SIGTERM: stop accepting (503 + Retry-After), finish in-flight work within the grace, final health, exit 0."""

from __future__ import annotations

import json
import signal
import socket
import time

from tests.support.env import clean_env, wait_until
from tests.support.server import http


def _start_slow_delivery(port: int, total: int = 40) -> socket.socket:
    """A POST /tasks/workflow whose body is still arriving: in flight inside the app."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /tasks/workflow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {total}\r\n\r\n".encode() + b'{"workflow": ')
    return sock


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_serverless_profile_sigterm_mid_request_finishes_it_then_exits_0(embedded_project, orchestrators):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_HTTP__SHUTDOWN_GRACE_SECONDS="5")
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    body = b'{"workflow": "ingest", "run_id": "r-1"}'
    sock = _start_slow_delivery(orch.port, len(body))
    time.sleep(0.3)  # the request is now inside the app, blocked reading its body
    orch.proc.send_signal(signal.SIGTERM)
    stopping = orch.wait_log("stopping: draining in-flight work")
    assert stopping["inflight"] == 1
    status, headers, state = orch.get("/healthz")
    assert (status, state["status"], headers["Retry-After"]) == (503, "stopping", "5")
    status, headers, _ = http("POST", orch.url + "/tasks/workflow", body=b"{}")
    assert status == 503 and headers["Retry-After"] == "5"
    assert orch.proc.poll() is None  # still waiting for the in-flight delivery
    sock.sendall(body[len(b'{"workflow": '):])
    reply = _read_response(sock)
    sock.close()
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.0 ") and int(status_line.split()[1]) < 500, reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])  # a complete JSON answer, not a reset
    assert orch.terminate(timeout=10) == 0
    assert orch.wait_log("stopped")["drained"] is True
    final = json.loads((embedded_project / ".oneiric_cache" / "runtime_health.json").read_text())
    assert final["activity_state"] == "stopped" and final["lifecycle_state"]["activity_state"] == "stopped"


def test_serverless_profile_sigterm_grace_expires_on_stalled_request(embedded_project, orchestrators):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_HTTP__SHUTDOWN_GRACE_SECONDS="0.5")
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    sock = _start_slow_delivery(orch.port)
    time.sleep(0.3)
    started = time.monotonic()
    assert orch.terminate(timeout=10) == 0
    assert time.monotonic() - started < 3
    assert orch.wait_log("shutdown grace expired with work in flight")["inflight"] == 1
    assert orch.wait_log("stopped")["drained"] is False
    final = json.loads((embedded_project / ".oneiric_cache" / "runtime_health.json").read_text())
    assert final["activity_state"] == "stopped"
    sock.close()


def test_sigint_stops_cleanly_too(embedded_project, orchestrators):
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"],
                         clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")).wait_ready()
    orch.proc.send_signal(signal.SIGINT)
    assert orch.proc.wait(10) == 0


def test_serverless_profile_no_http_still_supervises(embedded_project, orchestrators):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless", "--no-http"], env,
                         http_port=None)
    orch.wait_log("ready")
    assert not [r for r in orch.records if r["message"] == "listening"]
    health_file = embedded_project / ".oneiric_cache" / "runtime_health.json"
    first = json.loads(health_file.read_text())["written_at"]
    assert first
    wait_until(lambda: json.loads(health_file.read_text())["lifecycle_state"]["supervisor"]["last_update"]
               != first or None, timeout=3)  # ticks keep coming (poll 0.2 s)
    assert orch.terminate() == 0
    assert json.loads(health_file.read_text())["activity_state"] == "stopped"
