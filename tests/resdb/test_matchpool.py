"""The matching pool follows the change log: an edit is in the very next match, a pruned log rebuilds,
and a worker whose pool is still being built answers 準備中 instead of building in the request."""

from __future__ import annotations

from datetime import date

import pytest

from resdb.directory import Directory
from resdb.matching import Matching, PoolNotReady

TODAY = date(2026, 12, 1)  # a Tuesday
HOME = {"lat": 36.7236, "lon": 137.0991}


def _salon(listing_id: str, weekday: str, **fields: object) -> dict[str, object]:
    return {
        "id": listing_id,
        "name": f"戸破ふれあいサロン {listing_id}",
        "kind": "kayoi",
        "lat": 36.7240,
        "lon": 137.0995,
        "targets": ["all"],
        "activities": ["交流"],
        "schedule": [{"weekday": weekday, "start": "10:00", "end": "12:00"}],
        "status": "published",
        **fields,
    }


def _proposed(matching: Matching, weekday: str = "tue") -> list[str]:
    person = {
        "home": HOME,
        "mobility": "walk",
        "max_minutes": 30,
        "available": [{"weekday": weekday, "start": "09:00", "end": "13:00"}],
        "goals": ["friends"],
    }
    return [p["resource_id"] for p in matching.match(person, today=TODAY)["proposals"]]


@pytest.fixture
def filled(directory: Directory) -> Directory:
    for n in range(6):
        directory.create(_salon(f"t-s{n}", "tue"), actor="test")
    return directory


def test_edit_and_close_show_in_the_next_match(filled: Directory) -> None:
    matching = Matching(filled)
    assert set(_proposed(matching)) == {f"t-s{n}" for n in range(6)}
    pool_before = matching.pool()
    # A weekday change: the salon now meets on Thursday, so a Tuesday-only person no longer gets it.
    current = filled.get("t-s1")
    filled.update(
        "t-s1",
        {"schedule": [{"weekday": "thu", "start": "10:00", "end": "12:00"}]},
        actor="test",
        expected_version=current["version"],
    )
    assert "t-s1" not in _proposed(matching)
    assert "t-s1" in _proposed(matching, "thu")
    # Closed (deleted): gone at once; a new place: there at once.
    filled.delete("t-s2", actor="test", expected_version=filled.get("t-s2")["version"])
    filled.create(_salon("t-new", "tue"), actor="test")
    proposed = _proposed(matching)
    assert "t-s2" not in proposed and "t-new" in proposed
    assert matching.pool() is pool_before  # kept current row by row, not rebuilt
    assert len(matching.pool()) == 6


def test_a_pruned_change_log_falls_back_to_a_rebuild(filled: Directory) -> None:
    matching = Matching(filled)
    first = matching.pool()
    for n in (3, 4):
        current = filled.get(f"t-s{n}")
        filled.update(
            f"t-s{n}",
            {"schedule": [{"weekday": "fri", "start": "10:00", "end": "12:00"}]},
            actor="test",
            expected_version=current["version"],
        )
    assert filled.prune_change_log(keep_days=-1) > 0  # the log no longer reaches back to the pool
    proposed = _proposed(matching)
    assert "t-s3" not in proposed and "t-s4" not in proposed
    assert matching.pool() is not first  # rebuilt from the database
    assert {"t-s3", "t-s4"} <= set(_proposed(matching, "fri"))


def test_before_the_background_build_is_ready_the_answer_is_junbichu(filled: Directory) -> None:
    matching = Matching(filled, background=True, wait=0.0)
    keeper = matching.keeper
    # A reader holding the pool keeps the background build from installing it meanwhile.
    with keeper._lock.reading():
        with pytest.raises(PoolNotReady, match="準備中"):
            _proposed(matching)
    keeper.wait = 30.0  # a short wait is enough once nothing holds the build back
    assert len(_proposed(matching)) == 6
    assert keeper.ready
