"""What a new user's first settings file and first task meet at compile time: the default tasks_auth is
complete without [http], a task that does not take (payload, context, inputs) is refused with its
file:line:col, and the env provider's git-ignored env_file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.adapters.base import AdapterContext, AdapterError, SecretNotFoundError
from runtime.adapters.secrets_env import EnvSecrets

ONEIRIC = str(Path(sys.executable).with_name("oneiric"))

MANIFEST = """\
source: first
entries:
  - {domain: task, key: good, provider: mine, factory: "mysvc.tasks:good"}
  - {domain: task, key: two, provider: mine, factory: "mysvc.tasks:two"}
  - domain: workflow
    key: w
    provider: dag
    factory: runtime.workflows.engine:Engine
    dag: {nodes: [{id: a, task: good}, {id: b, task: two, depends_on: [a]}]}
"""
TASKS = """\
def good(payload, context, inputs, *, verbose=False):
    return {}


def two(payload, context):
    return {}
"""


def _project(root: Path, settings: str, tasks: str = TASKS) -> Path:
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / "deployment" / "manifests" / "app.yaml").write_text(MANIFEST)
    (root / "config").mkdir()
    (root / "config" / "default.toml").write_text(settings)
    (root / "mysvc").mkdir()
    (root / "mysvc" / "__init__.py").write_text("")
    (root / "mysvc" / "tasks.py").write_text(tasks)
    return root


def _compile(root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_")}
    return subprocess.run([ONEIRIC, "compile"], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def test_a_two_argument_task_is_refused_at_compile_time(tmp_path):
    root = _project(tmp_path, '[security]\nfactory_allowlist = ["mysvc"]\n')
    out = _compile(root)
    assert out.returncode == 1
    assert ("deployment/manifests/app.yaml:4:55: error: $.entries[1].factory: task 'two': mysvc.tasks:two is "
            "defined as two(payload, context), but a task is called as fn(payload, context, inputs)") in out.stderr
    assert "good" not in out.stderr  # extra keyword-only parameters with defaults are fine


def test_a_settings_file_without_http_compiles_and_references_the_default_key(tmp_path):
    good = TASKS.replace("def two(payload, context):", "def two(payload, context, inputs):")
    root = _project(tmp_path, '[profile]\nname = "default"\n\n[security]\nfactory_allowlist = ["mysvc"]\n', good)
    out = _compile(root)
    assert out.returncode == 0, out.stderr
    profile = json.loads((root / "build" / "default_profile.json").read_text())
    assert profile["settings"]["http"]["tasks_auth"] == "hmac"
    assert profile["settings"]["http"]["hmac_key"] == "secret://tasks-hmac-key"
    assert [s["ref"] for s in profile["secrets"]] == ["secret://tasks-hmac-key"]
    # other modes reference no key, and an explicit key wins
    for http, key in (('tasks_auth = "none"', None), ('hmac_key = "secret://mine"', "secret://mine")):
        (root / "config" / "default.toml").write_text(f'[http]\n{http}\n\n[security]\nfactory_allowlist = ["mysvc"]\n')
        assert _compile(root).returncode == 0
        profile = json.loads((root / "build" / "default_profile.json").read_text())
        assert profile["settings"]["http"]["hmac_key"] == key


def test_env_file_is_read_after_the_environment(tmp_path):
    (tmp_path / ".env").write_text("# local\nONEIRIC_SECRET_A=from-file\nexport ONEIRIC_SECRET_B='quoted value'\n"
                                   "ONEIRIC_SECRET_C=file\nnot a line\n")
    ctx = AdapterContext(project_dir=tmp_path, cache_dir=tmp_path, profile="default",
                         extra={"environ": {"ONEIRIC_SECRET_C": "env wins"}})
    secrets = EnvSecrets({"env_file": ".env"}, context=ctx)
    assert secrets.get("a").reveal() == "from-file"
    assert secrets.get("b").reveal() == "quoted value"
    assert secrets.get("c").reveal() == "env wins"
    with pytest.raises(SecretNotFoundError, match=r"set ONEIRIC_SECRET_D \(or add it to .*\.env\)"):
        secrets.get("d")
    assert "then" in secrets.health()["detail"]
    absent = EnvSecrets({"env_file": "missing.env"}, context=ctx)  # a missing file holds nothing
    with pytest.raises(SecretNotFoundError):
        absent.get("a")
    (tmp_path / "dir.env").mkdir()
    with pytest.raises(AdapterError, match="cannot read it"):
        EnvSecrets({"env_file": "dir.env"}, context=ctx)
