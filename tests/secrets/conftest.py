"""Fixtures for the secrets suite: a gRPC Secret Manager fake on 127.0.0.1 and a cloud-free environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.fakes` lives beside the suites, not in the installed package
    sys.path.insert(0, str(ROOT))

from tests.fakes.secretmanager import FakeSecretManager  # noqa: E402

PROJECT = "demo-project"


@pytest.fixture(autouse=True)
def no_cloud(monkeypatch, tmp_path_factory):
    """Never let google-auth find real credentials or probe the metadata server."""
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # lowercase: the only spelling google-auth honours
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/oneiric-test-adc.json")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud-config")))
    monkeypatch.delenv("GCE_METADATA_HOST", raising=False)
    monkeypatch.delenv("GCE_METADATA_IP", raising=False)


@pytest.fixture
def fake_sm():
    """A started Secret Manager fake serving project `demo-project`; stopped after the test."""
    with FakeSecretManager(PROJECT) as fake:
        yield fake


# ---------------------------------------------------------------------- end to end (real subprocesses)

import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402

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


@pytest.fixture(scope="session")
def cloud():
    """One Secret Manager fake (project oneiric-demo) and one Cloud Tasks emulator holding the reference queue."""
    from gcloud_tasks_emulator.server import create_server

    sm = FakeSecretManager(REFERENCE_PROJECT).start()
    port = free_port()
    tasks = create_server("127.0.0.1", port, target_host="127.0.0.1", target_port=free_port(),
                          default_queue_names=[TASKS_QUEUE], max_retries=1)
    tasks.start()
    try:
        yield {"sm": sm, "tasks_host": f"127.0.0.1:{port}"}
    finally:
        tasks.stop()
        sm.stop()


@pytest.fixture(scope="session")
def reference_compiled(cloud, tmp_path_factory) -> Path:
    """The reference project (config/, deployment/) copied, pointed at the fakes, compiled once."""
    project = tmp_path_factory.mktemp("secrets-ref") / "project"
    project.mkdir()
    for name in ("config", "deployment"):
        shutil.copytree(ROOT / name, project / name)
    point_at_fakes(project, cloud["sm"].host, cloud["tasks_host"])
    compile_project(project, clean_env(tmp_path_factory.mktemp("gcloud")))
    return project


@pytest.fixture
def sm(cloud):
    """The shared fake, emptied for this test."""
    cloud["sm"].reset()
    yield cloud["sm"]
    cloud["sm"].reset()


@pytest.fixture
def ref_project(reference_compiled, sm, tmp_path) -> Path:
    """A private copy of the compiled reference project."""
    project = tmp_path / "project"
    shutil.copytree(reference_compiled, project, ignore=shutil.ignore_patterns(".oneiric_cache"))
    return project
