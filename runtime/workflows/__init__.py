"""Workflows over a task queue: DAG plans, durable runs, execution, the delivery endpoint and the CLI verb.

Importing this package does no work; `runtime/http.py` imports
`runtime.workflows.endpoint` on the first delivery, `runtime/cli.py` imports
`runtime.workflows.cli` for the `workflow` verb.
"""
