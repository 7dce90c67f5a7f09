"""Other processes, as far as this one can tell: whether a pid still names a live process."""

from __future__ import annotations

import os
from typing import Any


def pid_alive(pid: Any) -> bool:
    """True when `pid` names a running process, including one owned by another user (EPERM);
    False for a dead pid or anything that is not a pid."""
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True
    except (OSError, ValueError, TypeError, OverflowError):
        return False
    return True
