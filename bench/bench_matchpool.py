"""Benchmark: the matching pool of one host through resdb.matchpool: build + publish, then workers that map.

Run: .venv/bin/python bench/bench_matchpool.py [--listings 100000] [--url postgresql://…/h_pool]
     [--instance DIR] [--workers 3]

Loads N synthetic listings (resdb.synth) into the database unless the instance already holds them (SQLite
in the instance folder by default), then starts worker processes one after the other, each a Matching of
its own connection over the same instance folder, as gunicorn workers are: the first finds no snapshot,
builds from the database, publishes and maps it; the others map it. Each reports the seconds to its first
answer and whether it built; then an edit through the first worker and the time until a match on each
other worker reflects it; then, all alive, each worker's RSS, USS and PSS (psutil memory_full_info).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench_matcher import _memory  # the same RSS/USS/PSS reading (bench/ is on the path)

TODAY = date(2026, 11, 30)
PERSON = {
    "home": {"lat": 36.72, "lon": 137.10},
    "mobility": "bicycle",
    "max_minutes": 30,
    "goals": ["friends"],
    "interests": ["手芸"],
}


def load(url: str, instance: Path, count: int) -> float:
    from resdb.demo import load_districts
    from resdb.directory import Directory
    from resdb.synth import synthetic_listings

    directory = Directory.open(url, instance)
    if directory.published_count() >= count:
        return 0.0
    load_districts(directory, ("16211",))
    started = time.perf_counter()
    directory.import_records(
        enumerate(synthetic_listings(count, seed=1), start=2),
        actor="bench",
        source_name="bench_matchpool",
        good_rows_only=True,
    )
    return time.perf_counter() - started


def worker(url: str, instance: str) -> None:
    """One web worker: its first answer (mapping or building), then edits and matches when told."""
    from resdb.directory import Directory
    from resdb.matching import Matching

    before = _memory()
    started = time.perf_counter()
    matching = Matching(Directory.open(url, Path(instance), ready=False))
    store = matching.keeper.snapshot_store()
    existed = {p.name for p in store.folders()}
    matching.match(PERSON, today=TODAY)
    first = time.perf_counter() - started
    built = matching.keeper._built
    print(
        json.dumps(
            {
                "first_answer_s": round(first, 2),
                "pool_ready_s": round(matching.keeper.last_build_seconds or 0.0, 2),
                "built_and_published": bool({p.name for p in store.folders()} - existed),
                "mapped": built is not None and built.snapshot_seq >= 0,
                "before_pool": before,
                "after_first_answer": _memory(),
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        command = line.split()
        if command[0] == "edit":  # move a proposed place far away (out of reach)
            directory = matching.directory
            listing = directory.get(command[1])
            directory.update(
                command[1],
                {"lat": 35.0, "lon": 135.0, "address": None},
                actor="bench",
                expected_version=listing["version"],
            )
            print(json.dumps({"edited": command[1]}), flush=True)
        elif command[0] == "match":
            t = time.perf_counter()
            answer = matching.match(PERSON, today=TODAY)
            ids = [p["resource_id"] for p in answer["proposals"]]
            print(json.dumps({"ids": ids, "ms": round((time.perf_counter() - t) * 1000, 1)}))
        elif command[0] == "memory":
            print(json.dumps(_memory()))
        else:
            return
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--url", help="database URL (default: SQLite in the instance folder)")
    parser.add_argument("--instance", help="instance folder (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # internal: url, instance
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    instance = Path(args.instance or tempfile.mkdtemp(prefix="bench-matchpool-"))
    instance.mkdir(parents=True, exist_ok=True)
    url = args.url or f"sqlite:///{instance / 'resdb.sqlite3'}"
    shutil.rmtree(instance / "snapshots" / "matchpool", ignore_errors=True)
    print({"load_s": round(load(url, instance, args.listings), 1), "listings": args.listings})
    print({"loadavg_at_start": tuple(round(x, 2) for x in os.getloadavg())}, flush=True)
    procs = []
    for _k in range(args.workers):
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", url, str(instance)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        print(proc.stdout.readline().strip(), flush=True)

    def ask(proc: subprocess.Popen[str], command: str) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    first = ask(procs[0], "match")["ids"]
    if first:
        print(ask(procs[0], f"edit {first[0]}"))
        for k, proc in enumerate(procs[1:], start=1):
            answer = ask(proc, "match")
            print(
                {"worker": k, "edit_seen": first[0] not in answer["ids"], "match_ms": answer["ms"]}
            )
    for k, proc in enumerate(procs):
        print({"worker": k, "all_mapped": ask(proc, "memory")}, flush=True)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
    snapshot = instance / "snapshots" / "matchpool"
    sizes = sum(p.stat().st_size for p in snapshot.rglob("*.npy"))
    print(
        {"snapshot_mb": round(sizes / 1e6), "loadavg": tuple(round(x, 2) for x in os.getloadavg())}
    )


if __name__ == "__main__":
    main()
