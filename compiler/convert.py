"""cattrs converter between validated plain data and the frozen model classes.

Kept apart from the classes (runtime/model.py) so the runtime never needs
cattrs: it decodes the same JSON with the standard library.
"""

from __future__ import annotations

from typing import Any

import cattrs


def make_converter() -> cattrs.Converter:
    """A converter for runtime.model classes.

    - tuples unstructure to lists, so the output is plain JSON data;
    - structuring from validated data fills dataclass defaults for absent keys.
    """
    converter = cattrs.Converter()
    converter.register_unstructure_hook(tuple, lambda t: [converter.unstructure(v) for v in t])
    return converter


def unstructure(obj: Any) -> Any:
    return _CONVERTER.unstructure(obj)


def structure(data: Any, cls: type) -> Any:
    return _CONVERTER.structure(data, cls)


_CONVERTER = make_converter()
