"""Fuzz the compiler end to end (compiler.cli.main, in process): see bench/_fuzz.py.

The first byte of each input picks the file it replaces in a copy of the reference project (the
manifest or the serverless settings); the rest is the file. Contract: exit 0, or exit 1 with every
error line `file:line:col: error:`; no exception escapes main().

    .venv/bin/python bench/fuzz_compile.py [--seconds 60] [--no-atheris]
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._fuzz import run  # noqa: E402

FILES = ["deployment/manifests/serverless.yaml", "config/serverless.toml"]


def load_check():
    import contextlib
    import io
    import re
    import shutil
    import tempfile

    from compiler.cli import main

    project = Path(tempfile.mkdtemp(prefix="oneiric-fuzz-compile-")) / "project"
    for name in ("config", "deployment"):
        shutil.copytree(ROOT / name, project / name)
    originals = {rel: (project / rel).read_bytes() for rel in FILES}
    located = re.compile(r"^[^\s:][^:]*:\d+:\d+: error: ")

    def check(data: bytes) -> None:
        for rel, raw in originals.items():
            (project / rel).write_bytes(raw)
        if data:
            (project / FILES[data[0] % 2]).write_bytes(data[1:])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["compile", "--project-dir", str(project), "--out", str(project / "out")])
        if code == 0:
            return
        lines = [l for l in err.getvalue().splitlines() if l.strip() and not l.endswith("error(s)")]
        if code != 1 or not lines or not all(located.match(l) for l in lines):
            raise AssertionError(f"exit {code}, unlocated output: {err.getvalue()[:500]}")

    return check


if __name__ == "__main__":
    seeds = [bytes([i]) + (ROOT / rel).read_bytes() for i, rel in enumerate(FILES)]
    sys.exit(run("compile", "oneiric compile (compiler.cli.main) on a reference project with one file mutated",
                 load_check, seeds))
