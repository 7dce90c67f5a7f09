"""What ships with Oneiric, as the compiler sees it: the built-in profiles, providers and aliases come from
the settings contract (runtime.contract); this module adds the compiler's own views of them."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.contract import ALIASES, BUILTIN_FACTORY_PREFIXES, PROFILES, TOGGLE_SETTINGS  # noqa: F401
from runtime.contract import BUILTIN_PROVIDERS as _BUILTIN


@dataclass(frozen=True, slots=True)
class BuiltinProvider:
    domain: str
    key: str
    provider: str
    factory: str
    priority: int
    schema: str  # settings schema file under schemas/


BUILTIN_PROVIDERS: tuple[BuiltinProvider, ...] = tuple(BuiltinProvider(*row) for row in _BUILTIN)

#: Settings sections that hold `selections`, by manifest domain.
SELECTION_SECTIONS: dict[str, str] = {
    "adapter": "adapters",
    "action": "actions",
    "service": "services",
    "task": "tasks",
    "event": "events",
    "workflow": "workflows",
}
