"""Example workflow tasks: small JSON-in/JSON-out callables `fn(payload, context, inputs)`."""

from __future__ import annotations

from typing import Any


def extract(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Emit the records named in the run context (or the node payload)."""
    records = context.get("records", payload.get("records", []))
    return {"records": list(records), "count": len(records)}


def transform(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Upper-case every record produced by the upstream nodes."""
    records = [r for out in inputs.values() for r in out.get("records", [])]
    case = payload.get("case", "upper")
    return {"records": [r.upper() if case == "upper" else r.lower() for r in records]}


def load(payload: dict[str, Any], context: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Count what the upstream nodes produced, as a sink would report what it wrote."""
    records = [r for out in inputs.values() for r in out.get("records", [])]
    return {"loaded": len(records), "target": payload.get("target", "memory")}
