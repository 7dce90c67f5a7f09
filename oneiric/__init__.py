"""Oneiric: a declarative config compiler plus the small runtime that serves its artifacts."""

from runtime.about import VERSION as __version__

__all__ = ["__version__"]
