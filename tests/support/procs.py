"""Run a command while sampling its peak RSS (VmHWM); the CLI measured that way; a clean failure's shape.

Peak memory is read from /proc/PID/status (VmHWM) every few milliseconds while the child runs:
`ru_maxrss` of a child is polluted by the parent's size at exec (see FIELD-NOTES).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Sequence

from tests.support.cli import cli_in_process
from tests.support.env import PYTHON, clean_env

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


def oneiric(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60.0) -> Measured:
    return run_measured([PYTHON, "-m", "oneiric.cli", *args], cwd=cwd, env=env or clean_env(), timeout=timeout)


def assert_clean_failure(result: Measured, *, exit_code: int = 1) -> None:
    """Exit code as expected, no traceback, and every error line located."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert result.returncode == exit_code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])


def refused_compile(project: Path, *, real_cli: bool) -> tuple[list[str], str]:
    """`oneiric compile` of `project`, which must refuse cleanly (exit 1, no traceback): (its located error
    lines, its stderr). `real_cli` runs the subprocess; otherwise the same command runs in process."""
    if real_cli:
        result = oneiric("compile", "--project-dir", str(project), cwd=project)
        assert_clean_failure(result)
        return result.error_lines, result.stderr
    done = cli_in_process("compile", "--project-dir", str(project), cwd=project)
    assert done.returncode == 1 and "Traceback" not in done.stderr, (done.returncode, done.stdout, done.stderr)
    return [line for line in done.stderr.splitlines() if ERROR_LINE.match(line)], done.stderr
