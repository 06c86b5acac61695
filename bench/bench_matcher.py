"""Benchmark: one person against 20,000 / 300,000 / 1,000,000 synthetic listings, a batch, and edits.

Run: .venv/bin/python bench/bench_matcher.py [--listings 20000 300000 1000000] [--persons 200]
     [--spread region|dense|country] [--batch 200]

Per size: pool build seconds (done once, off the request path in the web app) and process memory,
per-person p50/p95/p99 wall and CPU milliseconds (the first call of each person counted: text terms not seen before are looked
up then), the same persons again (warm), batch throughput (persons per second, exact assignment), and
how long one edit takes to be reflected (CandidatePool.apply of one changed listing, then a match),
beside the alternative of rebuilding the pool per change (the previous behaviour) as a ratio.

Spreads: `region` (resdb.synth: a 富山県-sized area, the density the issue's 300,000 figure used),
`dense` (matcher.synthetic: all listings within 15 km of 射水市: far denser than any real place),
`country` (region-sized areas side by side, 300,000 listings each: a national directory).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
from datetime import date
from typing import Any

import psutil

from matcher import match
from matcher.batch import match_batch
from matcher.pool import CandidatePool
from matcher.scoring import goal_terms
from matcher.synthetic import listings as dense_listings
from matcher.synthetic import persons as make_persons
from resdb.synth import regions_for, synthetic_listings

TODAY = date(2026, 11, 30)
PER_REGION = 300_000


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def make_data(n: int, spread: str) -> list[dict[str, Any]]:
    if spread == "dense":
        return dense_listings(n, seed=7)
    per_region = PER_REGION if spread == "country" else None
    return list(synthetic_listings(n, seed=1, per_region=per_region))


def make_people(count: int, n: int, spread: str, seed: int) -> list[dict[str, Any]]:
    people = make_persons(count, seed=seed)
    if spread == "dense":
        return people
    rng = random.Random(seed)
    regions = regions_for(n, PER_REGION if spread == "country" else None)
    for p in people:
        box = rng.choice(regions)
        p["home"] = {"lat": rng.uniform(box[0], box[2]), "lon": rng.uniform(box[1], box[3])}
    return people


def _times(people: list[dict[str, Any]], pool: CandidatePool) -> tuple[list[float], list[float]]:
    """(wall ms, CPU ms of this process) per person: on a shared machine the CPU figure is the steadier."""
    wall, cpu = [], []
    for p in people:
        t, c = time.perf_counter(), time.process_time()
        match(p, pool, today=TODAY)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return wall, cpu


def bench_size(n: int, n_persons: int, spread: str, batch: int) -> dict[str, Any]:
    data = make_data(n, spread)
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    t0, c0 = time.perf_counter(), time.process_time()
    pool = CandidatePool(data)
    for terms in goal_terms().values():  # as resdb.matchpool does at build
        pool.term_hits(terms)
    build = time.perf_counter() - t0
    build_cpu = time.process_time() - c0
    pool_mb = (psutil.Process().memory_info().rss - rss0) / 1e6
    people = make_people(n_persons, n, spread, seed=3)
    cold, cold_cpu = _times(people, pool)
    warm, warm_cpu = _times(people, pool)
    row: dict[str, Any] = {
        "listings": n,
        "spread": spread,
        "pool_build_s": round(build, 2),
        "pool_build_cpu_s": round(build_cpu, 2),
        "pool_mb": round(pool_mb),
        "p50_ms": round(statistics.median(cold), 1),
        "p95_ms": round(_percentile(cold, 95), 1),
        "p99_ms": round(_percentile(cold, 99), 1),
        "warm_p50_ms": round(statistics.median(warm), 1),
        "warm_p95_ms": round(_percentile(warm, 95), 1),
        "warm_p99_ms": round(_percentile(warm, 99), 1),
        "cpu_p50_ms": round(statistics.median(cold_cpu), 1),
        "cpu_p95_ms": round(_percentile(cold_cpu, 95), 1),
        "warm_cpu_p95_ms": round(_percentile(warm_cpu, 95), 1),
    }
    if batch:
        group = make_people(batch, n, spread, seed=5)
        t = time.perf_counter()
        result = match_batch(group, pool, today=TODAY)
        took = time.perf_counter() - t
        row.update(
            batch_persons=batch,
            batch_s=round(took, 2),
            batch_persons_per_s=round(batch / took, 1),
            batch_placed=len(result["assignments"]),
        )
    # One edit reflected: the listing a person was proposed first moves to another weekday.
    person = people[0]
    edits = []
    for k in range(20):
        first = match(person, pool, today=TODAY)["proposals"] or [{"resource_id": pool.ids[k]}]
        listing = dict(pool.listings[pool.index_of[first[0]["resource_id"]]])
        listing["schedule"] = [{"weekday": "sun", "start": "20:00", "end": "21:00"}]
        t = time.perf_counter()
        pool.apply([listing])
        match(person, pool, today=TODAY)
        edits.append((time.perf_counter() - t) * 1000)
    row.update(
        edit_reflected_p50_ms=round(statistics.median(edits), 1),
        edit_reflected_max_ms=round(max(edits), 1),
        rebuild_per_edit_s=round(build, 2),
        rebuild_over_apply=round(build * 1000 / statistics.median(edits)),
        rss_mb=round(psutil.Process().memory_info().rss / 1e6),
        loadavg=tuple(round(x, 2) for x in os.getloadavg()),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, nargs="+", default=[20000, 300000, 1000000])
    parser.add_argument("--persons", type=int, default=200)
    parser.add_argument("--spread", choices=("region", "dense", "country"), default="region")
    parser.add_argument("--batch", type=int, default=200, help="batch size (0 to skip)")
    args = parser.parse_args()
    print({"loadavg_at_start": tuple(round(x, 2) for x in os.getloadavg())}, flush=True)
    for n in args.listings:
        print(bench_size(n, args.persons, args.spread, args.batch), flush=True)
        gc.collect()


if __name__ == "__main__":
    main()
