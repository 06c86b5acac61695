"""Benchmark the web app over HTTP: N synthetic listings served by gunicorn (2 gthread workers, as
`resdb serve`), measured from this separate client process with urllib in plain threads.

    .venv/bin/python bench/bench_web.py --count 20000

Reports the map's GeoJSON for the whole region (p50/p95, payload with and without gzip), text search
p50/p95, and throughput / error rate / latency under concurrency 8. The per-IP rate limit is switched
off in the served app (every request here comes from 127.0.0.1); everything else is as `resdb serve`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resdb.synth import REGION  # noqa: E402

# The whole synthetic region as the map asks for it: min_lon,min_lat,max_lon,max_lat.
WHOLE_REGION = f"{REGION[1]},{REGION[0]},{REGION[3]},{REGION[2]}"
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


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the server side (run in its own process) ------------------------------------------------------
def serve(port: int, workers: int) -> None:
    """gunicorn configured like `resdb serve` (gthread, 4 threads), the app without the rate limit."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"127.0.0.1:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", 4)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 60)
            self.cfg.set("loglevel", "warning")

        def load(self):  # type: ignore[no-untyped-def]
            from resdb.web import create_app

            return create_app({"RATE_LIMIT": None})

    _Server().run()


# -- building the data -----------------------------------------------------------------------------
def build(instance: Path, count: int, seed: int) -> float:
    from resdb.demo import load_districts
    from resdb.directory import Directory
    from resdb.synth import synthetic_listings

    start = time.perf_counter()
    directory = Directory.open(f"sqlite:///{instance / 'resdb.sqlite3'}", instance)
    load_districts(directory, ("16211",))
    report = directory.import_records(
        list(enumerate(synthetic_listings(count, seed), start=1)),
        actor="bench",
        source_name="synthetic",
    )
    if report.problems:
        raise SystemExit(f"import failed: {report.problems[:3]}")
    directory.index.close()
    directory.engine.dispose()
    return time.perf_counter() - start


# -- the client side -------------------------------------------------------------------------------
def fetch(url: str, gzip: bool = False) -> tuple[int, int, float]:
    """(status, bytes on the wire, milliseconds) for one GET."""
    request = urllib.request.Request(
        url, headers={"Accept-Encoding": "gzip" if gzip else "identity"}
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body = error.read()
        status = error.code
    except (urllib.error.URLError, OSError):
        return 0, 0, (time.perf_counter() - start) * 1000
    return status, len(body), (time.perf_counter() - start) * 1000


def wait_until_up(base: str, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fetch(base + "/api/resources?limit=1")[0] == 200:
            return
        time.sleep(0.5)
    raise SystemExit("server did not come up")


def sequential(make_url: Callable[[int], str], count: int, gzip: bool = False) -> dict[str, Any]:
    samples, sizes, errors = [], [], 0
    for n in range(count):
        status, size, ms = fetch(make_url(n), gzip)
        if status != 200:
            errors += 1
        samples.append(ms)
        sizes.append(size)
    return {
        "p50": pct(samples, 50),
        "p95": pct(samples, 95),
        "bytes": statistics.median(sizes),
        "errors": errors,
        "n": count,
    }


def concurrent(
    make_url: Callable[[int], str], concurrency: int, seconds: float, gzip: bool = False
) -> dict[str, Any]:
    """`concurrency` threads issuing requests back to back for `seconds` (bounded in time and count)."""
    samples: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    max_requests = 20_000

    def worker(offset: int) -> None:
        n = offset
        while time.perf_counter() < stop_at:
            status, _size, ms = fetch(make_url(n), gzip)
            with lock:
                samples.append(ms)
                if status != 200:
                    errors[0] += 1
                if len(samples) >= max_requests:
                    return
            n += concurrency

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "n": len(samples),
        "rps": len(samples) / elapsed,
        "p50": pct(samples, 50),
        "p95": pct(samples, 95),
        "error_rate": errors[0] / max(1, len(samples)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--requests", type=int, default=100, help="sequential requests per measurement"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="duration of each concurrent run"
    )
    parser.add_argument("--instance", type=Path, help="reuse (or keep) this instance folder")
    parser.add_argument(
        "--json", action="store_true", help="print the results as one JSON document"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.workers)
        return

    tmp = None
    if args.instance:
        instance = args.instance.resolve()
        instance.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-web-")
        instance = Path(tmp.name)
    built = None
    if not (instance / "resdb.sqlite3").exists():
        print(f"building {args.count} synthetic listings in {instance} …", file=sys.stderr)
        built = build(instance, args.count, args.seed)

    port = free_port()
    env = {
        **os.environ,
        "RESDB_INSTANCE": str(instance),
        "RESDB_DATABASE_URL": f"sqlite:///{instance / 'resdb.sqlite3'}",
    }
    log_path = ROOT / "bench" / "out" / "bench_web_server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        geojson = f"{base}/api/resources.geojson?bbox={WHOLE_REGION}"
        # warm every worker (each builds its serialized-feature snapshot once per store revision)
        concurrent(lambda n: geojson, args.concurrency, 3.0)

        def search_url(n: int) -> str:
            return f"{base}/api/resources?q={quote(QUERIES[n % len(QUERIES)])}"

        results = {
            "count": args.count,
            "import_seconds": built,
            "geojson_whole_region": sequential(lambda n: geojson, args.requests),
            "geojson_whole_region_gzip": sequential(lambda n: geojson, args.requests, gzip=True),
            "search_q": sequential(search_url, args.requests),
            "search_q_concurrent": concurrent(search_url, args.concurrency, args.seconds),
            "geojson_concurrent_gzip": concurrent(
                lambda n: geojson, args.concurrency, args.seconds, gzip=True
            ),
        }
        total = fetch(geojson)[1]
        results["features_bytes_identity"] = total
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if tmp is not None:
            tmp.cleanup()

    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return
    print(
        f"\nresdb web bench — {args.count:,} listings, gunicorn {args.workers} workers × 4 threads, client: urllib threads"
    )
    if built is not None:
        print(f"import (validate, store, index): {built:.1f} s")
    print(
        f"{'measurement':<44} {'p50 ms':>8} {'p95 ms':>8} {'size':>10} {'req/s':>8} {'errors':>7}"
    )
    for name, label in (
        ("geojson_whole_region", "GET /api/resources.geojson whole region"),
        ("geojson_whole_region_gzip", "  … with Accept-Encoding: gzip"),
        ("search_q", "GET /api/resources?q=… (sequential)"),
    ):
        row = results[name]
        print(
            f"{label:<44} {row['p50']:>8.1f} {row['p95']:>8.1f} {row['bytes'] / 1e6:>8.2f}MB {'':>8} {row['errors']:>7}"
        )
    for name, label in (
        ("search_q_concurrent", f"GET /api/resources?q=… concurrency {args.concurrency}"),
        ("geojson_concurrent_gzip", f"GET geojson (gzip) concurrency {args.concurrency}"),
    ):
        row = results[name]
        print(
            f"{label:<44} {row['p50']:>8.1f} {row['p95']:>8.1f} {'':>10} {row['rps']:>8.1f} {row['error_rate']:>7.1%}"
        )


if __name__ == "__main__":
    main()
