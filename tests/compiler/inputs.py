"""The compiler tests' small valid project: one manifest (a task, an adapter with a settings schema, a
two-node workflow) and default-profile settings; each test breaks one thing in it."""

BASE_MANIFEST = """\
source: test
entries:
  - domain: task
    key: extract
    provider: demo
    factory: oneiric.demo.tasks:extract
  - domain: adapter
    key: cache
    provider: redis
    factory: oneiric.demo.vector:MemoryVectorStore
    settings_schema:
      type: object
      properties:
        url: {type: string}
        port: {type: integer, default: 6379}
  - domain: workflow
    key: ingest
    provider: dag
    factory: oneiric.demo.tasks:load
    dag:
      nodes:
        - id: a
          task: extract
        - id: b
          task: extract
          depends_on: [a]
"""

BASE_SETTINGS = """\
[profile]
name = "default"

[http]
tasks_auth = "none"
"""
