"""The real command line as a subprocess (`python -m oneiric.cli ...`), and the compiler in process."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from tests.support.env import PYTHON, clean_env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60,
            python: str = PYTHON) -> subprocess.CompletedProcess:
    """`python -m oneiric.cli ARGS` with `env` (default: `clean_env()`), text output captured."""
    return subprocess.run([python, "-m", "oneiric.cli", *args], cwd=cwd, env=env if env is not None else clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def compile_project(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`oneiric compile --project-dir ROOT` through the CLI; fails the test when it does not exit 0."""
    result = run_cli("compile", "--project-dir", str(root), cwd=root, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def compile_in_process(root: Path, profiles: list[str] | None = None) -> dict[Path, bytes]:
    """The compiler's stages called directly (no subprocess): the artifacts written under ROOT/build."""
    from compiler.build import build_project
    from compiler.emit import write_all

    result = build_project(root, root / "build", profiles)
    assert result.ok, "\n".join(str(d) for d in result.diagnostics)
    write_all(result.files)
    return result.files


def cli_in_process(*args: str, cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The compiler's command line run in this process: the same commands and output as `run_cli`, without
    an interpreter start-up per call. `env` holds variables to set for the call (not a whole environment);
    an exception escapes instead of becoming exit 1, so a traceback fails the test where it happens."""
    from click.testing import CliRunner

    from compiler.cli import cli

    with contextlib.chdir(cwd or Path.cwd()):
        result = CliRunner().invoke(cli, list(args), env=env, prog_name="oneiric", catch_exceptions=False)
    return subprocess.CompletedProcess(["oneiric", *args], result.exit_code, result.stdout, result.stderr)
