"""Typo search scores only names sharing bigrams with the query, and finds what scoring every name finds:
checked on typed-wrong versions (a character replaced, dropped, doubled or swapped) of every demo name."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from resdb.search.query import _fuzzy, _fuzzy_candidates, query_words
from resdb.search.schema import FUZZY_CUTOFF

KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわん"


def typos(name: str, rng: random.Random) -> list[str]:
    if len(name) < 4:
        return []
    at = rng.randrange(1, len(name) - 1)
    return [
        name[:at] + rng.choice(KANA) + name[at + 1 :],  # replaced
        name[:at] + name[at + 1 :],  # dropped
        name[:at] + name[at] + name[at:],  # doubled
        name[: at - 1] + name[at] + name[at - 1] + name[at + 1 :],  # swapped
        name[: len(name) // 2 + 1],  # only the first half typed
    ]


def test_prefiltered_typo_search_finds_what_a_full_scan_finds(demo_directory: Any) -> None:
    rng = random.Random(14)
    checked = 0
    for seg, _live, _ in demo_directory.index.snapshot().parts:
        names = [seg.name_at(d) for d in range(seg.size)]
        everyone = np.ones(seg.size, dtype=bool)
        nobody = np.zeros(seg.size, dtype=bool)
        for name in rng.sample(names, min(len(names), 300)):
            for typed in typos(name, rng):
                needle = "".join(query_words(typed))
                if len(needle) < 3:
                    continue
                full = {
                    at
                    for _n, _score, at in process.extract(
                        needle, names, scorer=fuzz.WRatio, score_cutoff=FUZZY_CUTOFF, limit=None
                    )
                }
                found = {doc for doc, _score in _fuzzy(seg, typed, everyone, nobody)}
                assert found == full, (typed, sorted(full - found)[:5])
                checked += 1
    assert checked > 500


def test_candidates_are_few_for_a_rare_typo(demo_directory: Any) -> None:
    needle = "".join(query_words("すてっびカフェ"))
    segments = [seg for seg, _live, _ in demo_directory.index.snapshot().parts]
    found = [_fuzzy_candidates(seg, needle) for seg in segments]
    assert 0 < sum(map(len, found)) < sum(seg.size for seg in segments) / 4
    for candidates in found:
        assert all(a < b for a, b in zip(candidates[:-1], candidates[1:], strict=True))
