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

import shutil  # noqa: E402

from sm_helpers import (  # noqa: E402
    REFERENCE_PROJECT, TASKS_QUEUE, clean_env, compile_project, free_port, point_at_fakes)


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
