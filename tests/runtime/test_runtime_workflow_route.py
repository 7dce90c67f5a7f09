"""The runtime's hooks for workflows: the `workflow` verb and POST /tasks/workflow reach runtime.workflows."""

from __future__ import annotations

import json

from tests.support.cli import run_cli
from tests.support.env import clean_env, wait_until
from tests.support.server import http


def test_enqueue_via_cli_is_delivered_through_the_server(ref_project, orchestrators):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    orch = orchestrators(ref_project, ["orchestrate", "--no-remote", "--no-watch"], env).wait_ready()
    queued = run_cli("workflow", "enqueue", "ingest", "--run-id", "r-route", "--json", cwd=ref_project, env=env)
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["queue_provider"] == "local"
    delivered = orch.wait_log("POST /tasks/workflow 200", timeout=15)
    assert delivered["httpRequest"]["requestMethod"] == "POST"

    def succeeded():
        status = run_cli("workflow", "status", "r-route", "--json", cwd=ref_project, env=env)
        return status.returncode == 0 and json.loads(status.stdout)["status"] == "succeeded"

    wait_until(succeeded, timeout=10, interval=0.2)
    # unsigned deliveries are refused by the endpoint, not by the router
    status, _, body = http("POST", orch.url + "/tasks/workflow", body=b'{"workflow": "ingest"}',
                           headers={"Content-Type": "application/json"})
    assert status == 401, body
    assert orch.terminate() == 0


def _call(app, method, path, body=b""):
    import io

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "0", "SERVER_PROTOCOL": "HTTP/1.0", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
               "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
               "wsgi.multiprocess": False, "wsgi.run_once": False}
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    data = b"".join(app(environ, start_response))
    return int(seen["status"].split()[0]), seen["headers"], json.loads(data)


def test_without_the_workflows_package_delivery_answers_501(tmp_path, monkeypatch):
    import io
    import sys

    from tests.support.artifacts import build_artifacts
    from runtime.activate import close
    from runtime.app import App
    from runtime.start import RuntimeOptions, build_runtime

    build_artifacts(tmp_path)
    rt = build_runtime(RuntimeOptions(profile="serverless", cwd=tmp_path, environ={}, log_stream=io.StringIO()))
    monkeypatch.setitem(sys.modules, "runtime.workflows.endpoint", None)  # as if the package were absent
    app = App(rt)
    status, _, body = _call(app, "POST", "/tasks/workflow", b'{"workflow": "x"}')
    assert status == 501 and body["error"] == "not_implemented" and "not installed" in body["detail"]
    assert _call(app, "GET", "/healthz")[0] == 200
    status, headers, body = _call(app, "POST", "/healthz")
    assert (status, headers["Allow"], body["error"]) == (405, "GET, HEAD", "method_not_allowed")
    rt.lifecycle = "stopping"
    status, headers, body = _call(app, "POST", "/tasks/workflow", b"{}")
    assert (status, headers["Retry-After"], body["error"]) == (503, "5", "stopping")
    close(rt)


def test_without_the_workflows_package_the_verb_says_so(monkeypatch, capsys):
    import sys

    from runtime.cli import main

    monkeypatch.setitem(sys.modules, "runtime.workflows.cli", None)
    assert main(["workflow", "list"]) == 1
    assert "the workflow command is not available in this build" in capsys.readouterr().err
