"""SIGTERM with a node still running: shutdown is bounded by shutdown_grace_seconds, the node is
abandoned and its run released (status `interrupted`) so any instance resumes it at once."""

from __future__ import annotations

import signal
import sqlite3
import threading

from tests.support.env import wait_until

from .project import effects, env_for, make_project, post, start


def test_sigterm_is_bounded_by_the_grace_period_and_releases_the_run(tmp_path):
    root = make_project(tmp_path / "p")  # shutdown_grace_seconds = 3
    inst = start(root, env_for(root))
    try:
        fx = tmp_path / "fx.jsonl"
        msg = {"workflow": "slow3", "run_id": "term-1", "context": {"sleep_seconds": 60, "effects": str(fx)}}
        threading.Thread(target=post, args=(inst.url, msg), kwargs={"timeout": 90}, daemon=True).start()
        wait_until(lambda: _status(root) == "running", timeout=15)
        inst.proc.send_signal(signal.SIGTERM)
        assert inst.proc.wait(30) == 0
        record = next(r for r in inst.records if r.get("message", "").startswith("shutdown grace expired: runs"))
        assert record["runs"] == ["term-1"]
        assert _status(root) == "interrupted"  # any instance may resume it at once
        assert effects(fx) == []  # node a was abandoned, not waited for
    finally:
        inst.close()


def _status(root) -> str | None:
    path = root / ".oneiric_cache" / "workflow_runs.sqlite"
    if not path.exists():
        return None
    try:
        with sqlite3.connect(path, timeout=10) as db:
            row = db.execute("SELECT status FROM runs WHERE run_id='term-1'").fetchone()
    except sqlite3.OperationalError:  # the server created the file but not yet its tables
        return None
    return row[0] if row else None
