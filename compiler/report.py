"""Reporters: render diagnostics for people (text), tools (json) and CI (github annotations, sarif).

Reporters only read diagnostics; exit codes are decided by the caller.
"""

from __future__ import annotations

import json
from typing import Callable, Iterable

from compiler.diagnostics import Diagnostic


def report_text(diagnostics: Iterable[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        where = str(d.span) if d.span else "<project>"
        line = f"{where}: error: {d.json_path}: {d.message}"
        if d.hint:
            line += f" ({d.hint})"
        lines.append(line)
    return "\n".join(lines)


def as_dict(d: Diagnostic) -> dict:
    return {
        "file": d.span.file if d.span else None,
        "line": d.span.line if d.span else None,
        "column": d.span.col if d.span else None,
        "path": d.json_path,
        "message": d.message,
        "hint": d.hint,
        "rule": d.rule,
    }


def report_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([as_dict(d) for d in diagnostics], indent=2, sort_keys=True)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def report_github(diagnostics: Iterable[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        props = [f"title={_escape_property(d.rule)}"]
        if d.span:
            props = [f"file={_escape_property(d.span.file)}", f"line={d.span.line}", f"col={d.span.col}"] + props
        message = f"{d.json_path}: {d.message}" + (f" ({d.hint})" if d.hint else "")
        lines.append(f"::error {','.join(props)}::{_escape_data(message)}")
    return "\n".join(lines)


def report_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    """SARIF 2.1.0 for code scanning (see compiler/sarif.py)."""
    from compiler.sarif import report_sarif as render

    return render(diagnostics)


#: Reporter by name; also the CLI's --format choices.
REPORTERS: dict[str, Callable[[Iterable[Diagnostic]], str]] = {
    "text": report_text,
    "json": report_json,
    "github": report_github,
    "sarif": report_sarif,
}
