"""Fixtures for the compiler tests (the tools are in tests/support, the small project in inputs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compiler.inputs import BASE_MANIFEST, BASE_SETTINGS
from tests.support.projects import write_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", BASE_MANIFEST, BASE_SETTINGS)
