"""Compiler speed: validate vs check-jsonschema, the 10k-entry compile vs libyaml's parser, its stages, no-op checks.

Run:  .venv/bin/python bench/compile.py [--runs 15] [--sections validate,compile,stages,check]

Sections (each prints its figures and a ratio to a baseline measured in the same run):
  validate  `oneiric manifest validate` vs check-jsonschema 0.39.0 (fresh subprocesses, its own venv
            under .bench/), one small file with three errors and 200 files in one call; target <= 0.50.
  compile   `oneiric compile` end to end through the CLI on a 1k- and a 10k-entry manifest, against
            libyaml's event parser alone (`yaml.parse` with CParser) on the same file; target 10k <= 5x.
  stages    where the 10k compile's time goes, measured in one process: each stage's own time (nested
            stages and collector pauses excluded), the cyclic garbage collector's pauses (gc.callbacks),
            and the rest (interpreter start and imports) against the end-to-end figure.
  check     `oneiric compile --check` on the unchanged 10k project against a full compile of it
            (target <= 0.15x), and on the reference project against `oneiric --version` (target <= 1.5x).

`compile` and `stages` run ours from the source tree via PYTHONPATH in .bench/venv-ours, so no
editable-install hook is timed; `check` uses the project's .venv, because `--version` reads the
installed package's metadata (both sides of that ratio pay the same hook).
"""

from __future__ import annotations

import argparse
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
PROJECT_VENV = REPO / ".venv" / "bin" / "python"
OURS_DEPS = ["pyyaml", "tomlkit", "tomli", "jsonschema", "jsonschema-rs", "jinja2", "cattrs", "click", "bottle",
             "orjson"]
SECTIONS = ("validate", "compile", "stages", "check")


def venv(name: str, packages: list[str]) -> Path:
    path = BENCH / name
    python = path / "bin" / "python"
    marker = path / "installed.txt"  # what was installed: a changed list installs the difference
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    if not marker.exists() or marker.read_text() != "\n".join(packages):
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        marker.write_text("\n".join(packages))
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


def make_project(root: Path, n: int) -> Path:
    """A project with one n-entry manifest and the embedded-default settings; returns the manifest path."""
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "config" / "default.toml").write_text('[profile]\nname = "default"\n\n[http]\ntasks_auth = "none"\n')
    manifest = root / "deployment" / "manifests" / "big.yaml"
    manifest.write_text("source: bench\nentries:\n" + "".join(entry(i) for i in range(n)))
    return manifest


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
          ) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
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


def section_validate(ours: Path, env: dict[str, str], runs: int) -> None:
    cjs_python = venv("venv-cjs", ["check-jsonschema==0.39.0"])
    cjs = str(cjs_python.parent / "check-jsonschema")
    schema = str(REPO / "schemas" / "manifest.schema.json")
    inputs = BENCH / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    (inputs / "many").mkdir(parents=True)
    (inputs / "small.yaml").write_text(small_with_three_errors())
    for f in range(200):
        (inputs / "many" / f"m{f:03d}.yaml").write_text(
            "source: bench\nentries:\n" + "".join(entry(f * 10 + i, bad=(f % 50 == 0 and i == 0)) for i in range(10)))
    many = sorted(str(p) for p in (inputs / "many").iterdir())
    compare("one small YAML file with three errors:",
            [str(ours), "-m", "oneiric.cli", "manifest", "validate", str(inputs / "small.yaml")],
            [cjs, "--schemafile", schema, str(inputs / "small.yaml")], env, runs)
    compare("200 YAML files in one call (4 with an error):",
            [str(ours), "-m", "oneiric.cli", "manifest", "validate", *many],
            [cjs, "--schemafile", schema, *many], env, runs)


#: libyaml's event parser alone: the floor a YAML-reading compile cannot go below
_EVENTS = "import sys, yaml; from collections import deque; deque(yaml.parse(open(sys.argv[1], 'rb'), Loader=yaml.CSafeLoader), 0)"


def full_compile(python: Path, env: dict[str, str], root: Path) -> tuple[float, subprocess.CompletedProcess]:
    """`oneiric compile --force` (a full build even when nothing changed); plain compile where --force is unknown."""
    t, r = timed([str(python), "-m", "oneiric.cli", "compile", "--force", "--project-dir", str(root)], env)
    if r.returncode == 2 and "--force" in r.stderr:
        t, r = timed([str(python), "-m", "oneiric.cli", "compile", "--project-dir", str(root)], env)
    return t, r


def section_compile(python: Path, env: dict[str, str], runs: int) -> None:
    print("compile end to end through the CLI (`python -m oneiric.cli compile`), "
          f"median of {runs} interleaved runs:")
    times = {}
    for n in (1_000, 10_000):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            manifest = make_project(root, n)
            ours, floor = [], []
            for _ in range(runs):
                t, r = full_compile(python, env, root)
                assert r.returncode == 0, r.stderr
                ours.append(t)
                floor.append(timed([str(python), "-c", _EVENTS, str(manifest)], env)[0])
            times[n] = statistics.median(ours)
            base = statistics.median(floor)
            size = (root / "build" / "default_manifest.json").stat().st_size
            target = "  (target <= 5.0)" if n == 10_000 else ""
            print(f"  compile {n:>6} entries: {times[n]:.2f} s (min {min(ours):.2f}; manifest artifact "
                  f"{size / 1e6:.1f} MB); libyaml event parser alone on the same file: {base:.2f} s; "
                  f"ratio {times[n] / base:.1f}{target}")
    print(f"  10k / 1k time ratio = {times[10_000] / times[1_000]:.1f}  (linear would be <= 10)")


# -------------------------------------------------------------------------------------------- stages

#: (label, module, attribute): wrapped in that module's namespace; names missing from a tree are skipped,
#: so the same table can be printed for an older commit
STAGES = [
    ("compile command (own time)", "compiler.cli_build", "compile_cmd.callback"),
    ("compile command (own time)", "compiler.cli", "compile_cmd.callback"),
    ("build_project (own time)", "compiler.build", "build_project"),
    ("read manifest + YAML walk", "compiler.loaders.yaml", "load_yaml"),
    ("YAML compose (libyaml + nodes)", "compiler.loaders.yaml", "yaml.compose_all"),
    ("TOML load", "compiler.loaders.toml", "load_toml"),
    ("schema check (jsonschema-rs verdict, else fastschema)", "compiler.resolve", "check_document"),
    ("structure entries (cattrs)", "compiler.resolve", "structure"),
    ("check_factories", "compiler.checks", "check_factories"),
    ("check_dags", "compiler.checks", "check_dags"),
    ("check_task_signatures", "compiler.checks", "check_task_signatures"),
    ("check_queue_categories", "compiler.checks", "check_queue_categories"),
    ("deploy render", "compiler.deploy", "files_for_build"),
    ("resolve (own time)", "compiler.build", "resolve"),
    ("unstructure (cattrs)", "compiler.emit", "unstructure"),
    ("canonical JSON + sha256", "compiler.emit", "compute_digest"),
    ("canonical JSON + sha256", "compiler.emit", "compact_text"),
    ("canonical JSON + sha256", "compiler.emit", "digest_of_compact"),
    ("pretty JSON", "compiler.emit", "pretty_bytes"),
    ("pretty JSON", "compiler.emit", "pretty_artifact_bytes"),
    ("pretty JSON", "compiler.build", "pretty_bytes"),
    ("write files", "compiler.emit", "write_all"),
    ("json.loads (schemas, digest line)", "json", "loads"),
]

_STAGE_CHILD = r'''
import gc, importlib, inspect, json, sys, time
t0 = time.perf_counter()
sys.argv = ["oneiric"]
from oneiric.cli import main
import compiler.build, compiler.resolve, compiler.emit
try:
    import compiler.cli_build
except ImportError:
    pass
import compiler.cli
imports = time.perf_counter() - t0
stages = STAGES
own, stack, gc_total = {}, [], [0.0]
def wrap(label, fn):
    generator = inspect.isgeneratorfunction(fn)
    def timed(*a, **k):
        stack.append([label, time.perf_counter(), 0.0])
        try:
            return iter(list(fn(*a, **k))) if generator else fn(*a, **k)
        finally:
            name, start, inner = stack.pop()
            spent = time.perf_counter() - start
            own[name] = own.get(name, 0.0) + spent - inner
            if stack:
                stack[-1][2] += spent
    return timed
gc_start = [0.0]
def on_gc(phase, info):
    if phase == "start":
        gc_start[0] = time.perf_counter()
    else:
        spent = time.perf_counter() - gc_start[0]
        gc_total[0] += spent
        if stack:
            stack[-1][2] += spent
gc.callbacks.append(on_gc)
for label, module, attr in stages:
    try:
        obj = importlib.import_module(module)
    except ImportError:
        continue
    *parents, last = attr.split(".")
    for p in parents:
        obj = getattr(obj, p, None)
    if obj is None or not hasattr(obj, last):
        continue
    setattr(obj, last, wrap(label, getattr(obj, last)))
t1 = time.perf_counter()
code = main(["compile", "--force", "--project-dir", PROJECT])  # a full build, even of an unchanged project
if code == 2:  # a compiler without --force (always builds)
    t1 = time.perf_counter()
    code = main(["compile", "--project-dir", PROJECT])
total = time.perf_counter() - t1
assert code == 0, code
print(json.dumps({"imports": imports, "command": total, "own": own, "gc": gc_total[0]}))
'''


def stage_figures(python: Path, env: dict[str, str], project: Path) -> dict:
    import json

    code = _STAGE_CHILD.replace("STAGES", repr(STAGES)).replace("PROJECT", repr(str(project)))
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def section_stages(python: Path, env: dict[str, str], runs: int) -> None:
    runs = max(3, min(runs, 5))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, 10_000)
        samples, e2e = [], []
        for _ in range(runs):
            samples.append(stage_figures(python, env, root))
            e2e.append(full_compile(python, env, root)[0])
    labels = list(dict.fromkeys(label for label, _, _ in STAGES))
    med = {label: statistics.median(s["own"].get(label, 0.0) for s in samples) for label in labels}
    gc_med = statistics.median(s["gc"] for s in samples)
    imports = statistics.median(s["imports"] for s in samples)
    command = statistics.median(s["command"] for s in samples)
    end = statistics.median(e2e)
    print(f"stages of the 10k-entry compile (median of {runs} in-process runs; own time: nested stages and "
          "collector pauses excluded):")
    for label in labels:
        if med[label] >= 0.0005:
            print(f"  {label:<40}{med[label]:7.3f} s")
    print(f"  {'cyclic GC pauses (all stages)':<40}{gc_med:7.3f} s")
    rest = statistics.median(s["command"] - sum(s["own"].values()) - s["gc"] for s in samples)
    print(f"  {'not attributed (click, timers)':<40}{rest:7.3f} s")
    print(f"  {'= compile command in process':<40}{command:7.3f} s")
    print(f"  {'imports of oneiric.cli + compiler':<40}{imports:7.3f} s")
    print(f"  {'end to end through the CLI (subprocess)':<40}{end:7.3f} s")


# -------------------------------------------------------------------------------------------- check

def section_check(env: dict[str, str], runs: int) -> None:
    python = PROJECT_VENV
    if not python.exists():
        print("check: skipped (no .venv: make it as the README says)")
        return
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    cli = [str(python), "-m", "oneiric.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big"
        big.mkdir()
        make_project(big, 10_000)
        ref = Path(tmp) / "reference"
        for part in ("config", "deployment", "build"):
            shutil.copytree(REPO / part, ref / part)
        for project in (big, ref):
            r = subprocess.run([*cli, "compile", "--project-dir", str(project)], capture_output=True, text=True, env=env)
            assert r.returncode == 0, r.stderr
        full, check, version, ref_check = [], [], [], []
        for _ in range(runs):
            t, r = timed([*cli, "compile", "--project-dir", str(big), "--force"], env)
            if r.returncode == 2 and "--force" in r.stderr:  # a compiler without --force always rebuilds
                t, r = timed([*cli, "compile", "--project-dir", str(big)], env)
            assert r.returncode == 0, r.stderr
            full.append(t)
            t, r = timed([*cli, "compile", "--check", "--project-dir", str(big)], env)
            assert r.returncode == 0, r.stderr
            check.append(t)
            t, r = timed([*cli, "--version"], env)
            assert r.returncode == 0, r.stderr
            version.append(t)
            t, r = timed([*cli, "compile", "--check", "--project-dir", str(ref)], env)
            assert r.returncode == 0, r.stderr
            ref_check.append(t)
    m = {k: statistics.median(v) * 1000 for k, v in
         (("full", full), ("check", check), ("version", version), ("ref", ref_check))}
    print(f"no-op checks (project .venv, median of {runs} interleaved runs):")
    print(f"  compile --check, unchanged 10k project : {m['check']:8.1f} ms; full compile of it: {m['full']:8.1f} ms; "
          f"ratio {m['check'] / m['full']:.2f}  (target <= 0.15)")
    print(f"  compile --check, reference project     : {m['ref']:8.1f} ms; oneiric --version: {m['version']:8.1f} ms; "
          f"ratio {m['ref'] / m['version']:.2f}  (target <= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    BENCH.mkdir(exist_ok=True)
    # An installed package carries bytecode; this environment sets PYTHONDONTWRITEBYTECODE=1, which would
    # otherwise recompile every module of ours on each run (the baseline's venv has its .pyc files).
    import compileall

    for package in ("oneiric", "compiler", "runtime", "schemas"):
        compileall.compile_dir(str(REPO / package), quiet=1)
    ours = venv("venv-ours", OURS_DEPS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_")}
    env["PYTHONPATH"] = str(REPO)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, commit tree {REPO}\n")
    for name in chosen:
        if name == "validate":
            section_validate(ours, env, args.runs)
        elif name == "compile":
            section_compile(ours, env, min(args.runs, 5))
        elif name == "stages":
            section_stages(ours, env, args.runs)
        elif name == "check":
            section_check(env, min(args.runs, 7))
        print()
    try:
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (figures on a busy machine are inflated and noisy)")
    except OSError:
        pass


if __name__ == "__main__":
    main()
