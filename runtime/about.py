"""What this installation is: its version and where its packaged data lives.

A leaf that both halves import downward (the compiler for schemas, templates and the version it stamps
into artifacts; the runtime for the demo project), so `oneiric/` stays the router at the top and never
a holder of data. Standard library only, no I/O at import.
"""

from __future__ import annotations

from pathlib import Path

#: The version stamped into every artifact (`compiler_version`) and printed by `--version`.
VERSION = "0.1.0"

_ROOT = Path(__file__).resolve().parent.parent
#: The bundled example project (`--demo`): settings, manifests and its compiled build/.
DEMO_DIR = _ROOT / "oneiric" / "demo"
#: The JSON Schemas (Draft 2020-12); providers/ holds the per-provider settings schemas.
SCHEMA_DIR = _ROOT / "schemas"
#: The jinja2 templates of `oneiric report` and `oneiric procfile`.
TEMPLATE_DIR = _ROOT / "compiler" / "templates"
