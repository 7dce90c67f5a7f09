"""Compiler speed: `oneiric manifest validate` vs check-jsonschema, and compile scaling 1k -> 10k entries.

Run:  .venv/bin/python bench/compile.py [--runs 15]

Each tool runs as a fresh subprocess from its own venv under .bench/ (made
on first use; check-jsonschema 0.39.0 is the named baseline), interleaved,
and the median wall time is printed with the ratio ours / baseline. Ours runs
from the source tree via PYTHONPATH, so no editable-install hook is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
OURS_DEPS = ["pyyaml", "tomlkit", "tomli", "jsonschema", "jinja2", "cattrs", "click", "bottle"]


def venv(name: str, packages: list[str]) -> Path:
    path = BENCH / name
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def entry(i: int, bad: bool = False) -> str:
    domain = "tsak" if bad else "task"
    return (f"  - domain: {domain}\n    key: job{i}\n    provider: demo\n"
            f"    factory: oneiric.demo.tasks:extract\n    priority: {i % 7}\n    version: \"1.{i}\"\n"
            f"    metadata: {{team: data, tier: {i % 3}}}\n")


def small_with_three_errors() -> str:
    text = "source: bench\nentries:\n" + "".join(entry(i) for i in range(5))
    text = text.replace("domain: task\n    key: job1", "domain: tsak\n    key: job1")  # bad enum
    text = text.replace("priority: 2", "priority: high")  # wrong type
    return text.replace("    provider: demo\n    factory: oneiric.demo.tasks:extract\n    priority: 3",
                        "    proivder: demo\n    factory: oneiric.demo.tasks:extract\n    priority: 3")  # unknown key


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, result


def compare(label: str, ours: list[str], theirs: list[str], env: dict[str, str], runs: int) -> None:
    a, b = [], []
    for _ in range(runs):
        t, r_ours = timed(ours, env)
        a.append(t)
        t, r_theirs = timed(theirs)
        b.append(t)
    ours_ms, theirs_ms = statistics.median(a) * 1000, statistics.median(b) * 1000
    lines = [l for l in r_ours.stderr.splitlines() if ": error: " in l]
    print(f"{label}")
    print(f"  oneiric manifest validate : {ours_ms:7.1f} ms  (min {min(a)*1000:.1f}; exit {r_ours.returncode};"
          f" {len(lines)} errors, e.g. {lines[0] if lines else '-'})")
    print(f"  check-jsonschema 0.39.0   : {theirs_ms:7.1f} ms  (min {min(b)*1000:.1f}; exit {r_theirs.returncode})")
    print(f"  ratio ours / check-jsonschema = {ours_ms / theirs_ms:.2f}  (target <= 0.50)")


_COMPOSE = "import sys, yaml; yaml.compose(open(sys.argv[1], 'rb'), Loader=yaml.CSafeLoader)"


def compile_scaling(python: Path, env: dict[str, str]) -> None:
    times = {}
    for n in (1_000, 10_000):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "deployment" / "manifests").mkdir(parents=True)
            (root / "config").mkdir()
            (root / "config" / "default.toml").write_text('[profile]\nname = "default"\n\n[http]\ntasks_auth = "none"\n')
            (root / "deployment" / "manifests" / "big.yaml").write_text(
                "source: bench\nentries:\n" + "".join(entry(i) for i in range(n)))
            samples = []
            for _ in range(3):
                t, r = timed([str(python), "-m", "oneiric.cli", "compile", "--project-dir", str(root)], env)
                assert r.returncode == 0, r.stderr
                samples.append(t)
            times[n] = statistics.median(samples)
            size = (root / "build" / "default_manifest.json").stat().st_size
            floor = statistics.median(timed([str(python), "-c", _COMPOSE, str(root / "deployment/manifests/big.yaml")],
                                            env)[0] for _ in range(3))
            print(f"  compile {n:>6} entries: {times[n]:.2f} s  (manifest artifact {size / 1e6:.1f} MB); baseline "
                  f"PyYAML CSafeLoader compose of the same file alone: {floor:.2f} s, ratio {times[n] / floor:.1f}")
    print(f"  10k / 1k time ratio = {times[10_000] / times[1_000]:.1f}  (linear would be <= 10; target 10k < 2 s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    # An installed package carries bytecode; this environment sets PYTHONDONTWRITEBYTECODE=1, which would
    # otherwise recompile every module of ours on each run (the baseline's venv has its .pyc files).
    import compileall

    for package in ("oneiric", "compiler", "runtime", "schemas"):
        compileall.compile_dir(str(REPO / package), quiet=1)
    ours = venv("venv-ours", OURS_DEPS)
    cjs_python = venv("venv-cjs", ["check-jsonschema==0.39.0"])
    cjs = str(cjs_python.parent / "check-jsonschema")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_")}
    env["PYTHONPATH"] = str(REPO)
    schema = str(REPO / "schemas" / "manifest.schema.json")
    inputs = BENCH / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    (inputs / "many").mkdir(parents=True)
    (inputs / "small.yaml").write_text(small_with_three_errors())
    for f in range(200):
        (inputs / "many" / f"m{f:03d}.yaml").write_text(
            "source: bench\nentries:\n" + "".join(entry(f * 10 + i, bad=(f % 50 == 0 and i == 0)) for i in range(10)))
    many = sorted(str(p) for p in (inputs / "many").iterdir())

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, median of {args.runs} interleaved runs\n")
    compare("one small YAML file with three errors:",
            [str(ours), "-m", "oneiric.cli", "manifest", "validate", str(inputs / "small.yaml")],
            [cjs, "--schemafile", schema, str(inputs / "small.yaml")], env, args.runs)
    compare("200 YAML files in one call (4 with an error):",
            [str(ours), "-m", "oneiric.cli", "manifest", "validate", *many],
            [cjs, "--schemafile", schema, *many], env, args.runs)
    print("\ncompile scaling (median of 3):")
    compile_scaling(ours, env)
    print(json.dumps({"note": "figures above are wall time on this machine; rerun to compare"}))


if __name__ == "__main__":
    main()
