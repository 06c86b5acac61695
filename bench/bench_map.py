"""Benchmark the map endpoint (/api/resources.geojson) at country, prefecture, city, district and street
zoom: response bytes (raw and gzip) and p50/p95/p99, cells (with `zoom`) side by side with every point (the
old behaviour, without `zoom`) as ratios, and the first request after an edit.

    .venv/bin/python bench/bench_map.py --count 20000 --count 300000 --count 1000000

The store holds `--real` synthetic listings imported the normal way (the edits go through the directory and
its change log); the rest of the corpus is generated straight into the feature columns
(`FeatureCache.install`, spread over Japan around its cities) so that 1,000,000 listings fit the time; every
request goes through the Flask app (test client, gzip asked for as a browser does). Views are 1280×800 pixels
padded by half on each side, as the map asks; their centres are listings' positions (where people look).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import math
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIEWPORT = (1280, 800)
VIEWS = {"country": 5, "prefecture": 9, "city": 12, "district": 14, "street": 16}
# (lat, lon, weight): where a national directory's listings are (roughly by population).
CITIES = [
    (35.69, 139.69, 30),
    (35.44, 139.64, 10),
    (34.69, 135.50, 15),
    (35.18, 136.91, 10),
    (43.06, 141.35, 7),
    (33.59, 130.40, 7),
    (34.69, 135.19, 5),
    (35.01, 135.77, 5),
    (38.27, 140.87, 4),
    (34.39, 132.46, 4),
    (33.88, 130.88, 3),
    (35.61, 140.12, 4),
    (35.86, 139.65, 5),
    (37.92, 139.04, 3),
    (34.98, 138.38, 3),
    (34.66, 133.93, 3),
    (32.80, 130.71, 3),
    (31.60, 130.56, 2),
    (26.21, 127.68, 2),
    (36.56, 136.66, 2),
    (36.70, 137.21, 2),
    (36.65, 138.19, 2),
    (33.84, 132.77, 2),
    (34.34, 134.05, 1.5),
    (39.72, 140.10, 1.5),
    (40.82, 140.74, 1.5),
    (39.70, 141.15, 1.5),
    (36.56, 139.88, 2),
    (36.37, 140.47, 2),
    (35.42, 136.76, 2),
    (34.72, 136.51, 1.5),
    (34.23, 135.17, 1),
    (35.50, 134.24, 1),
    (35.47, 133.05, 1),
    (33.56, 133.53, 1),
    (33.24, 131.61, 1.5),
    (31.91, 131.42, 1),
    (32.75, 129.87, 1.5),
    (33.25, 130.30, 1),
    (36.06, 136.22, 1),
    (35.66, 138.57, 1),
    (36.39, 139.06, 2),
    (37.75, 140.47, 1.5),
    (38.24, 140.36, 1.5),
    (34.07, 134.55, 1),
    (34.19, 131.47, 1),
    (43.77, 142.36, 1),
]


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def view_bbox(lat: float, lon: float, zoom: int) -> str:
    """The padded bbox the map asks for around (lat, lon) at `zoom` (twice the viewport each way)."""
    import numpy as np

    from resdb.web.mapcolumns import mercator

    world = 256 * 2**zoom
    x, y = (float(v[0]) for v in mercator(np.array([lon]), np.array([lat])))
    half_w, half_h = VIEWPORT[0] / world, VIEWPORT[1] / world  # padded: a whole viewport each side

    def lat_of(v: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * v))))

    west = max(-180.0, (x - half_w) * 360 - 180)
    east = min(180.0, (x + half_w) * 360 - 180)
    north = min(85.0, lat_of(max(0.0, y - half_h)))
    south = max(-85.0, lat_of(min(1.0, y + half_h)))
    return f"{west:.5f},{south:.5f},{east:.5f},{north:.5f}"


def synthetic_rows(count: int, seed: int) -> list[Any]:
    """`count` map rows spread over Japan (listings made by resdb.synth, placed around CITIES)."""
    from resdb.synth import synthetic_listings
    from resdb.web.mapcolumns import map_row

    rng = random.Random(seed)
    weights = [c[2] for c in CITIES]
    rows = []
    for listing in synthetic_listings(count, seed):
        lat, lon, _ = rng.choices(CITIES, weights)[0]
        spread = rng.choices([0.08, 0.3, 1.0], [50, 35, 15])[0]
        listing["lat"] = round(min(45.5, max(24.0, rng.gauss(lat, spread))), 6)
        listing["lon"] = round(min(148.0, max(123.0, rng.gauss(lon, spread * 1.2))), 6)
        listing["id"] = f"gen-{listing['id']}"
        rows.append(map_row(listing))
    return rows


def measure(get: Callable[[str], Any], urls: list[str]) -> dict[str, Any]:
    times, raw, packed, clustered, features = [], [], [], 0, []
    for url in urls:
        start = time.perf_counter()
        response = get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        body = response.get_data()
        packed.append(len(body))
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        raw.append(len(body))
        head = body[:120]
        clustered += b'"clustered":true' in head
        features.append(body.count(b'"type":"Feature"'))
    return {
        "p50": pct(times, 50),
        "p95": pct(times, 95),
        "p99": pct(times, 99),
        "raw": statistics.median(raw),
        "raw_max": max(raw),
        "gzip": statistics.median(packed),
        "gzip_max": max(packed),
        "clustered": clustered,
        "features": statistics.median(features),
        "n": len(urls),
    }


def kb(value: float) -> str:
    return f"{value / 1000:,.1f} KB" if value < 1_000_000 else f"{value / 1e6:,.2f} MB"


def _memory(pid: int | None = None) -> dict[str, float]:
    """RSS, USS and PSS of a process in MB (psutil memory_full_info)."""
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return {k: getattr(info, k) / 2**20 for k in ("rss", "uss", "pss")}


def _worker(
    instance: str, url: str, urls: list[str], private: tuple[int, int] | None, conn: Any
) -> None:
    """Another web worker of the same host: opens the app (its map columns come from the shared
    snapshot, in the background thread; with `private` = (generated rows, seed) it makes its own in
    memory instead, as every worker did before the snapshot), answers the map requests `urls`, reports,
    then waits to be measured."""
    sys.path.insert(0, str(ROOT))
    from resdb.directory import Directory
    from resdb.web import create_app
    from resdb.web.mapcolumns import map_row

    started = time.perf_counter()
    directory = Directory.open(url, Path(instance))
    app = create_app(
        {"DIRECTORY": directory, "RATE_LIMIT": None, "SECRET_KEY": "bench-map", "MAP_WAIT": 3600}
    )
    cache = app.extensions["resdb.features"]
    client = app.test_client()
    if private is not None:
        rows = [map_row(x) for x in directory.iter_published(public=True)]
        rows += synthetic_rows(*private)
        cache.install(rows, directory.revision())
        del rows
        gc.collect()
    response = client.get(urls[0], headers={"Accept-Encoding": "gzip"})
    first = time.perf_counter() - started
    for view in urls[1:]:
        client.get(view, headers={"Accept-Encoding": "gzip"})
    timings = getattr(cache, "timings", {})
    conn.send(
        {
            "status": response.status_code,
            "first_s": first,
            "load_s": timings.get("load", 0.0),
            "built": "build" in timings,
            "count": cache.snapshot().count,
        }
    )
    conn.recv()
    directory.index.close()


def more_workers(
    instance: Path, url: str, urls: list[str], workers: int, private: tuple[int, int] | None
) -> list[dict[str, Any]]:
    """Start `workers` more processes of this host; each one's first answer and memory after `urls`
    (measured while all of them and this process are alive)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    started: list[tuple[Any, Any, dict[str, Any]]] = []
    for _ in range(workers):  # one at a time: a worker's start is not slowed by the next one's
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(str(instance), url, urls, private, child))
        process.start()
        started.append((process, parent, parent.recv()))
    results = [{**report, **_memory(process.pid)} for process, _, report in started]
    for process, parent, _ in started:
        parent.send("done")
        process.join(60)
    return results


def run(count: int, real: int, requests: int, seed: int, shared: int = 0, private: int = 0) -> None:
    from resdb.demo import load_districts
    from resdb.directory import Directory
    from resdb.synth import REGION, synthetic_listings
    from resdb.web import create_app
    from resdb.web.mapcolumns import map_row

    print(f"\n== {count:,} listings ({real:,} in the store, the rest generated into the columns)")
    instance = Path(tempfile.mkdtemp(prefix="bench-map-"))
    directory = Directory.open(f"sqlite:///{instance / 'resdb.sqlite3'}", instance)
    load_districts(directory, ("16211",))
    started = time.perf_counter()
    report = directory.import_records(
        list(enumerate(synthetic_listings(real, seed), start=1)),
        actor="bench",
        source_name="synthetic",
    )
    if report.problems:
        raise SystemExit(f"import failed: {report.problems[:3]}")
    print(f"import of {real:,} real listings: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    app = create_app(
        {
            "DIRECTORY": directory,
            "RATE_LIMIT": None,
            "SECRET_KEY": "bench-map",
            "TESTING": True,
            "MAP_WAIT": 3600,
        }
    )
    client = app.test_client()
    cache = app.extensions["resdb.features"]
    cache.snapshot()
    timings = getattr(cache, "timings", {})
    print(
        f"app start to the map's columns, built from the store ({real:,} listings): "
        f"{(time.perf_counter() - started) * 1000:.0f} ms"
        + (
            f" (read and encoded {timings['build']:.1f} s, written as the host's snapshot "
            f"{timings['publish']:.2f} s, mapped {timings['load']:.2f} s)"
            if "build" in timings
            else ""
        )
    )
    started = time.perf_counter()
    rows = [map_row(x) for x in directory.iter_published(public=True)]
    rows += synthetic_rows(count - real, seed + 1)
    made = time.perf_counter() - started
    started = time.perf_counter()
    if shared:
        cache.install(rows, directory.revision(), publish=True)
    else:
        cache.install(rows, directory.revision())
    print(
        f"{count:,} rows made in {made:.1f} s ({made / count * 1000:.2f} ms per listing); columns "
        f"installed in {(time.perf_counter() - started):.1f} s"
        + (
            f" (encoded and written as the host's snapshot in {cache.timings['publish']:.1f} s, "
            f"mapped in {cache.timings['load']:.2f} s)"
            if shared
            else ""
        )
    )
    del rows
    gc.collect()
    if shared:  # only the snapshot just published (not the store's small one built at app start)
        folder = Path(cache._columns.columns["lon"].filename).parent
        for other in cache.store.folders():
            if other != folder:
                shutil.rmtree(other)
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"snapshot: {size / 1e6:,.1f} MB in {folder.name}")

    def get(url: str) -> Any:
        return client.get(url, headers={"Accept-Encoding": "gzip"})

    snap = cache.snapshot()
    rng = random.Random(seed)
    positions = [
        (float(snap.col("lat")[n]), float(snap.col("lon")[n]))
        for n in rng.sample(range(snap.count), min(snap.count, 5000))
    ]
    print(
        f"{'view':<11}{'zoom':>5} {'mode':<8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'raw':>12}{'max raw':>12}{'gzip':>12}{'max gzip':>12}{'features':>10}{'clustered':>10}"
    )
    per_feature = 0.0
    worker_urls: list[str] = []
    for view, zoom in VIEWS.items():
        if view == "country":
            centres = [
                (36.5 + rng.uniform(-0.5, 0.5), 137.5 + rng.uniform(-0.5, 0.5))
                for _ in range(requests)
            ]
        else:
            centres = [positions[rng.randrange(len(positions))] for _ in range(requests)]
        urls = [f"/api/resources.geojson?bbox={view_bbox(la, lo, zoom)}" for la, lo in centres]
        worker_urls += [u + f"&zoom={zoom}" for u in urls[:10]]
        get(urls[0] + f"&zoom={zoom}")  # warm (next dates of the day)
        cells = measure(get, [u + f"&zoom={zoom}" for u in urls])
        print(
            f"{view:<11}{zoom:>5} {'zoom':<8}{cells['p50']:>9.1f}{cells['p95']:>9.1f}{cells['p99']:>9.1f}"
            f"{kb(cells['raw']):>12}{kb(cells['raw_max']):>12}{kb(cells['gzip']):>12}{kb(cells['gzip_max']):>12}"
            f"{cells['features']:>10.0f}{cells['clustered']:>7}/{cells['n']}"
        )
        # every point (the old map): only where it stays feasible
        inside = snap.count if view == "country" else None
        probe = client.get(urls[0] + "&limit=1").get_json(force=True)["total"]
        inside = probe if inside is None else inside
        if per_feature and inside * per_feature > 60_000_000:
            print(
                f"{'':<16} {'points':<8} skipped: ~{inside:,} points ≈ "
                f"{kb(inside * per_feature)} per response"
            )
            continue
        old_urls = urls[: max(3, requests // 10)] if inside > 50_000 else urls
        get(old_urls[0])
        points = measure(get, old_urls)
        per_feature = per_feature or points["raw"] / max(1, points["features"])
        print(
            f"{'':<16} {'points':<8}{points['p50']:>9.1f}{points['p95']:>9.1f}{points['p99']:>9.1f}"
            f"{kb(points['raw']):>12}{kb(points['raw_max']):>12}{kb(points['gzip']):>12}{kb(points['gzip_max']):>12}"
            f"{points['features']:>10.0f}"
        )
        print(
            f"{'':<16} {'ratio':<8}{points['p50'] / cells['p50']:>8.1f}x{points['p95'] / cells['p95']:>8.1f}x"
            f"{'':>9}{points['raw'] / cells['raw']:>11.1f}x{'':>12}{points['gzip'] / cells['gzip']:>11.1f}x"
        )

    mine = _memory()
    print(
        f"this process after the views: RSS {mine['rss']:,.0f} MB, USS {mine['uss']:,.0f} MB, "
        f"PSS {mine['pss']:,.0f} MB; os.getloadavg(): {os.getloadavg()}"
    )
    if shared or private:
        url = f"sqlite:///{instance / 'resdb.sqlite3'}"
        generated = (count - real, seed + 1) if private else None
        for n, worker in enumerate(
            more_workers(instance, url, worker_urls, shared or private, generated), start=2
        ):
            print(
                f"worker {n}: status {worker['status']}, {worker['count']:,} rows, start to first "
                f"map answer {worker['first_s']:.2f} s (snapshot mapped in {worker['load_s']:.2f} s, "
                f"built: {worker['built']}); RSS {worker['rss']:,.0f} MB, USS {worker['uss']:,.0f} MB, "
                f"PSS {worker['pss']:,.0f} MB"
            )
        mine = _memory()
        print(
            f"process 1 meanwhile: RSS {mine['rss']:,.0f} MB, USS {mine['uss']:,.0f} MB, "
            f"PSS {mine['pss']:,.0f} MB; os.getloadavg(): {os.getloadavg()}"
        )

    # the first request after an edit: a real listing moves; the next prefecture view must show it
    prefecture = (
        f"/api/resources.geojson?bbox={view_bbox(36.7, 137.15, 9)}&zoom=9&kind=kayoi,ibasho"
    )
    real_ids = [x["id"] for x in directory.iter_published()]
    installed = cache._columns
    times = []
    for n in range(max(10, requests // 3)):
        listing_id = real_ids[rng.randrange(len(real_ids))]
        directory.update(
            listing_id,
            {
                "lat": round(rng.uniform(REGION[0], REGION[2]), 6),
                "lon": round(rng.uniform(REGION[1], REGION[3]), 6),
            },
            actor="bench",
            expected_version=None,
        )
        start = time.perf_counter()
        response = get(prefecture + f"&n={n}")
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    print(
        f"first request after an edit (prefecture view, zoom 9): p50 {pct(times, 50):.1f} ms, "
        f"p95 {pct(times, 95):.1f} ms, p99 {pct(times, 99):.1f} ms over {len(times)} edits; "
        f"columns rebuilt: {cache._columns is not installed}"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:,.0f} MB; os.getloadavg(): {os.getloadavg()}")
    directory.index.close()
    directory.engine.dispose()
    shutil.rmtree(instance, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, action="append", help="corpus sizes (repeatable)")
    parser.add_argument("--real", type=int, default=2000, help="listings imported into the store")
    parser.add_argument("--requests", type=int, default=60, help="requests per view and mode")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--shared",
        type=int,
        default=0,
        metavar="N",
        help="publish the columns as the host's map snapshot, map them, and start N more worker "
        "processes that map it (their start, first answer and RSS/USS/PSS)",
    )
    parser.add_argument(
        "--private",
        type=int,
        default=0,
        metavar="N",
        help="start N more worker processes that each make their own columns in memory (the "
        "comparison: how every worker kept them before the shared snapshot)",
    )
    args = parser.parse_args()
    print(f"os.getloadavg() at start: {os.getloadavg()}; {os.cpu_count()} cores")
    for count in args.count or [20_000]:
        run(count, min(args.real, count), args.requests, args.seed, args.shared, args.private)


if __name__ == "__main__":
    main()
