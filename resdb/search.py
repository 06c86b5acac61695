"""The full-text index (the only module that imports whoosh): Japanese n-gram postings and filter
columns stored by whoosh, queries evaluated as numpy set algebra over them; the index is derived from
the database, rebuilt atomically and checked at start-up."""

from __future__ import annotations

import math
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process
from whoosh import index as whoosh_index
from whoosh.analysis import Token, Tokenizer
from whoosh.fields import ID, KEYWORD, NUMERIC, TEXT, Schema

from resdb import schedule as schedule_mod
from resdb.queryterms import expansions_of, intents_of, split_place_names
from resdb.textnorm import ngrams, normalize, query_grams, words
from resdb.travel import bbox_around
from resdb.vocab import HIDDEN_IN_SEARCH_KINDS

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
_QUERY_OPERATORS = {"and", "or", "not"}
_NUMERIC_FIELDS = ("lat", "lon", "cost")


class GramTokenizer(Tokenizer):
    """N-grams of the normalized text (finds words inside compounds; kana/width/variant-blind)."""

    def __init__(self, sizes: tuple[int, ...] = (1, 2)) -> None:
        self.sizes = sizes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GramTokenizer) and other.sizes == self.sizes

    def __call__(  # type: ignore[override]
        self, value: str, positions: bool = False, chars: bool = False, keeporiginal: bool = False,
        removestops: bool = True, start_pos: int = 0, start_char: int = 0, mode: str = "", **kwargs: Any,
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
        "body": " ".join(filter(None, [doc.get("description"), doc.get("operator"), doc.get("venue"),
                                       doc.get("district"), doc.get("address")])),
        "kind": doc.get("kind") or "other",
        "targets": " ".join(doc.get("targets") or []),
        "days": " ".join(schedule_mod.weekday_terms(doc.get("schedule") or [])),
        "flags": " ".join(flags),
        "municipality": doc.get("municipality_code") or "",
        "name_norm": normalize(doc.get("name")) or " ",
        "cost": int(cost) + 1 if cost is not None else 0,
        "lat": round(float(lat) * MICRO) if lat is not None else 0,
        "lon": round(float(lon) * MICRO) if lon is not None else 0,
    }


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


def _decode_postings(reader: Any, field_name: str, term: str) -> np.ndarray:
    """Every document number holding `term` (deleted ones included: callers mask with `live`), decoded a
    whole block at a time per segment with numpy (the generic matcher walks one posting per call, ~2× slower)."""
    parts: list[np.ndarray] = []
    for leaf, offset in reader.leaf_readers():
        try:
            matcher = leaf.postings(field_name, term)
        except Exception:  # whoosh raises TermNotFound for absent terms
            continue
        try:
            while not matcher._atend:
                if matcher._data is None:
                    matcher._read_data()
                raw = np.asarray(matcher._data[0], dtype=np.int64)
                parts.append((raw if matcher._byteids else np.cumsum(raw)) + offset)  # ids are delta-coded
                matcher._next_block()
        except AttributeError:  # a matcher without whoosh3 blocks: the generic walk
            parts.append(np.fromiter(leaf.postings(field_name, term).all_ids(), dtype=np.int64) + offset)
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class _Snapshot:
    """Per-generation arrays over every document number: live mask, ids, coordinates, cost, names,
    and a cache of decoded posting lists. Built from whoosh columns; rebuilt when the index changes."""

    def __init__(self, searcher: Any) -> None:
        self.searcher = searcher
        reader = searcher.reader()
        self.size = reader.doc_count_all()
        live = np.ones(self.size, dtype=bool)
        if reader.has_deletions():
            live[:] = False
            live[np.fromiter(reader.all_doc_ids(), dtype=np.int64, count=-1)] = True
        self.live = live
        empty = self.size == 0  # an empty index has no columns at all
        self.ids: list[str] = [] if empty else list(reader.column_reader("id"))
        self.names: list[str] = [] if empty else list(reader.column_reader("name_norm"))
        columns = {
            name: np.zeros(0) if empty else np.fromiter(reader.column_reader(name), dtype=np.float64, count=self.size)
            for name in _NUMERIC_FIELDS
        }
        self.lat, self.lon = columns["lat"] / MICRO, columns["lon"] / MICRO
        self.cost = columns["cost"] - 1  # -1 = unknown
        self.name_len = np.fromiter((len(n) for n in self.names), dtype=np.float64, count=self.size)
        self._postings: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def postings(self, field_name: str, term: str) -> np.ndarray:
        key = (field_name, term)
        with self._lock:
            cached = self._postings.get(key)
            if cached is not None:
                self._postings.move_to_end(key)
                return cached
        docnums = _decode_postings(self.searcher.reader(), field_name, term)
        with self._lock:
            self._postings[key] = docnums
            if len(self._postings) > POSTINGS_CACHE:
                self._postings.popitem(last=False)
        return docnums

    def mask_of(self, field_name: str, terms: Iterable[str]) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        for term in terms:
            mask[self.postings(field_name, term)] = True
        return mask


def combine_word_evidence(exact: np.ndarray, other: np.ndarray) -> np.ndarray:
    """One word's score from its exact-hit weight and other evidence (see SearchIndex._word_scores)."""
    capped = EXPANDED_TIER * np.minimum(other, 1.0)
    return np.where(exact > 0, exact + 0.5 * capped, capped).astype(np.float32)


class SearchIndex:
    """A whoosh index under `root`; `root/current` is a symlink swapped atomically on rebuild."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._ix: Any = None
        self._ix_target: str | None = None
        self._snapshot: _Snapshot | None = None

    # -- opening and health ------------------------------------------------------------------
    @property
    def current(self) -> Path:
        return self.root / "current"

    def _open(self) -> Any:
        target = os.readlink(self.current) if self.current.is_symlink() else None
        if self._ix is None or target != self._ix_target:
            if target is None or not whoosh_index.exists_in(str(self.current)):
                raise IndexUnhealthy("索引がありません")
            self._drop_snapshot()
            ix = whoosh_index.open_dir(str(self.current))
            if set(ix.schema.names()) != set(_schema().names()):  # built by an older version (e.g. no `place`)
                ix.close()
                raise IndexUnhealthy("索引の形式が古いため作り直します")
            self._ix = ix
            self._ix_target = target
        return self._ix

    def _drop_snapshot(self) -> None:
        if self._snapshot is not None:
            self._snapshot.searcher.close()
            self._snapshot = None

    def snapshot(self) -> _Snapshot:
        with self._lock:
            ix = self._open()
            snap = self._snapshot
            if snap is None:
                self._snapshot = _Snapshot(ix.searcher())
            elif not snap.searcher.up_to_date():
                # refresh() reuses (and owns) the old reader's unchanged segments: do not close it here
                self._snapshot = _Snapshot(snap.searcher.refresh())
            return self._snapshot

    def doc_count(self) -> int:
        return int(self.snapshot().live.sum())

    def check(self, expected_count: int) -> None:
        """Raise IndexUnhealthy unless the index opens, reads and holds `expected_count` documents."""
        try:
            snap = self.snapshot()
            count = int(snap.live.sum())
            if count and len(snap.ids) != snap.size:
                raise IndexUnhealthy("索引の列が壊れています")
        except IndexUnhealthy:
            raise
        except Exception as exc:  # any whoosh/IO failure means a damaged index
            self.close()
            raise IndexUnhealthy(f"索引を読めません: {exc}") from exc
        if count != expected_count:
            raise IndexUnhealthy(f"索引の件数 {count} がデータベースの {expected_count} と一致しません")

    def close(self) -> None:
        with self._lock:
            self._drop_snapshot()
            if self._ix is not None:
                self._ix.close()
            self._ix = None
            self._ix_target = None

    # -- writing -----------------------------------------------------------------------------
    def rebuild(self, docs: Iterable[dict[str, Any]], progress: Callable[[int], None] | None = None) -> int:
        """Build a fresh index beside the current one and swap it in atomically."""
        build_dir = self.root / f"build-{uuid.uuid4().hex[:12]}"
        build_dir.mkdir()
        try:
            ix = whoosh_index.create_in(str(build_dir), _schema())
            writer = ix.writer(limitmb=256)
            count = 0
            for doc in docs:
                writer.add_document(**listing_fields(doc))
                count += 1
                if progress and count % 500 == 0:
                    progress(500)
            writer.commit()
            ix.close()
            if progress:
                progress(count % 500)
            link_tmp = self.root / f"link-{uuid.uuid4().hex[:12]}"
            os.symlink(build_dir.name, link_tmp)
            old_target = os.readlink(self.current) if self.current.is_symlink() else None
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
                shutil.rmtree(stale, ignore_errors=True)  # an interrupted earlier build, never the live one
        self.close()
        return count

    def apply(self, upserts: Iterable[dict[str, Any]], deletes: Iterable[str]) -> None:
        """Bring single documents in step after a database commit."""
        with self._lock:
            ix = self._open()
            writer = ix.writer(timeout=30.0)
            try:
                for listing_id in deletes:
                    writer.delete_by_term("id", listing_id)
                for doc in upserts:
                    writer.update_document(**listing_fields(doc))
            except BaseException:
                writer.cancel()
                raise
            writer.commit()

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
            best *= math.log(1.0 + snap.size / count)
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
                    value = weight if term_weight >= 1.0 else term_weight * (0.5 + 0.5 * weight / top_weight)
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
            terms = {w for w in query.weekdays} | {f"{w}#{n}" for w in query.weekdays for n in range(1, 6)}
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
            box = near_box if box is None else (max(box[0], near_box[0]), max(box[1], near_box[1]),
                                                min(box[2], near_box[2]), min(box[3], near_box[3]))
        if box is not None:
            mask &= snap.mask_of("flags", ["point"])
            mask &= (snap.lon >= box[0]) & (snap.lon <= box[2]) & (snap.lat >= box[1]) & (snap.lat <= box[3])
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
        a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        return 2 * 6371.0088 * np.arcsin(np.minimum(1.0, np.sqrt(a)))

    def _fuzzy(self, snap: _Snapshot, text: str, allowed: np.ndarray, exclude: set[int], want: int) -> list[tuple[int, float]]:
        """Names close to the query (typos), by rapidfuzz over every indexed name."""
        needle = "".join(self.query_words(text))
        if len(needle) < 3 or want <= 0:
            return []
        matches = process.extract(needle, snap.names, scorer=fuzz.WRatio, score_cutoff=FUZZY_CUTOFF,
                                  limit=want + len(exclude) + 20)
        found = []
        for _name, score, docnum in matches:
            if allowed[docnum] and docnum not in exclude:
                found.append((docnum, float(score)))
        return found[:want]

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
        want = (query.offset + query.limit) if query.limit is not None else total
        if score is not None:
            order_key = -score[docs].astype(np.float64)
            if distances is not None:
                order_key = order_key + distances * 1e-6  # nearer first among equal scores
        elif distances is not None:
            order_key = distances
        else:
            order_key = np.asarray(snap.name_len[docs])  # stable, short names first
        if want < len(docs):
            top = np.argpartition(order_key, want)[:want]
            top = top[np.argsort(order_key[top], kind="stable")]
        else:
            top = np.argsort(order_key, kind="stable")
        picked = [(int(docs[i]), float(score[docs[i]]) if score is not None else 0.0,
                   float(distances[i]) if distances is not None else None) for i in top]
        hits = [Hit(snap.ids[d], s, dist) for d, s, dist in picked]
        fuzzy_used = False
        if terms and len(hits) < want:
            exclude = {d for d, _, _ in picked}
            for docnum, fscore in self._fuzzy(snap, query.q, allowed, exclude, want - len(hits)):
                distance = None
                if query.near is not None:
                    distance = float(self._distances(snap, np.array([docnum]), *query.near)[0])
                    if query.radius_km is not None and distance > query.radius_km:
                        continue
                hits.append(Hit(snap.ids[docnum], fscore / 100.0, distance, fuzzy=True))
                fuzzy_used = True
                total += 1
        page = hits[query.offset : query.offset + query.limit] if query.limit is not None else hits[query.offset :]
        return SearchResult(page, total, fuzzy_used, terms)
