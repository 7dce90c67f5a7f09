"""The health file (runtime/health.py), other processes (runtime/process.py) and logs (runtime/logs.py)."""

from __future__ import annotations

import io
import json
import os
import threading

from runtime.health import read_file, write_file
from runtime.logs import Logger, trace_fields


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
