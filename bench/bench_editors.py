"""Concurrent editors over HTTP: N editors × M read-modify-write edits on K listings, under gunicorn
(2 gthread workers × 4 threads, as `resdb serve`), through the JSON API with Bearer tokens.

    .venv/bin/python bench/bench_editors.py --editors 8 --edits 1000 --listings 20

Each edit: GET /api/resources/<id> (ETag) → PUT with If-Match and capacity+1 → on 412/409 read again and
retry. At the end every listing's capacity must equal the number of successful PUTs on it (no lost
update), and no response may be a 5xx. Prints lost updates, server errors, throughput and p50/p95.
Optional: RESDB_BENCH_DATABASE_URL=postgresql+psycopg://… runs it on PostgreSQL instead of SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_web import free_port, pct, serve  # noqa: E402


def build(url: str, instance: Path, listings: int, editors: int) -> list[str]:
    from resdb import accounts
    from resdb.directory import Directory

    directory = Directory.open(url, instance)
    for n in range(listings):
        directory.create(
            {
                "id": f"bench-{n:02d}",
                "name": f"ベンチの居場所 {n}",
                "kind": "ibasho",
                "lat": 36.70 + n * 0.001,
                "lon": 137.10,
                "municipality_code": "162116",
                "capacity": 0,
            },
            actor="bench",
        )
    tokens = []
    for n in range(editors):
        email = f"bench-editor-{n}@example.jp"
        accounts.add_user(directory.engine, email, "editor", None, municipality_code="162116")
        tokens.append(accounts.create_token(directory.engine, email))
    directory.index.close()
    directory.engine.dispose()
    return tokens


def request(
    method: str,
    url: str,
    token: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), None
    except (urllib.error.URLError, OSError):
        return 0, {}, None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--edits", type=int, default=1000, help="edits per editor")
    parser.add_argument("--listings", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.workers)
        return

    tmp = tempfile.TemporaryDirectory(prefix="resdb-bench-editors-")
    instance = Path(tmp.name)
    url = os.environ.get("RESDB_BENCH_DATABASE_URL") or f"sqlite:///{instance / 'resdb.sqlite3'}"
    tokens = build(url, instance, args.listings, args.editors)
    port = free_port()
    env = {
        **os.environ,
        "RESDB_INSTANCE": str(instance),
        "RESDB_DATABASE_URL": url,
        "RESDB_SECRET_KEY": "bench",
    }
    log_path = ROOT / "bench" / "out" / "bench_editors_server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api/resources/"
    try:
        deadline = time.time() + 120
        while request("GET", base + "bench-00", tokens[0])[0] != 200:
            if time.time() > deadline:
                raise SystemExit("server did not come up")
            time.sleep(0.3)

        lock = threading.Lock()
        successes = {f"bench-{n:02d}": 0 for n in range(args.listings)}
        stats = {"retries": 0, "server_errors": 0, "other_errors": 0, "requests": 0}
        latencies: list[float] = []  # one read-modify-write, retries included

        def editor(index: int) -> None:
            rng = random.Random(index)
            token = tokens[index]
            for _ in range(args.edits):
                listing_id = f"bench-{rng.randrange(args.listings):02d}"
                start = time.perf_counter()
                for _attempt in range(200):
                    status, headers, body = request("GET", base + listing_id, token)
                    with lock:
                        stats["requests"] += 1
                    if status != 200:
                        with lock:
                            stats[
                                "server_errors" if status >= 500 or status == 0 else "other_errors"
                            ] += 1
                        continue
                    etag = headers.get("ETag") or headers.get("Etag")
                    status, _h, _b = request(
                        "PUT",
                        base + listing_id,
                        token,
                        {"capacity": (body["capacity"] or 0) + 1},
                        {"If-Match": etag},
                    )
                    with lock:
                        stats["requests"] += 1
                        if status == 200:
                            successes[listing_id] += 1
                        elif status in {409, 412}:
                            stats["retries"] += 1
                        elif status >= 500 or status == 0:
                            stats["server_errors"] += 1
                        else:
                            stats["other_errors"] += 1
                    if status == 200:
                        break
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)

        started = time.perf_counter()
        threads = [threading.Thread(target=editor, args=(i,)) for i in range(args.editors)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        lost = 0
        for listing_id, count in successes.items():
            status, _h, body = request("GET", base + listing_id, tokens[0])
            if status != 200 or body["capacity"] != count:
                lost += abs(count - ((body or {}).get("capacity") or 0))
        writes = sum(successes.values())
        print(
            f"editors={args.editors} edits/editor={args.edits} listings={args.listings} backend={url.split(':')[0]}"
        )
        print(f"successful writes: {writes} (of {args.editors * args.edits} edits)")
        print(f"lost updates: {lost}")
        print(f"server errors (5xx / no response): {stats['server_errors']}")
        print(
            f"other errors: {stats['other_errors']}   stale retries (412/409): {stats['retries']}"
        )
        print(
            f"elapsed: {elapsed:.1f} s   edits/s: {writes / elapsed:.1f}   requests/s: {stats['requests'] / elapsed:.1f}"
        )
        print(
            f"read-modify-write latency (retries included): p50 {pct(latencies, 50):.1f} ms   p95 {pct(latencies, 95):.1f} ms"
        )
        if lost or stats["server_errors"]:
            raise SystemExit(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        tmp.cleanup()


if __name__ == "__main__":
    main()
