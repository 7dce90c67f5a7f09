"""`manifest validate`: load + schema + entry checks for individual files, every error at once."""

from __future__ import annotations

from pathlib import Path

from compiler import checks
from compiler.diagnostics import Diagnostic, Span
from compiler.project import load_file, relative
from compiler.resolve import load_entries
from compiler.schema import check_document


def validate_paths(paths: list[Path], root: Path) -> list[Diagnostic]:
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
        entries, errors = load_entries(manifests)
        out.extend(errors)
        if not errors:
            out.extend(checks.check_dags(entries, {doc.path: doc for doc in manifests}))
    return sorted(out, key=Diagnostic.sort_key)
