"""Resolve stage, part 1: a profile name to its toggles through the `extends` chain."""

from __future__ import annotations

from compiler.builtins import PROFILES
from runtime.contract import TOGGLE_NAMES
from compiler.diagnostics import Diagnostic, Document, suggest
from runtime.model import Profile, Toggles, replace



def resolve_profile(name: str, doc: Document | None) -> Profile | list[Diagnostic]:
    """Built-in profiles resolve directly; custom ones follow `[profiles.NAME] extends` to a built-in."""
    custom = (doc.data.get("profiles") or {}) if doc is not None else {}
    chain: list[str] = []
    current = name
    while current not in PROFILES or current in custom:
        if current in chain:
            cycle = " -> ".join(chain[chain.index(current):] + [current])
            return [Diagnostic("profile.cycle", f"profile extends cycle: {cycle}",
                               doc.span(f"/profiles/{current}/extends") if doc else None, f"/profiles/{current}/extends")]
        if current not in custom:
            known = sorted(set(PROFILES) | set(custom))
            near = suggest(current, known)
            pointer = f"/profiles/{chain[-1]}/extends" if chain else "/profile/name"
            return [Diagnostic("profile.unknown", f"unknown profile {current!r}",
                               doc.span(pointer) if doc else None, pointer,
                               f"did you mean {near!r}?" if near else "built-in profiles: default, serverless")]
        chain.append(current)
        current = custom[current].get("extends", current if current in PROFILES else "default")
        if current == chain[-1]:
            break
    base = current
    toggles: Toggles = PROFILES[base]
    for level in reversed(chain):
        overrides = {k: custom[level][k] for k in TOGGLE_NAMES if k in custom[level]}
        toggles = replace(toggles, **overrides)
    return Profile(name=name, base=base, extends=tuple(chain[1:] + [base]) if chain else (base,), toggles=toggles)
