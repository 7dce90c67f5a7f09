"""Audit and CI commands (manifest diff/verify, report, procfile, schema), registered on the main CLI group."""

from __future__ import annotations
