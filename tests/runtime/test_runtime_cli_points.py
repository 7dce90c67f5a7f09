"""The CLI as a new user meets it (issue 14): every verb in --help, the project's own packages importable
by the runtime, the queue's retry log naming the cause, a queued run's status, the health path shared by
orchestrate and activity, and the packaging bits (build/ untouched by setuptools, uv's dev group)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from runtime.cli import VERBS
from tests.support.cli import run_cli
from tests.support.env import ONEIRIC, ROOT, clean_env, wait_until

MANIFEST = """\
source: mysvc
entries:
  - {domain: task, key: hello, provider: mysvc, factory: "mysvc.tasks:hello"}
  - domain: workflow
    key: greet
    provider: dag
    factory: runtime.workflows.engine:Engine
    dag:
      nodes:
        - {id: hello, task: hello, payload: {name: world}}
"""
SETTINGS = """\
[profile]
name = "default"

[secrets]
provider = "env"

[adapters.selections]
queue = "local"

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"

[security]
factory_allowlist = ["mysvc"]

[runtime.supervisor]
poll_interval = 0.2

[logging]
format = "json"
"""
TASKS = '''\
def hello(payload, context, inputs):
    return {"greeting": "hello " + payload["name"]}
'''


def _user_project(root: Path) -> Path:
    """A project whose task lives in its own package `mysvc`, compiled."""
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / "deployment" / "manifests" / "app.yaml").write_text(MANIFEST)
    (root / "config").mkdir()
    (root / "config" / "default.toml").write_text(SETTINGS)
    (root / "mysvc").mkdir()
    (root / "mysvc" / "__init__.py").write_text("")
    (root / "mysvc" / "tasks.py").write_text(TASKS)
    done = subprocess.run([ONEIRIC, "compile"], cwd=root, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return root


def test_help_lists_every_verb_runtime_ones_included(tmp_path):
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ") and line.split()}
    for verb in (*VERBS, "compile", "manifest", "report", "procfile", "explain", "schema"):
        assert verb in listed, f"{verb} missing from --help:\n{out.stdout}"
    # and each runtime verb answers its own --help
    for verb in VERBS:
        own = run_cli(verb, "--help", cwd=tmp_path)
        assert own.returncode == 0 and f"oneiric {verb}" in own.stdout, (verb, own.stdout, own.stderr)


def test_runtime_imports_the_projects_own_package_from_any_directory(tmp_path):
    """The console script (not `python -m` from the project dir) still finds `mysvc.tasks`."""
    project = _user_project(tmp_path / "app")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([ONEIRIC, "--config", str(project / "config" / "default.toml"), "workflow", "run", "greet",
                          "--json"], cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    body = json.loads(out.stdout)
    assert body["status"] == "succeeded" and body["result"] == {"hello": {"greeting": "hello world"}}


def test_queued_run_status_and_the_retry_log_name_the_cause(tmp_path, orchestrators):
    """Without the HMAC secret the local queue cannot sign: the retry log line says why, and `workflow
    status` of the run says it is queued, not yet delivered, with that error."""
    project = _user_project(tmp_path / "app")
    env = clean_env(ONEIRIC_LOGGING__FORMAT="json")
    queued = run_cli("workflow", "enqueue", "greet", "--run-id", "r-1", "--json", cwd=project, env=env)
    assert queued.returncode == 0, queued.stderr
    status = run_cli("workflow", "status", "r-1", cwd=project, env=env)
    assert status.returncode == 0, status.stderr
    assert "run r-1 (greet): queued, not yet delivered" in status.stdout
    as_json = json.loads(run_cli("workflow", "status", "r-1", "--json", cwd=project, env=env).stdout)
    assert as_json["status"] == "queued" and as_json["task_name"] == json.loads(queued.stdout)["task_name"]

    orch = orchestrators(project, ["orchestrate"], env).wait_ready()
    line = orch.wait_log("local queue: delivery failed, will retry", timeout=15)
    assert line["http_status"] is None
    assert "tasks-hmac-key" in line["error"] and "ONEIRIC_SECRET_TASKS_HMAC_KEY" in line["error"]
    orch.terminate()
    later = run_cli("workflow", "status", "r-1", cwd=project, env=env)
    assert "queued, not yet delivered" in later.stdout and "ONEIRIC_SECRET_TASKS_HMAC_KEY" in later.stdout
    assert run_cli("workflow", "status", "nope", cwd=project, env=env).returncode == 1


def test_activity_reads_the_health_file_orchestrate_writes(tmp_path, orchestrators):
    project = _user_project(tmp_path / "app")
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    orch = orchestrators(project, ["orchestrate", "--health-path", "run/health.json"], env).wait_ready()
    written = project / "run" / "health.json"
    wait_until(written.exists)
    activity = json.loads(run_cli("activity", "--json", cwd=project, env=env).stdout)
    assert activity["runtime_health"]["path"] == str(written.resolve())
    assert activity["runtime_health"]["pid"] == orch.proc.pid
    health = run_cli("health", "--json", cwd=project, env=env)
    assert json.loads(health.stdout)["pid"] == orch.proc.pid, health.stdout
    assert orch.terminate() == 0
    # a later run without --health-path writes (and points readers) back to the default file
    orch = orchestrators(project, ["orchestrate"], env).wait_ready()
    activity = json.loads(run_cli("activity", "--json", cwd=project, env=env).stdout)
    assert activity["runtime_health"]["path"] == str((project / ".oneiric_cache" / "runtime_health.json").resolve())
    assert orch.terminate() == 0


def test_pip_install_keeps_setuptools_out_of_build(tmp_path):
    """`pip install --no-deps .` builds in .setuptools-build/, never in build/ (the artifacts folder)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    import shutil

    for package in ("oneiric", "runtime", "schemas", "compiler", "build"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = sorted(p.name for p in (src / "build").iterdir())
    target = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(src)]
    import importlib.util

    if importlib.util.find_spec("wheel") is not None:
        command += ["--no-index", "--no-build-isolation"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (src / "build").iterdir()) == before
    assert (src / ".setuptools-build").is_dir()
    assert (target / "runtime" / "about.py").is_file()


def test_uv_dev_group_brings_the_test_tools_and_the_emulator():
    """The guide's `uv run pytest -k serverless_profile` installs the `dev` dependency group by default:
    it must hold the dev extra and the emulator's known-good pin, with its stale protobuf pin overridden;
    no lock file is committed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    group = project["dependency-groups"]["dev"]
    assert "oneiric[dev]" in group and "gcloud-tasks-emulator==0.6.2" in group
    assert any(o.startswith("protobuf") for o in project["tool"]["uv"]["override-dependencies"])
    assert "pytest>=8" in project["project"]["optional-dependencies"]["dev"]  # pip users keep the extra
    tracked = subprocess.run(["git", "ls-files", "uv.lock"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked == ""
    assert "uv.lock" in (ROOT / ".gitignore").read_text().split()
