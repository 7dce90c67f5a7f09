"""Fixtures for the secrets suite: a gRPC Secret Manager fake on 127.0.0.1 and a cloud-free environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.secretmanager import FakeSecretManager
from tests.support.cli import compile_project
from tests.support.env import free_port
from tests.support.projects import copy_reference

from .sm_helpers import REFERENCE_PROJECT, TASKS_QUEUE, gcloud_env, point_at_fakes

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
    project = copy_reference(tmp_path_factory.mktemp("secrets-ref") / "project")
    point_at_fakes(project, cloud["sm"].host, cloud["tasks_host"])
    compile_project(project, gcloud_env(tmp_path_factory.mktemp("gcloud")))
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
    from tests.support.projects import clone

    return clone(reference_compiled, tmp_path / "project")
