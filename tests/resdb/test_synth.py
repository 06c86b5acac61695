"""Synthetic corpora for the benchmarks: the same listings for the same seed, and a large corpus spread over
a grid of region boxes at a stated density instead of piled into one prefecture."""

from __future__ import annotations

from itertools import islice

from resdb.synth import REGION, regions_for, synthetic_listings


def test_one_box_unless_spread() -> None:
    assert regions_for(1_000_000) == [REGION]
    assert regions_for(20_000, 20_000) == [REGION]
    boxes = regions_for(1_000_000, 20_000)
    assert len(boxes) == 50 and boxes[0] == REGION
    assert len(set(boxes)) == 50  # no two boxes overlap the same place


def test_spread_keeps_each_listing_and_moves_it_into_its_box() -> None:
    plain = list(islice(synthetic_listings(100_000, seed=3), 200))
    spread = list(islice(synthetic_listings(100_000, seed=3, per_region=20_000), 200))
    boxes = regions_for(100_000, 20_000)
    assert len(boxes) == 5
    for n, (a, b) in enumerate(zip(plain, spread, strict=True)):
        box = boxes[n % 5]
        assert box[0] <= b["lat"] <= box[2] and box[1] <= b["lon"] <= box[3]
        assert abs((b["lat"] - box[0]) - (a["lat"] - REGION[0])) < 1e-5
        assert {k: v for k, v in a.items() if k not in {"lat", "lon"}} == {
            k: v for k, v in b.items() if k not in {"lat", "lon"}
        }
