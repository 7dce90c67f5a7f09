"""Process helpers for the hardening suite: run a command while sampling its peak RSS (VmHWM), ports, waits.

Peak memory is read from /proc/PID/status (VmHWM) every few milliseconds while the child runs:
`ru_maxrss` of a child is polluted by the parent's size at exec (see FIELD-NOTES).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
#: `path:line:col: error: ...` as the text reporter prints it
ERROR_LINE = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): error: ")


class Measured:
    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float, peak_rss_mib: float) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.seconds, self.peak_rss_mib = seconds, peak_rss_mib

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if ERROR_LINE.match(line)]


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_measured(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
                 timeout: float = 60.0) -> Measured:
    """Run argv to completion; wall time and the peak VmHWM seen (sampled every 2 ms)."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            value = _vm_hwm_kib(proc.pid)
            if value is not None:
                peak[0] = max(peak[0], value)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{argv} did not finish within {timeout}s")
    finally:
        done.set()
        sampler.join(1)
    seconds = time.perf_counter() - started
    return Measured(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds,
                    peak[0] / 1024)


def cli_env(**extra: str) -> dict[str, str]:
    """The current environment, cloud-free, without ONEIRIC_* and PORT."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("ONEIRIC_", "GOOGLE_", "GCE_")) and k != "PORT"}
    env.update(NO_GCE_CHECK="true", GOOGLE_APPLICATION_CREDENTIALS="/nonexistent/oneiric-test-adc.json",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def oneiric(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60.0) -> Measured:
    return run_measured([PYTHON, "-m", "oneiric.cli", *args], cwd=cwd, env=env or cli_env(), timeout=timeout)


def assert_clean_failure(result: Measured, *, exit_code: int = 1) -> None:
    """Exit code as expected, no traceback, and every error line located."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert result.returncode == exit_code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])


def wait_for(pred: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
