"""Fuzz the TOML loader (compiler.loaders.toml.load_toml): see bench/_fuzz.py.

    .venv/bin/python bench/fuzz_toml.py [--seconds 60] [--no-atheris]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._fuzz import reference_seeds, run  # noqa: E402
from tests.support.fuzz_inputs import check_loader_result  # noqa: E402


def load_check():
    from compiler.loaders.toml import load_toml

    def check(data: bytes) -> None:
        check_loader_result(load_toml(data, "s.toml"), "s.toml", data)

    return check


if __name__ == "__main__":
    seeds = reference_seeds("config/serverless.toml", "config/default.toml")
    seeds += [b'a = [1, [2, {b = "c"}]]\n[[t]]\nx = 1979-05-27T07:32:00Z\n', b"a.b.'c' = \"\"\"x\ny\"\"\"\n"]
    sys.exit(run("toml", "compiler.loaders.toml.load_toml on mutated settings", load_check, seeds))
