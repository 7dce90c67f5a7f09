"""pytest plugin (entry point `pytest11: oneiric`): compile a project in a test and review the artifacts.

The `oneiric_compile` fixture compiles a project directory into a temporary
directory and returns the artifacts, parsed, by file name, ready for syrupy::

    def test_staging_review(oneiric_compile, snapshot):
        artifacts = oneiric_compile("path/to/project", profiles=["staging"])
        profile = artifacts["staging_profile.json"]
        assert profile["profile"]["toggles"]["watchers_enabled"] is False
        assert profile["settings"] == snapshot(name="settings")
        assert profile["provenance"] == snapshot(name="provenance")

A compile error fails the test with every diagnostic (file:line:col). Loading
the plugin imports nothing but pytest: the compiler is imported when the
fixture is first called. See examples/config-review/ for a complete project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

#: The fixture's callable: (project_dir, profiles=None, out_dir=None) -> {file name: parsed artifact}.
CompileFn = Callable[..., dict[str, Any]]


def compile_project(project_dir: str | Path, out_dir: Path, profiles: Iterable[str] | None = None) -> dict[str, Any]:
    """Compile `project_dir` into `out_dir` (written atomically) and return each artifact parsed, by file name."""
    from compiler.build import build_project
    from compiler.emit import write_all
    from compiler.report import report_text

    root = Path(project_dir)
    if not root.is_dir():
        pytest.fail(f"oneiric_compile: project dir {root} does not exist", pytrace=False)
    result = build_project(root, Path(out_dir), sorted(profiles) if profiles else None)
    if not result.ok:
        pytest.fail(f"oneiric compile of {root} failed with {len(result.diagnostics)} error(s):\n"
                    + report_text(result.diagnostics), pytrace=False)
    write_all(result.files)
    return {path.name: _parse(path, data) for path, data in sorted(result.files.items())}


def _parse(path: Path, data: bytes) -> Any:
    """JSON artifacts as objects; the Cloud Run service and queue YAML (profiles with [deploy]) as well."""
    import json

    if path.suffix == ".yaml":
        import yaml

        return yaml.safe_load(data)
    return json.loads(data)


@pytest.fixture
def oneiric_compile(tmp_path_factory: pytest.TempPathFactory) -> CompileFn:
    """Call it with a project dir (and optionally `profiles=[...]`, `out_dir=...`); get the artifacts by name."""

    def run(project_dir: str | Path, profiles: Iterable[str] | None = None,
            out_dir: str | Path | None = None) -> dict[str, Any]:
        target = Path(out_dir) if out_dir is not None else tmp_path_factory.mktemp("oneiric-build")
        return compile_project(project_dir, target, profiles)

    return run
