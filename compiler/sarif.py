"""SARIF 2.1.0 reporter: diagnostics as one code-scanning run (`--format sarif`).

One rule per distinct diagnostic `rule`; each result carries the file,
line and column relative to the checkout root (`%SRCROOT%`), its JSON path
and the hint. A diagnostic without a position (a project-level finding) has
no location. Output is deterministic: rules and results are sorted.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from compiler.diagnostics import Diagnostic
from runtime.about import VERSION

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _result(d: Diagnostic, rule_index: int) -> dict[str, Any]:
    text = f"{d.json_path}: {d.message}" + (f" ({d.hint})" if d.hint else "")
    result: dict[str, Any] = {
        "ruleId": d.rule,
        "ruleIndex": rule_index,
        "level": "error",
        "message": {"text": text},
        "properties": {"jsonPath": d.json_path},
    }
    if d.hint:
        result["properties"]["hint"] = d.hint
    if d.span:
        result["locations"] = [{
            "physicalLocation": {
                "artifactLocation": {"uri": d.span.file, "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": max(d.span.line, 1), "startColumn": max(d.span.col, 1)},
            },
        }]
    return result


def build_log(diagnostics: Iterable[Diagnostic]) -> dict[str, Any]:
    """The SARIF log object for `diagnostics` (an empty result list when there are none)."""
    items = sorted(diagnostics, key=Diagnostic.sort_key)
    rule_ids = sorted({d.rule for d in items})
    index = {rule: i for i, rule in enumerate(rule_ids)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "oneiric",
                "version": VERSION,
                "rules": [{"id": rule, "name": rule, "shortDescription": {"text": f"oneiric check {rule}"},
                           "defaultConfiguration": {"level": "error"}} for rule in rule_ids],
            }},
            "columnKind": "unicodeCodePoints",
            "results": [_result(d, index[d.rule]) for d in items],
        }],
    }


def report_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps(build_log(diagnostics), indent=2, sort_keys=True, ensure_ascii=False)
