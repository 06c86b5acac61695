"""A pool over the arrays of a memory-mapped snapshot (CandidatePool.from_arrays) answers exactly as the
pool built in memory from the same listings, before and after edits, and never writes to the files."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import matcher.pool as pool_module
from matcher import CandidatePool, gap_report, match, match_batch
from matcher.pool import row_fields
from matcher.scoring import goal_terms
from matcher.synthetic import listing as synthetic_listing
from matcher.synthetic import persons as synthetic_persons
from resdb.domain.textnorm import expand_terms
from resdb.hostsnapshot import load_arrays, write_arrays

from .data import TODAY


def _listings(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        item = synthetic_listing(i, rng, radius_km=6.0)
        if i % 9 == 0:
            item["lat"] = item["lon"] = None  # no coordinates: after the located rows
        if i % 7 == 0:
            item["outcome"] = {"referred": 8, "continuing": 5, "rate": 0.61, "text": "紹介8人中5人"}
        if i % 11 == 0:
            item["description"] = "ﾎﾞｰﾄﾞｹﾞｰﾑと畑しごと、café ☕"
        out.append(item)
    out.append({**out[3], "id": "dup"})
    out.append({**out[4], "id": "dup"})  # a repeated id: the first row answers to it, as in memory
    return out


def _mapped(pool: CandidatePool, folder: Path) -> CandidatePool:
    assert write_arrays(folder, pool.to_arrays(), {})
    loaded = load_arrays(folder, copy_on_write=True)
    assert loaded is not None
    assert isinstance(loaded[1]["col_lat"], np.memmap)  # really mapped, not read into memory
    pool = CandidatePool.from_arrays(loaded[1])
    assert pool.listings.file is not None  # type: ignore[union-attr]  # listings read with pread
    return pool


def _edits(seed: int, original: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    rng = random.Random(seed + 1)
    upserts = []
    for k, i in enumerate(rng.sample(range(len(original) - 2), 25)):
        fresh = synthetic_listing(1000 + k, rng, radius_km=6.0)
        upserts.append({**fresh, "id": original[i]["id"], "name": f"改めた名前 {k} 畑"})
    upserts += [synthetic_listing(5000 + k, rng, radius_km=6.0) for k in range(6)]
    removed = [original[i]["id"] for i in rng.sample(range(len(original) - 2), 8)] + ["dup"]
    return upserts, removed


def _answers(pool: CandidatePool, seed: int) -> str:
    persons = synthetic_persons(8, seed=seed, radius_km=4.0)
    persons[0]["exclude"] = [pool.ids[0], pool.ids[5]]
    persons[1]["interests"] = ["畑", "ボードゲーム", "コーヒー"]
    needs = [
        {
            "goal": "friends",
            "targets": ["elderly"],
            "district": f"地区{k}",
            "mobility": p["mobility"],
            "home": p["home"],
            "count": 2,
        }
        for k, p in enumerate(persons)
    ]
    out = {
        "match": [match(p, pool, today=TODAY, all_excluded=True) for p in persons],
        "batch": match_batch(persons, pool, today=TODAY),
        "gaps": gap_report(needs, pool, today=TODAY),
    }
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_mapped_pool_answers_byte_for_byte_as_the_pool_in_memory(
    seed: int, tmp_path: Path
) -> None:
    original = _listings(seed, 300)
    memory = CandidatePool(original)
    for terms in goal_terms().values():
        memory.term_hits(terms)
    mapped = _mapped(memory, tmp_path / "snap")
    assert mapped.ids == memory.ids and len(mapped) == len(memory)
    assert [mapped.listings[i] for i in range(len(memory))] == [
        row_fields(x) for x in memory.listings
    ]
    assert all(mapped.index_of[k] == v for k, v in memory.index_of.items())
    assert "missing" not in mapped.index_of and mapped.index_of.get("missing") is None
    assert _answers(mapped, seed) == _answers(memory, seed)
    upserts, removed = _edits(seed, original)
    memory.apply(upserts, removed)
    mapped.apply(upserts, removed)
    assert dict(mapped.index_of) == dict(memory.index_of)
    assert mapped.ids == memory.ids and len(mapped) == len(memory)
    farm = frozenset(expand_terms(["畑"]))
    assert mapped.term_hits(farm).tolist() == memory.term_hits(farm).tolist()
    assert [mapped.text(i) for i in range(len(memory.ids))] == [
        memory.text(i) for i in range(len(memory.ids))
    ]
    assert _answers(mapped, seed) == _answers(memory, seed)
    # The files are untouched: the edits live in this process's private pages only.
    again = load_arrays(tmp_path / "snap")
    assert again is not None and bool(again[1]["col_alive"][: len(original)].all())
    # A snapshot of a pool that already has a tail (and dead rows) maps to the same answers as well.
    second = _mapped(memory, tmp_path / "snap2")
    assert _answers(second, seed) == _answers(memory, seed)
    more, gone = _edits(seed + 10, original)
    second.apply(more, gone)
    memory.apply(more, gone)
    assert _answers(second, seed) == _answers(memory, seed)


def test_beyond_the_spare_rows_a_mapped_pool_grows_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "SPARE_ROWS", 2)
    original = _listings(5, 600)
    memory = CandidatePool(original)
    mapped = _mapped(memory, tmp_path / "snap")
    assert mapped._cols["lat"].buf.base is not None  # over the mapping
    rng = random.Random(9)
    added = [synthetic_listing(700 + k, rng, radius_km=6.0) for k in range(120)]
    for chunk in (added[:1], added[1:60], added[60:]):  # into the spare rows, then past them
        memory.apply(chunk, [original[len(chunk)]["id"]])
        mapped.apply(chunk, [original[len(chunk)]["id"]])
        assert _answers(mapped, 5) == _answers(memory, 5)
    assert mapped._cols["lat"].buf.base is None  # moved into memory


@pytest.mark.parametrize("chunk", [64, 4 << 20])
def test_a_mapped_pool_scans_its_text_from_the_file_as_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    import matcher.textindex as textindex_module

    monkeypatch.setattr(textindex_module, "SCAN_CHUNK", chunk)
    original = _listings(4, 400)
    memory = CandidatePool(original)
    mapped = _mapped(memory, tmp_path / "snap")
    assert mapped._text._file is not None  # scanned with pread, not through the mapping
    for words in (["畑"], ["カフェ", "交流"], ["ボードゲーム", "café"], ["ない言葉"]):
        terms = frozenset(expand_terms(words))
        assert mapped.term_hits(terms).tolist() == memory.term_hits(terms).tolist()
        rows = np.arange(0, len(memory), 7)
        assert (
            mapped.contains_any(terms, rows).tolist() == memory.contains_any(terms, rows).tolist()
        )
    assert [mapped.text(i) for i in range(len(memory))] == [
        memory.text(i) for i in range(len(memory))
    ]
