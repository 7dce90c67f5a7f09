"""What the demo tasks did: the JSON lines they append to the `effects` file named in a run's context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def effects(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a demo task's effects file (a line still being written is left out)."""
    if not path.exists():
        return []
    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.split("\n") if line.strip()]
