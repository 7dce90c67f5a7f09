"""Helpers for the secrets suite's end-to-end tests: subprocesses, environment, project set-up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PYTHON = sys.executable
ONEIRIC = str(Path(PYTHON).with_name("oneiric"))
#: the project the reference config names (config/serverless.toml [secrets] project_id)
REFERENCE_PROJECT = "oneiric-demo"
TASKS_QUEUE = "projects/oneiric-demo/locations/us-central1/queues/oneiric-workflows"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The current environment without ONEIRIC_*/PORT/Google variables, cloud-free, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("ONEIRIC_", "GOOGLE_", "GCE_", "CLOUDSDK_")) and k != "PORT"}
    env.update(NO_GCE_CHECK="true", GOOGLE_APPLICATION_CREDENTIALS="/nonexistent/oneiric-test-adc.json",
               CLOUDSDK_CONFIG=str(tmp), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def compile_project(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`oneiric compile --project-dir DIR`, as an operator types it."""
    result = run([ONEIRIC, "compile", "--project-dir", str(project)], project.parent, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def point_at_fakes(project: Path, sm_host: str, tasks_host: str) -> None:
    """Set `[secrets] emulator_host` (and the Cloud Tasks adapter's) in the project's serverless.toml."""
    import tomlkit

    path = project / "config" / "serverless.toml"
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    doc["secrets"]["emulator_host"] = sm_host
    doc["adapters"]["provider_settings"]["cloudtasks"]["emulator_host"] = tasks_host
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
