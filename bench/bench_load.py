"""Load test of the deployment shape, one command (set-up, run and report together: ~600 lines; the
traffic itself is bench/load_traffic.py): one PostgreSQL, two web hosts (own instance folders, `resdb
serve` with 3 gunicorn workers each), 100 simulated users and a steady stream of edits, on this machine.

    .venv/bin/python bench/bench_load.py --listings 1000000 --users 100 --edits-per-second 5 --duration 120 --reuse

1. the database `--database` (default h_load) is filled with N synthetic listings (resdb/synth.py) through
   the product's import path, `resdb import --publish`, in files of `--chunk` rows; `--reuse` keeps the
   filled database and host A's instance folder between runs (reloaded only when N or the seed differ);
2. host A serves from the instance folder the import indexed; host B joins either by `resdb index copy`
   on running host A + `resdb index install` on B (`--join copy`, default: B then catches up from the
   change log) or by rebuilding its index from PostgreSQL at start-up (`--join rebuild`); both steps timed;
   neither host sets RESDB_SECRET_KEY, so both sign with the key kept in the database (`resdb serve`
   checks the fingerprint); both trust 127.0.0.1 as proxy (RESDB_TRUSTED_PROXIES) and every simulated
   user sends its own X-Forwarded-For address, so the per-IP rate limit stays on as in production;
3. `--users` threads, each a person at a browser: think 1–3 s, then one request, round-robin over the
   hosts: map pans at several zooms (GET /api/resources.geojson?bbox=…&zoom=…, gzip, as the public map),
   searches (text, filters, distance), detail pages (GET /resources/<id>), matches (POST /api/match with a
   coordinator's API token); `--edits-per-second` renames through the editor API (GET + PATCH
   /api/resources/<id> with an editor's token), alternating hosts; 1 edit in `--probe-every` is probed on
   the other host's search until the new name is found (freshness lag);
4. the report: p50/p95/p99/max per request type next to the goal (p95 ≤ 200 ms, 0 errors), errors
   (non-2xx, timeouts), throughput, freshness lag, map payload sizes, load average and every process's
   memory (RSS, and PSS, which counts pages the workers share once).

Needs PostgreSQL (RESDB_BENCH_PG_SERVER, default postgresql+psycopg://postgres@127.0.0.1:5432). The
first `--warmup` seconds are run but not counted. Servers are stopped and (without --reuse/--keep) the
database dropped when the run ends, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_freshness import RESDB, call, serve, stop  # noqa: E402  (the deployment-shape helpers)
from bench_web import pct  # noqa: E402
from load_traffic import (  # noqa: E402
    PROBE_SECONDS,
    TYPES,
    Recorder,
    Sample,
    User,
    calibrate,
    edit_loop,
)
from smaps import by_mapping  # noqa: E402
from smaps import table as smaps_table  # noqa: E402

from resdb.synth import REGION, regions_for  # noqa: E402

CENTRE = ((REGION[0] + REGION[2]) / 2, (REGION[1] + REGION[3]) / 2)

PG_SERVER = os.environ.get("RESDB_BENCH_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
GOAL_P95_MS = 200.0


# -- the database and the hosts ---------------------------------------------------------------------
def database_url(name: str) -> str:
    return f"{PG_SERVER}/{name}"


def database_exists(name: str) -> bool:
    from sqlalchemy import create_engine, text

    admin = create_engine(database_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
            )
    finally:
        admin.dispose()


def change_log_head(url: str) -> int:
    """The newest change-log number: how many edits of a run changed a listing is its growth."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT coalesce(max(seq), 0) FROM change_log")).scalar_one()
            )
    finally:
        engine.dispose()


def recreate_database(name: str, drop_only: bool = False) -> None:
    from sqlalchemy import create_engine, text

    if not name.replace("_", "").isalnum():
        raise SystemExit(f"--database: letters, digits and _ only ({name})")
    admin = create_engine(database_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            if not drop_only:
                conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()


def load(
    url: str, instance: Path, work: Path, count: int, seed: int, chunk: int, per_region: int
) -> dict[str, Any]:
    """N synthetic listings through `resdb import --publish` (CSV files of `chunk` rows), into host A."""
    from resdb.demo import load_districts
    from resdb.directory import Directory
    from resdb.exchange import to_csv
    from resdb.synth import synthetic_listings

    instance.mkdir(parents=True, exist_ok=True)
    directory = Directory.open(url, instance)
    load_districts(directory, ("16211",))
    directory.index.close()
    directory.engine.dispose()
    env = {**os.environ, "RESDB_DATABASE_URL": url, "RESDB_INSTANCE": str(instance)}
    listings = synthetic_listings(count, seed, per_region=per_region or None)
    files, write_s, import_s = 0, 0.0, 0.0
    done = 0
    while done < count:
        started = time.perf_counter()
        rows = [next(listings) for _ in range(min(chunk, count - done))]
        path = work / f"load-{files:03d}.csv"
        path.write_text(to_csv(rows), encoding="utf-8")
        del rows
        write_s += time.perf_counter() - started
        started = time.perf_counter()
        with (work / "import.log").open("a") as log:  # its likely-duplicate notes, problems
            result = subprocess.run(
                [RESDB, "import", "--publish", "--actor", "bench-load", str(path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        import_s += time.perf_counter() - started
        path.unlink()
        if result.returncode != 0:
            raise SystemExit(
                f"resdb import failed (exit {result.returncode}): {result.stdout[-500:]}; "
                f"see {work / 'import.log'}"
            )
        done = min(count, done + chunk)
        files += 1
        print(f"  imported {done:,}/{count:,} ({import_s:.0f} s so far)", file=sys.stderr)
    return {
        "listings": count,
        "seed": seed,
        "per_region": per_region,
        "how": f"`resdb import --publish` of {files} CSV file(s) of ≤{chunk:,} rows",
        "import_s": round(import_s, 1),
        "csv_write_s": round(write_s, 1),
        "loaded_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def wait_ready(base: str, coordinator_token: str, workers: int, limit: float = 1800.0) -> float:
    """Seconds until the map and matching answer 200 (not 503 準備中) on every worker: 3 × workers
    consecutive rounds of one map view and one match (the host's workers share the listening socket)."""
    from matcher.synthetic import persons

    person = persons(1, seed=1, center=CENTRE, radius_km=5.0)[0]
    south, west, north, east = REGION
    started = time.perf_counter()
    streak = 0
    while streak < 3 * workers:
        if time.perf_counter() - started > limit:
            raise SystemExit(f"{base}: map and matching not ready after {limit:.0f} s")
        mapped = call(
            base, "GET", f"/api/resources.geojson?bbox={west},{south},{east},{north}&zoom=9"
        )
        matched = call(base, "POST", "/api/match?limit=1", body=person, token=coordinator_token)
        streak = streak + 1 if mapped[0] == 200 and matched[0] == 200 else 0
        if streak == 0:
            time.sleep(1.0)
    return time.perf_counter() - started


def make_accounts(url: str, coordinators: int, probes: int) -> dict[str, list[str]]:
    """A fresh token per account: one editor, coordinators for the users' matches, probe accounts
    (the freshness probe polls faster than one person would, so it draws on staff buckets)."""
    from resdb import accounts
    from resdb.db import make_engine

    engine = make_engine(url)
    tokens: dict[str, list[str]] = {"editor": [], "coordinator": [], "probe": []}
    try:
        for role, n, key in (
            ("editor", 1, "editor"),
            ("coordinator", coordinators, "coordinator"),
            ("coordinator", probes, "probe"),
        ):
            for i in range(n):
                email = f"load-{key}-{i}@example.jp"
                if accounts.account_by_email(engine, email) is None:
                    accounts.add_user(engine, email, role, None)
                tokens[key].append(accounts.create_token(engine, email))
    finally:
        engine.dispose()
    return tokens


def run_cli(args: list[str], url: str, instance: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [RESDB, *args],
        env={**os.environ, "RESDB_DATABASE_URL": url, "RESDB_INSTANCE": str(instance)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"resdb {' '.join(args)} failed: {result.stderr[-800:]}")
    return time.perf_counter() - started


# -- memory and load --------------------------------------------------------------------------------
def host_processes(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        master = psutil.Process(process.pid)
        return [master, *master.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sample_memory(
    hosts: list[tuple[str, subprocess.Popen[bytes]]], peak: dict[tuple[str, int], dict[str, float]]
) -> None:
    for label, process in hosts:
        for proc in host_processes(process):
            try:
                info = proc.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            key = (label, proc.pid)
            row = peak.setdefault(
                key, {"rss": 0.0, "uss": 0.0, "pss": 0.0, "master": proc.pid == process.pid}
            )
            row["rss"] = max(row["rss"], info.rss / 1e6)
            row["uss"] = max(row["uss"], getattr(info, "uss", 0) / 1e6)  # private to the process
            row["pss"] = max(row["pss"], getattr(info, "pss", 0) / 1e6)


def worker_mappings(hosts: list[tuple[str, subprocess.Popen[bytes]]]) -> dict[str, Any]:
    """Per mapping kB (Rss, Pss, private) of the smallest and the largest worker (by PSS) of every host
    (bench/smaps.py): a worker that only maps, and the one that built a snapshot if one did."""
    out: dict[str, Any] = {}
    for label, process in hosts:
        found: list[tuple[int, int, dict[str, Any]]] = []
        for proc in host_processes(process)[1:]:
            try:
                rows = by_mapping(proc.pid)
            except OSError:
                continue
            found.append((sum(v["Pss"] for v in rows.values()), proc.pid, rows))
        found.sort(key=lambda item: item[0])
        for _pss, pid, rows in found[:1] + found[1:][-1:]:
            out[f"host {label} worker {pid}"] = rows
    return out


def cpu_seconds(hosts: list[tuple[str, subprocess.Popen[bytes]]]) -> dict[str, float]:
    """CPU seconds used so far: by the hosts' processes, this load generator, every PostgreSQL
    process (all databases) and the whole machine (busy time over all cores)."""

    def used(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0.0
        # Processes that exited (PostgreSQL backends of closed connections, restarted workers) are
        # counted through their parent's children_* times once reaped: without them the total can fall.
        return float(
            times.user
            + times.system
            + getattr(times, "children_user", 0.0)
            + getattr(times, "children_system", 0.0)
        )

    machine = psutil.cpu_times()
    postgres = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in {"postgres", "postmaster"}:
            postgres += used(proc)
    return {
        "hosts": sum(used(proc) for _label, process in hosts for proc in host_processes(process)),
        "load generator": used(psutil.Process()),
        "postgres": postgres,
        "machine": float(sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)),
    }


def monitor(
    hosts: list[tuple[str, subprocess.Popen[bytes]]], ctx: dict[str, Any], done: threading.Event
) -> None:
    while not done.wait(5.0):
        sample_memory(hosts, ctx["memory"])
        ctx["load_max"] = max(ctx["load_max"], os.getloadavg()[0])


# -- the report -------------------------------------------------------------------------------------
def report(
    args: argparse.Namespace, ctx: dict[str, Any], elapsed: float, setup: list[str]
) -> dict[str, Any]:
    recorder: Recorder = ctx["recorder"]
    by_type: dict[str, list[Sample]] = {t: [] for t in TYPES}
    for sample in recorder.samples:
        by_type.setdefault(sample.kind, []).append(sample)
    print(
        f"\nresdb load test — {args.listings:,} synthetic listings on PostgreSQL, {len(ctx['hosts'])} hosts × "
        f"{args.workers} gunicorn workers (4 threads), {args.users} users (think {args.think_min:g}–"
        f"{args.think_max:g} s), {args.edits_per_second:g} edits/s, {elapsed:.0f} s counted after "
        f"{args.warmup:g} s warm-up; client: urllib threads on the same machine"
    )
    for line in setup:
        print(f"  {line}")
    calibration: Recorder | None = ctx.get("calibration")
    if calibration is not None and calibration.samples:
        print(
            f"\none request at a time, before the load ({args.calibrate} rounds over both hosts; load "
            f"average then {ctx['calibration_load']}): what each type costs without queueing"
        )
        alone: dict[str, list[float]] = {}
        failed_alone: dict[str, int] = {}
        for sample in calibration.samples:
            alone.setdefault(sample.kind, []).append(sample.ms)
            failed_alone[sample.kind] = failed_alone.get(sample.kind, 0) + (
                not 200 <= sample.status < 300
            )
        print(
            "  "
            + "; ".join(
                f"{kind} p50 {pct(ms, 50):.0f} / max {max(ms):.0f} ms"
                + (f" ({failed_alone[kind]} errors)" if failed_alone[kind] else "")
                for kind, ms in alone.items()
            )
        )
    print(
        f"\n{'request type':<22}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'errors':>8}{'size p50':>10}   goal: p95 ≤ {GOAL_P95_MS:.0f} ms, 0 errors"
    )
    rows: dict[str, Any] = {}
    failed = []
    for kind, samples in by_type.items():
        if not samples:
            print(f"{kind:<22}{0:>7}   (no requests)")
            continue
        ms = [s.ms for s in samples]
        errors = sum(1 for s in samples if not 200 <= s.status < 300)
        size = sorted(s.size for s in samples)[len(samples) // 2]
        row = {
            "n": len(samples),
            "p50": pct(ms, 50),
            "p95": pct(ms, 95),
            "p99": pct(ms, 99),
            "max": max(ms),
            "errors": errors,
            "size_p50": size,
        }
        rows[kind] = row
        ok = row["p95"] <= GOAL_P95_MS and errors == 0
        if not ok:
            failed.append(kind)
        print(
            f"{kind:<22}{row['n']:>7}{row['p50']:>9.1f}{row['p95']:>9.1f}{row['p99']:>9.1f}"
            f"{row['max']:>9.0f}{errors:>8}{size / 1000:>8.1f}kB   {'meets' if ok else 'MISSES'}"
        )
    codes: dict[str, int] = {}
    for sample in recorder.samples:
        if not 200 <= sample.status < 300:
            label = {
                0: "timeout/refused",
                -1: "no answer by the end",
                -2: "edit never sent (editors all waiting)",
            }.get(sample.status, str(sample.status))
            codes[label] = codes.get(label, 0) + 1
    user_requests = sum(len(by_type[k]) for k in TYPES[:8])
    edits = len(by_type["edit write (PATCH)"])
    print(
        f"\nthroughput: {user_requests / elapsed:.1f} user requests/s (~{args.users / ((args.think_min + args.think_max) / 2):.0f}/s "
        f"intended), {edits / elapsed:.2f} edits/s (goal {args.edits_per_second:g}; backlog at the end "
        f"{ctx.get('edits_backlog', 0)}); the change log grew by "
        f"{ctx['head_end'] - ctx['head_start']} entries (edits that changed a listing)"
    )
    print(
        "errors: "
        + (", ".join(f"{label} × {n}" for label, n in sorted(codes.items())) or "none")
        + " (goal: 0)"
    )
    lags = recorder.lags
    print(
        f"freshness (edit on one host → found by search on the other): {len(lags)} of {recorder.probes} "
        f"probed edits, lag p50 {pct(lags, 50) if lags else 0:.0f} ms / p95 {pct(lags, 95) if lags else 0:.0f} ms"
        f" / max {max(lags, default=0):.0f} ms; not found within 30 s: {len(recorder.unseen)}"
    )
    for unseen in recorder.unseen:
        print(f"  not found: {unseen}")
    print(
        f"load average (1/5/15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"highest 1-min seen during the run {ctx['load_max']:.2f}; at the start {ctx['load_start']}"
        f" — {os.cpu_count()} cores, shared with other work"
    )
    before, after = ctx["cpu_start"], ctx["cpu_end"]
    spent = {k: after[k] - before[k] for k in before}
    others = spent["machine"] - spent["hosts"] - spent["load generator"] - spent["postgres"]
    print(
        f"CPU over the counted {elapsed:.0f} s (core-seconds; the machine has {os.cpu_count()} cores = "
        f"{(os.cpu_count() or 1) * elapsed:.0f}): hosts {spent['hosts']:.0f}, load generator "
        f"{spent['load generator']:.0f}, postgres (all databases) {spent['postgres']:.0f}, "
        f"everything else on the machine {max(0.0, others):.0f}"
    )
    print("memory (peak over the run, MB; PSS counts pages shared between processes once):")
    memory: dict[str, Any] = {}
    for label, _process in ctx["hosts"]:
        procs = [(pid, row) for (host, pid), row in ctx["memory"].items() if host == label]
        workers = [row for _pid, row in procs if not row["master"]]
        master = next((row for _pid, row in procs if row["master"]), None)
        parts = [
            f"worker {w['rss']:.0f} RSS / {w['uss']:.0f} USS / {w['pss']:.0f} PSS" for w in workers
        ]
        total_pss = sum(row["pss"] for _pid, row in procs)
        if master:
            parts.insert(0, f"master {master['rss']:.0f} RSS / {master['pss']:.0f} PSS")
        print(f"  host {label}: {'; '.join(parts)}; host total PSS {total_pss:.0f}")
        memory[label] = {
            "workers": workers,
            "master": master,
            "total_pss": total_pss,
        }
    client = psutil.Process().memory_info().rss / 1e6
    print(f"  load generator (this process): {client:.0f} RSS")
    mappings: dict[str, Any] = ctx.get("mappings") or {}
    for key, rows in mappings.items():
        print(
            f"  what makes up {key} at the end (/proc/<pid>/smaps summed per mapping, bench/smaps.py):"
        )
        for line in smaps_table(rows, 14):
            print(f"    {line}")
    verdict = "MEETS" if not failed and not codes else "DOES NOT MEET"
    print(
        f"\nverdict: {verdict} the goal (p95 ≤ {GOAL_P95_MS:.0f} ms for every type, 0 errors)"
        + (f"; misses: {', '.join(failed)}" if failed else "")
    )
    return {
        "listings": args.listings,
        "rows": rows,
        "errors": codes,
        "user_rps": user_requests / elapsed,
        "edits_per_s": edits / elapsed,
        "change_log_growth": ctx["head_end"] - ctx["head_start"],
        "freshness_ms": {
            "p50": pct(lags, 50) if lags else None,
            "p95": pct(lags, 95) if lags else None,
            "max": max(lags, default=None),
            "probed": recorder.probes,
            "unseen": len(recorder.unseen),
            "unseen_probes": recorder.unseen,
        },
        "loadavg_end": os.getloadavg(),
        "memory_mb": memory,
        "mappings_kb": mappings,
        "setup": setup,
        "verdict": verdict,
    }


# -- the run ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listings", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--edits-per-second", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds counted")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds run first, not counted")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers per host")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--think-min", type=float, default=1.0)
    parser.add_argument("--think-max", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="a slower answer is an error")
    parser.add_argument(
        "--probe-every", type=int, default=5, help="probe 1 edit in N for freshness"
    )
    parser.add_argument("--join", choices=["copy", "rebuild"], default="copy")
    parser.add_argument("--database", default="h_load")
    parser.add_argument(
        "--reuse", action="store_true", help="keep (and reuse) the filled database and host A"
    )
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="instance folders (default: a temporary folder; with --reuse "
        "/tmp/resdb-load-<database>)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="rows per `resdb import` file (default 0: one file; each import over 5,000 rows "
        "rebuilds the importing host's index, so several files index the early rows again)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--per-region",
        type=int,
        default=20_000,
        help="listings per 富山県-sized region box (resdb.synth.regions_for): larger corpora are "
        "spread over a grid of boxes at this density (0: all in one box)",
    )
    parser.add_argument(
        "--rate-limit", default=None, help="RESDB_RATE_LIMIT for the hosts (default: the product's)"
    )
    parser.add_argument(
        "--calibrate",
        type=int,
        default=10,
        help="rounds of one request of each type at a time, before the load (0: none)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="load the database and host A (with --reuse: keep them for later runs), then stop",
    )
    args = parser.parse_args()

    work = args.workdir or (
        Path(f"/tmp/resdb-load-{args.database}")
        if args.reuse
        else Path(tempfile.mkdtemp(prefix="resdb-load-"))
    )
    work = work.resolve()
    url = database_url(args.database)
    stamp = work / "loaded.json"
    setup: list[str] = []
    processes: list[subprocess.Popen[bytes]] = []
    reused = False
    try:
        if args.reuse and database_exists(args.database) and stamp.exists():
            loaded = json.loads(stamp.read_text())
            reused = (
                loaded.get("listings") == args.listings
                and loaded.get("seed") == args.seed
                and loaded.get("per_region", 0) == args.per_region
            )
        if reused:
            setup.append(
                f"data: reused database {args.database}, loaded {loaded['loaded_at']} by {loaded['how']} "
                f"in {loaded['import_s']:.0f} s (import incl. index)"
            )
        else:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            recreate_database(args.database)
            print(f"loading {args.listings:,} listings into {args.database} …", file=sys.stderr)
            loaded = load(
                url,
                work / "host-a",
                work,
                args.listings,
                args.seed,
                args.chunk or args.listings,
                args.per_region,
            )
            stamp.write_text(json.dumps(loaded))
            setup.append(
                f"data: loaded now into database {args.database} by {loaded['how']} in "
                f"{loaded['import_s']:.0f} s (import incl. index; writing the CSV {loaded['csv_write_s']:.0f} s more)"
            )
        if args.prepare_only:
            print("\n".join(setup))
            return
        tokens = make_accounts(url, max(1, args.users // 10), 8)
        env = {"RESDB_TRUSTED_PROXIES": "127.0.0.1", "RESDB_WORKERS": str(args.workers)}
        env["RESDB_RATE_LIMIT"] = args.rate_limit or os.environ.get("RESDB_RATE_LIMIT", "120/2")
        started = time.perf_counter()
        host_a, base_a = serve(url, work / "host-a", args.workers, env)
        processes.append(host_a)
        setup.append(f"host A up in {time.perf_counter() - started:.1f} s ({base_a})")
        ready_s = wait_ready(base_a, tokens["coordinator"][0], args.workers)
        setup.append(
            f"host A's map and matching ready {ready_s:.1f} s later (its workers built and published "
            "the host snapshots, or mapped them)"
        )
        hosts: list[tuple[str, subprocess.Popen[bytes]]] = [("A", host_a)]
        bases = [base_a]
        for n in range(1, args.hosts):
            label = chr(ord("A") + n)
            instance = work / f"host-{label.lower()}"
            shutil.rmtree(instance, ignore_errors=True)
            instance.mkdir()
            how = ""
            if args.join == "copy":
                snapshot = work / f"snapshot-{label.lower()}"
                shutil.rmtree(snapshot, ignore_errors=True)
                copy_s = run_cli(["index", "copy", str(snapshot)], url, work / "host-a")
                install_s = run_cli(["index", "install", str(snapshot)], url, instance)
                shutil.rmtree(snapshot, ignore_errors=True)
                how = f"`resdb index copy` on running host A {copy_s:.1f} s + `resdb index install` {install_s:.1f} s, then "
            started = time.perf_counter()
            process, base = serve(url, instance, args.workers, env)
            processes.append(process)
            hosts.append((label, process))
            bases.append(base)
            what = (
                "caught up from the change log"
                if args.join == "copy"
                else "index rebuilt from PostgreSQL"
            )
            up_s = time.perf_counter() - started
            ready_s = wait_ready(base, tokens["coordinator"][0], args.workers)
            setup.append(
                f"host {label} joined: {how}`resdb serve` up in {up_s:.1f} s ({what}); map and "
                f"matching ready {ready_s:.1f} s later"
            )
        setup.append(
            "signing key: RESDB_SECRET_KEY unset on every host, so all sign with the key kept in the database "
            "(`resdb serve` checked its fingerprint); RESDB_TRUSTED_PROXIES=127.0.0.1, each user its own "
            f"X-Forwarded-For; RESDB_RATE_LIMIT={env['RESDB_RATE_LIMIT']}"
        )

        from matcher.synthetic import persons

        people = persons(500, seed=args.seed, center=CENTRE, radius_km=25.0)
        boxes = regions_for(args.listings, args.per_region or None)
        for k, person in enumerate(people):  # each at the same place inside its own region box
            box = boxes[k % len(boxes)]
            home = person["home"]
            home["lat"] = round(home["lat"] - REGION[0] + box[0], 6)
            home["lon"] = round(home["lon"] - REGION[1] + box[1], 6)
        recorder = Recorder()
        ctx: dict[str, Any] = {
            "recorder": recorder,
            "tokens": tokens,
            "persons": people,
            "hosts": hosts,
            "memory": {},
            "load_max": 0.0,
            "probe_threads": [],
            "load_start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
        if args.calibrate:
            print(
                f"calibrating: {args.calibrate} rounds of one request at a time …", file=sys.stderr
            )
            ctx["calibration"] = calibrate(bases, args, ctx)
            ctx["calibration_load"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        ctx["head_start"] = change_log_head(url)
        begin = time.monotonic()
        for key, after in (("cpu_start", args.warmup), ("cpu_end", args.warmup + args.duration)):
            threading.Timer(after, lambda key=key: ctx.__setitem__(key, cpu_seconds(hosts))).start()
        recorder.counted_from = begin + args.warmup
        recorder.stop_at = ctx["stop_at"] = recorder.counted_from + args.duration
        done = threading.Event()
        threads: list[threading.Thread] = [User(n, bases, args, ctx) for n in range(args.users)]
        threads.append(threading.Thread(target=edit_loop, args=(bases, args, ctx), daemon=True))
        watcher = threading.Thread(target=monitor, args=(hosts, ctx, done), daemon=True)
        print(
            f"running {args.users} users + {args.edits_per_second:g} edits/s: {args.warmup:g} s warm-up, "
            f"{args.duration:g} s counted …",
            file=sys.stderr,
        )
        for thread in [*threads, watcher]:
            thread.start()
        # Bounded: answers later than --timeout after the end count as errors; probes get their time.
        finish = recorder.stop_at + max(args.timeout, PROBE_SECONDS) + 2
        for thread in threads:
            thread.join(timeout=max(0.0, finish - time.monotonic()))
        for thread in list(ctx["probe_threads"]):
            thread.join(timeout=max(0.0, finish - time.monotonic()))
        recorder.close()
        ctx["head_end"] = change_log_head(url)
        unsent = ctx.get("edit_jobs")
        while unsent is not None and not unsent.empty():
            job = unsent.get_nowait()
            if job is not None and recorder.counts(job[1]):
                recorder.samples.append(
                    Sample("edit write (PATCH)", job[1], (time.monotonic() - job[1]) * 1000, -2)
                )
        sample_memory(hosts, ctx["memory"])
        ctx["mappings"] = worker_mappings(hosts)
        done.set()
        figures = report(args, ctx, args.duration, setup)
        if args.json:
            args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1, default=str))
    finally:
        for process in processes:
            stop(process)
        if not args.reuse:
            if not args.keep:
                recreate_database(args.database, drop_only=True)
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
