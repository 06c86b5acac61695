"""Search index at scale: bulk build time, peak memory and size on disk, memory of 3 reader processes
sharing one index, and search latency warm and cold (text, text + filters, distance), at 20,000 /
300,000 / 1,000,000 synthetic listings; side by side with SQLite FTS5 trigram (Datasette) and
PostgreSQL pg_trgm on the same texts and queries, as ratios.

    .venv/bin/python bench/bench_scale_search.py --sizes 20000,300000 [--no-pg] [--no-fts]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = [
    "サロン",
    "体操",
    "子ども食堂",
    "交流",
    "カフェ",
    "居場所",
    "学習支援",
    "農園",
    "相談",
    "手芸",
]
POINTS_SEED = 7
# Typo search has no counterpart in a LIKE query: the alternatives skip it.
NOT_IN_ALTERNATIVES = {"typo"}
TYPOS = [
    "すてっびカフェ",
    "ふれあいさろむ",
    "こどもしょくどお",
    "がくしゅうしえむ",
    "にほんごきょうしつ教室",
]


def _queries() -> dict[str, list[dict[str, Any]]]:
    from resdb.synth import REGION

    rng = random.Random(POINTS_SEED)
    points = [
        (rng.uniform(REGION[0], REGION[2]), rng.uniform(REGION[1], REGION[3])) for _ in range(10)
    ]
    return {
        "text": [{"q": w} for w in WORDS],
        "text+filters": [
            {"q": w, "max_cost": 0, "weekdays": ["tue"], "barrier_free": True} for w in WORDS
        ],
        # Typed wrong: few or no exact hits, so names close to the query are looked for (typo search).
        "typo": [{"q": w} for w in TYPOS],
        "distance": [
            {"q": WORDS[i % 3] if i % 2 else "", "near": p, "radius_km": 3.0}
            for i, p in enumerate(points)
        ],
    }


def _pct(values: list[float]) -> str:
    ordered = sorted(values)
    pick = lambda p: ordered[min(len(ordered) - 1, int(p * len(ordered)))]  # noqa: E731
    return f"p50 {pick(0.5) * 1000:7.1f}  p95 {pick(0.95) * 1000:7.1f}  p99 {pick(0.99) * 1000:7.1f} ms"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


# -- child modes -------------------------------------------------------------------------------
def build_child(root: str, size: int) -> None:
    """Build in this process; worker processes (under a forkserver, so not our direct children) are
    sampled with psutil for their CPU time and memory."""
    import threading

    import psutil

    from resdb.search import SearchIndex
    from resdb.synth import synthetic_listings

    me = psutil.Process()
    cpu_of: dict[int, float] = {}
    peak = {"workers_mb": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            total = 0.0
            for child in me.children(recursive=True):
                try:
                    times = child.cpu_times()
                    cpu_of[child.pid] = times.user + times.system
                    total += child.memory_info().rss / 2**20
                except psutil.Error:
                    continue
            peak["workers_mb"] = max(peak["workers_mb"], total)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    SearchIndex(Path(root)).rebuild(synthetic_listings(size))
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": own.ru_utime + own.ru_stime + sum(cpu_of.values()),
                "peak_mb": own.ru_maxrss / 1024,
                "worker_peak_mb": peak["workers_mb"],
            }
        )
    )


def _evict(root: Path) -> None:
    """Drop the index files from the page cache (as after a reboot) where the kernel allows."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def reader_child(root: str, mode: str, kind: str, which: int) -> None:
    """warm: every query of every kind 5 times, then memory; cold: one query in a fresh process that
    opened the index, after its files were evicted from the page cache."""
    import psutil

    from resdb.search import SearchIndex, SearchQuery

    if mode == "cold":
        index = SearchIndex(Path(root))
        index.snapshot()  # opened (whoosh's table of contents, sidecar headers), nothing read yet
        _evict(Path(root))
        started = time.perf_counter()
        index.search(SearchQuery(**_queries()[kind][which]))
        print(json.dumps({"seconds": time.perf_counter() - started}))
        return
    index = SearchIndex(Path(root))
    timings: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for _round in range(5):
        for name, queries in _queries().items():
            for query in queries:
                started, cpu_started = time.perf_counter(), time.thread_time()
                index.search(SearchQuery(**query))
                timings.setdefault(name, []).append(time.perf_counter() - started)
                cpu.setdefault(name, []).append(time.thread_time() - cpu_started)
    # Memory is read while all 3 readers still map the index (the last one alone would own every page).
    barrier = Path(root).parent / "readers"
    barrier.mkdir(exist_ok=True)
    (barrier / f"ready-{os.getpid()}").touch()
    while len(list(barrier.glob("ready-*"))) < 3:
        time.sleep(0.05)
    memory = psutil.Process().memory_full_info()
    (barrier / f"measured-{os.getpid()}").touch()
    while len(list(barrier.glob("measured-*"))) < 3:
        time.sleep(0.05)
    for name, values in cpu.items():  # CPU per query: what the figures are on an idle machine
        print(f"  reader CPU time {name:13} {_pct(values[len(values) // 5 :])}", file=sys.stderr)
    print(
        json.dumps(
            {
                "timings": {k: v[len(v) // 5 :] for k, v in timings.items()},  # first round warms
                "rss_mb": memory.rss / 2**20,
                "uss_mb": memory.uss / 2**20,
                "pss_mb": memory.pss / 2**20,
            }
        )
    )


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- alternatives ------------------------------------------------------------------------------
def _rows(size: int) -> list[tuple[Any, ...]]:
    from resdb.domain import schedule as schedule_mod
    from resdb.synth import synthetic_listings

    rows = []
    for doc in synthetic_listings(size):
        body = " ".join(
            filter(None, [doc.get("description"), doc.get("operator"), " ".join(doc["activities"])])
        )
        days = " ".join(schedule_mod.weekday_terms(doc.get("schedule") or []))
        rows.append(
            (
                doc["id"],
                doc["name"],
                body,
                doc["cost_yen"],
                doc["lat"],
                doc["lon"],
                days,
                int(bool(doc.get("barrier_free"))),
            )  # fmt: skip
        )
    return rows


def _sql_for(query: dict[str, Any], like: str, box_fn: Any) -> tuple[str, list[Any]]:
    where, params = [], []
    if query.get("q"):
        where.append(f"(name {like} ? OR body {like} ?)")
        params += [f"%{query['q']}%"] * 2
    if "max_cost" in query:
        where.append("cost <= ?")
        params.append(query["max_cost"])
    if query.get("weekdays"):
        where.append(f"days {like} ?")
        params.append("%tue%")
    if query.get("barrier_free"):
        where.append("barrier_free = 1")
    order = "length(name)"
    if query.get("near"):
        lat, lon = query["near"]
        min_lon, min_lat, max_lon, max_lat = box_fn(lat, lon, query["radius_km"])
        where.append("lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?")
        params += [min_lat, max_lat, min_lon, max_lon]
        order = f"((lat - {lat}) * (lat - {lat}) + (lon - {lon}) * (lon - {lon}))"
    sql = f"SELECT id FROM t WHERE {' AND '.join(where) or '1=1'} ORDER BY {order} LIMIT 20"
    return sql, params


def bench_fts5(size: int, folder: Path) -> dict[str, Any]:
    from resdb.domain.travel import bbox_around

    path = folder / "fts.sqlite"
    started = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute(
        "CREATE VIRTUAL TABLE t USING fts5(id UNINDEXED, name, body, cost UNINDEXED, lat UNINDEXED,"
        " lon UNINDEXED, days, barrier_free UNINDEXED, tokenize='trigram')"
    )
    db.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?)", _rows(size))
    db.commit()
    build = time.perf_counter() - started
    timings: dict[str, list[float]] = {}
    for _round in range(3):
        for name, queries in _queries().items():
            for query in queries if name not in NOT_IN_ALTERNATIVES else ():
                sql, params = _sql_for(query, "LIKE", bbox_around)
                started = time.perf_counter()
                db.execute(sql, params).fetchall()
                timings.setdefault(name, []).append(time.perf_counter() - started)
    db.close()
    return {"build": build, "disk_mb": path.stat().st_size / 2**20, "timings": timings}


def bench_pg(size: int, dsn: str) -> dict[str, Any]:
    import psycopg

    from resdb.domain.travel import bbox_around

    server, _, database = dsn.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        if not admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone():
            admin.execute(f'CREATE DATABASE "{database}"')  # a new machine has none yet
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        conn.execute("DROP TABLE IF EXISTS t")
        started = time.perf_counter()
        conn.execute(
            "CREATE TABLE t (id text, name text, body text, cost int, lat float8, lon float8,"
            " days text, barrier_free int)"
        )
        with conn.cursor().copy("COPY t FROM STDIN") as copy:
            for row in _rows(size):
                copy.write_row(row)
        conn.execute("CREATE INDEX ON t USING gin (name gin_trgm_ops)")
        conn.execute("CREATE INDEX ON t USING gin (body gin_trgm_ops)")
        conn.execute("CREATE INDEX ON t (lat, lon)")
        conn.execute("ANALYZE t")
        build = time.perf_counter() - started
        disk = conn.execute("SELECT pg_total_relation_size('t')").fetchone()[0] / 2**20
        timings: dict[str, list[float]] = {}
        for _round in range(3):
            for name, queries in _queries().items():
                for query in queries if name not in NOT_IN_ALTERNATIVES else ():
                    sql, params = _sql_for(query, "ILIKE", bbox_around)
                    sql = sql.replace("?", "%s")
                    started = time.perf_counter()
                    conn.execute(sql, params).fetchall()
                    timings.setdefault(name, []).append(time.perf_counter() - started)
        conn.execute("DROP TABLE t")
    return {"build": build, "disk_mb": disk, "timings": timings}


# -- driver ------------------------------------------------------------------------------------
def run(size: int, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"scale-{size}-", dir=args.tmp))
    try:
        root = folder / "index"
        built = _child("--build", str(root), str(size))
        disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
        side = sum(p.stat().st_size for p in root.rglob("side-*/*") if p.is_file()) / 2**20
        print(f"\n== {size:,} listings  (load {os.getloadavg()})")
        print(
            f"build {built['seconds']:.1f} s wall, {built['cpu_seconds']:.1f} s CPU (all processes)"
            f"  {size / built['seconds']:,.0f} docs/s  peak RSS"
            f" {built['peak_mb']:.0f} MB (worker processes together {built['worker_peak_mb']:.0f} MB)  on disk"
            f" {disk:.0f} MB (sidecars {side:.0f} MB)"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--reader", str(root), "warm", "-", "0"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        readers = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        for i, r in enumerate(readers):
            print(
                f"reader {i}: RSS {r['rss_mb']:.0f} MB  USS {r['uss_mb']:.0f} MB  PSS"
                f" {r['pss_mb']:.0f} MB"
            )
        ours = {k: [t for r in readers for t in r["timings"][k]] for k in readers[0]["timings"]}
        cold: dict[str, list[float]] = {}
        for kind, queries in _queries().items():
            for which in range(min(args.cold, len(queries))):
                result = _child("--reader", str(root), "cold", kind, str(which))
                cold.setdefault(kind, []).append(result["seconds"])
        fts = bench_fts5(size, folder) if args.fts else None
        pg = bench_pg(size, args.pg_dsn) if args.pg else None
        for name, values in ours.items():
            line = f"{name:13} warm {_pct(values)}   cold {_pct(cold[name])}"
            for label, other in (("FTS5", fts), ("pg_trgm", pg)):
                if other and name in other["timings"]:
                    ratio = _p95(other["timings"][name]) / _p95(values)
                    line += f"   {label} p95 {_p95(other['timings'][name]) * 1000:.1f} ms (×{ratio:.1f})"
            print(line)
        for label, other in (("FTS5 trigram", fts), ("pg_trgm", pg)):
            if other:
                print(
                    f"{label}: build {other['build']:.1f} s (×{other['build'] / built['seconds']:.1f}"
                    f" of ours)  on disk {other['disk_mb']:.0f} MB"
                )
        print(f"load after: {os.getloadavg()}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--build":
        return build_child(sys.argv[2], int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "--reader":
        return reader_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,300000,1000000")
    parser.add_argument("--cold", type=int, default=4, help="cold queries per kind")
    parser.add_argument("--no-fts", dest="fts", action="store_false")
    parser.add_argument("--no-pg", dest="pg", action="store_false")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/h_index")
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}  cpus {os.cpu_count()}")
    for size in (int(s) for s in args.sizes.split(",")):
        run(size, args)


if __name__ == "__main__":
    main()
