"""Workflows over a task queue: DAG plans, durable runs, execution, the delivery endpoint and the CLI verb.

Modules, in data-flow order:

- `dag`: validates and orders a workflow entry's `dag.nodes` (`Plan`).
- `runs`: the durable run store, `<cache_dir>/workflow_runs.sqlite` (WAL): run rows,
  node checkpoints (group-committed within 20 ms), used HMAC signatures, enqueued task names.
- `engine`: executes a run (retry policy, a small thread pool, pause/drain gates);
  its docstring is the task factory contract `fn(payload, context, inputs)`.
- `messages`: the delivery body, the task name derived from a run id, the Cloud Tasks headers.
- `service`: wires one `Runtime` (store, engine, auth, queue choice, enqueue) and the
  server's `start(rt, port=...)` / `stop(rt)` hooks.
- `endpoint`: `handle_delivery(rt, body, headers)` for `POST /tasks/workflow`.
- `cli`: `workflow enqueue|run|list|status`.

Authentication lives in `runtime.tasks_auth`; the queue providers in
`runtime.adapters.queue_local` and `runtime.adapters.queue_cloudtasks`.

Importing this package does no work; `runtime/app.py` imports
`runtime.workflows.endpoint` on the first delivery (or the server's warm-up),
`runtime/cli.py` imports `runtime.workflows.cli` for the `workflow` verb.
"""
