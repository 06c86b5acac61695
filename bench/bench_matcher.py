"""Benchmark: one person against 20,000 / 300,000 / 1,000,000 synthetic listings, a batch, and edits.

Run: .venv/bin/python bench/bench_matcher.py [--listings 20000 300000 1000000] [--persons 200]
     [--spread region|dense|country] [--batch 200] [--shared-workers 3]

Per size: pool build seconds (done once, off the request path in the web app) and process memory,
per-person p50/p95/p99 wall and CPU milliseconds (the first call of each person counted: text terms not seen before are looked
up then), the same persons again (warm), batch throughput (persons per second, exact assignment), and
how long one edit takes to be reflected (CandidatePool.apply of one changed listing, then a match),
beside the alternative of rebuilding the pool per change (the previous behaviour) as a ratio.

With --shared-workers N the pool is then written as a host snapshot (CandidatePool.to_arrays, as
resdb.matchpool publishes it) and N worker processes map it copy-on-write one after the other: each
reports the time to map plus its first match, its match p50/p95 and edits applied to its mapping; then,
all still alive, each one's RSS, USS (private) and PSS (shared pages split among the mappers), beside
the same figures of this process holding the pool in memory (one worker before).

Spreads: `region` (resdb.synth: a 富山県-sized area, the density the issue's 300,000 figure used),
`dense` (matcher.synthetic: all listings within 15 km of 射水市: far denser than any real place),
`country` (region-sized areas side by side, 300,000 listings each: a national directory).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import psutil

from matcher import match
from matcher.batch import match_batch
from matcher.pool import CandidatePool
from matcher.scoring import goal_terms
from matcher.synthetic import listings as dense_listings
from matcher.synthetic import persons as make_persons
from resdb.hostsnapshot import SnapshotStore, load_arrays
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


def _memory() -> dict[str, int]:
    """RSS, USS and PSS of this process in MB (psutil memory_full_info)."""
    info = psutil.Process().memory_full_info()
    return {
        "rss_mb": round(info.rss / 1e6),
        "uss_mb": round(info.uss / 1e6),
        "pss_mb": round(info.pss / 1e6),
    }


def _edit_times(pool: CandidatePool, person: dict[str, Any], count: int = 20) -> list[float]:
    """One edit reflected, `count` times: the first proposal moves to Sunday evening, then a match."""
    edits = []
    for k in range(count):
        first = match(person, pool, today=TODAY)["proposals"] or [{"resource_id": pool.ids[k]}]
        listing = dict(pool.listings[pool.index_of[first[0]["resource_id"]]])
        listing["schedule"] = [{"weekday": "sun", "start": "20:00", "end": "21:00"}]
        t = time.perf_counter()
        pool.apply([listing])
        match(person, pool, today=TODAY)
        edits.append((time.perf_counter() - t) * 1000)
    return edits


def worker(folder: str, n: int, n_persons: int, spread: str) -> None:
    """A web worker's share: map the snapshot, answer the persons, apply edits, report when told."""
    people = make_people(n_persons, n, spread, seed=3)
    gc.collect()
    started_with = _memory()  # the interpreter and its imports, before any pool
    t = time.perf_counter()
    loaded = load_arrays(Path(folder), copy_on_write=True)
    assert loaded is not None
    pool = CandidatePool.from_arrays(loaded[1])
    mapped = time.perf_counter() - t
    match(people[0], pool, today=TODAY)
    first = time.perf_counter() - t
    cold, cold_cpu = _times(people, pool)
    warm, _warm_cpu = _times(people, pool)
    edits = _edit_times(pool, people[0])
    row = {
        "map_ms": round(mapped * 1000, 1),
        "map_and_first_match_ms": round(first * 1000, 1),
        "p50_ms": round(statistics.median(cold), 1),
        "p95_ms": round(_percentile(cold, 95), 1),
        "warm_p50_ms": round(statistics.median(warm), 1),
        "warm_p95_ms": round(_percentile(warm, 95), 1),
        "cpu_p95_ms": round(_percentile(cold_cpu, 95), 1),
        "edit_reflected_p50_ms": round(statistics.median(edits), 1),
        **{f"before_map_{k}": v for k, v in started_with.items()},
        **{f"after_matches_{k}": v for k, v in _memory().items()},
    }
    print(json.dumps(row), flush=True)
    sys.stdin.readline()  # every worker is alive and mapped: PSS splits the shared pages among them
    print(json.dumps(_memory()), flush=True)
    sys.stdin.readline()


def bench_shared(
    pool: CandidatePool, n: int, n_persons: int, spread: str, workers: int
) -> dict[str, Any]:
    """Publish the pool as a host snapshot and let `workers` processes map it (see the module doc)."""
    row: dict[str, Any] = {"listings": n, "before_one_worker": _memory()}
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        t = time.perf_counter()
        arrays = pool.to_arrays()
        folder = SnapshotStore(Path(tmp), "bench").publish(1, arrays, {})
        del arrays
        row["snapshot_write_s"] = round(time.perf_counter() - t, 2)
        sizes = {p.stem: p.stat().st_size for p in folder.glob("*.npy")}
        row["snapshot_mb"] = round(sum(sizes.values()) / 1e6)
        row["largest_files_mb"] = {
            k: round(v / 1e6) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:4]
        }
        procs, rows = [], []
        for _k in range(workers):  # one after the other: the 2 shared cores time one at a time
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker-of",
                    str(folder),
                    "--listings",
                    str(n),
                    "--persons",
                    str(n_persons),
                    "--spread",
                    spread,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            rows.append(json.loads(proc.stdout.readline()))
            procs.append(proc)
        memories = []
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            memories.append(json.loads(proc.stdout.readline()))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(timeout=60)
    row["workers"] = [{**r, "all_mapped": m} for r, m in zip(rows, memories, strict=True)]
    row["loadavg"] = tuple(round(x, 2) for x in os.getloadavg())
    return row


def bench_size(
    n: int, n_persons: int, spread: str, batch: int
) -> tuple[dict[str, Any], CandidatePool]:
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
    edits = _edit_times(pool, people[0])
    row.update(
        edit_reflected_p50_ms=round(statistics.median(edits), 1),
        edit_reflected_max_ms=round(max(edits), 1),
        rebuild_per_edit_s=round(build, 2),
        rebuild_over_apply=round(build * 1000 / statistics.median(edits)),
        rss_mb=round(psutil.Process().memory_info().rss / 1e6),
        loadavg=tuple(round(x, 2) for x in os.getloadavg()),
    )
    return row, pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, nargs="+", default=[20000, 300000, 1000000])
    parser.add_argument("--persons", type=int, default=200)
    parser.add_argument("--spread", choices=("region", "dense", "country"), default="region")
    parser.add_argument("--batch", type=int, default=200, help="batch size (0 to skip)")
    parser.add_argument(
        "--shared-workers", type=int, default=0, help="worker processes mapping one snapshot"
    )
    parser.add_argument("--worker-of", help=argparse.SUPPRESS)  # internal: one mapping worker
    args = parser.parse_args()
    if args.worker_of:
        worker(args.worker_of, args.listings[0], args.persons, args.spread)
        return
    print({"loadavg_at_start": tuple(round(x, 2) for x in os.getloadavg())}, flush=True)
    for n in args.listings:
        row, pool = bench_size(n, args.persons, args.spread, args.batch)
        print(row, flush=True)
        if args.shared_workers:
            print(bench_shared(pool, n, args.persons, args.spread, args.shared_workers), flush=True)
        del pool
        gc.collect()


if __name__ == "__main__":
    main()
