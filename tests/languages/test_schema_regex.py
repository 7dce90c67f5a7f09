"""JSON Schema regexes are ECMA-262: every reader of a schema's `pattern` (the compiler's fast validator, its
jsonschema fallback, the runtime's env-key contract) matches what ECMA-262 matches, not what Python's `re`
would match reading the same text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compiler import fastschema
from compiler.schema import jsonschema_validator
from runtime import contract, ecma_regex
from tests.compiler.inputs import BASE_MANIFEST, BASE_SETTINGS
from tests.support.cli import cli_in_process
from tests.support.projects import write_project

# (pattern, text, does ECMA-262 find a match?) - each row is one place where Python's `re` alone answers otherwise
CASES = [
    ("^[a-z]+$", "abc\n", False),           # `$` is the end of the text, not "before a final newline"
    ("^[a-z]+$", "abc", True),
    ("^a[$]$", "a$", True),                 # a `$` inside a class stays a literal
    ("^a.c$", "a\rc", False),               # `.` matches no line terminator...
    ("^a.c$", "a\u2028c", False),
    ("^a.c$", "a\tc", True),                # ...and anything else
    ("^\\d+$", "\u0661\u0662", False),      # `\d` is ASCII digits only
    ("^[\\d]+$", "\u0663", False),
    ("^\\d+$", "42", True),
    ("^\\w+$", "\u00e9t\u00e9", False),     # `\w` is [A-Za-z0-9_]
    ("^\\s$", "\ufeff", True),              # `\s` includes U+FEFF...
    ("^\\s$", "\x1c", False),               # ...and not U+001C or U+0085
    ("^\\s$", "\x85", False),
    ("\\bport", "\u00e9port", True),        # `\b` sees ASCII word characters only
    ("^(?<y>[0-9]{4})-\\k<y>$", "2026-2026", True),  # named groups in ECMA spelling
    ("^(?<y>[0-9]{4})-\\k<y>$", "2026-2025", False),
    ("(?<=a)b", "ab", True),                # lookbehind is not a named group
    ("^[^]$", "\n", True),                  # `[^]` is any character, `[]` none
    ("[]", "a", False),
    ("^\\cJ$", "\n", True),                 # control escapes
    ("^\\p{Letter}+$", "\u03c0x", True),    # Unicode General_Category escapes (JSON Schema: Unicode semantics)
    ("^\\p{L}+$", "x1", False),
    ("^\\P{Nd}+$", "ab", True),
    ("^\\p{digit}+$", "\u09ea\u09e8", True),
]


@pytest.mark.parametrize("pattern,text,ecma", CASES)
def test_every_reader_of_a_pattern_matches_as_ecma_262(pattern: str, text: str, ecma: bool):
    schema = {"type": "string", "pattern": pattern}
    assert contract.pattern_matches(pattern, text) is ecma
    assert (not list(fastschema.Validator(schema).iter_errors(text))) is ecma
    assert jsonschema_validator(schema).is_valid(text) is ecma


@pytest.mark.parametrize("pattern,text,ecma", [c for c in CASES if c[0].startswith("^")])
def test_pattern_properties_and_additional_properties_read_keys_as_ecma_262(pattern: str, text: str, ecma: bool):
    schema = {"type": "object", "patternProperties": {pattern: {"type": "integer"}}, "additionalProperties": False}
    for validator in (fastschema.Validator(schema), jsonschema_validator(schema)):
        errors = list(validator.iter_errors({text: 1}))
        assert (not errors) is ecma, (validator, errors)
        assert (not list(validator.iter_errors({text: "not an integer"}))) is False


def test_a_property_escape_the_translation_cannot_express_is_an_invalid_schema_not_a_guess():
    with pytest.raises(re.error, match="unsupported Unicode property"):
        ecma_regex.translate("^\\p{Script=Greek}+$")
    with pytest.raises(fastschema.InvalidSchema, match="Script=Greek"):
        fastschema.Validator({"type": "string", "pattern": "^\\p{Script=Greek}+$"})


def test_compile_refuses_a_name_with_a_trailing_newline_at_its_line_and_column(tmp_path: Path):
    manifest = BASE_MANIFEST.replace("    key: cache\n", '    key: "cache\\n"\n')
    root = write_project(tmp_path / "proj", manifest, BASE_SETTINGS)
    result = cli_in_process("compile", "--project-dir", str(root), cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deployment/manifests/app.yaml:8:10" in result.stderr and "does not match" in result.stderr
    assert not (root / "build").exists()
