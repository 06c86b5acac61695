"""Benchmark the directory core: import (with index) time, in-process search p50/p95 (vs raw SQLite FTS5
trigram on the same data), area lookup p95 and peak memory, at stated sizes.

    .venv/bin/python bench/bench_directory.py --sizes 20000 300000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resdb.demo import LISTINGS_DIR, load_districts
from resdb.directory import Directory
from resdb.domain.textnorm import normalize
from resdb.search import SearchQuery
from resdb.synth import synthetic_listings

QUERIES = [
    "サロン",
    "さろん",
    "体操",
    "子ども食堂",
    "農作業",
    "カフェ",
    "学習支援",
    "ボランティア",
    "ふれあいサロン",
    "日本語教室",
    "畑",
    "ひだまり農園",
]
FILTERED = [
    SearchQuery(q="サロン", kinds=["kayoi"], limit=20),
    SearchQuery(q="", kinds=["ibasho"], max_cost=0, limit=20),
    SearchQuery(q="体操", near=(36.73, 137.10), radius_km=3, limit=20),
    SearchQuery(q="", weekdays=["tue"], targets=["elderly"], limit=20),
]


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def fts5_compare(listings: list[dict], queries: list[str], repeat: int) -> list[float]:
    """The same text queries on a raw SQLite FTS5 trigram table (no filters, no ranking beyond bm25)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(id UNINDEXED, name, body, tokenize='trigram')")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(x["id"], normalize(x["name"]), normalize(x.get("description"))) for x in listings],
    )
    samples = []
    for _ in range(repeat):
        for q in queries:
            needle = normalize(q).replace('"', "")
            start = time.perf_counter()
            if len(needle) >= 3:
                conn.execute(
                    "SELECT id FROM t WHERE t MATCH ? ORDER BY bm25(t, 0, 6, 1) LIMIT 20",
                    (f'"{needle}"',),
                ).fetchall()
            else:  # trigram needs 3 chars: fall back to LIKE, as FTS5 itself would
                conn.execute(
                    "SELECT id FROM t WHERE name LIKE ? OR body LIKE ? LIMIT 20",
                    (f"%{needle}%", f"%{needle}%"),
                ).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def run(size: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Directory.open(f"sqlite:///{tmp}/b.sqlite3", Path(tmp))
        load_districts(directory, ("16211",))
        plan = LISTINGS_DIR / "16211_imizu.json"  # the real centers with their 担当地区
        directory.import_records(
            list(enumerate(json.loads(plan.read_text(encoding="utf-8")), 1)),
            actor="bench",
            source_name=plan.name,
        )
        listings = list(synthetic_listings(size, seed=7))
        records = list(enumerate(listings, start=1))
        gc.collect()
        start = time.perf_counter()
        report = directory.import_records(records, actor="bench", source_name="synthetic")
        import_s = time.perf_counter() - start
        assert report.written and not report.problems, report.problems[:3]
        assert directory.index.doc_count() == size + report_plan_count(directory, size)

        cold: list[float] = []
        for q in QUERIES:  # first time each query is seen: posting lists decoded from whoosh
            for segment in directory.index.snapshot().segments:
                segment.postings.clear()
            cold += timed(lambda q=q: directory.search(SearchQuery(q=q, limit=20)), 1)

        # warm up (opens searchers, builds fuzzy name cache once)
        directory.search(SearchQuery(q="すてっびカフェ"))
        text_samples = timed(
            lambda: [directory.search(SearchQuery(q=q, limit=20)) for q in QUERIES], repeat
        )
        per_query = [s / len(QUERIES) for s in text_samples]
        individual: list[float] = []
        for _ in range(repeat):
            for q in QUERIES:
                individual += timed(lambda q=q: directory.search(SearchQuery(q=q, limit=20)), 1)
        filtered: list[float] = []
        for _ in range(repeat):
            for query in FILTERED:
                filtered += timed(lambda query=query: directory.search(query), 1)
        index_only: list[float] = []
        for _ in range(repeat):
            for q in QUERIES:
                index_only += timed(
                    lambda q=q: directory.index.search(SearchQuery(q=q, limit=20)), 1
                )
        fts = fts5_compare(listings, QUERIES, repeat)

        rng = random.Random(3)
        points = [(rng.uniform(36.68, 36.80), rng.uniform(137.02, 137.17)) for _ in range(2000)]
        directory.areas_lookup(*points[0])
        area_index = directory.area_index()
        lookups = []
        for lat, lon in points:
            start = time.perf_counter()
            area_index.lookup(lat, lon)
            lookups.append((time.perf_counter() - start) * 1000)
        full_lookups = timed(lambda: directory.areas_lookup(*rng.choice(points)), 300)

        print(f"\n== {size:,} listings (synthetic region, SQLite, whoosh) ==")
        print(f"import incl. index: {import_s:.1f} s  ({size / import_s:,.0f} listings/s)")
        print(
            f"search (whoosh + DB fetch), {len(QUERIES)} queries × {repeat}: p50 {pct(individual, 50):.1f} ms  p95 {pct(individual, 95):.1f} ms  (mean/query {statistics.mean(per_query):.1f} ms)"
        )
        print(
            f"search, cold posting cache:     p50 {pct(cold, 50):.1f} ms  p95 {pct(cold, 95):.1f} ms"
        )
        print(
            f"search (index only):            p50 {pct(index_only, 50):.1f} ms  p95 {pct(index_only, 95):.1f} ms"
        )
        print(
            f"search with filters/distance:   p50 {pct(filtered, 50):.1f} ms  p95 {pct(filtered, 95):.1f} ms"
        )
        print(
            f"raw SQLite FTS5 trigram:        p50 {pct(fts, 50):.2f} ms  p95 {pct(fts, 95):.2f} ms  → whoosh/FTS5 p95 ratio {pct(individual, 95) / max(pct(fts, 95), 1e-6):.1f}×"
        )
        print(
            f"area lookup (index):            p50 {pct(lookups, 50):.3f} ms  p95 {pct(lookups, 95):.3f} ms"
        )
        print(
            f"area lookup (+ fetch centers):  p50 {pct(full_lookups, 50):.2f} ms  p95 {pct(full_lookups, 95):.2f} ms"
        )
        print(
            f"process RSS now {rss_mb():.0f} MB, peak {psutil.Process().memory_info().rss / 1e6:.0f} MB (ru_maxrss {peak_mb():.0f} MB)"
        )
        directory.index.close()
        directory.engine.dispose()


def report_plan_count(directory: Directory, size: int) -> int:
    return directory.published_count() - size


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", type=int, default=[20000])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    for size in args.sizes:
        run(size, args.repeat)


if __name__ == "__main__":
    main()
