"""The full-text index (whoosh is imported only inside this package): Japanese n-gram postings and
filter columns stored by whoosh, mirrored per segment into memory-mapped sidecar arrays and queried as
numpy set algebra; the index is derived from the database, rebuilt atomically and checked at start-up.
Modules: schema (fields, tokenizer), bulk (fast rebuild), sidecar (mapped arrays), segments
(snapshots), query (evaluation and order)."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index

from resdb.search.bulk import bulk_build
from resdb.search.query import (
    FUZZY_WHEN_FEWER,
    Hit,
    SearchQuery,
    SearchResult,
    _first_in_order,
    combine_word_evidence,
    query_words,
    run_search,
    week_days,
)
from resdb.search.recent import RecentChanges, RecentView
from resdb.search.schema import (
    EXPANDED_TIER,
    FIELD_WEIGHTS,
    GramTokenizer,
    _check_fields,
    _schema,
    _tiebreak,
    listing_fields,
)
from resdb.search.segments import _Segment, _SegmentCache, _Snapshot
from resdb.search.sidecar import remove_stale

__all__ = [
    "EXPANDED_TIER",
    "FIELD_WEIGHTS",
    "FUZZY_WHEN_FEWER",
    "INDEX_FORMAT",
    "GramTokenizer",
    "Hit",
    "IndexBuild",
    "IndexUnhealthy",
    "RecentChanges",
    "RecentView",
    "SearchIndex",
    "SearchQuery",
    "SearchResult",
    "_Segment",
    "_Snapshot",
    "_check_fields",
    "_first_in_order",
    "_tiebreak",
    "combine_word_evidence",
    "listing_fields",
    "week_days",
]

# Written into each built folder; an index of another format is rebuilt at start-up.
INDEX_FORMAT = "4"  # 4: columns-only name_norm/cost/lat/lon, id not stored
MERGE_AT_SEGMENTS = 10


class IndexUnhealthy(Exception):
    """The index on disk cannot be trusted (missing, half-written or out of step)."""


class _FileLock:
    """An inter-process lock on a file (flock): one applier, one rebuilder per host; each acquisition
    opens its own descriptor, so threads of one process exclude each other too."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def hold(self, wait: float) -> Iterator[bool]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + max(0.0, wait)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.01)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def busy(self) -> bool:
        with self.hold(0.0) as got:
            return not got


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _read_json(path: Path) -> dict[str, str]:
    text = _read_text(path)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _write_text(path: Path, text: str) -> None:
    """Write a small file atomically (a reader sees the old or the new content, never half)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


SNAPSHOT_ATTEMPTS = 5  # re-reads of the newest generation when a concurrent merge removed a segment


class SearchIndex:
    """A whoosh index under `root`; `root/current` is a symlink swapped atomically on rebuild. Each built
    folder records the last change-log sequence number applied to it (`cursor`) and the listings it
    could not hold (`problems.json`), so a copied folder carries its own position."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._ix: Any = None
        self._ix_target: str | None = None
        self._snapshot: _Snapshot | None = None
        self._segments = _SegmentCache()
        self.apply_lock = _FileLock(self.root / "apply.lock")
        self.rebuild_lock = _FileLock(self.root / "rebuild.lock")

    # -- opening and health ------------------------------------------------------------------
    @property
    def current(self) -> Path:
        return self.root / "current"

    def _target(self) -> str | None:
        try:
            return os.readlink(self.current)
        except OSError:
            return None

    def _open(self) -> Any:
        target = self._target()
        if self._ix is None or target != self._ix_target:
            if target is None or not whoosh_index.exists_in(str(self.current)):
                raise IndexUnhealthy("索引がありません")
            if _read_text(self.root / target / "format") != INDEX_FORMAT:
                raise IndexUnhealthy("索引の形式が古くなっています")
            self._snapshot = None
            ix = whoosh_index.open_dir(str(self.root / target))
            if set(ix.schema.names()) != set(
                _schema().names()
            ):  # built by an older version (e.g. no `place`)
                ix.close()
                raise IndexUnhealthy("索引の形式が古いため作り直します")
            self._ix = ix
            self._ix_target = target
        return self._ix

    def snapshot(self) -> _Snapshot:
        """The newest committed generation of the live index (a fresh reader when it moved)."""
        with self._lock:
            ix = self._open()
            generation = (self._ix_target, ix.latest_generation())
            snap = self._snapshot
            if snap is not None and snap.generation == generation:
                return snap
            attempt = 0
            while True:  # up to SNAPSHOT_ATTEMPTS reads
                try:
                    snap = _Snapshot(
                        ix, generation, self._segments, self.root / str(self._ix_target)
                    )
                    break
                except OSError:
                    # Another process committed meanwhile and merged away a segment (with its files
                    # and sidecar) that the generation read a moment ago still named: the newer
                    # generation no longer names it, so read again.
                    newer = (self._ix_target, ix.latest_generation())
                    if (newer == generation and attempt) or attempt == SNAPSHOT_ATTEMPTS - 1:
                        raise
                    generation = newer
                    attempt += 1
            self._snapshot = snap
            return snap

    def doc_count(self) -> int:
        return self.snapshot().live_count

    def cursor(self) -> int | None:
        """The last change-log sequence number applied to the live index (None: no usable index)."""
        target = self._target()
        if target is None:
            return None
        value = _read_text(self.root / target / "cursor")
        return int(value) if value and value.isdigit() else None

    def problems(self) -> dict[str, str]:
        """Listings the live index could not hold, by id, with the reason."""
        target = self._target()
        if target is None:
            return {}
        return _read_json(self.root / target / "problems.json")

    def check(self, expected_count: int) -> None:
        """Raise IndexUnhealthy unless the index opens, reads and holds `expected_count` documents."""
        try:
            snap = self.snapshot()
            count = snap.live_count
            if sum(seg.size for seg in snap.segments) != snap.size:
                raise IndexUnhealthy("索引の列が壊れています")
        except IndexUnhealthy:
            raise
        except Exception as exc:  # any whoosh/IO failure means a damaged index
            self.close()
            raise IndexUnhealthy(f"索引を読めません: {exc}") from exc
        if self.cursor() is None:
            raise IndexUnhealthy("索引の適用位置が記録されていません")
        skipped = len(self.problems())
        if count + skipped != expected_count:
            raise IndexUnhealthy(
                f"索引の件数 {count}（除外 {skipped}）がデータベースの {expected_count} と一致しません"
            )

    def close(self) -> None:
        with self._lock:
            self._snapshot = None
            if self._ix is not None:
                self._ix.close()
            self._ix = None
            self._ix_target = None

    # -- writing -----------------------------------------------------------------------------
    def rebuild(
        self,
        docs: Iterable[dict[str, Any]],
        cursor: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Build a fresh index beside the live one (which keeps answering) and swap it in atomically.
        `cursor` is the change-log position the documents reflect at least. One rebuild at a time per
        host: the caller holds `rebuild_lock`."""
        build_dir = self._new_build_dir()
        try:
            count, problems = bulk_build(build_dir, docs, _check_fields, progress)
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        return self._install_build(build_dir, count, problems, cursor)

    def start_build(self) -> IndexBuild:
        """A fresh index built in the background from documents fed to it as they come (`IndexBuild`):
        the live index keeps answering until `IndexBuild.finish` swaps it in. The caller holds
        `rebuild_lock` until then."""
        return IndexBuild(self, self._new_build_dir())

    def _new_build_dir(self) -> Path:
        build_dir = self.root / f"build-{uuid.uuid4().hex[:12]}"
        build_dir.mkdir()
        try:
            whoosh_index.create_in(str(build_dir), _schema()).close()
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        return build_dir

    def _install_build(
        self, build_dir: Path, count: int, problems: dict[str, str], cursor: int
    ) -> int:
        """Write a built folder's format, problems and cursor, then swap it in atomically (the old
        folder and any interrupted build are removed). Returns the documents it holds."""
        try:
            _write_text(build_dir / "format", INDEX_FORMAT)
            _write_text(build_dir / "problems.json", json.dumps(problems, ensure_ascii=False))
            _write_text(build_dir / "cursor", str(cursor))
            link_tmp = self.root / f"link-{uuid.uuid4().hex[:12]}"
            os.symlink(build_dir.name, link_tmp)
            with self.apply_lock.hold(wait=600.0):
                old_target = self._target()
                if self.current.exists() and not self.current.is_symlink():
                    shutil.rmtree(self.current)
                os.replace(link_tmp, self.current)
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        if old_target and old_target != build_dir.name:
            shutil.rmtree(self.root / old_target, ignore_errors=True)
        for stale in self.root.glob("build-*"):
            if stale.name != build_dir.name and stale.is_dir():
                shutil.rmtree(
                    stale, ignore_errors=True
                )  # an interrupted earlier build, never the live one
        self.close()
        return count - len(problems)

    def apply(
        self, upserts: Iterable[dict[str, Any]], deletes: Iterable[str], cursor: int | None = None
    ) -> dict[str, str]:
        """Bring single documents in step with the database up to change `cursor`; the caller holds
        `apply_lock`. A document whoosh cannot hold is left out and reported, never blocking the rest.
        Returns the problems found in this batch."""
        # Only the index handle is taken under the process's lock: this process's searches go on
        # reading the committed generation while whoosh writes (as they do while another worker of
        # the host commits), instead of queueing behind the write.
        with self._lock:
            ix = self._open()
            target = self._ix_target
        problems = self.problems()
        found: dict[str, str] = {}
        writer = ix.writer(timeout=30.0)
        try:
            for listing_id in deletes:
                writer.delete_by_term("id", listing_id)
                problems.pop(listing_id, None)
            for doc in upserts:
                fields = listing_fields(doc)
                reason = _check_fields(fields)
                if reason:
                    writer.delete_by_term("id", doc["id"])
                    problems[doc["id"]] = found[doc["id"]] = reason
                else:
                    writer.update_document(**fields)
                    problems.pop(doc["id"], None)
        except BaseException:
            writer.cancel()
            raise
        # Small segments are merged only once there are several: each edit then writes one tiny
        # segment instead of rewriting its neighbours (per-segment caches stay valid meanwhile).
        writer.commit(merge=len(ix._segments()) >= MERGE_AT_SEGMENTS)
        assert target is not None
        remove_stale(
            self.root / target,
            [seg.segment_id() for seg in ix._segments()],
        )
        _write_text(self.root / target / "problems.json", json.dumps(problems, ensure_ascii=False))
        if cursor is not None:
            _write_text(self.root / target / "cursor", str(cursor))
        # The sidecars of the segments this commit wrote or merged are built here, once, under the
        # apply lock; the other workers then map them instead of each building its own on a request.
        self.snapshot()
        return found

    def copy_to(self, destination: Path) -> int:
        """Copy the live index, with its cursor, into `destination` (a new folder) so another host can
        start from it; taken under the apply lock, so no change is half-written. Returns the cursor."""
        with self.apply_lock.hold(wait=600.0) as got:
            target = self._target()
            if not got or target is None:
                raise IndexUnhealthy("索引がありません")
            shutil.copytree(
                self.root / target, destination, ignore=shutil.ignore_patterns("*LOCK*")
            )
        cursor = _read_text(destination / "cursor")
        return int(cursor or 0)

    def install(self, source: Path) -> int:
        """Swap in an index copied from another host (`copy_to`); it then catches up from its own cursor.
        Refuses a folder that is not a whole index of this format. Returns its cursor."""
        source = Path(source)
        cursor = _read_text(source / "cursor")
        if (
            _read_text(source / "format") != INDEX_FORMAT
            or not (cursor and cursor.isdigit())
            or not whoosh_index.exists_in(str(source))
        ):
            raise IndexUnhealthy(
                f"{source} は resdb の索引の写しではありません（形式 {INDEX_FORMAT} と cursor が必要です）"
            )
        build_dir = self.root / f"build-{uuid.uuid4().hex[:12]}"
        # Host snapshots copied beside the index (see `resdb index copy`) are not part of it.
        shutil.copytree(source, build_dir, ignore=shutil.ignore_patterns("host-snapshots"))
        link_tmp = self.root / f"link-{uuid.uuid4().hex[:12]}"
        os.symlink(build_dir.name, link_tmp)
        with self.apply_lock.hold(wait=600.0):
            old_target = self._target()
            os.replace(link_tmp, self.current)
        if old_target and old_target != build_dir.name:
            shutil.rmtree(self.root / old_target, ignore_errors=True)
        self.close()
        return int(cursor)

    def set_cursor(self, cursor: int) -> None:
        """Record that changes up to `cursor` are applied (when a batch needed no index change)."""
        target = self._target()
        if target is not None:
            _write_text(self.root / target / "cursor", str(cursor))

    # -- querying ----------------------------------------------------------------------------
    @staticmethod
    def query_words(text: str) -> list[str]:
        return query_words(text)

    def search(self, query: SearchQuery, recent: RecentChanges | None = None) -> SearchResult:
        """Ranked ids for a query; user syntax never raises (quotes, brackets, AND, * are plain text).
        `recent`: changes after the index's cursor, held in memory, that the answer must reflect (read
        the cursor before calling: the generation searched is then at least that new)."""
        snap = self.snapshot()
        return run_search(snap if recent is None else recent.view(snap), query)


class IndexBuild:
    """A fresh index built in a thread of this process from documents fed to it batch by batch (the
    segments themselves are written by bulk_build's worker processes), so a bulk import indexes its
    rows while it writes the next ones. Nothing reaches the live index before `finish`; `abort` (or a
    crash) leaves only a build folder, removed by the next rebuild."""

    def __init__(self, index: SearchIndex, build_dir: Path) -> None:
        self._index = index
        self.build_dir = build_dir
        self._queue: queue.SimpleQueue[list[dict[str, Any]] | None] = queue.SimpleQueue()
        self._cancelled = False
        self._result: tuple[int, dict[str, str]] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="resdb-index-build", daemon=True)
        self._thread.start()

    def _docs(self) -> Iterator[dict[str, Any]]:
        while (batch := self._queue.get()) is not None:
            if self._cancelled:
                raise _BuildCancelled
            yield from batch
        if self._cancelled:
            raise _BuildCancelled

    def _run(self) -> None:
        try:
            self._result = bulk_build(self.build_dir, self._docs(), _check_fields, split_tail=True)
        except BaseException as error:  # handed to finish(); abort() expects the cancellation
            self._error = error

    def feed(self, docs: list[dict[str, Any]]) -> None:
        """Documents to index (listings as the public sees them, published ones only)."""
        if docs and self._thread.is_alive():
            self._queue.put(docs)

    def finish(self, cursor: int) -> int:
        """Wait for the build, then swap it in as the live index at change-log position `cursor`.
        Returns the documents it holds; raises (and removes the build) when the build failed."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None or self._result is None:
            shutil.rmtree(self.build_dir, ignore_errors=True)
            raise self._error or RuntimeError("index build ended without a result")
        count, problems = self._result
        return self._index._install_build(self.build_dir, count, problems, cursor)

    def abort(self) -> None:
        """Stop the build and remove its folder; the live index is untouched."""
        self._cancelled = True
        self._queue.put(None)
        self._thread.join()
        shutil.rmtree(self.build_dir, ignore_errors=True)


class _BuildCancelled(Exception):
    """An aborted `IndexBuild` stops reading documents."""
