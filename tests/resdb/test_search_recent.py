"""Searches read edits not yet committed to whoosh from memory (`batch_commits`, as `resdb serve` runs):
after every step of edits, renames, schedule changes, deletions and restores, each query answers exactly
what a host that committed every change answers; workers of one host agree; the follower commits in
batches; pages neither repeat nor drop; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from resdb.directory import Directory
from resdb.search import SearchQuery

WORDS = ["ふれあい", "サロン", "子ども食堂", "カフェ", "農園", "体操", "学習支援", "居場所"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat"]
QUERIES = [
    SearchQuery(q="", limit=None),
    SearchQuery(q="サロン", limit=None),
    SearchQuery(q="ふれあい カフェ", limit=None),
    SearchQuery(q="子ども", weekdays=["tue"], limit=None),
    SearchQuery(q="", weekdays=["sat"], max_cost=0, limit=None),
    SearchQuery(q="", kinds=["kayoi"], barrier_free=True, limit=None),
    SearchQuery(q="居場所", near=(36.72, 137.10), radius_km=3.0, limit=None),
    SearchQuery(q="", near=(36.73, 137.09), limit=None),
    SearchQuery(q="ふれあいさろむ", limit=None),  # typo stage
    SearchQuery(q="サロン", limit=7, offset=7),
]


def listing(rng: random.Random, number: int) -> dict[str, Any]:
    first, second = rng.sample(WORDS, 2)
    return {
        "id": f"r-{number:03d}",
        "name": f"{first}{second}{number}",
        "kind": rng.choice(["kayoi", "ibasho", "shokudo"]),
        "lat": 36.70 + rng.random() * 0.06,
        "lon": 137.06 + rng.random() * 0.08,
        "targets": [rng.choice(["elderly", "children", "all"])],
        "cost_yen": rng.choice([0, 100, 300]),
        "barrier_free": rng.random() < 0.5,
        "schedule": [{"weekday": rng.choice(DAYS), "start": "10:00", "end": "12:00"}],
    }


def answers(directory: Directory) -> list[tuple[int, list[tuple[str, float, Any, bool]]]]:
    found = []
    for query in QUERIES:
        result = directory.search_ids(query)
        found.append(
            (
                result.total,
                [(h.id, round(h.score, 4), h.distance_km, h.fuzzy) for h in result.hits],
            )
        )
    return found


def batching_worker(directory: Directory) -> Directory:
    """Another worker process of the same host (same instance folder), reading edits from memory."""
    worker = Directory(directory.engine, directory.instance_dir)
    worker.batch_commits = True
    return worker


def test_searches_from_memory_answer_as_a_committed_index_does(
    directory: Directory, tmp_path: Path
) -> None:
    rng = random.Random(5)
    for number in range(24):
        directory.create(listing(rng, number), actor="a")  # committed to whoosh one by one
    directory.batch_commits = True
    committed = Directory(directory.engine, tmp_path / "committing-host")  # commits every change
    committed.ensure_ready()
    worker_b = batching_worker(directory)
    start_cursor = directory.index.cursor()
    versions = {f"r-{n:03d}": 1 for n in range(24)}
    deleted: set[str] = set()
    for step in range(30):
        target = f"r-{rng.randrange(24):03d}"
        if target in deleted:
            directory.restore(target, actor="a")
            deleted.discard(target)
            versions[target] = directory.get(target)["version"]
        elif step % 7 == 3:
            directory.delete(target, actor="a", expected_version=versions[target])
            deleted.add(target)
        else:
            change = rng.choice(
                [
                    {"name": f"{rng.choice(WORDS)}の会{step}"},
                    {"schedule": [{"weekday": rng.choice(DAYS), "start": "9:00", "end": "11:00"}]},
                    {"cost_yen": rng.choice([0, 500])},
                    {"lat": 36.70 + rng.random() * 0.06, "lon": 137.06 + rng.random() * 0.08},
                ]
            )
            versions[target] = directory.update(
                target, change, actor="a", expected_version=versions[target]
            )["version"]
        if step % 3 == 0:
            expected = answers(committed)
            assert answers(directory) == expected, step
            assert answers(worker_b) == expected, step
    assert directory.index.cursor() == start_cursor  # nothing was committed to whoosh meanwhile
    assert len(directory._recent) > 0
    directory.follow_changes(wait=5.0)  # the follower's batch commit
    assert directory.index.cursor() == directory.head_seq()
    assert answers(worker_b) == answers(committed) == answers(directory)
    assert len(worker_b._recent) == 0  # what the commit holds is no longer held in memory


def test_an_edited_listing_is_found_once_in_its_new_state_on_every_page(
    directory: Directory,
) -> None:
    rng = random.Random(9)
    old_days = {}
    for number in range(30):
        made = {**listing(rng, number), "name": f"サロン{number}"}
        old_days[made["id"]] = made["schedule"][0]["weekday"]
        directory.create(made, actor="a")
    directory.batch_commits = True
    worker_b = batching_worker(directory)
    edited = [f"r-{number:03d}" for number in range(0, 30, 2)]
    for listing_id in edited:
        directory.update(
            listing_id,
            {
                "name": f"{listing_id}サロン改",
                "schedule": [{"weekday": "sun", "start": "9:00", "end": "10:00"}],
            },
            actor="a",
            expected_version=1,
        )
    whole = worker_b.search_ids(SearchQuery(q="サロン", limit=None))
    assert whole.total == 30 and len(set(whole.ids)) == 30
    paged: list[str] = []
    for offset in range(0, 30, 7):
        page = worker_b.search_ids(SearchQuery(q="サロン", limit=7, offset=offset))
        assert page.total == 30
        paged += page.ids
    assert paged == whole.ids
    assert sorted(worker_b.search_ids(SearchQuery(weekdays=["sun"], limit=None)).ids) == edited
    for listing_id in edited:  # the old weekday went with the old version
        old_day = SearchQuery(weekdays=[old_days[listing_id]], limit=None)
        assert listing_id not in worker_b.search_ids(old_day).ids


def test_a_document_the_index_cannot_hold_is_left_out_from_memory_too(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb.search import recent

    rng = random.Random(3)
    directory.create({**listing(rng, 1), "name": "ふれあいサロン"}, actor="a")
    directory.create({**listing(rng, 2), "name": "となりのサロン"}, actor="a")
    directory.batch_commits = True
    monkeypatch.setattr(
        recent,
        "_check_fields",
        lambda fields: "cost の値は索引に入りません" if fields["id"] == "r-001" else None,
    )
    directory.update("r-001", {"name": "改名したサロン"}, actor="a", expected_version=1)
    directory.update("r-002", {"name": "改名した集い"}, actor="a", expected_version=1)
    assert directory.search_ids(SearchQuery(q="集い")).ids == ["r-002"]
    assert directory.search_ids(SearchQuery(q="ふれあい")).ids == []  # no old text served either
    assert directory.search_ids(SearchQuery(q="改名")).ids == ["r-002"]


def test_the_follower_commits_edits_in_batches(directory: Directory, tmp_path: Path) -> None:
    rng = random.Random(4)
    for number in range(10):
        directory.create(listing(rng, number), actor="a")
    host_b = Directory(directory.engine, tmp_path / "host-b")
    host_b.ensure_ready()
    host_b.serving = True
    stop = host_b.start_follower(0.02, commit_after=0.5)
    assert stop is not None and host_b.batch_commits
    cursors: set[int | None] = set()
    try:
        for number in range(10):
            directory.update(
                f"r-{number:03d}", {"name": f"新しい名前{number}"}, actor="a", expected_version=1
            )
            # seen at once on the other host, from memory
            assert host_b.search_ids(SearchQuery(q=f"新しい名前{number}")).ids[0] == (
                f"r-{number:03d}"
            )
            cursors.add(host_b.index.cursor())
            time.sleep(0.03)
        head = directory.head_seq()
        deadline = time.monotonic() + 20
        while (host_b.index.cursor() or 0) < head and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert host_b.index.cursor() == head  # committed in the background
    assert len(cursors) < 6  # ten edits, a few commits
    assert len(host_b.search_ids(SearchQuery(q="新しい名前", limit=None)).ids) == 10
