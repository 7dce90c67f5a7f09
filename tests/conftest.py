"""Suite-wide pytest settings: how many xdist workers `-n auto` (pyproject addopts) starts."""

from __future__ import annotations

import os

#: Most tests wait on real processes, servers, leases and timeouts rather than compute, so two workers
#: per core overlap those waits; more than this costs a PostgreSQL server and an interpreter each for
#: little gain. `-n 0` runs everything in this process (for pdb).
MAX_WORKERS = 6


def pytest_xdist_auto_num_workers(config) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(MAX_WORKERS, 2 * cores))
