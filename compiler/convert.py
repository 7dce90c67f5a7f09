"""cattrs converter between validated plain data and the model classes of runtime/model.py.

Kept apart from the classes so the runtime never needs cattrs: it decodes the same JSON with the
standard library. The model classes are plain classes (not attrs or dataclasses), so the converter
learns them from their `__slots__` and annotations through one hook factory per direction; every
field's value still goes through cattrs' own hook for the field's type.
"""

from __future__ import annotations

import types
import typing
from operator import attrgetter
from typing import Any, Callable

import cattrs
from cattrs.fns import identity

from runtime.model import Record, fields


def _is_model(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, Record)


def _field_types(cls: type[Record]) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):  # the annotations of the class, evaluated in runtime.model
        if klass.__dict__.get("__annotations__"):
            hints.update(typing.get_type_hints(klass))
    return {name: hints[name] for name in fields(cls)}


def _optional_of(kind: Any) -> Any:
    """X for `X | None`, else None."""
    args = typing.get_args(kind)
    if len(args) == 2 and type(None) in args and typing.get_origin(kind) in (typing.Union, types.UnionType):
        return args[0] if args[1] is type(None) else args[1]
    return None


def _passes_unchanged(converter: cattrs.Converter, kind: Any) -> tuple[type, ...]:
    """The value types cattrs' structure hook for `kind` returns as they are (`str(s)` is `s`): a validated
    entry's str/int/bool fields skip a hook call each, with the same result."""
    inner = _optional_of(kind)
    if inner is not None:
        return (type(None), *_passes_unchanged(converter, inner))
    call = getattr(converter, "_structure_call", None)  # cattrs' hook `kind(value)` for these types
    if kind in (str, int, float, bool) and call is not None and converter.get_structure_hook(kind) == call:
        return (kind,)
    return ()


def _is_identity(converter: cattrs.Converter, kind: Any) -> bool:
    """cattrs unstructures `kind` (or `kind | None`) to the value itself."""
    inner = _optional_of(kind)
    return converter.get_unstructure_hook(kind if inner is None else inner) is identity


def _structure_factory(converter: cattrs.Converter) -> Callable[[type], Callable[[Any, type], Any]]:
    def factory(cls: type[Record]) -> Callable[[Any, type], Any]:
        hooks = [(name, kind, converter.get_structure_hook(kind), _passes_unchanged(converter, kind))
                 for name, kind in _field_types(cls).items()]

        def structure(data: Any, _: type) -> Any:
            """Absent keys take the constructor's defaults; keys that are not fields are ignored."""
            args = {}
            for name, kind, hook, unchanged in hooks:
                if name in data:
                    value = data[name]
                    args[name] = value if type(value) in unchanged else hook(value, kind)
            return cls(**args)

        return structure

    return factory


def _unstructure_factory(converter: cattrs.Converter) -> Callable[[type], Callable[[Any], Any]]:
    def factory(cls: type[Record]) -> Callable[[Any], Any]:
        kinds = _field_types(cls)
        names = tuple(kinds)
        values_of = attrgetter(*names) if len(names) > 1 else (lambda obj: (getattr(obj, names[0]),))
        # only fields whose hook changes the value are passed through it (str, int, bool fields are not)
        hooks = [(i, converter.get_unstructure_hook(kinds[name])) for i, name in enumerate(names)
                 if not _is_identity(converter, kinds[name])]

        def unstructure(obj: Any) -> dict[str, Any]:
            values = values_of(obj)
            if hooks:
                values = list(values)
                for i, hook in hooks:
                    values[i] = hook(values[i])
            return dict(zip(names, values))

        return unstructure

    return factory


def make_converter() -> cattrs.Converter:
    """A converter for runtime.model classes.

    - tuples unstructure to lists, so the output is plain JSON data;
    - structuring from validated data fills the constructors' defaults for absent keys.
    """
    converter = cattrs.Converter()
    converter.register_unstructure_hook(tuple, lambda t: [converter.unstructure(v) for v in t])
    converter.register_structure_hook_factory(_is_model, _structure_factory(converter))
    converter.register_unstructure_hook_factory(_is_model, _unstructure_factory(converter))
    return converter


def unstructure(obj: Any) -> Any:
    return _CONVERTER.unstructure(obj)


def structure(data: Any, cls: type) -> Any:
    return _CONVERTER.structure(data, cls)


_CONVERTER = make_converter()
