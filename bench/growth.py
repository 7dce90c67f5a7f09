"""Growth: compile time at N and 4N for the inputs that used to make the compiler quadratic.

Run:  .venv/bin/python bench/growth.py [--runs 3] [--scale 1.0] [--cases a,b]

Each case builds a project of size N and 4N and times `compiler.build.build_project` on it in a fresh
interpreter (so no cache survives from one measurement to the next), interleaved, median of --runs.
Prints the time at each size and the ratio; linear is 4x, the target is at most 4.5x.

  queue-category   N workflows, each with metadata.scheduler.queue_category + provider (two position
                   lookups per workflow)
  bad-factories    N tasks whose factory is outside the allowlist (N located errors)
  unknown-task     N tasks and N workflows whose node names a misspelt task (N did-you-mean hints)
  settings-leaves  one adapter whose provider settings hold N leaves (the settings layer store)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = '[profile]\nname = "default"\n\n[http]\ntasks_auth = "none"\n'


def _task(i: int, factory: str = "oneiric.demo.tasks:extract") -> str:
    return f"  - domain: task\n    key: t{i}\n    provider: demo\n    factory: {factory}\n"


def _workflow(i: int, task: str, scheduler: bool = False) -> str:
    text = f"  - domain: workflow\n    key: w{i}\n    provider: dag\n    factory: runtime.workflows.engine:Engine\n"
    if scheduler:
        text += "    metadata:\n      scheduler: {queue_category: queue, provider: local}\n"
    return text + f"    dag:\n      nodes:\n        - {{id: a, task: {task}}}\n"


def case_queue_category(n: int) -> tuple[str, str]:
    return "source: growth\nentries:\n" + _task(0) + "".join(_workflow(i, "t0", True) for i in range(n)), SETTINGS


def case_bad_factories(n: int) -> tuple[str, str]:
    return "source: growth\nentries:\n" + "".join(_task(i, f"acme.jobs:job{i}") for i in range(n)), SETTINGS


def case_unknown_task(n: int) -> tuple[str, str]:
    tasks = "".join(_task(i) for i in range(n))
    return "source: growth\nentries:\n" + tasks + "".join(_workflow(i, f"tt{i}") for i in range(n)), SETTINGS


def case_settings_leaves(n: int) -> tuple[str, str]:
    manifest = ("source: growth\nentries:\n  - domain: adapter\n    key: bulk\n    provider: bulkprov\n"
                "    factory: oneiric.demo.vector:MemoryVectorStore\n    settings_schema: {type: object}\n")
    leaves = "".join(f"k{i} = {i}\n" for i in range(n))
    return manifest, SETTINGS + f"\n[adapters.provider_settings.bulkprov]\n{leaves}"


#: name -> (project maker, N, what a successful build looks like: "ok" or the rule every error has)
CASES = {
    "queue-category": (case_queue_category, 1000, "ok"),
    "bad-factories": (case_bad_factories, 1000, "factory.not-allowed"),
    # 1000, not 250: below ~1000 tasks each hint's shortlist is still filling up (diagnostics.Suggester), so
    # 250 -> 1000 also measures that; the quadratic code took 0.6 s at 250 and 12.9 s at 1000
    "unknown-task": (case_unknown_task, 1000, "dag.unknown-task"),
    "settings-leaves": (case_settings_leaves, 2000, "ok"),
}


def child(case: str, n: int) -> None:
    """Build the project in-process and print {"seconds": ..., "errors": ..., "rules": [...]}."""
    sys.path.insert(0, str(ROOT))
    from compiler.build import build_project

    make, _, _ = CASES[case]
    with tempfile.TemporaryDirectory(prefix="oneiric-growth-") as tmp:
        for size in (1, n):  # a size-1 build first, so lazy imports and schema caches are not timed
            root = Path(tmp) / f"n{size}"
            manifest, settings = make(size)
            (root / "deployment" / "manifests").mkdir(parents=True)
            (root / "config").mkdir()
            (root / "deployment" / "manifests" / "growth.yaml").write_text(manifest)
            (root / "config" / "default.toml").write_text(settings)
            started = time.perf_counter()
            result = build_project(root, root / "build")
            seconds = time.perf_counter() - started
    rules = sorted({d.rule for d in result.diagnostics})
    print(json.dumps({"seconds": seconds, "errors": len(result.diagnostics), "rules": rules}))


def measure(case: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", case, str(n)], capture_output=True, text=True,
                         timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{case} N={n}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's N (default 1)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    chosen = [c for c in args.cases.split(",") if c]
    unknown = set(chosen) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    print(f"growth: build_project time at N and 4N, fresh interpreter each, median of {args.runs} interleaved runs")
    print(f"{'case':<18}{'N':>7}{'time s':>9}{'4N':>8}{'time s':>9}{'ratio':>8}  target <= 4.5x")
    missed = 0
    for case in chosen:
        _, base_n, expect = CASES[case]
        n = max(1, int(base_n * args.scale))
        small, large = [], []
        for _ in range(args.runs):
            for size, bucket in ((n, small), (4 * n, large)):
                got = measure(case, size)
                wanted = 0 if expect == "ok" else size
                if got["errors"] != wanted or (expect != "ok" and got["rules"] != [expect]):
                    raise RuntimeError(f"{case} N={size}: expected {wanted} x {expect}, got {got}")
                bucket.append(got["seconds"])
        a, b = statistics.median(small), statistics.median(large)
        ratio = b / a
        missed += ratio > 4.5
        print(f"{case:<18}{n:>7}{a:>9.2f}{4 * n:>8}{b:>9.2f}{ratio:>7.1f}x  {'met' if ratio <= 4.5 else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
