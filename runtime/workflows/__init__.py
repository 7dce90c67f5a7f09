"""Workflows over a task queue: DAG plans, execution, the delivery endpoint and the CLI verb.

Modules, in data-flow order:

- `dag`: validates and orders a workflow entry's `dag.nodes` (`Plan`).
- `engine`: executes a run (retry policy, per-node timeout, at most 4 nodes of a run at once,
  pause/drain gates, lease checks); its docstring is the task factory contract `fn(payload, context, inputs)`.
- `messages`: the delivery body, the task name derived from a run id, the Cloud Tasks headers.
- `service`: wires one `Runtime` (store, engine, auth, queue choice, enqueue) and the
  server's `start(rt, port=...)` / `stop(rt)` hooks.
- `endpoint`: `handle_delivery(rt, body, headers)` for `POST /tasks/workflow`.
- `cli`: `workflow enqueue|run|list [--dead]|status`.

Runs, checkpoints, leases and dead letters live in the state store (`runtime.state`, `[state] backend`).

Authentication lives in `runtime.tasks_auth`; the queue providers in
`runtime.adapters.queue_local` and `runtime.adapters.queue_cloudtasks`.

Importing this package does no work; `runtime/app.py` imports
`runtime.workflows.endpoint` on the first delivery (or the server's warm-up),
`runtime/cli.py` imports `runtime.workflows.cli` for the `workflow` verb.
"""
