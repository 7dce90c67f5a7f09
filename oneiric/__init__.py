"""Oneiric: a declarative config compiler plus the small runtime that serves its artifacts."""

__version__ = "0.1.0"
