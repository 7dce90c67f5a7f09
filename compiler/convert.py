"""cattrs converter between validated plain data and the model classes of runtime/model.py.

Kept apart from the classes so the runtime never needs cattrs: it decodes the same JSON with the
standard library. The model classes are plain classes (not attrs or dataclasses), so the converter
learns them from their `__slots__` and annotations through one hook factory per direction; every
field's value still goes through cattrs' own hook for the field's type.
"""

from __future__ import annotations

import typing
from typing import Any, Callable

import cattrs

from runtime.model import Record, fields


def _is_model(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, Record)


def _field_types(cls: type[Record]) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):  # the annotations of the class, evaluated in runtime.model
        if klass.__dict__.get("__annotations__"):
            hints.update(typing.get_type_hints(klass))
    return {name: hints[name] for name in fields(cls)}


def _structure_factory(converter: cattrs.Converter) -> Callable[[type], Callable[[Any, type], Any]]:
    def factory(cls: type[Record]) -> Callable[[Any, type], Any]:
        hooks = [(name, kind, converter.get_structure_hook(kind)) for name, kind in _field_types(cls).items()]

        def structure(data: Any, _: type) -> Any:
            """Absent keys take the constructor's defaults; keys that are not fields are ignored."""
            return cls(**{name: hook(data[name], kind) for name, kind, hook in hooks if name in data})

        return structure

    return factory


def _unstructure_factory(converter: cattrs.Converter) -> Callable[[type], Callable[[Any], Any]]:
    def factory(cls: type[Record]) -> Callable[[Any], Any]:
        hooks = [(name, converter.get_unstructure_hook(kind)) for name, kind in _field_types(cls).items()]

        def unstructure(obj: Any) -> dict[str, Any]:
            return {name: hook(getattr(obj, name)) for name, hook in hooks}

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
