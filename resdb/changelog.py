"""The change log and its follower: every listing change is logged in its own transaction, and each host
brings its search index up to the log's head (apply a batch, or rebuild beside the live index)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, text
from sqlmodel import Session, col, delete, select

from resdb import config
from resdb.db import in_request, insert_many, read_session, request_fact
from resdb.directory_base import DirectoryBase
from resdb.listings import PUBLIC_FIELDS, public_dict
from resdb.models import (
    ChangeLog,
    Listing,
    Meta,
    utcnow,
)
from resdb.search import RecentChanges

# A larger backlog of changes is rebuilt (beside the live index), not applied.
BULK_REINDEX_THRESHOLD = 5000
APPLY_BATCH = 500
# Changes a search reads from memory beyond the committed index; a larger backlog is applied first.
RECENT_LIMIT = APPLY_BATCH
# Waiting changes that make the follower commit to whoosh before `commit_after` has passed.
COMMIT_BATCH = 200
log = logging.getLogger(__name__)


class ChangesPruned(LookupError):
    """The change log was pruned past this position: start over from the database."""


CHANGE_LOG_LOCK = 727_001


def queue_for_index(session: Session, listing_ids: Iterable[str]) -> None:
    """Note changed listings; they enter the change log just before this transaction commits."""
    session.info.setdefault("changed_ids", set()).update(listing_ids)


@event.listens_for(Session, "before_flush")
def _note_listing_changes(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get("directory") is None:
        return
    queue_for_index(
        session,
        (
            obj.id
            for obj in (*session.new, *session.dirty, *session.deleted)
            if isinstance(obj, Listing) and obj.id
        ),
    )


@event.listens_for(Session, "before_commit")
def _write_change_log(session: Session) -> None:
    """Append the transaction's changed listings to the change log, last thing before commit. On
    PostgreSQL a transaction-scoped advisory lock makes sequence numbers follow commit order, so a host
    that has applied change N has seen every change before N (SQLite writers are serialized anyway)."""
    if session.info.get("directory") is None:
        return
    session.flush()
    changed = sorted(session.info.pop("changed_ids", set()))
    if not changed:
        return
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})
    at = utcnow()
    entries = [{"listing_id": i, "at": at} for i in changed]
    if len(entries) > 100:  # a bulk write: COPY / one executemany of tuples
        insert_many(session, ChangeLog.__table__, entries)  # type: ignore[attr-defined]
    else:
        session.execute(ChangeLog.__table__.insert(), entries)  # type: ignore[attr-defined]
    session.info["logged_changes"] = True


@event.listens_for(Session, "after_commit")
def _follow_after_commit(session: Session) -> None:
    """Bring this host's index up to the change just committed, when nobody else is already doing it
    (never waits: any search checks the log again before it answers)."""
    directory = session.info.get("directory")
    if session.info.get("defer_follow"):  # a bulk import follows once, after its last batch
        session.info.pop("logged_changes", None)
        return
    if directory is not None and session.info.pop("logged_changes", False):
        if not directory.batch_commits:  # else searches read it from memory; the follower commits
            directory.try_follow_changes(wait=0.0)


@event.listens_for(Session, "after_soft_rollback")
def _forget_changes(session: Session, _previous: Any) -> None:
    session.info.pop("changed_ids", None)
    session.info.pop("logged_changes", None)


class ChangeReads:
    """The last few change-log reads of this process, and the rows they named, keyed by the head they
    were read at: the search overlay, the map and the matching pool of one worker each catch up on the
    same changes, and now read them (and their rows) once instead of once each."""

    KEEP = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._found[key] = value
            self._found.move_to_end(key)
            while len(self._found) > self.KEEP:
                self._found.popitem(last=False)


class ChangeLogFollower(DirectoryBase):
    """The change log's reads and pruning, and the index follower (mixed into `Directory`)."""

    def head_seq(self) -> int:
        """The newest committed change-log number (0 for a store that never changed); read once per web
        request (see db.request_fact), together with the districts' version."""
        return self._revision_facts()[0]

    def _revision_facts(self) -> tuple[int, str, int]:
        """(change-log head, districts' version, pruned-through mark): what every cache a request
        consults keys on, read in one session (one connection checkout) once per web request."""
        return request_fact(self.engine, "revision", self._read_revision_facts)

    def _read_revision_facts(self) -> tuple[int, str, int]:
        started = time.monotonic()

        def meta(key: str) -> Any:
            return select(Meta.value).where(col(Meta.key) == key).scalar_subquery()

        facts = select(  # one statement, one round trip
            select(func.max(ChangeLog.seq)).scalar_subquery(),
            meta("districts"),
            meta("change_log_pruned_through"),
        )
        with read_session(self.engine) as session:
            high, districts, pruned_value = session.execute(facts).one()
        pruned = int(pruned_value) if pruned_value else 0
        head = self._head_from(high, lambda: pruned, started)
        return head, districts or "0", pruned

    def _read_head_seq(self) -> int:
        started = time.monotonic()
        with read_session(self.engine) as session:
            high = session.exec(select(func.max(ChangeLog.seq))).one()
        return self._head_from(high, self._read_pruned_through, started)

    def _head_from(self, high: int | None, pruned: Callable[[], int], read_at: float) -> int:
        # Pruning always keeps the newest entry, so the pruned mark only matters for an empty log.
        head = int(high) if high is not None else pruned()
        self._head_seen = (read_at, head)  # the follower uses it instead of asking again
        return head

    def _pruned_through(self) -> int:
        return self._revision_facts()[2]

    def _read_pruned_through(self) -> int:
        with read_session(self.engine) as session:
            meta = session.get(Meta, "change_log_pruned_through")
        return int(meta.value) if meta else 0

    def changes_since(self, seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        """(seq, listing id) of the changes after `seq`, oldest first; raises `ChangesPruned` when the
        log no longer reaches back that far (the caller must start over from the database). A whole
        read (no `limit`) is shared with this process's other readers at the same head."""
        if seq < self._pruned_through():
            raise ChangesPruned(seq)
        head = self._shared_head()
        key = ("changes", seq, head) if limit is None and head is not None else None
        found: list[tuple[int, str]] | None = self._change_reads.get(key) if key else None
        if found is not None:
            return list(found)
        with read_session(self.engine) as session:
            statement = (
                select(ChangeLog.seq, ChangeLog.listing_id)
                .where(col(ChangeLog.seq) > seq)
                .order_by(col(ChangeLog.seq))
            )
            if limit is not None:
                statement = statement.limit(limit)
            changes: list[tuple[int, str]] = []
            for seq_no, listing_id in session.exec(statement).all():
                assert seq_no is not None  # a stored entry has its number
                changes.append((int(seq_no), listing_id))
        if key is not None and len(changes) <= BULK_REINDEX_THRESHOLD:
            self._change_reads.put(key, tuple(changes))
        return changes

    def _shared_head(self) -> int | None:
        """The head a web request already read (its change reads are shared with the other caches of
        the process that read at that head); None outside a request, where it would cost a read."""
        return self.head_seq() if in_request() else None

    def changed_rows(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored rows (any status) of changed listings, by id; missing ones left out. Inside a
        request, shared with this process's other readers of the same listings at the same head (the
        rows are read after the head, so they are at least that new)."""
        head = self._shared_head() if len(ids) <= RECENT_LIMIT else None
        key = ("rows", head, tuple(ids)) if head is not None else None
        found: dict[str, dict[str, Any]] | None = self._change_reads.get(key) if key else None
        if found is None:
            found = {x["id"]: x for x in self.get_many(ids, include_unpublished=True)}
            if key is not None:
                self._change_reads.put(key, found)
        return found

    def changed_published(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The published ones of `changed_rows(ids)`, in the order of `ids`."""
        rows = self.changed_rows(ids)
        return [rows[i] for i in ids if i in rows and rows[i]["status"] == "published"]

    def prune_change_log(self, keep_days: int | None = None) -> int:
        """Drop change-log entries older than RESDB_CHANGE_LOG_DAYS (the newest one always stays); a host
        whose index is older than what remains rebuilds from the database. Returns entries removed."""
        days = (
            keep_days
            if keep_days is not None
            else int(config.setting("RESDB_CHANGE_LOG_DAYS") or 14)
        )
        cutoff = utcnow() - timedelta(days=days)
        with self._writing() as session:
            newest = session.exec(select(func.max(ChangeLog.seq))).one()
            high = session.exec(
                select(func.max(ChangeLog.seq)).where(col(ChangeLog.at) < cutoff)
            ).one()
            if high is None or newest is None:
                return 0
            high = min(int(high), int(newest) - 1)
            if high <= 0:
                return 0
            removed = session.exec(delete(ChangeLog).where(col(ChangeLog.seq) <= high)).rowcount
            meta = session.get(Meta, "change_log_pruned_through")
            if meta is None:
                session.add(Meta(key="change_log_pruned_through", value=str(high)))
            elif int(meta.value) < high:
                meta.value = str(high)
        return int(removed or 0)

    def store_id(self) -> str:
        """A random name of this database, made on first use: a host snapshot written from another
        database (a re-created one, a test's) never passes for this one's."""
        return self.meta_once("store_id", lambda: uuid.uuid4().hex)

    def change_stamp(self, seq: int) -> str | None:
        """What identifies change `seq` of this database (store id, number, listing, time): a host
        snapshot records the stamp of the change it reflects and is reused only while the database
        still holds that very change (not after a restore, a re-creation or pruning). None when the
        change is not in the log."""
        if seq <= 0:
            return f"{self.store_id()}:0" if self._pruned_through() == 0 else None
        with read_session(self.engine) as session:
            entry = session.get(ChangeLog, seq)
        if entry is None:
            return None
        return f"{self.store_id()}:{seq}:{entry.listing_id}:{entry.at.isoformat()}"

    def revision(self) -> str:
        """What derived caches key on: the change-log head and the districts' version, read fresh on every
        call outside a web request and once per request inside one (indexed reads; a commit in the
        request forgets them), so no cache answers from before the last committed change."""
        return f"{self.head_seq()}/{self.districts_version()}"

    def iter_published(
        self, batch: int = 5000, *, public: bool = False
    ) -> Iterable[dict[str, Any]]:
        """Every published listing in id order; `public` shows private hosts at their 町字 only. Plain
        column reads (no ORM objects), a page of `batch` rows per query, keyed on the id."""
        table = Listing.__table__  # type: ignore[attr-defined]
        columns = [table.c[name] for name in PUBLIC_FIELDS]
        last = ""
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    select(*columns)
                    # status wrapped so no planner takes the status index (then sorts every published
                    # row, for every page: quadratic); each page walks the primary key from `last`.
                    .where(func.coalesce(table.c.status, "") == "published", table.c.id > last)
                    .order_by(table.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            gazetteer = self.gazetteer() if public else None
            for row in rows:
                listing = public_dict(dict(zip(PUBLIC_FIELDS, row, strict=True)))
                yield self.public_view(listing, gazetteer) if public else listing
            last = rows[-1][PUBLIC_FIELDS.index("id")]

    def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the search index from the database (the truth) beside the live one, then catch up
        with what changed meanwhile. One rebuild at a time per host; a second caller waits for it."""
        with self.index.rebuild_lock.hold(wait=3600.0):
            high = (
                self.head_seq()
            )  # read before the rows: whatever commits later is applied after the swap
            count = self.index.rebuild(self.iter_published(public=True), high, progress)
        self.follow_changes(wait=600.0)
        return count

    def rebuild_in_background(self) -> bool:
        """Start a rebuild in a thread of this process unless one runs on this host (for a backlog too
        large to apply inside a request); requests keep answering from the live index meanwhile."""
        if self.index.rebuild_lock.busy() or (
            self._rebuilder is not None and self._rebuilder.is_alive()
        ):
            return False

        def run() -> None:
            try:
                self.reindex()
            except Exception:
                log.warning("background index rebuild failed", exc_info=True)

        self._rebuilder = self.background.start("resdb-reindex", run)
        return self._rebuilder is not None

    def follow_changes(
        self,
        wait: float = 1.0,
        *,
        rebuild_inline: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> bool:
        """Apply the committed changes this host's index has not seen, oldest first, until it is at the
        head of the change log. Returns True when the index is current. One applier per host at a time
        (a file lock); another caller waits up to `wait` seconds for it, then answers from the index as
        it is. A backlog larger than BULK_REINDEX_THRESHOLD is rebuilt instead: inline for the CLI and
        start-up (`rebuild_inline`, default: when this process is not serving requests), in a background
        thread otherwise, never in a request."""
        if rebuild_inline is None:
            rebuild_inline = not self.serving
        head, _districts, pruned = self._revision_facts()  # one read outside a request too
        cursor = self.index.cursor()
        if cursor is not None and cursor >= head:
            return True
        if cursor is None or cursor < pruned or head - cursor > BULK_REINDEX_THRESHOLD:
            if rebuild_inline:
                self.reindex(progress)
                return True
            self.rebuild_in_background()
            return False
        with self.index.apply_lock.hold(wait) as got:
            if not got:
                return False
            while True:
                cursor = self.index.cursor()
                if cursor is None:
                    return False
                try:
                    changes = self.changes_since(cursor, limit=APPLY_BATCH)
                except ChangesPruned:
                    break
                if not changes:
                    return True
                self._apply_changes(changes)
        if rebuild_inline:
            self.reindex(progress)
            return True
        self.rebuild_in_background()
        return False

    def start_follower(self, interval: float, commit_after: float = 0.0) -> threading.Event | None:
        """Check the change log every `interval` seconds in a daemon thread and apply what this host's
        index has not seen (never waiting for another worker that is applying): a search then seldom
        pays for applying another host's edit. With `commit_after` > 0 changes are committed to whoosh
        in batches, once the oldest waiting one is that many seconds old (or COMMIT_BATCH wait), and
        searches read the newer ones from memory meanwhile (`current_changes`). Requests still check
        the head themselves, so no answer comes from before the last committed change. Returns the
        event that stops it (None when `interval` is 0)."""
        if interval <= 0:
            return None
        stop = threading.Event()
        self.batch_commits = commit_after > 0

        # Batches are written every `commit_after` seconds, so the head needs reading only a tenth
        # as often (requests read it anyway; searches never wait for the follower).
        head_age = max(interval, commit_after / 10)

        def run() -> None:
            behind_since: float | None = None
            tried_at = float("-inf")
            while not stop.wait(interval) and not self.background.stopping.is_set():
                if not self.batch_commits:
                    self.try_follow_changes(wait=0.0)
                    continue
                try:
                    cursor = self.index.cursor()
                    backlog = None if cursor is None else self._recent_head(head_age) - cursor
                except Exception:
                    log.warning("change log follower could not read the log", exc_info=True)
                    continue
                if backlog is not None and backlog <= 0:
                    behind_since = None
                    continue
                now = time.monotonic()
                behind_since = behind_since if behind_since is not None else now
                due = now - behind_since >= commit_after
                if (backlog is None or backlog >= COMMIT_BATCH or due) and now - tried_at >= min(
                    1.0, commit_after
                ):
                    # Done, or not done because another worker of the host holds the apply lock
                    # (it writes this batch for all) or the write failed: either way the next try
                    # is a batch later, not at every poll (each try reads the log's facts).
                    self.try_follow_changes(wait=0.0)
                    behind_since, tried_at = None, now

        self.background.start("resdb-follow", run)
        return stop

    def _recent_head(self, max_age: float) -> int:
        """The head as this process read it at most `max_age` seconds ago (requests read it all the time
        when the host is busy), else read now: a busy worker's follower adds no query of its own."""
        read_at, head = self._head_seen
        if time.monotonic() - read_at < max_age:
            return head
        return self._read_head_seq()

    def current_changes(self) -> RecentChanges | None:
        """What a search must see beyond the committed index: None when the index was brought up to the
        head (the default, or a backlog too large to hold in memory), else the changes after its
        cursor held in this process's memory (`batch_commits`). Reads the head once per request."""
        if not self.batch_commits:
            self.try_follow_changes()
            return None
        head = self.head_seq()
        cursor = self.index.cursor()
        if cursor is None or head - cursor > RECENT_LIMIT:
            self.try_follow_changes()
            cursor = self.index.cursor()
            if cursor is None or cursor >= head:
                return None
            if head - cursor > BULK_REINDEX_THRESHOLD:
                # Being rebuilt in the background: answer from the index as it is (the search says
                # how many changes it has not seen) rather than read thousands of rows per worker.
                return None
        recent = self._recent
        with recent.lock:
            recent.rebase(cursor)
            if recent.seen < head:
                try:
                    changes = self.changes_since(recent.seen)
                except ChangesPruned:
                    self.try_follow_changes()
                    return None
                recent.add(changes, self._changed_docs(sorted({i for _, i in changes})))
        return recent

    def try_follow_changes(self, wait: float = 1.0) -> bool:
        """`follow_changes` that never raises (the database has committed; a failing index update is
        logged, and the change stays in the log for the next try)."""
        try:
            return self.follow_changes(wait)
        except Exception:
            log.warning(
                "search index update failed; the change stays in the change log", exc_info=True
            )
            return False

    def _apply_changes(self, changes: list[tuple[int, str]]) -> None:
        """Apply one batch of change-log entries to the index (the caller holds the apply lock)."""
        docs = self._changed_docs(sorted({listing_id for _, listing_id in changes}))
        upserts = [doc for doc in docs.values() if doc is not None]
        deletes = [listing_id for listing_id, doc in docs.items() if doc is None]
        problems = self.index.apply(upserts, deletes, changes[-1][0])
        for listing_id, reason in problems.items():
            log.warning("listing %s left out of the search index: %s", listing_id, reason)

    def _changed_docs(self, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """The public document of each changed listing, in the order of `ids` (None: deleted or not
        published)."""
        published = {x["id"]: x for x in self.changed_published(ids)}
        return {i: self.public_view(published[i]) if i in published else None for i in ids}

    def index_problems(self) -> dict[str, str]:
        """Listings the search index could not hold (reported by `resdb check` and the editor)."""
        return self.index.problems()
