"""`oneiric manifest diff` on two 10,000-entry manifest artifacts, against baselines measured in the same run.

Generates OLD and NEW canonical manifest artifacts (runtime.canonical, the
compiler's own encoding) of N entries each with settings schemas and
metadata; NEW changes the priority of 1% of the entries, removes 50 and adds
50, and lists its entries in a shuffled order (digest recomputed) so the diff
cannot lean on positions. Each command runs as a subprocess, the median of
--runs runs (after one warm-up) is reported:

  diff --json      oneiric manifest diff OLD NEW --json      (exit 1: they differ)
  diff text        oneiric manifest diff OLD NEW             (exit 1)
  diff same        oneiric manifest diff OLD OLD             (exit 0)
  json.load x2     python -c "json.load" of both files       (baseline: parse only, same interpreter)
  diff -u          GNU diff -u OLD NEW                        (baseline: line diff, no semantics)

Then the same work in this process, split into phases (parse both files,
compare, render JSON), so a loaded machine's process start-up noise can be
told apart from the diff itself.

Target: `diff --json` under 1 s.

    .venv/bin/python bench/diff.py [--entries 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.canonical import compute_digest, pretty_bytes  # noqa: E402

DOMAINS = ("adapter", "action", "service", "task", "event")


def entry(i: int) -> dict:
    domain = DOMAINS[i % len(DOMAINS)]
    return {
        "dag": None,
        "domain": domain,
        "factory": f"oneiric.demo.generated:Component{i}",
        "key": f"{domain}-{i:05d}",
        "metadata": {"description": f"generated component {i}", "team": f"team-{i % 17}"},
        "priority": i % 7,
        "provider": f"provider-{i % 3}",
        "requires_secrets": [],
        "settings_schema": {
            "additionalProperties": False,
            "properties": {"timeout": {"default": 30, "minimum": 1, "type": "integer"},
                           "url": {"type": "string"}},
            "type": "object",
        },
        "source": f"deployment/manifests/generated.yaml:{i * 12 + 3}:5",
        "stack_level": 0,
        "version": "1.0.0",
    }


def artifact(entries: list[dict]) -> dict:
    data = {
        "compiler_version": "0.1.0",
        "entries": entries,
        "format": "oneiric.manifest/1",
        "inputs": [{"kind": "manifest", "path": "deployment/manifests/generated.yaml", "sha256": "0" * 64}],
        "sources": ["bench"],
    }
    data["digest"] = compute_digest(data)
    return data


def make_pair(n: int, directory: Path) -> tuple[Path, Path]:
    rng = random.Random(6)
    old_entries = [entry(i) for i in range(n)]
    old_entries.sort(key=lambda e: (e["domain"], e["key"], e["provider"]))
    new_entries = [dict(e) for e in old_entries[50:]] + [entry(n + i) for i in range(50)]
    for e in rng.sample(new_entries, n // 100):
        e["priority"] += 100
    rng.shuffle(new_entries)
    old, new = directory / "old_manifest.json", directory / "new_manifest.json"
    old.write_bytes(pretty_bytes(artifact(old_entries)))
    new.write_bytes(pretty_bytes(artifact(new_entries)))
    return old, new


def timed(cmd: list[str], runs: int, expect: int) -> float:
    samples = []
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        elapsed = time.perf_counter() - start
        if proc.returncode != expect:
            raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}, expected {expect}: {proc.stderr.decode()}")
        if i:  # the first run warms the page cache and .pyc files
            samples.append(elapsed)
    return statistics.median(samples)


def in_process(old: Path, new: Path, runs: int) -> dict[str, float]:
    import json

    from compiler import diff

    phases: dict[str, list[float]] = {"parse both": [], "compare": [], "render json": [], "json.load x2": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        left, right = diff.load_pair(str(old), str(new))
        t1 = time.perf_counter()
        result = diff.diff_artifacts(left, right)
        t2 = time.perf_counter()
        diff.report_json(result)
        t3 = time.perf_counter()
        for path in (old, new):
            with open(path, "rb") as handle:
                json.load(handle)
        t4 = time.perf_counter()
        for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[name].append(seconds)
    return {name: statistics.median(values) for name, values in phases.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="oneiric-bench-diff-") as tmp:
        old, new = make_pair(args.entries, Path(tmp))
        size = old.stat().st_size / 1e6
        changes = subprocess.run([py, "-m", "oneiric.cli", "manifest", "diff", "--json", str(old), str(new)],
                                 capture_output=True, text=True, cwd=ROOT).stdout.count('"op":')
        rows = [
            ("diff --json", [py, "-m", "oneiric.cli", "manifest", "diff", "--json", str(old), str(new)], 1),
            ("diff text", [py, "-m", "oneiric.cli", "manifest", "diff", str(old), str(new)], 1),
            ("diff same", [py, "-m", "oneiric.cli", "manifest", "diff", str(old), str(old)], 0),
            ("json.load x2", [py, "-c", "import json, sys; [json.load(open(p, 'rb')) for p in sys.argv[1:]]",
                              str(old), str(new)], 0),
        ]
        if shutil.which("diff"):
            rows.append(("diff -u", ["diff", "-u", str(old), str(new)], 1))
        results = {name: timed(cmd, args.runs, expect) for name, cmd, expect in rows}
        phases = in_process(old, new, args.runs)
    base = results["json.load x2"]
    print(f"{args.entries} entries per artifact ({size:.1f} MB each), {changes} changes; "
          f"median of {args.runs} subprocess runs")
    print(f"{'command':<14} {'seconds':>8} {'x json.load':>12}")
    for name, seconds in results.items():
        print(f"{name:<14} {seconds:>8.3f} {seconds / base:>11.2f}x")
    print("in process: " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in phases.items()))
    target = results["diff --json"]
    print(f"target: diff --json under 1 s: {'met' if target < 1.0 else 'MISSED'} ({target:.3f} s)")
    return 0 if target < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
