"""Templates: the one jinja2 environment `oneiric report` and `oneiric procfile` render with.

Strict (an undefined name is an error, not an empty string), no autoescaping (the output is Markdown and
Procfiles), and two filters the shipped templates use: `json` (sorted, not ASCII-escaped) and `cell`
(safe inside a Markdown table cell).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.about import TEMPLATE_DIR


class TemplateError(Exception):
    """A template cannot be found, parsed or rendered; the message names the file."""


def load_template(name: str, override: Path | None = None) -> Any:
    """The template `name` from compiler/templates/, or the team's own file `override`."""
    import jinja2

    directory, name = (override.resolve().parent, override.name) if override is not None else (TEMPLATE_DIR, name)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["json"] = lambda value: json.dumps(value, sort_keys=True, ensure_ascii=False)
    env.filters["cell"] = lambda value: str(value).replace("|", "\\|").replace("\n", " ")
    try:
        return env.get_template(name)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {directory / name}: {exc}") from exc


def render_template(name: str, override: Path | None = None, **context: Any) -> str:
    """Load and render in one step; any jinja2 failure becomes TemplateError naming the template."""
    import jinja2

    template = load_template(name, override)
    try:
        return template.render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {override or name}: {exc}") from exc
