"""Fixtures for the hardening suite: the `reliability` recorder every test fills with its figure.

Each test says what it injects, what must hold and the figure it obtained; after the test the
record is written with its outcome (scripts/reliability.py renders them into docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.reliability import write_record
from tests.support.fixtures import orchestrators  # noqa: F401  (fixture of this folder)


class Figure:
    """What one hardening test injects, what must hold, and what it measured."""

    def __init__(self, area: str) -> None:
        self.area = area
        self.injects = ""
        self.must_hold = ""
        self.figure = ""
        self.numbers: dict[str, Any] = {}

    def set(self, *, injects: str | None = None, must_hold: str | None = None, figure: str | None = None,
            **numbers: Any) -> None:
        if injects is not None:
            self.injects = injects
        if must_hold is not None:
            self.must_hold = must_hold
        if figure is not None:
            self.figure = figure
        self.numbers.update(numbers)

    def count(self, name: str, by: int = 1) -> None:
        self.numbers[name] = self.numbers.get(name, 0) + by


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        item._hardening_outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome


@pytest.fixture
def reliability(request) -> Figure:
    """Fill with `.set(injects=..., must_hold=..., figure=..., **numbers)`; written after the test."""
    area = request.node.get_closest_marker("area")
    fig = Figure(area.args[0] if area else Path(request.node.fspath).stem.replace("test_", ""))
    yield fig
    if not fig.injects:
        return
    outcome = getattr(request.node, "_hardening_outcome", "unknown")
    test_id = "tests/hardening/" + request.node.nodeid.split("hardening/", 1)[-1]
    figure = fig.figure or ", ".join(f"{k} {v}" for k, v in fig.numbers.items())
    write_record(test_id, area=fig.area, injects=fig.injects, must_hold=fig.must_hold, figure=figure,
                 outcome=outcome, numbers=fig.numbers)


def pytest_configure(config):
    config.addinivalue_line("markers", "area(name): the docs/reliability.md section of a hardening test")


@pytest.fixture(scope="session")
def hard_build(tmp_path_factory) -> Path:
    """tests/hardening/project.py's project, compiled once per session."""
    from .project import make_project

    return make_project(tmp_path_factory.mktemp("hard") / "project")


@pytest.fixture
def hard_project(hard_build, tmp_path) -> Path:
    """A private copy of the compiled hardening project (its own cache dir)."""
    from tests.support.projects import clone

    return clone(hard_build, tmp_path / "project")
