"""compiler/layering.py: the keyed layer store gives the same leaves, provenance and order as replacing
by scanning every leaf did."""

from __future__ import annotations

import random

from compiler.layering import Layers


class _Scanning:
    """The former store: every `set` scans all leaves."""

    def __init__(self) -> None:
        self.values: dict = {}
        self.provenance: dict = {}

    def set(self, path, value, origin) -> None:
        for existing in [p for p in self.values if p[:len(path)] == path or path[:len(p)] == p]:
            del self.values[existing]
            del self.provenance[existing]
        self.values[path] = value
        self.provenance[path] = origin


def test_a_leaf_replaces_leaves_below_and_above_it():
    layers = Layers()
    layers.set(("http", "port"), 8080, "schema default")
    layers.set(("http", "host"), "0.0.0.0", "schema default")
    layers.set(("http",), "flat", "config/x.toml:1:1")  # a leaf above replaces both
    assert layers.values == {("http",): "flat"} and layers.origin(("http",)) == "config/x.toml:1:1"
    layers.set(("http", "port"), 9090, "config/x.toml:2:1")  # a leaf below replaces the one above
    assert layers.values == {("http", "port"): 9090}
    assert layers.tree() == {"http": {"port": 9090}}


def test_same_leaves_provenance_and_order_as_the_scanning_store():
    rng = random.Random(7)
    names = ["a", "b", "c"]
    for _ in range(200):
        keyed, scanning = Layers(), _Scanning()
        for step in range(40):
            path = tuple(rng.choice(names) for _ in range(rng.randint(1, 4)))
            keyed.set(path, step, f"origin {step}")
            scanning.set(path, step, f"origin {step}")
            assert list(keyed.values.items()) == list(scanning.values.items())
            assert list(keyed.provenance.items()) == list(scanning.provenance.items())
        keyed.setdefault(("a",), "d", "default")
        assert keyed.get(("a",)) == scanning.values.get(("a",), "d")
