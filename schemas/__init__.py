"""The JSON Schemas (Draft 2020-12), shipped inside the wheel."""

from pathlib import Path

#: Directory holding every schema file; providers/ holds per-provider settings schemas.
SCHEMA_DIR = Path(__file__).resolve().parent
