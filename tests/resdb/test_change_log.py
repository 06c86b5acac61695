"""The index follows the change log in sequence, as people use it: several workers of one host, several
hosts on one database, pruned logs, a host killed while applying, a bulk backlog, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from resdb.directory import Directory
from resdb.search import SearchQuery

SALON = {
    "id": "t-salon",
    "name": "戸破ふれあいサロン",
    "kind": "kayoi",
    "lat": 36.7236,
    "lon": 137.0991,
    "targets": ["elderly"],
    "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
}


def ids(directory: Directory, q: str = "", **filters: object) -> list[str]:
    found = directory.search(SearchQuery(q=q, limit=None, **filters))  # type: ignore[arg-type]
    assert found["total"] == len(found["items"])
    return [item["id"] for item in found["items"]]


def other_host(directory: Directory, tmp_path: Path, name: str) -> Directory:
    """A second host: its own instance folder (own index), the same database."""
    host = Directory(directory.engine, tmp_path / name)
    host.ensure_ready()
    return host


def test_every_worker_sees_each_edit_once(directory: Directory) -> None:
    worker_b = Directory(
        directory.engine, directory.instance_dir
    )  # another process of the same host
    directory.create(SALON, actor="a")
    assert ids(worker_b, "さろん") == ["t-salon"]
    version = 1
    for day in ("fri", "sat", "wed"):
        version = directory.update(
            "t-salon",
            {"schedule": [{"weekday": day, "start": "10:00", "end": "12:00"}]},
            actor="a",
            expected_version=version,
        )["version"]
        for worker in (worker_b, directory):
            assert ids(worker, "さろん") == ["t-salon"]
            assert ids(worker, "さろん", weekdays=[day]) == ["t-salon"]
            assert ids(worker, "さろん", weekdays=["tue"]) == []
    directory.delete("t-salon", actor="a", expected_version=version)
    assert ids(worker_b, "さろん") == [] and ids(directory, "さろん") == []
    directory.restore("t-salon", actor="a")
    assert ids(worker_b, "さろん", weekdays=["wed"]) == ["t-salon"]


def test_a_second_host_follows_create_rename_and_delete(
    directory: Directory, tmp_path: Path
) -> None:
    host_b = other_host(directory, tmp_path, "host-b")
    directory.create(SALON, actor="a")
    assert ids(host_b, "さろん") == ["t-salon"]
    directory.update("t-salon", {"name": "ひだまりカフェ"}, actor="a", expected_version=1)
    assert ids(host_b, "ひだまり") == ["t-salon"] and ids(host_b, "ふれあい") == []
    directory.delete("t-salon", actor="a", expected_version=2)
    assert ids(host_b, "ひだまり") == []
    # B restarts with the same count as the database and still knows where it stands
    host_b.index.close()
    assert Directory(directory.engine, tmp_path / "host-b").ensure_ready() == "ok"


def test_a_host_behind_the_pruned_log_rebuilds(directory: Directory, tmp_path: Path) -> None:
    host_b = other_host(directory, tmp_path, "host-b")
    host_b.index.close()
    directory.create(SALON, actor="a")
    directory.create({**SALON, "id": "t-two", "name": "二つ目のサロン"}, actor="a")
    assert directory.prune_change_log(keep_days=-1) == 1  # everything but the newest entry
    assert directory.head_seq() == 2
    restarted = Directory(directory.engine, tmp_path / "host-b")
    assert restarted.ensure_ready() == "rebuilt"
    assert sorted(ids(restarted, "さろん")) == ["t-salon", "t-two"]


def test_a_bad_value_never_stops_the_changes_behind_it(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb import search

    directory.create(SALON, actor="a")
    directory.create({**SALON, "id": "t-next", "name": "となりのサロン"}, actor="a")
    # a value that passes validation but that this index cannot hold (the bound is what is tested)
    monkeypatch.setattr(
        search,
        "_check_fields",
        lambda fields: "cost の値は索引に入りません" if fields["id"] == "t-salon" else None,
    )
    directory.update("t-salon", {"name": "改名したサロン"}, actor="a", expected_version=1)
    directory.update("t-next", {"name": "改名した集い"}, actor="a", expected_version=1)
    assert ids(directory, "集い") == ["t-next"]  # the change behind the bad one went through
    assert ids(directory, "ふれあい") == []  # and the bad listing's old text is not served
    assert directory.index_problems() == {"t-salon": "cost の値は索引に入りません"}
    assert directory.ensure_ready() == "ok"  # start-up does not fail or loop on it
    monkeypatch.undo()
    directory.update("t-salon", {"capacity": 5}, actor="a", expected_version=2)
    assert ids(directory, "改名") == ["t-salon", "t-next"] or sorted(ids(directory, "改名")) == [
        "t-next",
        "t-salon",
    ]
    assert directory.index_problems() == {}


def test_a_large_backlog_is_rebuilt_outside_requests(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb import changelog

    monkeypatch.setattr(changelog, "BULK_REINDEX_THRESHOLD", 40)
    rows = [(n, {**SALON, "id": f"bulk-{n}", "name": f"サロン{n}"}) for n in range(1, 60)]
    directory.serving = True  # as in a web worker: no rebuild on the request path
    with directory.index.rebuild_lock.hold(wait=0) as got:  # a rebuild already runs on this host
        assert got
        directory.import_records(rows, actor="a", source_name="bulk.csv")
        started = time.monotonic()
        assert directory.follow_changes(wait=0.0) is False  # answers at once from the live index
        assert time.monotonic() - started < 5
        stale = directory.search(SearchQuery(q="さろん"))
        assert stale["total"] == 0
        assert stale["pending_changes"] == len(rows)  # … and says what it has not seen yet
    directory.serving = False
    assert directory.follow_changes() is True  # the CLI / start-up path rebuilds inline
    current = directory.search(SearchQuery(q="さろん", limit=1))
    assert current["total"] == len(rows)
    assert current["pending_changes"] == 0


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from resdb import changelog, search
    from resdb.directory import Directory
    from resdb.db import make_engine

    changelog.APPLY_BATCH = 40

    directory = Directory(make_engine(sys.argv[1]), Path(sys.argv[2]))
    original = search.SearchIndex.apply
    def slow_apply(self, *args, **kwargs):
        found = original(self, *args, **kwargs)
        print("applied", flush=True)
        time.sleep(0.5)
        return found
    search.SearchIndex.apply = slow_apply
    rows = [(n, {"id": f"k-{n}", "name": f"キルテスト{n}", "kind": "kayoi", "lat": 36.72, "lon": 137.1})
            for n in range(1, 301)]
    directory.import_records(rows, actor="a", source_name="kill.csv")
    print("done", flush=True)
""")


def test_a_host_killed_while_applying_catches_up_on_restart(directory: Directory) -> None:
    url = directory.engine.url.render_as_string(hide_password=False)
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, url, str(directory.instance_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "applied"  # some batches applied, more to come
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert directory.index.cursor() < directory.head_seq()
    restarted = Directory(directory.engine, directory.instance_dir)
    assert restarted.ensure_ready() == "caught_up"
    found = ids(restarted, "キルテスト")
    assert len(found) == len(set(found)) == 300


def test_a_new_host_starts_from_a_copied_index_and_catches_up(
    directory: Directory, tmp_path: Path
) -> None:
    directory.create(SALON, actor="a")
    cursor = directory.index.copy_to(tmp_path / "copied")
    assert cursor == directory.head_seq()
    directory.update(
        "t-salon", {"name": "写したあとの改名"}, actor="a", expected_version=1
    )  # after the copy
    host_b = Directory(directory.engine, tmp_path / "host-b")
    assert host_b.index.install(tmp_path / "copied") == cursor
    assert host_b.ensure_ready() == "caught_up"  # from the copy's own position, not a rebuild
    assert ids(host_b, "改名") == ["t-salon"] and ids(host_b, "ふれあい") == []


def test_a_folder_that_is_not_an_index_copy_is_refused(
    directory: Directory, tmp_path: Path
) -> None:
    from resdb.search import IndexUnhealthy

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "cursor").write_text("5")
    with pytest.raises(IndexUnhealthy):
        directory.index.install(tmp_path / "junk")
    directory.create(SALON, actor="a")
    assert ids(directory, "さろん") == ["t-salon"]  # the live index is untouched


def test_the_rebuild_reads_pages_along_the_primary_key(directory: Directory) -> None:
    """Each page of `iter_published` walks the primary key from the last id (no sort of every published
    row per page, which made a 300k-listing rebuild quadratic), and the pages hold every listing once."""
    from sqlalchemy import event

    for n in range(12):
        directory.create({**SALON, "id": f"t-page-{n:02d}"}, actor="test")
    statements: list[tuple[str, object]] = []

    def note(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        if "ORDER BY listing.id" in statement:
            statements.append((statement, params))

    event.listen(directory.engine, "before_cursor_execute", note)
    try:
        read = [listing["id"] for listing in directory.iter_published(batch=5)]
    finally:
        event.remove(directory.engine, "before_cursor_execute", note)
    assert read == sorted({f"t-page-{n:02d}" for n in range(12)}) and len(statements) == 4
    if directory.engine.dialect.name == "sqlite":
        with directory.engine.connect() as connection:
            plan = " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statements[1][0],
                    statements[1][1],  # type: ignore[arg-type]
                )
            )
        assert "TEMP B-TREE" not in plan, plan


def test_a_busy_workers_follower_asks_for_no_head_of_its_own(
    directory: Directory, tmp_path: Path
) -> None:
    """Idle, the follower polls the head itself; while requests of its process read it every few ms, it
    polls on theirs (only its commit reads the head) and still commits another host's edit."""
    import threading

    from sqlalchemy import event

    host_b = other_host(directory, tmp_path, "host-b")
    host_b.serving = True
    readers: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "max(change_log.seq)" in statement.lower():
            readers.append(threading.current_thread().name)

    event.listen(directory.engine, "before_cursor_execute", count)
    stop = host_b.start_follower(0.05, commit_after=1.0)  # about 20 polls before it commits
    try:
        time.sleep(0.5)
        assert "resdb-follow" in readers  # idle: it asks
        directory.create(SALON, actor="a")
        head = directory.head_seq()
        readers.clear()
        deadline = time.monotonic() + 20
        while (host_b.index.cursor() or 0) < head and time.monotonic() < deadline:
            host_b._read_head_seq()  # what a busy worker's requests do
            time.sleep(0.01)
        assert (
            host_b.index.cursor() == head
        )  # committed by the follower, which polled on their reads:
        # Its commit reads the head it applies up to; a stalled loop here may leave it a poll or two.
        assert readers.count("resdb-follow") <= 5
        assert readers.count(threading.current_thread().name) >= 10
    finally:
        stop.set()
        event.remove(directory.engine, "before_cursor_execute", count)
        host_b.background.close()


def test_a_follower_waits_a_batch_while_another_worker_holds_the_apply_lock(
    directory: Directory, tmp_path: Path
) -> None:
    """A worker whose batch is due but whose host's apply lock another worker holds (it commits for
    all) tries again a batch later, not at every poll: each try reads the log's facts, and under a
    steady stream of edits the workers that lost the race used to read them ten times a second."""
    import threading

    from sqlalchemy import event

    host_b = other_host(directory, tmp_path, "host-b")
    host_b.serving = True
    tries: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if threading.current_thread().name == "resdb-follow" and "from meta" in statement.lower():
            tries.append(statement)

    directory.create(SALON, actor="a")
    head = directory.head_seq()
    event.listen(directory.engine, "before_cursor_execute", count)
    with host_b.index.apply_lock.hold(0) as got:  # another worker of host B is writing
        assert got
        stop = host_b.start_follower(0.02, commit_after=0.5)
        try:
            time.sleep(2.0)  # due after 0.5 s: about 75 polls while it is due
            assert 1 <= len(tries) <= 2 * 5, len(tries)  # ≤ one try (two facts reads) per 0.5 s
        finally:
            stop.set()
    try:
        deadline = time.monotonic() + 20
        stop = host_b.start_follower(0.02, commit_after=0.5)
        while (host_b.index.cursor() or 0) < head and time.monotonic() < deadline:
            time.sleep(0.02)
        assert host_b.index.cursor() == head  # and once the lock is free, it commits
    finally:
        stop.set()
        event.remove(directory.engine, "before_cursor_execute", count)
        host_b.background.close()


def test_a_follower_brings_another_host_up_to_date_without_a_search(
    directory: Directory, tmp_path: Path
) -> None:
    host_b = other_host(directory, tmp_path, "host-b")
    host_b.serving = True
    assert host_b.start_follower(0.0) is None  # 0: only requests follow
    stop = host_b.start_follower(0.05)
    assert stop is not None
    try:
        directory.create(SALON, actor="a")
        head = directory.head_seq()
        deadline = time.monotonic() + 20
        while (host_b.index.cursor() or 0) < head and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host_b.index.cursor() == head  # applied in the background, no request asked
    finally:
        stop.set()
    assert ids(host_b, "さろん") == ["t-salon"]
