"""Fixtures for the runtime suite: compiled reference projects, live orchestrators (helpers in rt_helpers.py).

Everything runs as real subprocesses (`python -m oneiric.cli ...`) on 127.0.0.1 with a real HTTP client.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from rt_helpers import (ROOT, Orchestrator, build_artifacts, compile_project, free_port,  # noqa: E402
                        make_embedded_project)


@pytest.fixture
def orchestrators():
    """`start(cwd, args, env)` starts an orchestrator; every one still alive is killed after the test."""
    started: list[Orchestrator] = []

    def start(cwd: Path, args=(), env=None, **kw) -> Orchestrator:
        orch = Orchestrator(cwd, list(args), env, **kw)
        started.append(orch)
        return orch

    yield start
    for orch in started:
        orch.close()


@pytest.fixture
def hand_built(tmp_path):
    """Hand-built artifacts (rt_helpers.build_artifacts) for what the compiler would refuse to write:
    `hand_built(profile="serverless", settings=..., selections=..., manifest_digest=...)` -> project dir."""

    def make(**kwargs) -> Path:
        project = tmp_path / "hand-built"
        build_artifacts(project, **kwargs)
        return project

    return make


@pytest.fixture(scope="session")
def reference_build(tmp_path_factory) -> Path:
    """The reference project (config/, deployment/) copied and compiled once per session."""
    project = tmp_path_factory.mktemp("reference") / "project"
    project.mkdir()
    for name in ("config", "deployment"):
        shutil.copytree(ROOT / name, project / name)
    compile_project(project)
    return project


@pytest.fixture
def ref_project(reference_build, tmp_path) -> Path:
    """A private copy of the compiled reference project (with its own cache dir)."""
    project = tmp_path / "project"
    shutil.copytree(reference_build, project, ignore=shutil.ignore_patterns(".oneiric_cache"))
    return project


@pytest.fixture(scope="session")
def embedded_build(tmp_path_factory) -> Path:
    """Reference manifests + serverless settings on embedded defaults (env secrets, local queue), compiled."""
    return make_embedded_project(tmp_path_factory.mktemp("embedded") / "project")


@pytest.fixture
def embedded_project(embedded_build, tmp_path) -> Path:
    project = tmp_path / "embedded"
    shutil.copytree(embedded_build, project, ignore=shutil.ignore_patterns(".oneiric_cache"))
    return project


@pytest.fixture(scope="session")
def cloud_fakes():
    """Secret Manager fake holding the reference's secret, and a Cloud Tasks emulator with its queue."""
    from gcloud_tasks_emulator.server import create_server

    from tests.fakes.secretmanager import FakeSecretManager

    sm = FakeSecretManager("oneiric-demo").start()
    sm.put("pgvector-dsn", "postgresql://vectors@db.internal:5432/embeddings")
    port = free_port()
    tasks = create_server("127.0.0.1", port, target_host="127.0.0.1", target_port=free_port(),
                          default_queue_names=["projects/oneiric-demo/locations/us-central1/queues/oneiric-workflows"],
                          max_retries=1)
    tasks.start()
    yield {"ONEIRIC_SECRETS__EMULATOR_HOST": sm.host,
           "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__EMULATOR_HOST": f"127.0.0.1:{port}"}
    tasks.stop()
    sm.stop()
