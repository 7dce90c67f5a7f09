"""compiler/checks.py: an entry's field is located through a per-document index, with the same answer
as scanning every position."""

from __future__ import annotations

from compiler.checks import _entry_pointer
from compiler.loaders.yaml import load_yaml

MANIFEST = """\
source: test
entries:
  - &task
    domain: task
    key: a
    provider: demo
    factory: oneiric.demo.tasks:extract
  - *task
  - {domain: task, key: b, provider: demo, factory: "oneiric.demo.tasks:load"}
  - domain: task
    key: c
    provider: demo
    factory: oneiric.demo.tasks:load
"""


def _scan(doc, span):
    for pointer, where in doc.positions.items():
        if where == span and pointer.count("/") == 2 and pointer.startswith("/entries/"):
            return pointer
    return None


def test_entry_pointer_agrees_with_a_scan_of_every_position():
    doc = load_yaml(MANIFEST.encode(), "deployment/manifests/m.yaml")
    spans = [doc.positions[f"/entries/{i}"] for i in range(4)] + [doc.positions["/source"]]
    for span in spans:
        assert _entry_pointer(doc, span) == _scan(doc, span)
    assert _entry_pointer(doc, doc.positions["/entries/3"]) == "/entries/3"
    assert _entry_pointer(doc, doc.positions["/source"]) is None
