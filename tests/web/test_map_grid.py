"""The map's cell index: a wide view summed from whole cells, its edge cells and the rows changed since the
base answers byte for byte as binning every row does, before and after edits, at every zoom."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from resdb.directory import Directory
from resdb.search import SearchQuery
from resdb.synth import REGION
from resdb.web.features import STREET_ZOOM, FeatureCache
from resdb.web.mapgrid import TABLE_LEVEL, morton
from tests.web.test_map_snapshot import _cache, _edit, _fill


def _views(rng: random.Random, count: int) -> list[tuple[tuple[float, float, float, float], int]]:
    """Views around the synthetic region: wide and narrow, inside it and over its edge."""
    views = []
    for _ in range(count):
        zoom = rng.randrange(4, STREET_ZOOM)
        width = rng.uniform(0.02, 1.2) * 2 ** (9 - min(zoom, 12))
        lon = rng.uniform(REGION[1] - 0.2, REGION[3] + 0.2)
        lat = rng.uniform(REGION[0] - 0.2, REGION[2] + 0.2)
        views.append(((lon - width, lat - width / 2, lon + width, lat + width / 2), zoom))
    return views


def _legacy(cache: FeatureCache, query: SearchQuery, zoom: int, snap: Any) -> bytes:
    """The answer from binning every row of the view's mask (the path for filtered queries)."""
    mask = cache._mask(query, snap)
    grid = cache._cells(snap, zoom, query.bbox, mask=mask)
    return cache._cell_answer(snap, grid, zoom, int(np.count_nonzero(mask)), 0).body


def _compare(cache: FeatureCache, views: list[Any]) -> int:
    snap = cache.snapshot()
    clustered = 0
    for bbox, zoom in views:
        query = SearchQuery(bbox=bbox)
        answer = cache.answer(query, zoom, snap)
        if answer.clustered:
            clustered += 1
            assert answer.body == _legacy(cache, query, zoom, snap), (bbox, zoom)
    return clustered


def test_cells_from_the_index_equal_cells_from_every_row_before_and_after_edits(
    directory: Directory,
) -> None:
    ids = _fill(directory, 600)
    cache = _cache(directory, shared=False, points_up_to=3)
    rng = random.Random(11)
    views = _views(rng, 80) + [((-200.0, -89.0, 200.0, 89.0), 1), ((130.0, 30.0, 190.0, 40.0), 4)]
    assert _compare(cache, views) > 50
    columns = cache._columns
    for step in range(60):
        _edit(directory, ids, rng, step)
    assert _compare(cache, views) > 50
    snap = cache.snapshot()
    assert cache._columns is columns and snap.count > snap.base and len(snap.retired_base)
    levels = {grid_level for grid_level in columns.cells._levels}
    assert levels and max(levels) <= TABLE_LEVEL  # whole cells came from the level sums


def test_a_cell_at_any_level_is_one_run_of_the_morton_order() -> None:
    rng = np.random.default_rng(3)
    px = rng.integers(0, 2**24, 5000, dtype=np.int64)
    py = rng.integers(0, 2**24, 5000, dtype=np.int64)
    fine = morton(px, py)
    for shift in (0, 3, 10, 17, 23):
        coarse = morton(px >> shift, py >> shift)
        assert (fine >> (2 * shift) == coarse).all()
    order = np.argsort(fine)
    cells = (px[order] >> 10) * 2**14 + (py[order] >> 10)
    first_seen = {}
    for at, cell in enumerate(cells.tolist()):
        assert first_seen.setdefault(cell, at) == at or cells[at - 1] == cell
