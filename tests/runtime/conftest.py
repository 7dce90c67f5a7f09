"""Fixtures for the runtime suite: compiled reference projects, live orchestrators, the cloud fakes.

Everything runs as real subprocesses (`python -m oneiric.cli ...`) on 127.0.0.1 with a real HTTP client;
the tools are in tests/support.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.artifacts import build_artifacts
from tests.support.cli import compile_project
from tests.support.fixtures import cloud_fakes, orchestrators  # noqa: F401  (fixtures of this folder)
from tests.support.projects import clone, copy_reference, make_embedded_project


@pytest.fixture
def hand_built(tmp_path):
    """Artifacts the compiler would refuse to write (tests.support.artifacts.build_artifacts):
    `hand_built(profile="serverless", settings=..., selections=..., manifest_digest=...)` -> project dir."""

    def make(**kwargs) -> Path:
        project = tmp_path / "hand-built"
        build_artifacts(project, **kwargs)
        return project

    return make


@pytest.fixture(scope="session")
def reference_build(tmp_path_factory) -> Path:
    """The reference project (config/, deployment/) copied and compiled once per session."""
    project = copy_reference(tmp_path_factory.mktemp("reference") / "project")
    compile_project(project)
    return project


@pytest.fixture
def ref_project(reference_build, tmp_path) -> Path:
    """A private copy of the compiled reference project (with its own cache dir)."""
    return clone(reference_build, tmp_path / "project")


@pytest.fixture(scope="session")
def embedded_build(tmp_path_factory) -> Path:
    """Reference manifests + serverless settings on embedded defaults (env secrets, local queue), compiled."""
    return make_embedded_project(tmp_path_factory.mktemp("embedded") / "project")


@pytest.fixture
def embedded_project(embedded_build, tmp_path) -> Path:
    return clone(embedded_build, tmp_path / "embedded")
