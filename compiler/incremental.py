"""Incremental compile: skip the build when nothing it reads has changed since the last compile.

After every compile that wrote or verified the artifacts, a stamp records, for that request (output
dir and profiles):

- the sha256 of every input file (the manifest and settings globs of `compiler.project`, so a file
  added or removed counts too);
- a fingerprint of the compiler: the contents of its code, of the runtime code it shares (model,
  canonical encoding), of the schemas and templates, plus the interpreter's version and where and when
  the parsing and validating libraries were installed;
- the source of every module a factory of the artifacts names (`check_factories` reads them);
- the sha256 and digest of every artifact the compile wrote.

`compile` and `compile --check` take the stamp's word only when all of these match now, else they
build as before; `--force` always builds. The stamp is a local cache, not evidence: it lives in the
project's `.oneiric_cache/` (ignored by git), so the artifacts stay the only thing committed, their
bytes never depend on it, and a fresh clone simply builds once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

STAMP_VERSION = 1
CACHE_DIR = ".oneiric_cache"
#: packages whose code and data decide what a compile writes (content-hashed)
_OWN_PACKAGES = ("compiler", "runtime", "schemas")
_OWN_SUFFIXES = (".py", ".json", ".j2")
#: libraries that read, validate, convert or render what a compile writes (fingerprinted by where and when
#: they were installed); tests/compiler/test_incremental.py checks it covers every library compiler/ imports
LIBRARIES = ("yaml", "_yaml", "tomli", "jsonschema", "jsonschema_specifications", "jsonschema_rs", "referencing",
             "cattrs", "attrs", "jinja2", "orjson")
#: imported by compiler/ but deciding nothing it writes
NOT_FINGERPRINTED = frozenset({"click"})


def stamp_path(root: Path, out_dir: Path, profiles: list[str] | None) -> Path:
    key = json.dumps([str(out_dir.resolve()), sorted(set(profiles)) if profiles else None])
    return root / CACHE_DIR / f"compile-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def input_hashes(root: Path) -> dict[str, str | None]:
    from compiler.project import manifest_paths, settings_paths

    return {p.relative_to(root).as_posix(): _sha256(p) for p in manifest_paths(root) + settings_paths(root)}


def compiler_fingerprint() -> str:
    """One hash over the compiler's own files, the interpreter and the installed libraries."""
    digest = hashlib.sha256(sys.version.encode())
    base = Path(__file__).resolve().parents[1]
    for package in _OWN_PACKAGES:
        for path in sorted((base / package).rglob("*")):
            if path.suffix in _OWN_SUFFIXES and "__pycache__" not in path.parts:
                digest.update(path.relative_to(base).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    import importlib.util

    for name in LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None and spec.origin else ""
        try:
            stat = os.stat(origin) if origin else None
        except OSError:
            stat = None
        digest.update(f"{name}={origin}:{stat.st_size if stat else ''}:{stat.st_mtime_ns if stat else ''}\0".encode())
    return digest.hexdigest()


def factory_hashes(modules: Iterable[str]) -> dict[str, list[str | None]]:
    """module -> [its source file, that file's sha256] (both None when no source is found)."""
    from compiler.checks import module_source

    out: dict[str, list[str | None]] = {}
    for module in sorted(set(modules)):
        path = module_source(module)
        out[module] = [str(path), _sha256(path)] if path is not None else [None, None]
    return out


def _name(path: Path, out_dir: Path) -> str:
    """An artifact's path relative to the output dir (absolute when it lies elsewhere)."""
    try:
        return path.relative_to(out_dir).as_posix()
    except ValueError:
        return str(path.resolve())


def _artifact_record(files: dict[Path, bytes], digests: dict[Path, str], out_dir: Path) -> dict[str, list[str]]:
    return {_name(path, out_dir): [hashlib.sha256(data).hexdigest(), digests[path]] for path, data in files.items()}


def before_build(root: Path) -> dict[str, Any]:
    """What the stamp records about the inputs and the compiler, taken before the build reads them: a file
    edited while the build runs then differs from the stamp, and the next compile builds again."""
    return {"inputs": input_hashes(root), "compiler": compiler_fingerprint(), "started_ns": time.time_ns()}


def record(root: Path, out_dir: Path, profiles: list[str] | None, result: Any, before: dict[str, Any]) -> None:
    """Write the stamp for a compile whose artifacts are now on disk (best effort: a read-only project
    just builds every time). No stamp when a factory module was edited after the build started (the
    checks may have read it before the edit)."""
    factories = factory_hashes(result.factory_modules)
    for source, _ in factories.values():
        try:
            if source is not None and os.stat(source).st_mtime_ns >= before["started_ns"]:
                return
        except OSError:
            return
    stamp = {
        "version": STAMP_VERSION,
        "inputs": before["inputs"],
        "compiler": before["compiler"],
        "factories": factories,
        "artifacts": _artifact_record(result.files, result.digests, out_dir),
    }
    path = stamp_path(root, out_dir, profiles)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stamp, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def unchanged(root: Path, out_dir: Path, profiles: list[str] | None) -> list[tuple[Path, str]] | None:
    """[(artifact path, digest)] when the last compile of this request is still what a build would
    write (every input, the compiler, every factory source and every artifact as recorded); else None."""
    try:
        stamp = json.loads(stamp_path(root, out_dir, profiles).read_text())
    except (OSError, ValueError):
        return None
    from runtime.locate import put_on_import_path

    put_on_import_path(root)  # as the build does: the project's own factory modules resolve the same way
    if not isinstance(stamp, dict) or stamp.get("version") != STAMP_VERSION or not stamp.get("artifacts"):
        return None
    artifacts = {out_dir / name: record for name, record in stamp["artifacts"].items()}
    for path, (sha256, _) in artifacts.items():  # the cheapest check first: a hand-edited or deleted artifact
        if _sha256(path) != sha256:
            return None
    if stamp.get("inputs") != input_hashes(root):
        return None
    if stamp.get("factories") != factory_hashes(stamp.get("factories") or {}):
        return None
    if stamp.get("compiler") != compiler_fingerprint():
        return None
    return [(path, digest) for path, (_, digest) in sorted(artifacts.items())]
