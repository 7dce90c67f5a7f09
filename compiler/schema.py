"""Validate stage: JSON Schema (Draft 2020-12) errors turned into positioned diagnostics.

Every error is collected; anyOf/oneOf noise is reduced to the best match; an
unknown key points at the key itself with the closest known key as a hint; a
missing key points at the mapping that lacks it.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from compiler import fastschema
from compiler.diagnostics import Diagnostic, Document, pointer_from_parts, suggest
from runtime import ecma_regex
from runtime.about import SCHEMA_DIR

_CREDENTIAL_KEY = re.compile(r"(password|passwd|secret|token|api_?key|private_?key|credential)", re.I)


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """A schema by file name relative to schemas/ (e.g. "settings.schema.json", "providers/env.json")."""
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def schemas_by_id() -> dict[str, dict[str, Any]]:
    """Every shipped schema by its `$id`, for resolving `$ref` across files."""
    out = {}
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        if "$id" in schema:
            out[schema["$id"]] = schema
    return out


def jsonschema_validator(schema: dict[str, Any]) -> Any:
    """jsonschema's Draft 2020-12 validator, reading regexes as ECMA-262 (imported only when needed: ~120 ms)."""
    from referencing import Registry, Resource

    registry = Registry().with_resources((sid, Resource.from_contents(s)) for sid, s in schemas_by_id().items())
    return _ecma_validator_class()(schema, registry=registry)


@lru_cache(maxsize=None)
def _ecma_validator_class() -> Any:
    """Draft202012Validator whose `pattern`, `patternProperties` and `additionalProperties` read regexes as
    ECMA-262 (runtime.ecma_regex), as JSON Schema says; jsonschema itself uses Python's `re` as is. The three
    keywords follow jsonschema's own implementations, messages included."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    def pattern(validator: Any, patrn: str, instance: Any, schema: dict) -> Any:
        if validator.is_type(instance, "string") and not ecma_regex.search(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: dict, instance: Any, schema: dict) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for key, value in instance.items():
                if ecma_regex.search(patrn, key):
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    def additional_properties(validator: Any, ap: Any, instance: Any, schema: dict) -> Any:
        if not validator.is_type(instance, "object"):
            return
        extras = set(additional_keys(instance, schema))
        if validator.is_type(ap, "object"):
            for extra in extras:
                yield from validator.descend(instance[extra], ap, path=extra)
        elif not ap and extras:
            if "patternProperties" in schema:
                verb = "does" if len(extras) == 1 else "do"
                joined = ", ".join(repr(each) for each in sorted(extras))
                patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
                yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
            else:
                listed = ", ".join(repr(each) for each in sorted(extras, key=str))
                verb = "was" if len(extras) == 1 else "were"
                yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")

    return validators.extend(Draft202012Validator, {"pattern": pattern, "patternProperties": pattern_properties,
                                                    "additionalProperties": additional_properties})


def additional_keys(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """The keys of `instance` that neither `properties` nor a `patternProperties` regex (ECMA-262) covers."""
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [key for key in instance
            if key not in known and not any(ecma_regex.search(p, key) for p in patterns)]


@lru_cache(maxsize=None)
def named_validator(name: str) -> Any:
    """Our own schemas go through the fast validator unless they use a keyword it lacks."""
    schema = load_schema(name)
    try:
        return fastschema.Validator(schema, schemas_by_id())
    except fastschema.UnsupportedSchema:
        return jsonschema_validator(schema)


#: Top-level items (entries, keys) from which a document is first checked by jsonschema-rs.
LARGE_DOCUMENT = 2000


def check_document(doc: Document, schema_name: str) -> list[Diagnostic]:
    """Validate a whole loaded document against a named schema.

    A large document that jsonschema-rs finds valid is done in milliseconds (fastschema takes
    ~0.3 s on 10k entries); every other document, and any large one it refuses, goes through
    fastschema/jsonschema, which alone build the errors, so every message stays the same.
    """
    if _size(doc.data) >= LARGE_DOCUMENT and _fast_verdict(schema_name, doc.data):
        return []
    return check_value(doc, doc.data, named_validator(schema_name), "")


def _size(data: Any) -> int:
    if not isinstance(data, dict):
        return 0
    return sum(len(v) for v in data.values() if isinstance(v, (dict, list)))


@lru_cache(maxsize=None)
def _rs_validator(name: str) -> Any:
    import jsonschema_rs  # ~20-50 ms: only for large documents

    registry = jsonschema_rs.Registry(list(schemas_by_id().items()))
    return jsonschema_rs.validator_for(load_schema(name), registry=registry)


def _fast_verdict(name: str, data: Any) -> bool:
    """True only when jsonschema-rs is installed and says `data` is valid; anything else means "explain"."""
    try:
        return bool(_rs_validator(name).is_valid(data))
    except Exception:  # not installed, a schema or value it cannot take: fastschema decides
        return False


def first_error(schema: dict[str, Any], data: Any) -> Any | None:
    """The first error of `data` against an inline schema (e.g. a provider's), None when it is valid."""
    return next(iter(jsonschema_validator(schema).iter_errors(data)), None)


def check_subtree(doc: Document, data: Any, schema: dict[str, Any], pointer: str) -> list[Diagnostic]:
    """Validate a value found at `pointer` in `doc` against an inline schema (e.g. a provider's)."""
    try:
        fastschema.check_schema(schema)
        validator: Any = fastschema.Validator(schema)
    except fastschema.UnsupportedSchema:
        from jsonschema import Draft202012Validator

        Draft202012Validator.check_schema(schema)
        validator = jsonschema_validator(schema)
    return check_value(doc, data, validator, pointer)


def check_value(doc: Document, data: Any, validator: Any, pointer: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for error in validator.iter_errors(data):
        out.extend(_diagnose(_reduce(error), doc, pointer))
    return out


def _reduce(error: Any) -> Any:
    """For anyOf/oneOf, the sub-error that best explains the failure."""
    while error.validator in ("anyOf", "oneOf") and error.context:
        if isinstance(error, fastschema.Error):
            deeper = fastschema.best_match(error.context)
        else:
            from jsonschema.exceptions import best_match

            deeper = best_match(error.context)
        if deeper is None or deeper is error:
            break
        error = deeper
    return error


def _diagnose(error: Any, doc: Document, base: str) -> list[Diagnostic]:
    pointer = base + pointer_from_parts(error.absolute_path)
    rule = f"schema.{error.validator}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extras = additional_keys(error.instance, error.schema)
        out = []
        for key in extras:
            near = suggest(key, known)
            out.append(Diagnostic("schema.unknown-key", f"unknown key {key!r}",
                                  doc.span(f"{pointer}/{key}", key=True), f"{pointer}/{key}",
                                  f"did you mean {near!r}?" if near else
                                  ("known keys: " + ", ".join(sorted(known)) if known else None)))
        return out
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        key = missing[0] if missing else "?"
        return [Diagnostic("schema.required", f"missing required key {key!r}",
                           doc.span(pointer, key=True), pointer)]
    last = str(error.absolute_path[-1]) if error.absolute_path else ""
    redacted = bool(_CREDENTIAL_KEY.search(last))  # a credential's value appears in neither message nor hint
    message = f"invalid value ({error.validator}: {error.validator_value!r})" if redacted else error.message
    hint = None
    if error.validator == "enum" and isinstance(error.instance, str):
        near = suggest(error.instance, [str(v) for v in error.validator_value])
        if near:
            hint = f"did you mean {near!r}?"
    reading = doc.readings.get(pointer)  # e.g. `enabled: yes`, a boolean in YAML 1.1, a string in 1.2
    if reading and not redacted:
        hint = f"{hint}; {reading}" if hint else reading
    return [Diagnostic(rule, message, doc.span(pointer), pointer, hint)]
