"""The shared runner of bench/fuzz_*.py: atheris (libFuzzer, coverage-guided) when installed, else a bounded
random-mutation loop; a fixed time budget either way; prints executions and findings.

    .venv/bin/python bench/fuzz_yaml.py [--seconds 60] [--no-atheris] [--no-record]

With atheris the fuzzing runs in a child process (libFuzzer ends the process when the budget is spent);
the parent reads libFuzzer's final stats, counts crash files (inputs that broke the contract, kept under
.bench/fuzz/<name>/) and prints one summary. Without atheris (or with --no-atheris) the same contract is
checked in process on inputs made by tests/support/fuzz_inputs.mutate from the seeds, for the same budget.
A finding is any exception out of `check(data)`: the contract of the stage under test was broken.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def run(name: str, description: str, load_check: Callable[[], Callable[[bytes], None]], seeds: list[bytes],
        argv: list[str] | None = None) -> int:
    """`load_check()` imports the stage under test (instrumented under atheris) and returns `check(data)`."""
    p = argparse.ArgumentParser(description=f"fuzz {description} for a fixed time budget")
    p.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    p.add_argument("--no-atheris", action="store_true", help="use the random-mutation loop even if atheris is here")
    p.add_argument("--no-record", action="store_true", help="do not write a docs/reliability.md record")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=ROOT / ".bench" / "fuzz" / name, help="where failing inputs go")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        return _atheris_child(load_check, seeds, args)
    engine = "atheris" if _has_atheris() and not args.no_atheris else "random-mutation loop"
    started = time.monotonic()
    if engine == "atheris":
        executions, findings, detail = _atheris_parent(name, args)
    else:
        executions, findings, detail = _random_loop(load_check(), seeds, args)
    elapsed = time.monotonic() - started
    print(f"{name}: {executions:,} executions in {elapsed:.0f} s ({engine}); findings: {findings}"
          + (f" (inputs in {args.out})" if findings else ""))
    if detail:
        print(detail)
    if not args.no_record:
        from scripts.reliability import write_record

        command = f"bench/fuzz_{name}.py --seconds {args.seconds:g}" + (" --no-atheris" if args.no_atheris else "")
        write_record(f"bench/fuzz_{name}.py", area="fuzzing", source="bench", command=command,
                     injects=f"{description}: {engine} for {args.seconds:g} s", must_hold="the stage's contract "
                     "(a result or a clean, located error; no other exception) on every input",
                     figure=f"{executions:,} executions, {findings} findings", outcome="passed" if not findings
                     else "failed", numbers={"executions": executions, "findings": findings, "engine": engine,
                                             "seconds": round(elapsed, 1)})
    return 1 if findings else 0


def _random_loop(check: Callable[[bytes], None], seeds: list[bytes], args) -> tuple[int, int, str]:
    from tests.support.fuzz_inputs import mutate

    rng = random.Random(int(time.time()))
    deadline = time.monotonic() + args.seconds
    executions = findings = 0
    first = ""
    while time.monotonic() < deadline:
        data = mutate(rng.choice(seeds), rng) if rng.random() < 0.9 else os.urandom(rng.randint(0, 256))
        executions += 1
        try:
            check(data)
        except Exception:
            findings += 1
            (args.out / f"finding-{findings}.bin").write_bytes(data)
            if not first:
                first = traceback.format_exc(limit=6)
    return executions, findings, first


def _atheris_child(load_check, seeds: list[bytes], args) -> int:
    import atheris

    with atheris.instrument_imports():
        check = load_check()
    corpus = Path(tempfile.mkdtemp(prefix="oneiric-fuzz-corpus-"))
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={int(args.seconds)}", f"-artifact_prefix={args.out}/",
                   "-rss_limit_mb=2048", "-timeout=5", "-print_final_stats=1", "-max_len=65536"],
                  lambda data: check(bytes(data)))
    atheris.Fuzz()
    return 0


def _atheris_parent(name: str, args) -> tuple[int, int, str]:
    before = set(args.out.glob("*"))
    argv = [sys.executable, sys.argv[0], "--child", "--seconds", str(args.seconds), "--out", str(args.out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.seconds + 120)
    log = proc.stdout + proc.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log) or re.findall(r"Done (\d+) runs", log)
    executions = int(runs[-1]) if runs else 0
    new = sorted(set(args.out.glob("*")) - before)
    findings = len([p for p in new if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))])
    detail = ""
    if proc.returncode != 0 or findings:
        tail = [l for l in log.splitlines() if l.strip()][-25:]
        detail = f"libFuzzer exit {proc.returncode}:\n" + "\n".join(tail)
        findings = max(findings, 1)
    return executions, findings, detail


# ---------------------------------------------------------------- contracts shared by the harnesses

def reference_seeds(*rel: str) -> list[bytes]:
    return [(ROOT / r).read_bytes() for r in rel]
