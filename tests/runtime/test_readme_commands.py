"""The README's commands work as printed, after its set-up command, from the repository root."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import ROOT, clean_env

#: Long-running commands (a server) are started elsewhere in the suite (tests/runtime/test_runtime_guide.py).
_SERVES = re.compile(r"\borchestrate\b")


def readme_commands() -> list[str]:
    """Every line of the ```bash blocks from "The deployment guide's commands" on, comments stripped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The deployment guide's commands"):]
    out = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                out.append(command)
    return out


def test_readme_names_no_bare_oneiric():
    """After the set-up command `.venv/bin` is not on PATH: every command names its interpreter or script."""
    for command in readme_commands():
        words = [w for w in command.split() if "=" not in w or w.startswith("-")]
        assert words[0] in (".venv/bin/oneiric", ".venv/bin/python"), command
    top = (ROOT / "README.md").read_text().split("```bash", 1)[1].split("```", 1)[0]
    assert "python3 -m venv .venv" in top and ".venv/bin/pip install" in top


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A clone of this repository (history for `HEAD~1:`) with the working tree's files on top and this
    test run's venv as `.venv`, as the set-up command leaves it."""
    repo = tmp_path_factory.mktemp("readme") / "repo"
    cloned = subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], capture_output=True, text=True, timeout=120)
    if cloned.returncode != 0:
        pytest.skip(f"not a git checkout: {cloned.stderr.strip()}")
    for name in ("README.md", "config", "deployment", "build", "schemas"):
        src = ROOT / name
        if src.is_dir():
            shutil.rmtree(repo / name, ignore_errors=True)
            shutil.copytree(src, repo / name)
        else:
            shutil.copy(src, repo / name)
    (repo / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return repo


@pytest.mark.parametrize("command", [c for c in readme_commands() if not _SERVES.search(c)])
def test_readme_command_works_as_printed(checkout, command):
    env = clean_env()
    env["PATH"] = os.defpath  # no venv on PATH: only what the set-up command made
    done = subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    # `manifest diff` exits 1 when the two builds differ (documented): the last commit may have changed it
    ok = (0, 1) if " manifest diff " in command else (0,)
    assert done.returncode in ok, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr
