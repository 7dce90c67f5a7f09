"""Fuzz the runtime's artifact loader (runtime.artifact.load_artifacts): see bench/_fuzz.py.

Each input replaces build/serverless_profile.json of a compiled copy of the reference project; when
the input parses as a JSON object its digest is recomputed and it is written canonically, so the
decoding past the digest check is fuzzed too. Contract: loaded, or ArtifactError naming the file.

    .venv/bin/python bench/fuzz_artifact.py [--seconds 60] [--no-atheris]
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._fuzz import run  # noqa: E402


def load_check():
    import json
    import shutil
    import tempfile

    from runtime.artifact import ArtifactError, load_artifacts
    from runtime.canonical import compute_digest, pretty_bytes

    work = Path(tempfile.mkdtemp(prefix="oneiric-fuzz-artifact-")) / "build"
    shutil.copytree(ROOT / "build", work)
    target = work / "serverless_profile.json"

    def check(data: bytes) -> None:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            obj.pop("digest", None)
            try:
                obj["digest"] = compute_digest(obj)
                data = pretty_bytes(obj)
            except (ValueError, TypeError, RecursionError):
                pass
        target.write_bytes(data)
        try:
            load_artifacts(target, base=work.parent)
        except ArtifactError as exc:
            if "build/" not in str(exc):  # names the artifact (or the manifest file it links to)
                raise AssertionError(f"error does not name the file: {exc}") from None

    return check


if __name__ == "__main__":
    seeds = [(ROOT / "build" / "serverless_profile.json").read_bytes()]
    sys.exit(run("artifact", "runtime.artifact.load_artifacts on mutated and re-digested profile artifacts",
                 load_check, seeds))
