"""A cloud-free, override-free environment for subprocesses, free ports and bounded waits."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
#: The console script of this venv (what an operator types).
ONEIRIC = str(Path(PYTHON).with_name("oneiric"))
#: Bytecode for the subprocesses, outside the work tree: with PYTHONDONTWRITEBYTECODE every child
#: would recompile the runtime on each start.
PYCACHE = Path(tempfile.gettempdir()) / f"oneiric-tests-pycache-{os.getuid()}"

_DROPPED_PREFIXES = ("ONEIRIC_", "GOOGLE_", "GCE_", "CLOUDSDK_", "PYTEST_")
_DROPPED = ("PORT", "PYTHONDONTWRITEBYTECODE", "SOURCE_DATE_EPOCH")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without ONEIRIC_* overrides, Google credentials, PORT or SOURCE_DATE_EPOCH; google-auth
    kept off the metadata server and away from real credentials; then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    env.update({
        "NO_GCE_CHECK": "true",
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/oneiric-test-adc.json",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
    })
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """`check()`'s first truthy value, polled every `interval` s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
