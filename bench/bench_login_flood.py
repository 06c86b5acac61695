"""Edit latency while 8 threads sign in (argon2 per attempt): does a login flood hold up editors?

    .venv/bin/python bench/bench_login_flood.py --edits 100 --threads 8

One thread edits a listing through `Services.update` (one write transaction each) while N threads sign in
with the right password as fast as they can. Prints edit latency p50/p95/p99 without the flood, with the
flood, and with the flood as the old code ran it (`--old`: argon2 inside the SQLite write transaction). The `cpu` line runs
the same argon2 work without the database: the part of the slowdown that is only CPU.
RESDB_BENCH_DATABASE_URL=postgresql+psycopg://… runs it on PostgreSQL instead of SQLite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "correct horse battery staple"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def old_authenticate(engine, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """The sign-in as it was: the password checked inside the write transaction."""
    from sqlmodel import select

    from resdb.accounts import _hasher
    from resdb.db import write_session
    from resdb.models import User

    with write_session(engine) as session:
        user = session.exec(select(User).where(User.email == email)).first()
        assert user is not None and user.password_hash
        _hasher.verify(user.password_hash, password)
        user.failed_logins = 0


def run(edits: int, threads: int, flood: str) -> list[float]:
    from resdb import accounts
    from resdb.directory import Directory
    from resdb.services import Services, system_actor

    instance = Path(tempfile.mkdtemp(prefix="login-flood-"))
    url = os.environ.get("RESDB_BENCH_DATABASE_URL") or f"sqlite:///{instance / 'resdb.sqlite3'}"
    directory = Directory.open(url, instance)
    services = Services(directory)
    actor = system_actor("bench")
    listing = directory.create(
        {"name": "ベンチのサロン", "kind": "kayoi", "lat": 36.72, "lon": 137.1, "capacity": 0},
        actor="bench",
    )
    emails = [f"flood-{n}-{time.time_ns()}@example.jp" for n in range(threads)]
    for email in emails:
        accounts.add_user(directory.engine, email, "editor", PASSWORD)
    hashes = {email: accounts._hasher.hash(PASSWORD) for email in emails}
    stop = threading.Event()
    logins = [0]
    failures = [0]

    def flood_worker(email: str) -> None:
        from sqlalchemy.exc import OperationalError

        while not stop.is_set():
            try:
                if flood == "old":
                    old_authenticate(directory.engine, email, PASSWORD)
                elif flood == "cpu":  # argon2 alone, no database: what the CPU load by itself costs
                    accounts._hasher.verify(hashes[email], PASSWORD)
                else:
                    assert accounts.authenticate(directory.engine, email, PASSWORD) is not None
                logins[0] += 1
            except OperationalError:  # SQLite's busy timeout ran out waiting for the write lock
                failures[0] += 1

    workers = (
        [threading.Thread(target=flood_worker, args=(e,)) for e in emails]
        if flood != "none"
        else []
    )
    for worker in workers:
        worker.start()
    time.sleep(0.5 if workers else 0)
    latencies = []
    failed_edits = 0
    from sqlalchemy.exc import OperationalError

    for n in range(edits):
        started = time.perf_counter()
        try:
            services.update(actor, listing["id"], {"capacity": n + 1}, expected_version=None)
        except (
            OperationalError
        ):  # waited longer than SQLite's busy timeout (15 s) for the write lock
            failed_edits += 1
        latencies.append((time.perf_counter() - started) * 1000)
    stop.set()
    for worker in workers:
        worker.join()
    directory.index.close()
    directory.engine.dispose()
    print(
        f"{flood:>5} flood: edits p50 {pct(latencies, 0.5):7.1f} ms  p95 {pct(latencies, 0.95):7.1f} ms  "
        f"p99 {pct(latencies, 0.99):7.1f} ms   ({logins[0]} sign-ins meanwhile, {failures[0]} timed out; "
        f"{failed_edits} edits failed)"
    )
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--old", action="store_true", help="also run the flood the old way (argon2 inside the lock)"
    )
    args = parser.parse_args()
    run(args.edits, args.threads, "none")
    run(args.edits, args.threads, "cpu")
    run(args.edits, args.threads, "new")
    if args.old:
        run(args.edits, args.threads, "old")


if __name__ == "__main__":
    main()
