"""How current search is, measured over HTTP on the deployment shape (`resdb serve` processes):

1. two hosts (own instance folders, 2 workers each) on one PostgreSQL database, 8 concurrent editors
   renaming listings through host A: lag until host B's search finds the new name (p50/p95/max),
   lost updates (final names on B compared with the last accepted edit), refused stale edits;
2. search p50/p95/p99 on one host (3 workers) at N listings, idle and while edits arrive at 5 per second;
3. API edit latency on host A while `resdb import` writes a large file into the same database.

    .venv/bin/python bench/bench_freshness.py --count 20000 --import-rows 50000

Needs PostgreSQL (RESDB_BENCH_PG_URL, default the test server); parts 2 and 3 use the same database.
Bounded in time: every loop stops after --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESDB = str(ROOT / ".venv" / "bin" / "resdb")
PG_URL = os.environ.get("RESDB_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
from bench_web import free_port, pct  # noqa: E402  (the same helpers as the web bench)

QUERIES = [
    "サロン",
    "体操",
    "子ども食堂",
    "カフェ",
    "学習支援",
    "農作業",
    "ボランティア",
    "ふれあい",
    "さろん",
    "日本語教室",
]


def call(
    base: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, Any, float]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + quote(path, safe="/?&=:,\"'"), data=data, method=method, headers=headers or {}
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read() or b"null")
            status = response.status
    except urllib.error.HTTPError as error:
        payload, status = None, error.code
    except (urllib.error.URLError, OSError):
        payload, status = None, 0
    return status, payload, (time.perf_counter() - start) * 1000


def serve(
    url: str, instance: Path, workers: int, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`resdb serve` on a free port of 127.0.0.1 (rate limit off unless `env` sets it), once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [RESDB, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env={
            **os.environ,
            "RESDB_DATABASE_URL": url,
            "RESDB_INSTANCE": str(instance),
            "RESDB_RATE_LIMIT": "off",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=open(instance.with_suffix(".log"), "ab"),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900
    while time.time() < deadline:
        if call(base, "GET", "/api/resources?limit=1")[0] == 200:
            return process, base
        if process.poll() is not None:
            raise SystemExit("resdb serve exited")
        time.sleep(0.5)
    raise SystemExit("server did not come up")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def build(url: str, instance: Path, count: int) -> tuple[str, list[str]]:
    from resdb import accounts
    from resdb.demo import load_districts
    from resdb.directory import Directory
    from resdb.synth import synthetic_listings

    directory = Directory.open(url, instance)
    load_districts(directory, ("16211",))
    listings = list(synthetic_listings(count, 7))
    report = directory.import_records(
        list(enumerate(listings, start=1)), actor="bench", source_name="synthetic"
    )
    if report.problems:
        raise SystemExit(f"import failed: {report.problems[:3]}")
    accounts.add_user(directory.engine, "bench@example.jp", "admin", None)
    token = accounts.create_token(directory.engine, "bench@example.jp")
    ids = [listing["id"] for listing in listings[:4000]]
    directory.index.close()
    directory.engine.dispose()
    return token, ids


def rename(base: str, token: str, listing_id: str, name: str) -> tuple[int, float]:
    status, current, _ = call(base, "GET", f"/api/resources/{listing_id}")
    if status != 200:
        return status, 0.0
    status, _, ms = call(
        base,
        "PATCH",
        f"/api/resources/{listing_id}",
        {"name": name, "version": current["version"]},
        token,
    )
    return status, ms


def two_hosts(
    base_a: str, base_b: str, token: str, ids: list[str], editors: int, seconds: float
) -> dict[str, Any]:
    pending: queue.Queue[tuple[str, str, float] | None] = queue.Queue()
    lags: list[float] = []
    last_written: dict[str, str] = {}
    refused = [0]
    stop_at = time.monotonic() + seconds

    def editor(n: int) -> None:
        mine = ids[
            n::editors
        ]  # each listing renamed once: a later rename must not hide an earlier one
        count = 0
        while time.monotonic() < stop_at and count < len(mine):
            listing_id = mine[count]
            name = f"点検中の場{n}の{count}回目"
            status, _ = rename(base_a, token, listing_id, name)
            if status == 200:
                last_written[listing_id] = name
                pending.put((listing_id, name, time.monotonic()))
            else:
                refused[0] += 1
            count += 1

    def checker() -> None:
        while True:
            item = pending.get()
            if item is None:
                return
            listing_id, name, written = item
            deadline = written + 30
            while time.monotonic() < deadline:
                status, body, _ = call(base_b, "GET", f"/api/resources?q={name}&limit=5")
                if status == 200 and any(
                    x["id"] == listing_id and x["name"] == name for x in body["items"]
                ):
                    lags.append((time.monotonic() - written) * 1000)
                    break
                time.sleep(0.02)

    workers = [threading.Thread(target=editor, args=(n,)) for n in range(editors)]
    checkers = [threading.Thread(target=checker) for _ in range(4)]
    for thread in workers + checkers:
        thread.start()
    for thread in workers:
        thread.join()
    for _ in checkers:
        pending.put(None)
    for thread in checkers:
        thread.join()
    lost = sum(
        1
        for listing_id, name in last_written.items()
        if (call(base_b, "GET", f"/api/resources/{listing_id}")[1] or {}).get("name") != name
    )
    return {
        "edits": len(lags),
        "lag_p50": pct(lags, 50),
        "lag_p95": pct(lags, 95),
        "lag_max": max(lags, default=0),
        "lost": lost,
        "stale_refused": refused[0],
    }


def search_load(
    base: str, seconds: float, edits_per_second: float, token: str, ids: list[str]
) -> dict[str, Any]:
    samples: list[float] = []
    errors = [0]
    stop_at = time.monotonic() + seconds

    def searcher(n: int) -> None:
        count = 0
        while time.monotonic() < stop_at:
            status, _, ms = call(
                base, "GET", f"/api/resources?q={QUERIES[(n + count) % len(QUERIES)]}&limit=20"
            )
            samples.append(ms)
            errors[0] += status != 200
            count += 1

    def edits() -> None:
        count = 0
        while time.monotonic() < stop_at:
            started = time.monotonic()
            rename(base, token, ids[count % len(ids)], f"負荷中の更新{count}")
            count += 1
            time.sleep(max(0.0, 1 / edits_per_second - (time.monotonic() - started)))

    threads = [threading.Thread(target=searcher, args=(n,)) for n in range(4)]
    if edits_per_second:
        threads.append(threading.Thread(target=edits))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "n": len(samples),
        "p50": pct(samples, 50),
        "p95": pct(samples, 95),
        "p99": pct(samples, 99),
        "rps": len(samples) / seconds,
        "errors": errors[0],
    }


def edits_during_import(
    base: str, url: str, token: str, ids: list[str], rows: int, work: Path
) -> dict[str, Any]:
    from resdb.synth import write_synthetic

    csv_path = work / "bulk.csv"
    write_synthetic(csv_path, rows, seed=99)
    importer = subprocess.Popen(
        [RESDB, "import", str(csv_path)],
        env={**os.environ, "RESDB_DATABASE_URL": url, "RESDB_INSTANCE": str(work / "importer")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[float] = []
    errors = 0
    count = 0
    started = time.monotonic()
    while importer.poll() is None and time.monotonic() - started < 1800:
        status, ms = rename(base, token, ids[count % len(ids)], f"取込中の更新{count}")
        samples.append(ms)
        errors += status != 200
        count += 1
        time.sleep(0.5)
    importer.wait()
    return {
        "rows": rows,
        "import_s": time.monotonic() - started,
        "edits": len(samples),
        "p50": pct(samples, 50),
        "p95": pct(samples, 95),
        "max": max(samples, default=0),
        "errors": errors,
        "import_exit": importer.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--import-rows", type=int, default=50000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--editors", type=int, default=8)
    args = parser.parse_args()

    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    work = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        started = time.perf_counter()
        token, ids = build(url, work / "host-a", args.count)
        print(
            f"resdb freshness bench — {args.count:,} synthetic listings on PostgreSQL (built in {time.perf_counter() - started:.1f} s)"
        )
        host_a, base_a = serve(url, work / "host-a", 2)
        processes.append(host_a)
        started = time.perf_counter()
        host_b, base_b = serve(
            url, work / "host-b", 2
        )  # a new host: builds its index from the database
        processes.append(host_b)
        print(
            f"host B joined (index rebuilt from PostgreSQL) in {time.perf_counter() - started:.1f} s"
        )
        result = two_hosts(base_a, base_b, token, ids, args.editors, args.seconds)
        print(
            f"\n1. edit on host A → found by search on host B, {args.editors} concurrent editors, {args.seconds:.0f} s"
        )
        print(
            f"   {result['edits']} edits: lag p50 {result['lag_p50']:.0f} ms / p95 {result['lag_p95']:.0f} ms / "
            f"max {result['lag_max']:.0f} ms; lost updates {result['lost']}; stale edits refused {result['stale_refused']}"
        )
        print(f"\n2. search on host A (2 workers × 4 threads, 4 clients), {args.count:,} listings")
        idle = search_load(base_a, args.seconds / 2, 0, token, ids)
        busy = search_load(base_a, args.seconds / 2, 5, token, ids)
        for label, row in (("idle", idle), ("5 edits/s", busy)):
            print(
                f"   {label:10} p50 {row['p50']:.1f} / p95 {row['p95']:.1f} / p99 {row['p99']:.1f} ms, "
                f"{row['rps']:.0f} req/s, errors {row['errors']}"
            )
        print(f"\n3. API edits on host A while `resdb import` writes {args.import_rows:,} rows")
        row = edits_during_import(base_a, url, token, ids, args.import_rows, work)
        print(
            f"   import {row['import_s']:.0f} s (exit {row['import_exit']}); {row['edits']} edits: p50 {row['p50']:.0f} / "
            f"p95 {row['p95']:.0f} / max {row['max']:.0f} ms, errors {row['errors']}"
        )
    finally:
        for process in processes:
            stop(process)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
