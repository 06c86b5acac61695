"""The matching candidate pool of one Directory: one memory-mapped snapshot per host, kept current from the change log.

The pool of a host is built by one process and published as a snapshot (instance/snapshots/matchpool,
see resdb.hostsnapshot): every worker maps its files copy-on-write, so the host holds one copy of the
columns, ids, listings and text in the page cache and a worker starts by mapping files instead of
reading every listing. A snapshot records the change-log number and the stamp of the change it reflects
and is used only while this database still holds that very change (not one of another database, a
restored one, or a pruned log); a damaged one is ignored and rebuilt. A worker with no usable snapshot
takes the host's build lock, looks again (another worker may just have built it), else builds from the
database, publishes and maps what it published.

A web worker starts loading or building in a background thread when the app is created (`start()`); a
request that arrives before it is ready waits up to RESDB_MATCH_WAIT seconds and then gets
`PoolNotReady` (「準備中」) instead of paying a multi-second build itself. Every request first reads the
change-log head: committed changes the pool has not seen are applied to it row by row (an edit touches
only the listings it changed, in the worker's private overlay), so no answer comes from before the last
committed change. A pruned log or a large backlog (bulk import) needs a whole build: it runs in the
background thread while requests wait or are told 準備中; so does a compaction once the overlay has
grown (a fresh snapshot is published; other workers move to it when they compact themselves). Readers
(match, batch, gaps) share the pool under a readers-writer lock; an update takes it alone. The CLI and
tests use inline mode: the first call loads or builds where it stands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matcher
from matcher.pool import ARRAYS_FORMAT
from matcher.scoring import goal_terms
from resdb.directory import ChangesPruned, Directory
from resdb.hostsnapshot import (
    BuilderThread,
    SnapshotStore,
    child_url,
    give_back_freed_memory,
    host_store,
    load_arrays,
    publish_in_child,
    reflects,
)
from resdb.outcomes import outcomes_revision, placement_outcomes

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 10.0
INCREMENTAL_LIMIT = (
    2000  # more changed listings than this (and than a quarter of the pool): rebuild
)
COMPACT_SHARE = (
    0.1  # appended/dead rows beyond this share of the pool: a fresh build in the background
)


class PoolNotReady(RuntimeError):
    """The candidate pool is still being built (「準備中」); ask again in a few seconds."""

    message = "マッチングの準備中です（候補の一覧を作っています）。数秒〜1分ほどしてからもう一度お試しください"


class _ReadersWriter:
    """Many readers or one writer (writers are not starved: a waiting writer holds back new readers)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class _Built:
    pool: matcher.CandidatePool
    seq: int  # change-log head the pool reflects
    outcomes_rev: tuple[int, int]
    outcomes: dict[str, dict[str, Any]]
    snapshot_seq: int = (
        -1
    )  # change-log number of the snapshot the pool is mapped from (-1: in memory)


def _publish_snapshot(url: str, instance_dir: str) -> None:
    """In a build process (see publish_in_child): build the pool from the database and publish it."""
    directory = Directory.open(url, Path(instance_dir), ready=False)
    try:
        keeper = PoolKeeper(directory)
        keeper._build_and_publish(keeper.snapshot_store())
    finally:
        directory.engine.dispose()


def _with_outcome(listing: dict[str, Any], outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    found = outcomes.get(listing["id"])
    return {**listing, "outcome": found} if found is not None else listing


class PoolKeeper:
    """The pool of one Directory: `reading()` yields it current; `start()` builds it in the background."""

    def __init__(
        self, directory: Directory, *, background: bool = False, wait: float = 0.0
    ) -> None:
        self.directory = directory
        self.background = background
        self.wait = wait
        self._built: _Built | None = None
        self._lock = _ReadersWriter()
        self._update = threading.Lock()  # one updater at a time (others wait, then see its work)
        self._builder = BuilderThread("resdb-match-pool", directory.background)
        self._ready = threading.Condition()
        self.last_build_seconds: float | None = None

    # -- building ---------------------------------------------------------------------------------
    def snapshot_store(self) -> SnapshotStore:
        """The host's matching-pool snapshots (beside the database's other instance files)."""
        return host_store(self.directory.instance_dir, "matchpool", f"matchpool/{ARRAYS_FORMAT}")

    def _usable(self, head: int, newer_than: int) -> Any:
        def usable(meta: dict[str, Any]) -> bool:
            return reflects(meta, head, self.directory.change_stamp) and meta["seq"] > newer_than

        return usable

    def _mapped(self, meta: dict[str, Any], arrays: dict[str, Any]) -> _Built | None:
        """The pool of a loaded snapshot, brought up to the change-log head; None when it cannot be."""
        try:
            rev = meta["outcomes_rev"]
            built = _Built(
                matcher.CandidatePool.from_arrays(arrays),
                int(meta["seq"]),
                (int(rev[0]), int(rev[1])),
                dict(meta["outcomes"]),
                snapshot_seq=int(meta["seq"]),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            log.warning("matching pool snapshot unreadable; building instead", exc_info=True)
            return None
        head = self.directory.head_seq()
        if not self._advance(built, head, outcomes_revision(self.directory.engine), live=False):
            return None  # too far behind (or the log pruned meanwhile): a fresh build pays off
        return built

    def _load(self, store: SnapshotStore, newer_than: int) -> _Built | None:
        head = self.directory.head_seq()
        loaded = store.load_newest(self._usable(head, newer_than), copy_on_write=True)
        return self._mapped(*loaded) if loaded is not None else None

    def _build(self, *, compact: bool = False) -> _Built:
        """The host's newest usable snapshot, mapped; else one built (by this process, under the host's
        build lock, unless another finished one meanwhile), published and mapped. `compact`: only a
        snapshot newer than the one the current pool came from will do."""
        started = time.perf_counter()
        current = self._built
        newer_than = current.snapshot_seq if compact and current is not None else -1
        store = self.snapshot_store()
        try:
            found = self._load(store, newer_than)
            if found is None:
                with store.exclusive():
                    found = self._load(store, newer_than)
                    url = child_url(self.directory.engine) if self.background else None
                    if (
                        found is None and url is not None
                    ):  # a web worker: build in a process of its own
                        if publish_in_child(_publish_snapshot, url, self.directory.instance_dir):
                            found = self._load(store, newer_than)
                    if found is None:
                        found = self._build_and_publish(store)
                        give_back_freed_memory()  # the listing dicts of the build
        except OSError:  # the instance folder is not writable, the disk is full …
            log.warning("matching pool snapshot not usable; building in memory", exc_info=True)
            found = self._build_in_memory()
        self.last_build_seconds = time.perf_counter() - started
        return found

    def _build_in_memory(self) -> _Built:
        seq = self.directory.head_seq()  # read before the rows: later changes are applied after
        rev = outcomes_revision(self.directory.engine)
        outcomes = {k: v.as_dict() for k, v in placement_outcomes(self.directory.engine).items()}
        listings = (_with_outcome(x, outcomes) for x in self.directory.iter_published())
        pool = matcher.CandidatePool(listings)
        for terms in goal_terms().values():
            pool.term_hits(terms)  # every match asks for the goal keywords: cached at build
        return _Built(pool, seq, rev, outcomes)

    def _build_and_publish(self, store: SnapshotStore) -> _Built:
        """Build from the database, publish the snapshot (listings only, no person data) and map it."""
        built = self._build_in_memory()
        stamp = self.directory.change_stamp(built.seq)
        if stamp is None:  # the change it reflects is not in the log: nothing could verify it
            return built
        meta = {
            "stamp": stamp,
            "outcomes_rev": list(built.outcomes_rev),
            "outcomes": built.outcomes,
            "listings": len(built.pool),
        }
        try:
            arrays = built.pool.to_arrays()
        except (TypeError, ValueError):  # a value JSON cannot hold: answer from memory, unshared
            log.warning("matching pool not publishable; kept in this process", exc_info=True)
            return built
        folder = store.publish(built.seq, arrays, meta)
        del arrays
        loaded = load_arrays(folder, copy_on_write=True)
        mapped = self._mapped(*loaded) if loaded is not None else None
        return mapped if mapped is not None else built

    def _install_fresh(self, fresh: _Built) -> None:
        """Bring a fresh build up to the head of the change log, then swap it in."""
        with self._update:
            head = self.directory.head_seq()
            self._advance(fresh, head, outcomes_revision(self.directory.engine), live=False)
            with self._lock.writing():
                if self._built is None or fresh.seq >= self._built.seq:
                    self._built = fresh
        with self._ready:
            self._ready.notify_all()

    def start(self) -> bool:
        """Build (or rebuild) the pool in a background thread unless one is running; True if started."""

        def run() -> None:
            try:
                self._install_fresh(self._build(compact=self._built is not None))
            except Exception:
                log.warning(
                    "matching pool build failed; the next request tries again", exc_info=True
                )
                with self._ready:
                    self._ready.notify_all()

        return self._builder.start(run)

    @property
    def ready(self) -> bool:
        return self._built is not None

    def _await_build(self, head: int) -> None:
        """Wait up to `wait` seconds for the background build to install a pool at `head` or later."""
        self.start()
        deadline = time.monotonic() + self.wait
        with self._ready:
            while True:
                built = self._built
                if built is not None and built.seq >= head:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolNotReady(PoolNotReady.message)
                if not self._builder.alive:
                    self.start()
                self._ready.wait(min(left, 0.25))

    # -- keeping current --------------------------------------------------------------------------
    def _delta(
        self, built: _Built, head: int, rev: tuple[int, int]
    ) -> tuple[list[dict[str, Any]], list[str], dict[str, dict[str, Any]]] | None:
        """(listings to upsert, ids to drop, outcomes) that bring `built` to `head` and `rev`; None when
        only a whole build can (the log was pruned, or more changed than is worth applying)."""
        try:
            changed = (
                {i for _, i in self.directory.changes_since(built.seq)}
                if built.seq < head
                else set()
            )
        except ChangesPruned:
            return None
        if len(changed) > max(INCREMENTAL_LIMIT, len(built.pool) // 4):
            return None
        outcomes = built.outcomes
        if built.outcomes_rev != rev:
            outcomes = {
                k: v.as_dict() for k, v in placement_outcomes(self.directory.engine).items()
            }
            changed |= {
                k
                for k in outcomes.keys() | built.outcomes.keys()
                if outcomes.get(k) != built.outcomes.get(k)
            }
        ids = sorted(changed)
        upserts = [_with_outcome(x, outcomes) for x in self.directory.changed_published(ids)]
        found = {x["id"] for x in upserts}
        return upserts, [i for i in ids if i not in found], outcomes

    def _advance(self, built: _Built, head: int, rev: tuple[int, int], *, live: bool) -> bool:
        """Apply the changes up to `head` to `built` (under the write lock when it is the live pool)."""
        if built.seq >= head and built.outcomes_rev == rev:
            return True
        delta = self._delta(built, head, rev)
        if delta is None:
            return False
        upserts, removed, outcomes = delta
        with self._lock.writing() if live else nullcontext():
            built.pool.apply(upserts, removed)
            built.seq, built.outcomes_rev, built.outcomes = max(head, built.seq), rev, outcomes
        return True

    @contextmanager
    def reading(self) -> Iterator[matcher.CandidatePool]:
        """The pool, current as of this call's change-log head, shared with other readers meanwhile."""
        head = self.directory.head_seq()
        rev = outcomes_revision(self.directory.engine)
        for _attempt in range(3):
            built = self._built
            if built is not None and built.seq >= head and built.outcomes_rev == rev:
                break
            with self._update:
                built = self._built
                whole = built is None or not self._advance(built, head, rev, live=True)
            if whole:
                if self.background:
                    self._await_build(head)
                else:
                    self._install_fresh(self._build())
            built = self._built
            current = built is not None and built.seq >= head and built.outcomes_rev == rev
            if (
                self.background
                and built is not None
                and built.pool.tail_rows > COMPACT_SHARE * max(len(built.pool), 20000)
            ):
                self.start()  # a fresh, compact build; requests keep using the current pool meanwhile
            if current:
                break
        else:
            raise PoolNotReady(PoolNotReady.message)
        with self._lock.reading():
            built = self._built
            assert built is not None
            yield built.pool
