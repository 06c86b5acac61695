"""Benchmark: one person against 20,000 / 300,000 synthetic listings, and a 200-person batch.

Run: .venv/bin/python bench/bench_matcher.py [--listings 20000 300000] [--persons 100] [--radius 15]
Prints p50/p95 milliseconds per match (pool built once, as callers should) and batch timings.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import psutil

from matcher import match
from matcher.batch import greedy_baseline, match_batch, total_score
from matcher.pool import CandidatePool
from matcher.synthetic import listings as make_listings
from matcher.synthetic import persons as make_persons

TODAY = date(2026, 11, 30)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def bench_match(n_listings: int, n_persons: int, radius_km: float) -> dict[str, float]:
    data = make_listings(n_listings, seed=7, radius_km=radius_km)
    t0 = time.perf_counter()
    pool = CandidatePool(data)
    build = time.perf_counter() - t0
    people = make_persons(n_persons, seed=3)
    times = []
    for p in people:
        t = time.perf_counter()
        match(p, pool, today=TODAY)
        times.append((time.perf_counter() - t) * 1000)
    return {
        "listings": n_listings,
        "pool_build_s": round(build, 2),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(_percentile(times, 95), 1),
        "max_ms": round(max(times), 1),
    }


def bench_batch(n_listings: int, n_persons: int, radius_km: float) -> dict[str, float]:
    pool = CandidatePool(make_listings(n_listings, seed=7, radius_km=radius_km))
    people = make_persons(n_persons, seed=5)
    t = time.perf_counter()
    exact = match_batch(people, pool, today=TODAY)
    t_exact = time.perf_counter() - t
    t = time.perf_counter()
    greedy = greedy_baseline(people, pool, today=TODAY)
    t_greedy = time.perf_counter() - t
    return {
        "persons": n_persons,
        "listings": n_listings,
        "exact_s": round(t_exact, 2),
        "exact_placed": len(exact["assignments"]),
        "exact_total": round(total_score(exact), 2),
        "greedy_s": round(t_greedy, 2),
        "greedy_placed": len(greedy["assignments"]),
        "greedy_total": round(total_score(greedy), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listings", type=int, nargs="+", default=[20000, 300000])
    parser.add_argument("--persons", type=int, default=100)
    parser.add_argument(
        "--radius", type=float, default=15.0, help="km radius the listings are spread over"
    )
    parser.add_argument("--batch", type=int, default=200, help="batch size (0 to skip)")
    args = parser.parse_args()
    for n in args.listings:
        print(
            {
                **bench_match(n, args.persons, args.radius),
                "rss_mb": round(psutil.Process().memory_info().rss / 1e6),
            }
        )
    if args.batch:
        print(
            {
                **bench_batch(args.listings[0], args.batch, args.radius),
                "rss_mb": round(psutil.Process().memory_info().rss / 1e6),
            }
        )


if __name__ == "__main__":
    main()
