"""Fuzz the /tasks/workflow body parser (runtime.workflows.endpoint.parse_body): see bench/_fuzz.py.

    .venv/bin/python bench/fuzz_tasks_body.py [--seconds 60] [--no-atheris]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._fuzz import run  # noqa: E402


def load_check():
    from runtime.workflows.endpoint import BadRequest, parse_body

    def check(data: bytes) -> None:
        try:
            msg = parse_body(data)
        except BadRequest:
            return
        if not (isinstance(msg, dict) and isinstance(msg.get("workflow"), str) and msg["workflow"].strip()
                and set(msg) <= {"workflow", "run_id", "context", "metadata"}):
            raise AssertionError(f"accepted a malformed message: {msg!r}")

    return check


if __name__ == "__main__":
    seeds = [b'{"workflow": "ingest", "run_id": "r-1", "context": {"records": ["a"]}, "metadata": {}}',
             b'{"workflow": "noop3"}', b'{"workflow": "x", "run_id": null, "context": null}', b"[]", b'"x"']
    sys.exit(run("tasks_body", "runtime.workflows.endpoint.parse_body on mutated deliveries", load_check, seeds))
