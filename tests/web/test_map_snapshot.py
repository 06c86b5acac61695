"""The map's shared snapshot: workers of one instance folder map one snapshot that one of them built, follow
the change log on their own and answer byte for byte as a cache built in memory does; a snapshot of
another database, of a change the database no longer holds, or a damaged one is never used."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resdb.directory import Directory
from resdb.search import SearchQuery
from resdb.synth import synthetic_listings
from resdb.web.features import FeatureCache, MapNotReady, map_store
from tests.web.conftest import FIXED_TODAY
from tests.web.test_private_hosts import PRIVATE, _leaks

QUERIES: list[tuple[dict[str, Any], int | None]] = [
    ({}, None),
    ({}, 5),
    ({"bbox": (136.9, 36.6, 137.3, 36.9)}, 9),
    ({"bbox": (136.9, 36.6, 137.3, 36.9)}, 13),
    ({"bbox": (137.0, 36.7, 137.15, 36.8)}, 16),
    ({"bbox": (137.0, 36.7, 137.15, 36.8)}, None),
    ({"kinds": ["kayoi", "ibasho"]}, 11),
    ({"include_venues": True}, 12),
    ({"municipality_code": "162116"}, 14),
    ({"q": "サロン"}, 12),
    ({"q": "体操", "bbox": (136.9, 36.6, 137.3, 36.9)}, None),
    ({"limit": 7, "offset": 3}, None),
]


def _cache(directory: Directory, *, shared: bool, points_up_to: int = 20) -> FeatureCache:
    return FeatureCache(
        directory,
        lambda: FIXED_TODAY,
        points_up_to=points_up_to,
        store=map_store(directory) if shared else None,
    )


def _bodies(cache: FeatureCache) -> list[bytes]:
    return [cache.answer(SearchQuery(**filters), zoom).body for filters, zoom in QUERIES]


def _fill(directory: Directory, count: int = 120) -> list[str]:
    report = directory.import_records(
        list(enumerate(synthetic_listings(count, 3), start=1)), actor="t", source_name="synthetic"
    )
    assert not report.problems
    return [x["id"] for x in directory.iter_published()]


def _edit(directory: Directory, ids: list[str], rng: random.Random, step: int) -> None:
    """Move, rename (a new place in the order), delete or add a listing."""
    what = step % 4
    if what == 3 or not ids:
        made = directory.create(
            {
                "name": f"新しいサロン{step}",
                "name_kana": f"あ{step:03d}",
                "kind": "kayoi",
                "municipality_code": "162116",
                "lat": 36.7 + rng.uniform(0, 0.1),
                "lon": 137.05 + rng.uniform(0, 0.1),
                "schedule": [{"weekday": "mon", "start": "10:00", "end": "11:30"}],
            },
            actor="t",
        )
        ids.append(made["id"])
        return
    listing_id = ids[rng.randrange(len(ids))]
    if what == 2:
        directory.delete(listing_id, actor="t", expected_version=None)
        ids.remove(listing_id)
        return
    changes: dict[str, Any] = (
        {"lat": 36.65 + rng.uniform(0, 0.2), "lon": 137.0 + rng.uniform(0, 0.2)}
        if what == 0
        else {"name_kana": f"ん{step:03d}", "name": f"改名{step}"}
    )
    directory.update(listing_id, changes, actor="t", expected_version=None)


def test_shared_snapshot_after_edits_answers_as_an_in_memory_build(directory: Directory) -> None:
    ids = _fill(directory)
    directory.create(dict(PRIVATE), actor="t")
    shared = _cache(directory, shared=True)
    shared.snapshot()
    assert shared._columns is not None and shared._columns.base > 100
    assert isinstance(shared._columns.columns["lon"], np.memmap)  # mapped, not read
    rng = random.Random(5)
    for step in range(40):
        _edit(directory, ids, rng, step)
        if step % 3 == 0:
            shared.snapshot()  # follows the log between edits too
    fresh = _cache(directory, shared=False)
    assert _bodies(shared) == _bodies(fresh)
    assert shared._columns.tail_rows > 0  # answered through the private overlay
    for body in _bodies(shared):  # ("1234" alone also occurs in synthetic ids and cells)
        assert [x for x in _leaks(body.decode()) if x != "1234"] == []
    # a worker starting now maps the same snapshot and catches up with the same edits
    late = _cache(directory, shared=True)
    assert _bodies(late) == _bodies(fresh)
    assert late.timings.get("build") is None and late.timings.get("load") is not None


def test_two_workers_share_one_snapshot_and_see_each_others_edits(directory: Directory) -> None:
    ids = _fill(directory, 60)
    first, second = _cache(directory, shared=True), _cache(directory, shared=True)
    first.snapshot()
    second.snapshot()
    assert "build" in first.timings and "build" not in second.timings  # built once, mapped twice
    assert len(map_store(directory).folders()) == 1
    one, two = first._columns, second._columns
    assert one is not None and two is not None
    assert Path(one.columns["lon"].filename) == Path(two.columns["lon"].filename)  # type: ignore[attr-defined]
    moved = ids[0]
    directory.update(moved, {"lat": 36.5, "lon": 136.5}, actor="t", expected_version=None)
    query = SearchQuery(bbox=(136.45, 36.45, 136.55, 36.55))
    answer = second.answer(query, 16)  # the other worker's next request
    assert answer.total == 1 and moved.encode() in answer.body
    # the edit wrote to this worker's private pages, never to the shared file
    assert first.answer(query, 16).body == answer.body
    reloaded = map_store(directory).load_newest(lambda m: True)
    assert reloaded is not None
    assert (
        int(np.count_nonzero(reloaded[1]["died"] != np.iinfo(np.int64).max))
        == len(reloaded[1]["died"]) - reloaded[0]["count"]
    )  # every base row still alive in the file


def test_snapshot_of_another_database_or_a_pruned_change_is_ignored(
    directory: Directory, make_directory: Any, backend: str
) -> None:
    _fill(directory, 30)
    ours = _cache(directory, shared=True)
    ours.snapshot()
    store = map_store(directory)
    assert len(store.folders()) == 1
    # another database (same change numbers) in the same instance folder: not its snapshot
    other = make_directory(backend, name="other")
    from resdb.demo import load_districts

    load_districts(other, ("16211", "13225"))
    _fill(other, 30)
    alien = FeatureCache(other, lambda: FIXED_TODAY, store=store)
    alien.snapshot()
    assert "build" in alien.timings
    assert alien.snapshot().count == 30
    # a snapshot whose change the log no longer holds (stamp differs): ignored and rebuilt
    folder = store.folders()[0]
    manifest = folder / "manifest.json"
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace('"stamp": "', '"stamp": "x'), encoding="utf-8"
    )
    for path in store.folders()[1:]:
        (path / "manifest.json").unlink()
    again = _cache(directory, shared=True)
    again.snapshot()
    assert "build" in again.timings
    assert again.snapshot().count == ours.snapshot().count


@pytest.mark.parametrize("background", [False, True])
def test_a_large_overlay_is_published_as_the_next_snapshot(
    directory: Directory, background: bool
) -> None:
    ids = _fill(directory, 40)
    cache = FeatureCache(
        directory,
        lambda: FIXED_TODAY,
        points_up_to=20,
        store=map_store(directory),
        background=background,
        wait=30.0,
    )
    cache.republish_rows = 5
    first = cache.snapshot()
    rng = random.Random(9)
    for step in range(12):
        _edit(directory, ids, rng, step)
        cache.snapshot()
    if background:
        cache._builder.join(30)
    columns = cache._columns
    assert columns is not None and columns.generation != first.generation
    assert columns.tail_rows <= 5  # the overlay went into a new shared snapshot
    assert len(map_store(directory).folders()) == 2
    assert "build" in cache.timings and cache.timings["publish"] >= 0
    assert _bodies(cache) == _bodies(_cache(directory, shared=False))
    # a worker starting now maps the newer snapshot and has little to catch up with
    late = _cache(directory, shared=True)
    late.snapshot()
    late_columns = late._columns
    assert late_columns is not None and late_columns.base == columns.base
    assert _bodies(late) == _bodies(cache)


def test_truncated_snapshot_is_ignored_and_rebuilt(directory: Directory) -> None:
    _fill(directory, 40)
    first = _cache(directory, shared=True)
    expected = _bodies(first)
    store = map_store(directory)
    (folder,) = store.folders()
    damaged = folder / "encoded.npy"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    second = _cache(directory, shared=True)
    assert _bodies(second) == expected
    assert "build" in second.timings
    assert len(store.folders()) == 2  # a whole new one beside the damaged one


def test_background_build_answers_not_ready_then_the_map(
    directory: Directory, tmp_path: Path
) -> None:
    _fill(directory, 20)
    cache = FeatureCache(
        directory, lambda: FIXED_TODAY, store=map_store(directory), background=True, wait=0.0
    )
    with map_store(directory).exclusive():  # another worker is building: this one cannot yet
        with pytest.raises(MapNotReady):
            cache.snapshot()
    cache.wait = 30.0
    assert cache.snapshot().count == 20


def test_map_not_ready_is_a_japanese_503_with_retry_after(edit: Any) -> None:
    cache = edit.app.extensions["resdb.features"]
    cache.snapshot()
    directory = edit.directory
    cache.wait = 0.0
    from resdb.demo import load_districts

    with map_store(directory).exclusive():
        load_districts(directory, ("16211",))  # new districts: the columns need a whole build
        response = edit.client.get("/api/resources.geojson?zoom=9")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "準備中" in response.get_json()["error"]["message"]
        assert edit.client.get("/").status_code == 200  # the page still opens
    cache.wait = 30.0
    assert edit.client.get("/api/resources.geojson?zoom=9").status_code == 200


@pytest.mark.parametrize("shared", [True, False])
def test_columns_built_before_the_districts_changed_are_not_installed(
    directory: Directory, shared: bool
) -> None:
    """A build that read its rows under the old districts, finishing after new ones were loaded, is
    refused: the map is built again under the new ones and answers as a cache made afterwards."""
    from resdb.demo import load_districts

    _fill(directory, 60)
    cache = _cache(directory, shared=shared)
    columns, seq = cache._fresh()  # a build in flight …
    load_districts(directory, ("16211",))  # … while the districts change
    assert columns.districts != directory.districts_version()
    assert cache._install(columns, seq) is False
    assert not cache.ready
    assert _bodies(cache) == _bodies(_cache(directory, shared=False))
    assert cache._columns is not None
    assert cache._columns.districts == directory.districts_version()
