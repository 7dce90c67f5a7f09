"""Load, small and bounded: bench/load.py itself (a real run of the script, as an operator starts it) with its
two phases at 8 clients; the full 80-client run is `bench/load.py` with its defaults."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.env import PYTHON, ROOT, clean_env

pytestmark = pytest.mark.area("load")


def test_load_and_sigterm_under_load_lose_nothing(reliability):
    run = subprocess.run([PYTHON, str(ROOT / "bench" / "load.py"), "--duration", "2", "--sigterm-duration", "3",
                          "--clients", "8", "--healthz-share", "0.25", "--json", "--no-record"],
                         cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=180)
    assert run.stdout.startswith("{"), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout)
    first, second = report["steady"], report["sigterm"]
    s = first["store"]
    assert first["server_exit"] == 0
    assert first["post"]["errors"] == 0 and first["healthz"]["errors"] == 0, first["codes"]
    assert s["accepted"] > 20 and s["lost"] == 0 and s["duplicated_node_executions"] == 0
    assert s["unanswered_rows"] == 0 and s["not_succeeded"] == 0

    before, after = second["before_restart"], second["after_redelivery"]
    assert second["server_exit"] == 0  # drained and exited cleanly under load
    assert before["accepted"] > 10 and before["lost"] == 0  # every 200 before the SIGTERM is stored complete
    assert after["lost"] == 0 and after["duplicated_node_executions"] == 0 and after["not_succeeded"] == 0
    assert set(second["redelivery_codes"]) == {"200"}, second["redelivery_codes"]
    assert report["ok"] and run.returncode == 0, run.stderr[-3000:]
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(second["codes"]["post"].items()))
    reliability.set(injects="8 clients (2 on /healthz) for 2 s against orchestrate, then 3 s with SIGTERM at 1.5 s, "
                            "restart, and redelivery of every request not answered 200",
                    must_hold="0 errors, 0 lost, 0 duplicated node executions; server exits 0 on SIGTERM; every "
                              "accepted run complete after redelivery",
                    figure=f"{first['post']['rps']:.0f} runs/s (p99 {first['post']['p99_ms']:.0f} ms), "
                           f"{first['healthz']['rps']:.0f} healthz/s, {s['accepted']} runs, 0 lost; SIGTERM: answers "
                           f"{codes}; {before['accepted']} accepted before, {second['redelivered']} redelivered, "
                           f"{after['accepted']} complete, 0 lost, 0 duplicated",
                    accepted=s["accepted"], sigterm_accepted=before["accepted"], redelivered=second["redelivered"])
