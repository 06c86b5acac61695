"""A pool kept current with apply() answers as a pool built afresh from the same listings, and the
prefilters (reachable area, schedule bitmask) never drop a listing the full computation would keep."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from matcher import CandidatePool, match, parse_person
from matcher.pool import haversine_many
from matcher.query import window_tables
from matcher.synthetic import listing as synthetic_listing
from matcher.synthetic import persons as synthetic_persons

from .data import TODAY

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _listings(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [synthetic_listing(i, rng, radius_km=6.0) for i in range(n)]


def _answers(pool: CandidatePool, persons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each person's whole answer, lists in the order given: scores are summed factor by factor, so
    equal listings score equally to the last bit wherever the pool stores them, and ties fall to the
    caller's order, which an updated pool keeps."""
    return [match(person, pool, today=TODAY, all_excluded=True) for person in persons]


@SLOW
@given(seed=st.integers(0, 10_000), edits=st.integers(1, 40), removals=st.integers(0, 10))
@example(seed=3001, edits=35, removals=3)  # two near misses equal but for BLAS's last bit
def test_applied_changes_answer_like_a_fresh_build(seed: int, edits: int, removals: int) -> None:
    rng = random.Random(seed)
    original = _listings(seed, 120)
    pool = CandidatePool(original)
    pool.text(0)  # text prepared before the changes: appended rows take the tail path
    changed = rng.sample(range(len(original)), edits)
    upserts = []
    for k, i in enumerate(changed):  # same id, new content (weekday, place, capacity …)
        fresh = synthetic_listing(1000 + k, rng, radius_km=6.0)
        upserts.append({**fresh, "id": original[i]["id"]})
    added = [synthetic_listing(5000 + k, rng, radius_km=6.0) for k in range(3)]
    kept = [i for i in range(len(original)) if i not in changed]
    removed = [original[i]["id"] for i in rng.sample(kept, min(removals, len(kept)))]
    pool.apply([*upserts, *added], removed)
    # The caller's order a fresh build sees: edited listings where they were, new ones at the end.
    replaced = {u["id"]: u for u in upserts}
    expected = [replaced.get(x["id"], x) for x in original if x["id"] not in removed] + added
    fresh_pool = CandidatePool(expected)
    assert len(pool) == len(fresh_pool)
    persons = synthetic_persons(6, seed=seed, radius_km=4.0)
    assert _answers(pool, persons) == _answers(fresh_pool, persons)


def _overlap_and_upcoming_unfiltered(pool: CandidatePool, q: Any, idx: np.ndarray) -> Any:
    """Every entry of every listing compared minute by minute: the computation before any prefilter."""
    overlap = np.zeros(idx.size, dtype=bool)
    upcoming = np.zeros(idx.size)
    skip, every = window_tables(q.today)
    for local, row in enumerate(idx.tolist()):
        for e in range(int(pool.ent_ptr[row]), int(pool.ent_ptr[row + 1])):
            wd, start, end, weeks = (
                int(pool.ent_wd[e]),
                int(pool.ent_start[e]),
                int(pool.ent_end[e]),
                int(pool.ent_weeks[e]),
            )
            hit = any(
                wd == s.weekday and start < s.end and end > s.start and weeks & s.weeks
                for s in q.slots
            )
            overlap[local] |= hit
            table = every if pool.holidays_open[row] else skip
            if hit or not q.slots:
                upcoming[local] += float(table[wd, weeks])
    return overlap, upcoming


@SLOW
@given(seed=st.integers(0, 10_000))
def test_prefilters_keep_every_listing_the_full_computation_keeps(seed: int) -> None:
    pool = CandidatePool(_listings(seed, 150))
    rng = random.Random(seed)
    pool.apply(
        [synthetic_listing(900 + k, rng, radius_km=6.0) for k in range(20)],
        [pool.ids[k] for k in range(0, 150, 7)],
    )
    for person in synthetic_persons(5, seed=seed, radius_km=4.0):
        q = parse_person(person, TODAY)
        view = pool.view(q)
        # Reachable area: exactly the live, proposable listings within the radius (tail rows included).
        radius = 1.5 * q.max_km + 0.05
        rows = np.flatnonzero(pool.alive & pool.proposable & ~np.isnan(pool.lat))
        dist = haversine_many(float(q.lat), float(q.lon), pool.lat[rows], pool.lon[rows])
        assert sorted(view.idx.tolist()) == sorted(rows[dist <= radius].tolist())
        overlap, upcoming = _overlap_and_upcoming_unfiltered(pool, q, view.idx)
        if q.slots:
            assert view.schedule_overlap.tolist() == overlap.tolist()
        assert np.allclose(view.upcoming, upcoming)
