"""`manifest validate`: load + schema checks for individual files, and compile's checks for the manifests among
them (with the project's settings), every error at once."""

from __future__ import annotations

from pathlib import Path

from compiler.build import check_manifests
from compiler.diagnostics import Diagnostic, Span
from compiler.project import load_file, load_manifests, relative
from compiler.schema import check_document


def validate_paths(paths: list[Path], root: Path, profiles: list[str] | None = None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    manifests = []
    for path in paths:
        if path.suffix not in (".yaml", ".yml", ".toml"):
            out.append(Diagnostic("io", "unsupported file type (expected .yaml, .yml or .toml)",
                                  Span(relative(path, root), 1, 1)))
            continue
        doc = load_file(path, root)
        if isinstance(doc, list):
            out.extend(doc)
        elif path.suffix == ".toml":
            out.extend(check_document(doc, "settings.schema.json"))
        else:
            manifests.append(doc)
    if manifests:
        # checked as compile checks the project they belong to: with its other manifests (a selection or a
        # DAG may name an entry of another file); those files' own load errors are theirs to report
        named = {doc.path for doc in manifests}
        others = [doc for doc in load_manifests(root)[0] if doc.path not in named]
        together = sorted(manifests + others, key=lambda doc: doc.path)
        out.extend(d for d in check_manifests(root, together, profiles) if d not in out)
    return sorted(out, key=Diagnostic.sort_key)
