"""A small Draft 2020-12 validator for Oneiric's own schemas, so validating needs no jsonschema import.

jsonschema costs ~120 ms to import, more than a whole `manifest validate` of
a small file should take. Oneiric's schemas use a small, fixed set of
keywords; this module implements exactly those, with jsonschema's error
messages and paths. A schema using any other keyword is refused at compile
(`UnsupportedSchema`), and the caller falls back to jsonschema, which also
stays the oracle: tests/compiler/test_fastschema.py checks both agree.
A manifest's own `settings_schema` uses it too when it sticks to these
keywords (after `check_schema`); anything else goes to jsonschema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import unquote

from runtime import ecma_regex

_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "format", "examples", "$comment"}
_KEYWORDS = {
    "type", "enum", "const", "properties", "additionalProperties", "required", "patternProperties",
    "propertyNames", "items", "minItems", "uniqueItems", "pattern", "minLength", "maxLength", "minimum",
    "maximum", "exclusiveMinimum", "$ref", "anyOf", "oneOf",
}


class UnsupportedSchema(Exception):
    """The schema uses a keyword this validator does not implement."""


class InvalidSchema(Exception):
    """The schema itself is malformed (e.g. an unknown type name or a bad regex); `pointer` says where."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.message = message


#: the one dialect implemented; a schema naming another meta-schema goes to jsonschema
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ARRAY_OF_SCHEMAS = ("anyOf", "oneOf")
_MAP_OF_SCHEMAS = ("properties", "patternProperties", "$defs")
_NON_NEGATIVE = ("minItems", "minLength", "maxLength")


def check_schema(schema: Any, where: str = "") -> None:
    """Meta-check a schema that uses only supported keywords; raises InvalidSchema or UnsupportedSchema.

    Equivalent, for this keyword subset, to validating against the 2020-12 meta-schema.
    """
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise InvalidSchema(where, "a schema must be an object or a boolean")
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise UnsupportedSchema(", ".join(sorted(unknown)))
    _check_dialect(schema, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        bad = [t for t in types if t not in _TYPES]
        if bad or not types:
            raise InvalidSchema(f"{where}/type", f"{bad[0] if bad else '[]'!r} is not a JSON Schema type")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise InvalidSchema(f"{where}/enum", "enum must be an array")
    if "required" in schema and (not isinstance(schema["required"], list)
                                 or not all(isinstance(r, str) for r in schema["required"])):
        raise InvalidSchema(f"{where}/required", "required must be an array of strings")
    for key in _NON_NEGATIVE:
        if key in schema and not (_TYPES["integer"](schema[key]) and schema[key] >= 0):  # 2.0 is an integer too
            raise InvalidSchema(f"{where}/{key}", f"{key} must be a non-negative integer")
    for key in ("minimum", "maximum", "exclusiveMinimum"):
        if key in schema and not _TYPES["number"](schema[key]):
            raise InvalidSchema(f"{where}/{key}", f"{key} must be a number")
    if "uniqueItems" in schema and not isinstance(schema["uniqueItems"], bool):
        raise InvalidSchema(f"{where}/uniqueItems", "uniqueItems must be a boolean")
    patterns = [schema["pattern"]] if "pattern" in schema else []
    patterns += list(schema.get("patternProperties", {}))
    for pattern in patterns:
        _compile(pattern, where)
    if "$ref" in schema:
        raise UnsupportedSchema("$ref")  # references in user schemas go to jsonschema
    for key in _MAP_OF_SCHEMAS:
        if key in schema:
            if not isinstance(schema[key], dict):
                raise InvalidSchema(f"{where}/{key}", f"{key} must be an object")
            for name, sub in schema[key].items():
                check_schema(sub, f"{where}/{key}/{name}")
    for key in ("additionalProperties", "items", "propertyNames"):
        if key in schema:
            check_schema(schema[key], f"{where}/{key}")
    for key in _ARRAY_OF_SCHEMAS:
        if key in schema:
            if not isinstance(schema[key], list) or not schema[key]:
                raise InvalidSchema(f"{where}/{key}", f"{key} must be a non-empty array")
            for i, sub in enumerate(schema[key]):
                check_schema(sub, f"{where}/{key}/{i}")


def _check_dialect(schema: dict[str, Any], where: str) -> None:
    """Only the root may set `$schema` (to 2020-12) or `$id`: anything else changes how the rest is read."""
    if "$schema" in schema and (where or str(schema["$schema"]).rstrip("#") != DIALECT):
        raise UnsupportedSchema("$schema")
    if "$id" in schema and where:
        raise UnsupportedSchema("$id")


def _compile(pattern: Any, where: str) -> re.Pattern:
    """A schema's regex read as ECMA-262 (runtime.ecma_regex); one that does not compile is an invalid schema."""
    try:
        return ecma_regex.compile_pattern(pattern)
    except (re.error, TypeError) as exc:
        raise InvalidSchema(where, f"{pattern!r} is not a valid regular expression ({exc})") from None


@dataclass
class Error:
    """The subset of jsonschema.ValidationError that compiler.schema reads."""

    validator: str
    validator_value: Any
    instance: Any
    schema: dict[str, Any]
    message: str
    absolute_path: list[str | int] = field(default_factory=list)
    context: list["Error"] = field(default_factory=list)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


class Validator:
    """Validates instances against one root schema; `$ref` resolves inside it or in `others` by `$id`."""

    def __init__(self, schema: dict[str, Any] | bool, others: dict[str, dict[str, Any]] | None = None) -> None:
        self.root = schema
        self.others = others or {}
        self._patterns: dict[str, re.Pattern] = {}
        self._check_supported(schema, set())

    # -- setup -----------------------------------------------------------
    def _check_supported(self, schema: Any, seen: set[int], where: str = "") -> None:
        if not isinstance(schema, dict) or id(schema) in seen:
            return
        seen.add(id(schema))
        unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
        if unknown:
            raise UnsupportedSchema(", ".join(sorted(unknown)))
        _check_dialect(schema, where if schema is not self.root else "")
        for pattern in [schema["pattern"]] if "pattern" in schema else []:
            self._patterns.setdefault(pattern, _compile(pattern, where))
        for pattern in schema.get("patternProperties", {}) if isinstance(schema.get("patternProperties"), dict) else []:
            self._patterns.setdefault(pattern, _compile(pattern, where))
        for key in ("properties", "patternProperties", "$defs"):
            for name, sub in schema.get(key, {}).items():
                self._check_supported(sub, seen, f"{where}/{key}/{name}")
        for key in ("additionalProperties", "items", "propertyNames"):
            self._check_supported(schema.get(key), seen, f"{where}/{key}")
        for key in ("anyOf", "oneOf"):
            for i, sub in enumerate(schema.get(key, [])):
                self._check_supported(sub, seen, f"{where}/{key}/{i}")
        if "$ref" in schema:
            target, owner = self._resolve(schema["$ref"])
            owner._check_supported(target, seen, "" if target is owner.root else "/$ref")

    def _resolve(self, ref: str) -> tuple[dict[str, Any], "Validator"]:
        target, _, fragment = ref.partition("#")
        validator: Validator = self
        if target:
            doc = next((s for sid, s in self.others.items() if sid == target or sid.endswith("/" + target)), None)
            if doc is None:
                raise UnsupportedSchema(f"$ref {ref}")
            validator = Validator.__new__(Validator)
            validator.root, validator.others, validator._patterns = doc, self.others, self._patterns
        if fragment and not fragment.startswith("/"):
            raise UnsupportedSchema(f"$ref {ref}")  # an anchor name, not a JSON pointer
        node: Any = validator.root
        for part in fragment.split("/")[1:]:  # RFC 6901 inside RFC 3986: %-decode, then ~1 and ~0
            token = unquote(part).replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(token)] if isinstance(node, list) else node[token]
            except (KeyError, IndexError, ValueError, TypeError):
                raise UnsupportedSchema(f"$ref {ref}") from None
        return node, validator

    def _regex(self, pattern: str) -> re.Pattern:
        if pattern not in self._patterns:
            self._patterns[pattern] = ecma_regex.compile_pattern(pattern)
        return self._patterns[pattern]

    # -- validation ------------------------------------------------------
    def iter_errors(self, instance: Any) -> Iterator[Error]:
        yield from self._errors(instance, self.root, [])

    def _errors(self, instance: Any, schema: dict[str, Any] | bool, path: list) -> Iterator[Error]:
        if schema is True:
            return
        if schema is False:
            yield Error("false", False, instance, {}, f"False schema does not allow {instance!r}", list(path))
            return

        def err(validator: str, message: str, at: list | None = None, context: list | None = None) -> Error:
            return Error(validator, schema.get(validator), instance, schema, message, list(at if at is not None else path),
                         context or [])

        if "$ref" in schema:
            target, owner = self._resolve(schema["$ref"])
            yield from owner._errors(instance, target, path)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_TYPES[t](instance) for t in types):
                yield err("type", f"{instance!r} is not of type {', '.join(repr(t) for t in types)}")
        if "enum" in schema and not any(_equal(instance, v) for v in schema["enum"]):
            yield err("enum", f"{instance!r} is not one of {schema['enum']!r}")
        if "const" in schema and not _equal(instance, schema["const"]):
            yield err("const", f"{schema['const']!r} was expected")
        if isinstance(instance, str):
            if "pattern" in schema and not self._regex(schema["pattern"]).search(instance):
                yield err("pattern", f"{instance!r} does not match {schema['pattern']!r}")
            if "minLength" in schema and len(instance) < schema["minLength"]:
                yield err("minLength", f"{instance!r} " + ("should be non-empty" if schema["minLength"] == 1
                                                          else "is too short"))
            if "maxLength" in schema and len(instance) > schema["maxLength"]:
                yield err("maxLength", f"{instance!r} is too long")
        if _TYPES["number"](instance):
            if "minimum" in schema and instance < schema["minimum"]:
                yield err("minimum", f"{instance!r} is less than the minimum of {schema['minimum']!r}")
            if "maximum" in schema and instance > schema["maximum"]:
                yield err("maximum", f"{instance!r} is greater than the maximum of {schema['maximum']!r}")
            if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
                yield err("exclusiveMinimum",
                          f"{instance!r} is less than or equal to the minimum of {schema['exclusiveMinimum']!r}")
        if isinstance(instance, list):
            if "minItems" in schema and len(instance) < schema["minItems"]:
                yield err("minItems", f"{instance!r} " + ("should be non-empty" if schema["minItems"] == 1
                                                         else "is too short"))
            if schema.get("uniqueItems") and any(_equal(a, b) for i, a in enumerate(instance) for b in instance[i + 1:]):
                yield err("uniqueItems", f"{instance!r} has non-unique elements")
            if schema.get("items") is False and instance:  # jsonschema's one error for the whole array
                rest = instance if len(instance) != 1 else instance[0]
                yield err("items", f"Expected at most 0 items but found {len(instance)} extra: {rest!r}")
            elif "items" in schema:
                for i, item in enumerate(instance):
                    yield from self._errors(item, schema["items"], path + [i])
        if isinstance(instance, dict):
            yield from self._object_errors(instance, schema, path, err)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                branches = [list(self._errors(instance, sub, path)) for sub in schema[keyword]]
                passing = sum(1 for b in branches if not b)
                if passing == 0:
                    yield err(keyword, f"{instance!r} is not valid under any of the given schemas",
                              context=[e for b in branches for e in b])
                elif keyword == "oneOf" and passing > 1:
                    yield err(keyword, f"{instance!r} is valid under each of the given schemas")

    def _object_errors(self, instance: dict, schema: dict[str, Any], path: list, err) -> Iterator[Error]:
        props = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        if "propertyNames" in schema:
            for name in instance:
                yield from self._errors(name, schema["propertyNames"], path)
        for name in schema.get("required", []):
            if name not in instance:
                yield err("required", f"{name!r} is a required property")
        for name, value in instance.items():
            matched = False
            if name in props:
                matched = True
                yield from self._errors(value, props[name], path + [name])
            for pattern, sub in patterns.items():
                if self._regex(pattern).search(name):
                    matched = True
                    yield from self._errors(value, sub, path + [name])
            extra = schema.get("additionalProperties", True)
            if not matched and not isinstance(extra, bool):
                yield from self._errors(value, extra, path + [name])
        extra = schema.get("additionalProperties", True)
        if extra is False:
            unexpected = [n for n in instance if n not in props and not any(self._regex(p).search(n) for p in patterns)]
            if unexpected:
                listed = ", ".join(repr(n) for n in sorted(unexpected, key=str))
                verb = "was" if len(unexpected) == 1 else "were"
                yield err("additionalProperties", f"Additional properties are not allowed ({listed} {verb} unexpected)")


def best_match(errors: list[Error]) -> Error | None:
    """The most relevant error of an anyOf/oneOf branch set: not a bare type mismatch, then the deepest."""
    if not errors:
        return None
    return max(errors, key=lambda e: (e.validator != "type", len(e.absolute_path)))
