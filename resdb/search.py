"""The full-text index (the only module that imports whoosh): Japanese n-gram postings and filter
columns stored by whoosh, queries evaluated as numpy set algebra over them; the index is derived from
the database, rebuilt atomically and checked at start-up."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process
from whoosh import index as whoosh_index
from whoosh.analysis import Token, Tokenizer
from whoosh.fields import ID, KEYWORD, NUMERIC, TEXT, Schema

from resdb.domain import schedule as schedule_mod
from resdb.domain.textnorm import ngrams, normalize, query_grams, words
from resdb.domain.travel import bbox_around
from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS
from resdb.queryterms import expansions_of, intents_of, split_place_names

# Field weights: a hit in the name (or its reading) ranks above activities, then the description. `place` holds
# the 町字/地区 names cut out of the name (bigrams only: 「畑」 does not match 江畑町, 「江畑」 does).
FIELD_WEIGHTS: dict[str, float] = {"name": 6.0, "place": 6.0, "act": 2.0, "body": 1.0}
# Score tiers of one query word: a listing containing the word itself scores FIELD_WEIGHTS (≥ 1); one found only
# through a synonym, expansion, intent or vocabulary label scores at most EXPANDED_TIER (× its weight), so that
# even after the name-length factor of the ordering (at most ×2) an exact hit always ranks first.
EXPANDED_TIER = 0.5
VOCAB_FIELDS: dict[str, str] = {"kind": "kind", "target": "targets"}
FUZZY_CUTOFF = 80.0
POSTINGS_CACHE = 4096
MICRO = 1_000_000
# Coordinates are stored shifted into unsigned range (micro-degrees + offset), so every point on Earth fits.
LAT_OFFSET = 90.0
LON_OFFSET = 180.0
COST_CEILING = 2**32 - 2  # the cost column's largest value (+1 is stored; 0 = unknown)
# Written into each built folder; an index of another format is rebuilt at start-up.
INDEX_FORMAT = "3"
MERGE_AT_SEGMENTS = 10
# Typo matches (fuzzy names) are added when exact hits are this few, whatever page is asked for.
FUZZY_WHEN_FEWER = 10
_QUERY_OPERATORS = {"and", "or", "not"}
_NUMERIC_FIELDS = ("lat", "lon", "cost")


class GramTokenizer(Tokenizer):
    """N-grams of the normalized text (finds words inside compounds; kana/width/variant-blind)."""

    def __init__(self, sizes: tuple[int, ...] = (1, 2)) -> None:
        self.sizes = sizes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GramTokenizer) and other.sizes == self.sizes

    def __call__(  # type: ignore[override]
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        mode: str = "",
        **kwargs: Any,
    ):
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for gram, pos in ngrams(value, self.sizes):
            token.text = gram
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = start_pos + pos
            if chars:
                token.startchar = start_char + pos
                token.endchar = start_char + pos + len(gram)
            yield token


def _schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True, sortable=True),
        name=TEXT(analyzer=GramTokenizer((1, 2)), phrase=False),
        place=TEXT(analyzer=GramTokenizer((2,)), phrase=False),
        act=TEXT(analyzer=GramTokenizer((2,)), phrase=False),
        body=TEXT(analyzer=GramTokenizer((2,)), phrase=False),
        kind=ID,
        targets=KEYWORD,
        days=KEYWORD,
        flags=KEYWORD,
        municipality=ID,
        name_norm=ID(sortable=True),
        # Columns hold unsigned integers (whoosh float columns are unreliable): cost + 1 (0 = unknown)
        # and coordinates in micro-degrees.
        cost=NUMERIC(int, bits=32, signed=False, sortable=True, default=0),
        lat=NUMERIC(int, bits=32, signed=False, sortable=True, default=0),
        lon=NUMERIC(int, bits=32, signed=False, sortable=True, default=0),
    )


def listing_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """Index fields of one listing (contract-shaped dict)."""
    cost = doc.get("cost_yen")
    lat, lon = doc.get("lat"), doc.get("lon")
    flags = [name for name in ("barrier_free", "pickup") if doc.get(name)]
    if doc.get("is_sample"):
        flags.append("sample")
    if lat is not None and lon is not None:
        flags.append("point")
    name, places = split_place_names(doc.get("name"), doc.get("municipality_code"))
    return {
        "id": doc["id"],
        "name": " ".join(filter(None, [name, doc.get("name_kana")])),
        "place": places,
        "act": " ".join(doc.get("activities") or []),
        "body": " ".join(
            filter(
                None,
                [
                    doc.get("description"),
                    doc.get("operator"),
                    doc.get("venue"),
                    doc.get("district"),
                    doc.get("address"),
                ],
            )
        ),
        "kind": doc.get("kind") or "other",
        "targets": " ".join(doc.get("targets") or []),
        "days": " ".join(schedule_mod.weekday_terms(doc.get("schedule") or [])),
        "flags": " ".join(flags),
        "municipality": doc.get("municipality_code") or "",
        "name_norm": normalize(doc.get("name")) or " ",
        "cost": _cost_column(cost),
        "lat": round((float(lat) + LAT_OFFSET) * MICRO) if lat is not None else 0,
        "lon": round((float(lon) + LON_OFFSET) * MICRO) if lon is not None else 0,
    }


def _cost_column(cost: Any) -> int:
    """cost + 1 (0 = unknown); an out-of-range cost is left as is for `_check_fields` to report."""
    if cost is None:
        return 0
    try:
        return int(cost) + 1
    except (TypeError, ValueError):
        return -1


@dataclass
class SearchQuery:
    """What a resident, coordinator or script asks for; every field optional."""

    q: str = ""
    kinds: Sequence[str] = ()
    targets: Sequence[str] = ()
    weekdays: Sequence[str] = ()
    open_on: Sequence[date] = ()  # any of these days (今日 = [today], 今週 = next 7 days)
    max_cost: int | None = None  # 0 = free only
    barrier_free: bool = False
    pickup: bool = False
    municipality_code: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat
    near: tuple[float, float] | None = None  # lat, lon
    radius_km: float | None = None
    ids: Sequence[str] | None = None
    include_venues: bool = False  # venues (buildings, kind `venue`) are left out unless asked for
    limit: int | None = 20
    offset: int = 0


@dataclass
class Hit:
    id: str
    score: float
    distance_km: float | None = None
    fuzzy: bool = False


@dataclass
class SearchResult:
    hits: list[Hit]
    total: int
    fuzzy_used: bool = False
    terms: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [hit.id for hit in self.hits]


def week_days(start: date, days: int = 7) -> list[date]:
    return [start + timedelta(days=i) for i in range(days)]


class IndexUnhealthy(Exception):
    """The index on disk cannot be trusted (missing, half-written or out of step)."""


def _decode_postings(leaf: Any, field_name: str, term: str) -> np.ndarray:
    """Every document number of one segment holding `term` (deleted ones included: callers mask with
    `live`), decoded a whole block at a time with numpy (the generic matcher walks one posting per call)."""
    try:
        matcher = leaf.postings(field_name, term)
    except Exception:  # whoosh raises TermNotFound for absent terms
        return _EMPTY
    parts: list[np.ndarray] = []
    try:
        while not matcher._atend:
            if matcher._data is None:
                matcher._read_data()
            raw = np.asarray(matcher._data[0], dtype=np.int64)
            parts.append(raw if matcher._byteids else np.cumsum(raw))  # ids are delta-coded
            matcher._next_block()
    except AttributeError:  # a matcher without whoosh3 blocks: the generic walk
        return np.fromiter(leaf.postings(field_name, term).all_ids(), dtype=np.int64)
    if not parts:
        return _EMPTY
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


_EMPTY = np.empty(0, dtype=np.int64)


def _tiebreak(listing_id: str) -> int:
    """A stable 63-bit number per listing id: the last key of the result order, the same on every
    worker and host (document numbers are not)."""
    return int.from_bytes(hashlib.blake2b(listing_id.encode(), digest_size=8).digest(), "big") >> 1


class _Segment:
    """What one whoosh segment holds, decoded once: segments never change after they are written (only
    their deletion sets do, and those are read from each new generation), so an edit costs the decoding
    of its own small segment, never the whole corpus."""

    def __init__(self, leaf: Any) -> None:
        self.reader = leaf  # used for decoding only: its deletion set may be stale, never read it
        self.size = leaf.doc_count_all()
        empty = self.size == 0
        self.ids: list[str] = [] if empty else list(leaf.column_reader("id"))
        self.names: list[str] = [] if empty else list(leaf.column_reader("name_norm"))
        columns = {
            name: np.zeros(0)
            if empty
            else np.fromiter(leaf.column_reader(name), dtype=np.float64, count=self.size)
            for name in _NUMERIC_FIELDS
        }
        self.lat = columns["lat"] / MICRO - LAT_OFFSET
        self.lon = columns["lon"] / MICRO - LON_OFFSET
        self.cost = columns["cost"] - 1  # -1 = unknown
        self.name_len = np.fromiter((len(n) for n in self.names), dtype=np.float64, count=self.size)
        self.tiebreak = np.fromiter(
            (_tiebreak(i) for i in self.ids), dtype=np.int64, count=self.size
        )
        self.postings: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()


class _SegmentCache:
    """Decoded segments (and one open reader each) by segment id, shared by the snapshots of one
    process; segments that left the index (merged away, or a rebuilt index) are dropped when a new
    snapshot no longer names them (readers close when the last snapshot using them goes)."""

    def __init__(self) -> None:
        self._segments: dict[str, _Segment] = {}
        self._lock = threading.Lock()

    def segments_for(self, ix: Any, toc_segments: list[Any], generation: int) -> list[_Segment]:
        from whoosh.reading import SegmentReader

        with self._lock:
            fresh: dict[str, _Segment] = {}
            for segment in toc_segments:
                key = segment.segment_id()
                fresh[key] = self._segments.get(key) or _Segment(
                    SegmentReader(ix.storage, ix.schema, segment, generation=generation)
                )
            self._segments = fresh
            return [fresh[segment.segment_id()] for segment in toc_segments]


class _Snapshot:
    """One index generation seen whole: live mask, ids, coordinates, cost and names over every document
    number, concatenated from the per-segment cache; posting lists decoded per segment on first use.
    Deletions are read from this generation's table of contents (a reader reused across generations,
    as whoosh's refresh() does, keeps stale deletions: edited listings would show twice)."""

    def __init__(self, ix: Any, generation: tuple[str | None, int], cache: _SegmentCache) -> None:
        self.generation = generation
        toc_segments = [
            seg for seg in ix._segments() if seg.doc_count_all()
        ]  # whoosh's table of contents
        self.segments = cache.segments_for(ix, toc_segments, generation[1])
        self.offsets: list[int] = []
        offset = 0
        live_parts = []
        for segment, seg in zip(toc_segments, self.segments, strict=True):
            self.offsets.append(offset)
            offset += seg.size
            part = np.ones(seg.size, dtype=bool)
            deleted = list(segment.deleted_docs())
            if deleted:
                part[np.asarray(deleted, dtype=np.int64)] = False
            live_parts.append(part)
        self.leaves: list[tuple[Any, int]] = [
            (seg.reader, off) for seg, off in zip(self.segments, self.offsets, strict=True)
        ]
        self.size = offset
        self.live = _concat(live_parts, bool)
        self.live_count = int(self.live.sum())
        self.ids: list[str] = [i for seg in self.segments for i in seg.ids]
        self.names: list[str] = [n for seg in self.segments for n in seg.names]
        self.lat = _concat([seg.lat for seg in self.segments], np.float64)
        self.lon = _concat([seg.lon for seg in self.segments], np.float64)
        self.cost = _concat([seg.cost for seg in self.segments], np.float64)
        self.name_len = _concat([seg.name_len for seg in self.segments], np.float64)
        self.tiebreak = _concat([seg.tiebreak for seg in self.segments], np.int64)
        self._lock = threading.Lock()

    @property
    def reader(self) -> Any:
        """A whoosh reader over this generation (for checks against whoosh's own walk)."""
        from whoosh.reading import MultiReader

        readers = [seg.reader for seg in self.segments]
        return readers[0] if len(readers) == 1 else MultiReader(readers)

    def postings(self, field_name: str, term: str) -> np.ndarray:
        key = (field_name, term)
        parts = []
        for seg, offset in zip(self.segments, self.offsets, strict=True):
            with self._lock:
                local = seg.postings.get(key)
                if local is not None:
                    seg.postings.move_to_end(key)
            if local is None:
                local = _decode_postings(seg.reader, field_name, term)
                with self._lock:
                    seg.postings[key] = local
                    if len(seg.postings) > POSTINGS_CACHE:
                        seg.postings.popitem(last=False)
            if len(local):
                parts.append(local + offset)
        return _concat(parts, np.int64)

    def mask_of(self, field_name: str, terms: Iterable[str]) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        for term in terms:
            mask[self.postings(field_name, term)] = True
        return mask


def _concat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


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


def _check_fields(fields: dict[str, Any]) -> str | None:
    """Why whoosh would refuse these fields (None when it will not): one bad value must never stop
    the index, so it is found before the writer sees it."""
    for name in _NUMERIC_FIELDS:
        value = fields[name]
        if not isinstance(value, int) or not 0 <= value < 2**32:
            return f"{name} の値 {value!r} は索引に入りません"
    for name, value in fields.items():
        if isinstance(value, str) and "\x00" in value:
            return f"{name} にNUL文字があります"
    return None


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


def combine_word_evidence(exact: np.ndarray, other: np.ndarray) -> np.ndarray:
    """One word's score from its exact-hit weight and other evidence (see SearchIndex._word_scores)."""
    capped = EXPANDED_TIER * np.minimum(other, 1.0)
    return np.where(exact > 0, exact + 0.5 * capped, capped).astype(np.float32)


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
            if snap is None or snap.generation != generation:
                snap = self._snapshot = _Snapshot(ix, generation, self._segments)
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
            if count and len(snap.ids) != snap.size:
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
        build_dir = self.root / f"build-{uuid.uuid4().hex[:12]}"
        build_dir.mkdir()
        try:
            ix = whoosh_index.create_in(str(build_dir), _schema())
            writer = ix.writer(limitmb=256)
            count = 0
            problems: dict[str, str] = {}
            for doc in docs:
                fields = listing_fields(doc)
                reason = _check_fields(fields)
                if reason:
                    problems[doc["id"]] = reason
                else:
                    writer.add_document(**fields)
                count += 1
                if progress and count % 500 == 0:
                    progress(500)
            writer.commit()
            ix.close()
            if progress:
                progress(count % 500)
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
            _write_text(
                self.root / target / "problems.json", json.dumps(problems, ensure_ascii=False)
            )
            if cursor is not None:
                _write_text(self.root / target / "cursor", str(cursor))
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
        shutil.copytree(source, build_dir)
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
        return [w for w in words(text) if w not in _QUERY_OPERATORS]

    @staticmethod
    def _variants(word: str) -> dict[str, float]:
        """{term: weight}: the word itself (1.0) and its synonyms and one-way expansions (less), by data."""
        return expansions_of(word)

    @staticmethod
    def _text_hits(snap: _Snapshot, term: str, field_name: str) -> np.ndarray:
        """Documents whose `field_name` holds every n-gram of `term`."""
        grams = query_grams(term)
        if not grams or (len(term) == 1 and field_name != "name"):
            return np.empty(0, dtype=np.int64)  # single characters are indexed in names only
        docs = snap.postings(field_name, grams[0])
        for gram in grams[1:]:
            if not len(docs):
                break
            docs = np.intersect1d(docs, snap.postings(field_name, gram), assume_unique=True)
        return docs

    def _word_scores(self, snap: _Snapshot, word: str) -> np.ndarray:
        """Per-document score of one query word, × idf. A document holding the word itself scores its best
        field's weight (≥ 1) plus half its other evidence; one found only through synonyms, expansions or
        vocabulary (kind, target) sums that evidence, capped at EXPANDED_TIER, so it always ranks below."""
        best = combine_word_evidence(*self._word_evidence(snap, word))
        matched = best > 0
        count = int(np.count_nonzero(matched & snap.live))
        if count:
            best *= math.log(1.0 + snap.live_count / count)
        return best

    def _word_evidence(self, snap: _Snapshot, word: str) -> tuple[np.ndarray, np.ndarray]:
        """(best exact field weight, summed other evidence) per document for one query word."""
        exact = np.zeros(snap.size, dtype=np.float32)
        other = np.zeros(snap.size, dtype=np.float32)
        top_weight = max(FIELD_WEIGHTS.values())
        for term, term_weight in self._variants(word).items():
            found = np.zeros(snap.size, dtype=np.float32)
            for field_name, weight in FIELD_WEIGHTS.items():
                docs = self._text_hits(snap, term, field_name)
                if len(docs):
                    value = (
                        weight
                        if term_weight >= 1.0
                        else term_weight * (0.5 + 0.5 * weight / top_weight)
                    )
                    np.maximum.at(found, docs, np.float32(value))
            if term_weight >= 1.0:
                exact = np.maximum(exact, found)
            else:
                other += found
        for intent in intents_of(word):
            field_name = VOCAB_FIELDS.get(intent.field)
            if field_name is not None:
                other[snap.postings(field_name, intent.value)] += np.float32(intent.weight)
        return exact, other

    def _filter_mask(self, snap: _Snapshot, query: SearchQuery) -> np.ndarray:
        mask = snap.live.copy()
        hidden = [k for k in HIDDEN_IN_SEARCH_KINDS if k not in query.kinds]
        if hidden and not query.include_venues and query.ids is None:
            mask &= ~snap.mask_of("kind", hidden)
        if query.kinds:
            mask &= snap.mask_of("kind", query.kinds)
        if query.targets:
            mask &= snap.mask_of("targets", query.targets)
        if query.weekdays:
            terms = {w for w in query.weekdays} | {
                f"{w}#{n}" for w in query.weekdays for n in range(1, 6)
            }
            mask &= snap.mask_of("days", terms)
        if query.open_on:
            mask &= snap.mask_of("days", schedule_mod.terms_for_days(list(query.open_on)))
        if query.max_cost is not None:
            mask &= (snap.cost >= 0) & (snap.cost <= query.max_cost)
        if query.barrier_free:
            mask &= snap.mask_of("flags", ["barrier_free"])
        if query.pickup:
            mask &= snap.mask_of("flags", ["pickup"])
        if query.municipality_code:
            mask &= snap.mask_of("municipality", [query.municipality_code])
        box = query.bbox
        if query.near and query.radius_km:
            near_box = bbox_around(query.near[0], query.near[1], query.radius_km)
            box = (
                near_box
                if box is None
                else (
                    max(box[0], near_box[0]),
                    max(box[1], near_box[1]),
                    min(box[2], near_box[2]),
                    min(box[3], near_box[3]),
                )
            )
        if box is not None:
            mask &= snap.mask_of("flags", ["point"])
            mask &= (
                (snap.lon >= box[0])
                & (snap.lon <= box[2])
                & (snap.lat >= box[1])
                & (snap.lat <= box[3])
            )
        if query.ids is not None:
            wanted = np.zeros(snap.size, dtype=bool)
            for listing_id in query.ids:
                wanted[snap.postings("id", listing_id)] = True
            mask &= wanted
        return mask

    @staticmethod
    def _distances(snap: _Snapshot, docs: np.ndarray, lat: float, lon: float) -> np.ndarray:
        lat1, lon1 = np.radians(lat), np.radians(lon)
        lat2, lon2 = np.radians(snap.lat[docs]), np.radians(snap.lon[docs])
        a = (
            np.sin((lat2 - lat1) / 2) ** 2
            + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * 6371.0088 * np.arcsin(np.minimum(1.0, np.sqrt(a)))

    def _fuzzy(
        self, snap: _Snapshot, text: str, allowed: np.ndarray, matched: np.ndarray
    ) -> list[tuple[int, float]]:
        """Every name close to the query (typos) among allowed, not already matched documents, by
        rapidfuzz over the indexed names; best first, ties in the stable listing order."""
        needle = "".join(self.query_words(text))
        if len(needle) < 3:
            return []
        found = [
            (docnum, float(score))
            for _name, score, docnum in process.extract(
                needle, snap.names, scorer=fuzz.WRatio, score_cutoff=FUZZY_CUTOFF, limit=None
            )
            if allowed[docnum] and not matched[docnum]
        ]
        found.sort(key=lambda item: (-item[1], int(snap.tiebreak[item[0]])))
        return found

    def search(self, query: SearchQuery) -> SearchResult:
        """Ranked ids for a query; user syntax never raises (quotes, brackets, AND, * are plain text)."""
        snap = self.snapshot()
        allowed = self._filter_mask(snap, query)
        terms = self.query_words(query.q)
        if terms:
            score = np.zeros(snap.size, dtype=np.float32)
            matched = allowed.copy()
            for word in terms:
                word_score = self._word_scores(snap, word)
                matched &= word_score > 0
                score += word_score
            # Among equal hits, shorter names (closer to the query) first.
            score = score * (1.0 + 1.0 / (1.0 + snap.name_len / 8.0)).astype(np.float32)
            docs = np.flatnonzero(matched)
        else:
            docs = np.flatnonzero(allowed)
            score = None
        distances = None
        if query.near is not None and len(docs):
            distances = self._distances(snap, docs, *query.near)
            if query.radius_km is not None:
                inside = distances <= query.radius_km
                docs, distances = docs[inside], distances[inside]
        total = int(len(docs))
        want = min(total, query.offset + query.limit) if query.limit is not None else total
        if score is not None:
            primary = -score[docs].astype(np.float64)
            if distances is not None:
                primary = primary + distances * 1e-6  # nearer first among equal scores
        elif distances is not None:
            primary = distances
        else:
            primary = np.asarray(snap.name_len[docs])  # short names first
        top = _first_in_order(primary, snap.tiebreak[docs], want)
        hits = [
            Hit(
                snap.ids[docs[i]],
                float(score[docs[i]]) if score is not None else 0.0,
                float(distances[i]) if distances is not None else None,
            )
            for i in top
        ]
        fuzzy_used = False
        if terms and total < FUZZY_WHEN_FEWER:
            # Counted whole whatever the page size, so `total` and the pager agree on every page.
            matched_mask = np.zeros(snap.size, dtype=bool)
            matched_mask[docs] = True
            for docnum, fscore in self._fuzzy(snap, query.q, allowed, matched_mask):
                distance = None
                if query.near is not None:
                    distance = float(self._distances(snap, np.array([docnum]), *query.near)[0])
                    if query.radius_km is not None and distance > query.radius_km:
                        continue
                hits.append(Hit(snap.ids[docnum], fscore / 100.0, distance, fuzzy=True))
                fuzzy_used = True
                total += 1
        page = (
            hits[query.offset : query.offset + query.limit]
            if query.limit is not None
            else hits[query.offset :]
        )
        return SearchResult(page, total, fuzzy_used, terms)


def _first_in_order(primary: np.ndarray, tiebreak: np.ndarray, want: int) -> np.ndarray:
    """Positions of the `want` first entries in the total order (primary, then tiebreak): the same
    answer whatever `want` is, so pages never repeat or drop a hit."""
    if want <= 0:
        return np.zeros(0, dtype=np.int64)
    if want < len(primary):
        kth = np.partition(primary, want - 1)[want - 1]
        candidates = np.flatnonzero(primary <= kth)  # every tie at the cut-off competes on tiebreak
    else:
        candidates = np.arange(len(primary))
    order = np.lexsort((tiebreak[candidates], primary[candidates]))
    return candidates[order][:want]
