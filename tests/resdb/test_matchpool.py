"""The matching pool follows the change log: an edit is in the very next match, a pruned log rebuilds,
and a worker whose pool is still being built answers 準備中 instead of building in the request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def _move_to_friday(directory: Directory, numbers: tuple[int, ...]) -> None:
    """Edit the schedules of listings t-s<n> (each edit one change-log entry)."""
    for n in numbers:
        current = directory.get(f"t-s{n}")
        directory.update(
            f"t-s{n}",
            {"schedule": [{"weekday": "fri", "start": "10:00", "end": "12:00"}]},
            actor="test",
            expected_version=current["version"],
        )


def test_a_pruned_change_log_falls_back_to_a_rebuild(filled: Directory) -> None:
    matching = Matching(filled)
    first = matching.pool()
    _move_to_friday(filled, (3, 4))
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


# --- one snapshot per host ---------------------------------------------------------------------------
@pytest.fixture
def open_worker() -> Iterator[Callable[[Directory], Matching]]:
    """Factory: another worker of the same host (its own connection to the database, the same instance
    folder), closed after the test."""
    opened: list[Directory] = []

    def opening(directory: Directory) -> Matching:
        opened.append(Directory.open(str(directory.engine.url), directory.instance_dir))
        return Matching(opened[-1])

    yield opening
    for directory in opened:
        directory.close()


def _folders(matching: Matching) -> list[str]:
    return [p.name for p in matching.keeper.snapshot_store().folders()]


def test_workers_of_a_host_share_one_snapshot_and_see_each_others_edits(
    filled: Directory, open_worker: Callable[[Directory], Matching]
) -> None:
    first, second = open_worker(filled), open_worker(filled)
    assert set(_proposed(first)) == {f"t-s{n}" for n in range(6)}  # built, published, mapped
    published = _folders(first)
    assert len(published) == 1
    assert first.keeper._built is not None and first.keeper._built.snapshot_seq >= 0
    assert set(_proposed(second)) == {f"t-s{n}" for n in range(6)}
    assert _folders(second) == published  # mapped the first worker's snapshot, built nothing
    assert second.keeper._built is not None
    assert second.keeper._built.snapshot_seq == first.keeper._built.snapshot_seq
    for worker in (first, second):  # both answer from the mapped files, not from listing dicts
        assert not isinstance(worker.pool().listings, list)
    # An edit committed through one worker is in the very next match on the other, and back.
    current = filled.get("t-s1")
    first.directory.update(
        "t-s1",
        {"schedule": [{"weekday": "thu", "start": "10:00", "end": "12:00"}]},
        actor="test",
        expected_version=current["version"],
    )
    assert "t-s1" not in _proposed(second) and "t-s1" in _proposed(second, "thu")
    second.directory.create(_salon("t-new", "tue"), actor="test")
    second.directory.delete("t-s2", actor="test", expected_version=filled.get("t-s2")["version"])
    for worker in (first, second):
        proposed = _proposed(worker)
        assert "t-new" in proposed and "t-s2" not in proposed and "t-s1" not in proposed
    # A worker started later maps the same snapshot and catches up from the change log.
    third = open_worker(filled)
    assert _proposed(third) == _proposed(first)
    assert _folders(third) == published


def test_a_snapshot_of_another_database_or_a_pruned_change_is_ignored(
    filled: Directory, make_directory, open_worker: Callable[[Directory], Matching]
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    worker = open_worker(filled)
    _proposed(worker)
    (published,) = worker.keeper.snapshot_store().folders()
    # Another database whose instance folder holds this snapshot (a copy, a re-created database …).
    other = make_directory("sqlite", name="other")
    for n in range(12):  # its change log reaches past the snapshot's number
        other.create(_salon(f"o-{n:02d}", "sun"), actor="test")
    other.create(_salon("o-1", "tue"), actor="test")
    assert other.head_seq() >= filled.head_seq()
    copied = Matching(other).keeper.snapshot_store().root / published.name
    shutil.copytree(published, copied)
    assert _proposed(Matching(other)) == ["o-1"]
    assert len(Matching(other).keeper.snapshot_store().folders()) == 2  # its own was published
    # The change a snapshot reflects pruned from the log: it cannot be trusted any more.
    _move_to_friday(filled, (3, 4))
    assert filled.prune_change_log(keep_days=-1) > 0
    later = open_worker(filled)
    proposed = _proposed(later)
    assert "t-s3" not in proposed and "t-s4" not in proposed
    assert later.keeper._built is not None
    assert later.keeper._built.snapshot_seq == filled.head_seq()  # built afresh and published
    assert published.name not in _folders(later)[:1]


def test_a_truncated_snapshot_is_ignored_and_rebuilt(
    filled: Directory, open_worker: Callable[[Directory], Matching]
) -> None:
    worker = open_worker(filled)
    _proposed(worker)
    (published,) = worker.keeper.snapshot_store().folders()
    damaged = published / "listings_blob.npy"
    damaged.write_bytes(damaged.read_bytes()[:-7])
    later = open_worker(filled)
    assert set(_proposed(later)) == {f"t-s{n}" for n in range(6)}
    assert len(later.keeper.snapshot_store().folders()) == 2  # a whole one was published beside it
    assert later.keeper._built is not None and later.keeper._built.snapshot_seq >= 0


def test_a_web_worker_builds_the_snapshot_in_a_process_of_its_own(
    filled: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb.matchpool import PoolKeeper

    def not_here(self: PoolKeeper, store: object) -> None:
        raise AssertionError("built in the web worker's own process")

    # The build process imports afresh (spawn): only this process's build is refused.
    monkeypatch.setattr(PoolKeeper, "_build_and_publish", not_here)
    matching = Matching(filled, background=True, wait=60.0)
    assert len(_proposed(matching)) == 6
    assert len(_folders(matching)) == 1  # published by the build process, mapped here
    assert not isinstance(matching.pool().listings, list)
