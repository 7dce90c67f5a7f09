"""A runtime-only install: a fresh venv (no system site-packages) holding bottle and this project
installed with --no-deps serves /healthz from the committed artifacts and compiles nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.env import ROOT, clean_env
from tests.support.server import Orchestrator


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("runtime-only")
    venv = base / "venv"
    # no pip, no setuptools: the venv ends up holding bottle and the project only
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True,
                          timeout=120)
    if made.returncode != 0:
        pytest.skip(f"cannot create a venv here: {made.stderr.strip()[-300:]}")
    python = venv / "bin" / "python"
    # bottle: copied from this environment (one module, no dependencies); no index is consulted
    import bottle

    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    shutil.copy(bottle.__file__, site)
    # the project, from a copy of its sources, without dependencies and without an index
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    for package in ("oneiric", "runtime", "schemas", "compiler"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    if not (src / "README.md").exists():
        (src / "README.md").write_text("oneiric\n")
    # this environment's pip installs into the venv (`--python`); offline when the build backend is at hand,
    # else pip fetches only setuptools+wheel into an isolated build env, never into the venv
    import importlib.util

    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(src)]
    if importlib.util.find_spec("wheel") is not None:
        command += ["--no-index", "--no-build-isolation"]
    installed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if installed.returncode != 0 and ("No matching distribution" in installed.stderr
                                      or "Could not find a version" in installed.stderr):
        pytest.skip("cannot get the build backend (setuptools, wheel) to install the project: "
                    + installed.stderr.strip()[-300:])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def test_venv_holds_no_compiler_library(runtime_venv):
    probe = subprocess.run([str(runtime_venv), "-c", "import importlib.util as u; print([m for m in "
                            "('bottle', 'yaml', 'jsonschema', 'jinja2', 'tomlkit', 'tomli', 'cattrs', 'click', 'google', 'pip', 'setuptools') "
                            "if u.find_spec(m)])"], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "['bottle']"


def test_runtime_only_venv_serves_committed_artifacts(runtime_venv, tmp_path):
    project = tmp_path / "app"
    for name in ("config", "deployment", "build"):
        shutil.copytree(ROOT / name, project / name)
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_LOGGING__FORMAT="json")
    orch = Orchestrator(project, ["orchestrate", "--no-remote"], env, python=str(runtime_venv))
    try:
        orch.wait_ready()
        status, _, body = orch.get("/healthz")
        assert status == 200 and body["profile"] == "default"
        committed = json.loads((ROOT / "build" / "default_manifest.json").read_text())["digest"]
        assert body["manifest_digest"] == committed
        assert orch.terminate() == 0
    finally:
        orch.close()
    # the operator commands work there too, and the bundled demo needs no files at all
    info = run_cli("--profile", "serverless", "supervisor-info", "--json",
                   cwd=project, env=clean_env(), python=str(runtime_venv))
    assert info.returncode == 0 and json.loads(info.stdout)["inline_manifest_only"] is True
    demo = run_cli("--demo", "health", "--probe", "--json", cwd=tmp_path, env=clean_env(), python=str(runtime_venv))
    assert demo.returncode == 0 and json.loads(demo.stdout)["status"] == "healthy"


def test_runtime_only_venv_answers_compiler_verbs_with_one_line(runtime_venv, tmp_path):
    """No click here: a compiler verb, or --help, says in one line what to install (exit 2), no traceback."""
    for args in (["compile"], ["--profile", "serverless", "compile", "--check"], ["--help"], ["report"]):
        out = run_cli(*args, cwd=tmp_path, env=clean_env(), python=str(runtime_venv))
        assert out.returncode == 2, (args, out.stderr)
        assert out.stdout == ""
        lines = out.stderr.splitlines()
        assert len(lines) == 1, out.stderr
        assert "pip install oneiric" in lines[0] and "runtime only" in lines[0] and "Traceback" not in out.stderr
        assert "orchestrate" in lines[0]  # and it says what does work here
    verb = run_cli("compile", cwd=tmp_path, env=clean_env(), python=str(runtime_venv)).stderr
    assert "`oneiric compile` is a compiler command" in verb
