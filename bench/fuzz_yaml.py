"""Fuzz the YAML loader (compiler.loaders.yaml.load_yaml): see bench/_fuzz.py.

    .venv/bin/python bench/fuzz_yaml.py [--seconds 60] [--no-atheris]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._fuzz import reference_seeds, run  # noqa: E402
from tests.support.fuzz_inputs import check_loader_result  # noqa: E402


def load_check():
    from compiler.loaders.yaml import load_yaml

    def check(data: bytes) -> None:
        check_loader_result(load_yaml(data, "m.yaml"), "m.yaml", data)

    return check


if __name__ == "__main__":
    seeds = reference_seeds("deployment/manifests/serverless.yaml", "oneiric/demo/deployment/manifests/demo.yaml") \
        if Path(__file__).resolve().parents[1].joinpath("oneiric/demo/deployment/manifests/demo.yaml").exists() \
        else reference_seeds("deployment/manifests/serverless.yaml")
    seeds += [b"a: &a [*a]\n", b"a: !!python/object:os.system x\n", b"? [a, b]\n: 1\n", b"a: 0x_ff\nb: 1:20\n"]
    sys.exit(run("yaml", "compiler.loaders.yaml.load_yaml on mutated manifests", load_check, seeds))
