"""The runtime's hooks for workflows: the `workflow` verb and POST /tasks/workflow reach runtime.workflows."""

from __future__ import annotations

import json

from rt_helpers import clean_env, http, run_cli, wait_until


def test_enqueue_via_cli_is_delivered_through_the_server(ref_project, orchestrators):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    orch = orchestrators(ref_project, ["orchestrate", "--no-remote", "--no-watch"], env).wait_ready()
    queued = run_cli(["workflow", "enqueue", "ingest", "--run-id", "r-route", "--json"], ref_project, env)
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["queue_provider"] == "local"
    delivered = orch.wait_log("POST /tasks/workflow 200", timeout=15)
    assert delivered["httpRequest"]["requestMethod"] == "POST"

    def succeeded():
        status = run_cli(["workflow", "status", "r-route", "--json"], ref_project, env)
        return status.returncode == 0 and json.loads(status.stdout)["status"] == "succeeded"

    wait_until(succeeded, timeout=10, interval=0.2)
    # unsigned deliveries are refused by the endpoint, not by the router
    status, _, body = http("POST", orch.url + "/tasks/workflow", body=b'{"workflow": "ingest"}',
                           headers={"Content-Type": "application/json"})
    assert status == 401, body
    assert orch.terminate() == 0
