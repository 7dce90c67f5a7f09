"""Did-you-mean hints: exhaustive for small name sets (as always), indexed for large ones."""

from __future__ import annotations

import difflib

from compiler.diagnostics import Suggester, suggest


def test_small_sets_match_difflib_exactly():
    names = ["extract", "transform", "load", "enrich", "export"]
    for word in ["extrct", "tranform", "lod", "xyz", "exports", ""]:
        expected = difflib.get_close_matches(word, sorted(names), n=1, cutoff=0.6)
        assert suggest(word, names) == (expected[0] if expected else None)


def test_large_sets_still_find_the_obvious_near_name():
    names = [f"task_{i}_{word}" for i in range(2000) for word in ("extract",)] + ["publish_report"]
    near = Suggester(names)
    assert near("publish_reprot") == "publish_report"
    assert near("task_1234_extrct") == "task_1234_extract"
    assert near("zzzzzzzz") is None


def test_a_repeated_word_is_answered_from_memory():
    near = Suggester([f"n{i}" for i in range(500)])
    first = near("n12x")
    near.names.clear()  # nothing left to compare with: the answer must come from the memo
    assert near("n12x") == first
