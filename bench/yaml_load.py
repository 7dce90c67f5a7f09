"""YAML loader speed and memory: `load_yaml` on the 10k-entry manifest vs libyaml's event parser alone.

Run:  .venv/bin/python bench/yaml_load.py [--runs 7] [--entries 10000]

The manifest is the one bench/compile.py compiles. Each measurement runs in a fresh
subprocess (interleaved, median of --runs): the time of the call alone (imports and file
reading excluded) and the process's peak RSS. The baseline is `yaml.parse` with libyaml's
CParser over the same text, i.e. the events our loader consumes; PyYAML's composer
(`yaml.compose` with CSafeLoader, which the loader used before) is printed for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.compile import entry  # noqa: E402  (the same manifest shape the compile bench uses)

_CASES = {
    "libyaml events (yaml.parse, CParser)": "parse",
    "PyYAML compose (CSafeLoader)": "compose",
    "oneiric load_yaml": "load",
}


def _measure(kind: str, path: str) -> None:
    """Child process: time one call, print seconds and peak RSS (MiB) as JSON."""
    import yaml

    from compiler.loaders.yaml import load_yaml

    raw = Path(path).read_bytes()
    text = raw.decode("utf-8")
    started = time.perf_counter()
    if kind == "parse":
        from yaml.cyaml import CParser

        for _ in yaml.parse(text, Loader=CParser):
            pass
    elif kind == "compose":
        yaml.compose(text, Loader=yaml.CSafeLoader)
    else:
        result = load_yaml(raw, "m.yaml")
        assert not isinstance(result, list), result
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(*args.child)
        return
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "big.yaml"
        manifest.write_text("source: bench\nentries:\n" + "".join(entry(i) for i in range(args.entries)))
        samples: dict[str, list[dict]] = {label: [] for label in _CASES}
        for _ in range(args.runs):
            for label, kind in _CASES.items():
                out = subprocess.run([sys.executable, __file__, "--child", kind, str(manifest)], env=env,
                                     capture_output=True, text=True, check=True).stdout
                samples[label].append(json.loads(out))
        size = manifest.stat().st_size
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; {args.entries} entries "
          f"({size / 1e6:.1f} MB), median of {args.runs} interleaved runs, each in a fresh process\n")
    base = statistics.median(s["seconds"] for s in samples["libyaml events (yaml.parse, CParser)"])
    for label, runs in samples.items():
        seconds = statistics.median(s["seconds"] for s in runs)
        rss = statistics.median(s["peak_rss_mib"] for s in runs)
        print(f"  {label:38} {seconds:6.3f} s  (min {min(s['seconds'] for s in runs):.3f})  "
              f"peak RSS {rss:6.1f} MiB   ratio to libyaml events {seconds / base:5.2f}")


if __name__ == "__main__":
    main()
