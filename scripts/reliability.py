"""Reliability figures: record them (tests/hardening, bench/fuzz_*.py, bench/load.py) and render docs/reliability.md.

    .venv/bin/pytest tests/hardening -q        # writes one JSON record per test
    .venv/bin/python bench/load.py             # adds the full-size load record (optional)
    .venv/bin/python scripts/reliability.py    # aggregates them into docs/reliability.md

Records are JSON files in `$ONEIRIC_RELIABILITY_DIR`, else `.oneiric_cache/reliability/` under the
repository, one per test id (a rerun overwrites its own record). Each holds what the test injects,
what must hold, the figure obtained and the outcome; this script only reads and renders them, so
the document never says more than a run measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
#: Areas in the order the document lists them.
AREAS = ("fuzzing", "faults", "load", "security")
#: Checks that live in other suites and are referenced, not duplicated.
REFERENCED = [
    {"area": "security", "test": "tests/secrets/test_secrets_e2e.py::test_serverless_profile_redaction_sweep",
     "injects": "known secret values (Secret Manager fake, env) through compile, health, orchestrate, "
                "explain, report and a permission-denied failure",
     "must_hold": "no value, raw or base64, in any file written or any output printed",
     "figure": "see that test (run with the secrets suite)"},
    {"area": "security", "test": "tests/secrets/test_secrets_e2e.py::test_the_sweep_finds_planted_values",
     "injects": "planted values, raw and base64", "must_hold": "the sweep finds them (the sweep can fail)",
     "figure": "see that test"},
]


def record_dir() -> Path:
    return Path(os.environ.get("ONEIRIC_RELIABILITY_DIR") or ROOT / ".oneiric_cache" / "reliability")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:180]


def write_record(test_id: str, *, area: str, injects: str, must_hold: str, figure: str, outcome: str,
                 numbers: dict[str, Any] | None = None, source: str = "pytest", command: str | None = None) -> Path:
    """Write (atomically) one record; returns its path."""
    out = record_dir()
    out.mkdir(parents=True, exist_ok=True)
    data = {"id": test_id, "area": area, "injects": injects, "must_hold": must_hold, "figure": figure,
            "outcome": outcome, "numbers": numbers or {}, "source": source, "command": command,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = out / f"{_slug(test_id)}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        if isinstance(data, dict) and {"id", "area", "injects", "must_hold", "figure", "outcome"} <= set(data):
            records.append(data)
    return records


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(record: dict[str, Any], key: str) -> int:
    value = record.get("numbers", {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _totals(records: list[dict[str, Any]]) -> list[str]:
    """One line per area, summed from the records' numbers (only what the records measured)."""
    by = {a: [r for r in records if r["area"] == a] for a in AREAS}
    ok = lambda rs: sum(1 for r in rs if r["outcome"] == "passed")  # noqa: E731
    fuzz_tests = [r for r in by["fuzzing"] if r.get("source") == "pytest"]
    fuzz_bench = [r for r in by["fuzzing"] if r.get("source") == "bench"]
    suite_inputs = sum(_num(r, "inputs") or 1 for r in fuzz_tests)
    bench_execs = sum(_num(r, "executions") for r in fuzz_bench)
    bench_findings = sum(_num(r, "findings") for r in fuzz_bench)
    kills = sum(_num(r, "kills") for r in by["faults"])
    attempts = sum(_num(r, "attempts") for r in by["security"])
    refused = sum(_num(r, "refused") for r in by["security"])
    load = [r for r in by["load"]]
    out = ["## Totals", "", "| area | figure |", "|---|---|",
           f"| fuzzing | {suite_inputs:,} inputs tried by {len(fuzz_tests)} suite tests ({ok(fuzz_tests)} passed)"
           + (f"; {bench_execs:,} executions by {len(fuzz_bench)} atheris harnesses, {bench_findings} findings"
              if fuzz_bench else "") + " |",
           f"| faults | {ok(by['faults'])} of {len(by['faults'])} fault scenarios survived (incl. {kills} kill -9) |",
           f"| load | " + "; ".join(f"`{r['id']}`: {r['figure']}" for r in load) + " |",
           f"| security | {refused:,} of {attempts:,} hostile attempts refused; {ok(by['security'])} of "
           f"{len(by['security'])} checks passed |", ""]
    return out


def render(records: list[dict[str, Any]], source_dir: str) -> str:
    lines = ["# Reliability: fuzzing, faults, load and security, with the figures obtained", "",
             "Generated by `scripts/reliability.py` from the records that `tests/hardening` and the `bench/` "
             "harnesses wrote; do not edit by hand. Regenerate with:", "",
             "```bash", ".venv/bin/pytest tests/hardening -q", ".venv/bin/python scripts/reliability.py", "```", "",
             "Optional, longer runs that add their own rows (outside CI):", "",
             "```bash", ".venv/bin/python bench/load.py                 # 80 clients x 20 s + SIGTERM under load",
             ".venv/bin/python bench/fuzz_yaml.py --seconds 60  # likewise fuzz_toml, fuzz_compile, fuzz_artifact, "
             "fuzz_tasks_body", "```", ""]
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    newest = max((r.get("recorded_at", "") for r in records), default="-")
    lines += [f"Records: {len(records)} from `{source_dir}` "
              f"({', '.join(f'{v} {k}' for k, v in sorted(outcomes.items())) or 'none'}); newest {newest}.", ""]
    lines += _totals(records)
    for area in AREAS + tuple(sorted({r["area"] for r in records} - set(AREAS))):
        rows = sorted((r for r in records if r["area"] == area), key=lambda r: (r.get("source") != "pytest", r["id"]))
        refs = [r for r in REFERENCED if r["area"] == area]
        if not rows and not refs:
            continue
        lines += [f"## {area.capitalize()}", "", "| test | injects | must hold | figure obtained | outcome |",
                  "|---|---|---|---|---|"]
        for r in rows:
            name = f"`{r['id']}`" + (f" (`{r['command']}`)" if r.get("command") else "")
            lines.append(f"| {_cell(name)} | {_cell(r['injects'])} | {_cell(r['must_hold'])} | "
                         f"{_cell(r['figure'])} | {_cell(r['outcome'])} |")
        for r in refs:
            lines.append(f"| `{_cell(r['test'])}` | {_cell(r['injects'])} | {_cell(r['must_hold'])} | "
                         f"{_cell(r['figure'])} | referenced |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render docs/reliability.md from the recorded figures.")
    parser.add_argument("--records", type=Path, default=None, help="record dir (default: $ONEIRIC_RELIABILITY_DIR "
                        "or .oneiric_cache/reliability)")
    parser.add_argument("--output", type=Path, default=DOC, help="Markdown file to write (default docs/reliability.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs instead of writing")
    args = parser.parse_args(argv)
    directory = args.records or record_dir()
    records = load_records(directory)
    if not records:
        print(f"no records in {directory}: run .venv/bin/pytest tests/hardening first", file=sys.stderr)
        return 1
    try:
        shown = directory.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        shown = directory.name
    text = render(records, shown)
    if args.check:
        same = args.output.exists() and args.output.read_text(encoding="utf-8") == text
        print(f"{args.output} is {'up to date' if same else 'stale'}")
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    failed = [r["id"] for r in records if r["outcome"] not in ("passed", "xfailed")]
    print(f"wrote {args.output} ({len(records)} records" + (f"; NOT passed: {', '.join(failed)}" if failed else "")
          + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
