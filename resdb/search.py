"""The full-text index (the only module that imports whoosh): Japanese n-gram search with filters,
derived from the database, rebuilt atomically and checked at start-up."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process
from whoosh import index as whoosh_index
from whoosh import query as Q
from whoosh.analysis import Token, Tokenizer
from whoosh.fields import BOOLEAN, ID, KEYWORD, NUMERIC, STORED, TEXT, Schema
from whoosh.scoring import BM25F

from resdb import schedule as schedule_mod
from resdb.textnorm import ngrams, normalize, query_grams, synonyms_of, words
from resdb.travel import bbox_around, haversine_km

# Field boosts: a hit in the name ranks above one in the reading, activities or description.
TEXT_FIELDS: dict[str, float] = {"name": 6.0, "kana": 4.0, "activities": 2.0, "body": 1.0, "place": 0.5}
FUZZY_CUTOFF = 80.0
_QUERY_OPERATORS = {"and", "or", "not"}


class GramTokenizer(Tokenizer):
    """Unigrams and bigrams of the normalized text (finds words inside compounds, kana/width-blind)."""

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
        for gram, pos in ngrams(value):
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
    analyzer = GramTokenizer()
    return Schema(
        id=ID(stored=True, unique=True),
        name=TEXT(analyzer=analyzer, field_boost=TEXT_FIELDS["name"], phrase=False),
        kana=TEXT(analyzer=analyzer, field_boost=TEXT_FIELDS["kana"], phrase=False),
        activities=TEXT(analyzer=analyzer, field_boost=TEXT_FIELDS["activities"], phrase=False),
        body=TEXT(analyzer=analyzer, field_boost=TEXT_FIELDS["body"], phrase=False),
        place=TEXT(analyzer=analyzer, field_boost=TEXT_FIELDS["place"], phrase=False),
        kind=ID,
        targets=KEYWORD,
        days=KEYWORD,
        municipality=ID,
        cost=NUMERIC(int, bits=32, signed=True),
        lat=NUMERIC(float, stored=True),
        lon=NUMERIC(float, stored=True),
        has_point=BOOLEAN,
        barrier_free=BOOLEAN,
        pickup=BOOLEAN,
        sample=BOOLEAN,
        name_norm=STORED,
    )


def listing_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """Index fields of one listing (contract-shaped dict)."""
    cost = doc.get("cost_yen")
    lat, lon = doc.get("lat"), doc.get("lon")
    eligibility_words = " ".join(doc.get("activities") or [])
    return {
        "id": doc["id"],
        "name": doc.get("name") or "",
        "kana": doc.get("name_kana") or "",
        "activities": eligibility_words,
        "body": " ".join(filter(None, [doc.get("description"), doc.get("operator")])),
        "place": " ".join(filter(None, [doc.get("venue"), doc.get("district"), doc.get("address")])),
        "kind": doc.get("kind") or "other",
        "targets": " ".join(doc.get("targets") or []),
        "days": " ".join(schedule_mod.weekday_terms(doc.get("schedule") or [])),
        "municipality": doc.get("municipality_code") or "",
        "cost": int(cost) if cost is not None else -1,
        "lat": float(lat) if lat is not None else 0.0,
        "lon": float(lon) if lon is not None else 0.0,
        "has_point": lat is not None and lon is not None,
        "barrier_free": bool(doc.get("barrier_free")),
        "pickup": bool(doc.get("pickup")),
        "sample": bool(doc.get("is_sample")),
        "name_norm": normalize(doc.get("name")),
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


class SearchIndex:
    """A whoosh index under `root`; `root/current` is a symlink swapped atomically on rebuild."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._ix: Any = None
        self._ix_target: str | None = None
        self._searcher: Any = None
        self._names: tuple[list[str], list[str]] | None = None
        self._names_generation: Any = None

    # -- opening and health ------------------------------------------------------------------
    @property
    def current(self) -> Path:
        return self.root / "current"

    def _open(self) -> Any:
        target = os.readlink(self.current) if self.current.is_symlink() else None
        if self._ix is None or target != self._ix_target:
            if target is None or not whoosh_index.exists_in(str(self.current)):
                raise IndexUnhealthy("索引がありません")
            self._close_searcher()
            self._ix = whoosh_index.open_dir(str(self.current))
            self._ix_target = target
        return self._ix

    def _close_searcher(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def searcher(self) -> Any:
        with self._lock:
            ix = self._open()
            if self._searcher is None:
                self._searcher = ix.searcher(weighting=BM25F())
            elif not self._searcher.up_to_date():
                self._searcher = self._searcher.refresh()
            return self._searcher

    def doc_count(self) -> int:
        return self.searcher().doc_count()

    def check(self, expected_count: int) -> None:
        """Raise IndexUnhealthy unless the index opens, reads and holds `expected_count` documents."""
        try:
            searcher = self.searcher()
            count = searcher.doc_count()
            searcher.search(Q.Every(), limit=1)
        except IndexUnhealthy:
            raise
        except Exception as exc:  # any whoosh/IO failure means a damaged index
            self.close()
            raise IndexUnhealthy(f"索引を読めません: {exc}") from exc
        if count != expected_count:
            raise IndexUnhealthy(f"索引の件数 {count} がデータベースの {expected_count} と一致しません")

    def close(self) -> None:
        with self._lock:
            self._close_searcher()
            if self._ix is not None:
                self._ix.close()
            self._ix = None
            self._ix_target = None

    # -- writing -----------------------------------------------------------------------------
    def rebuild(
        self,
        docs: Iterable[dict[str, Any]],
        progress: Callable[[int], None] | None = None,
    ) -> int:
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
            os.replace(link_tmp, self.current)
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        if self.current.exists() and not self.current.is_symlink():
            shutil.rmtree(self.current)
        if old_target and old_target != build_dir.name:
            shutil.rmtree(self.root / old_target, ignore_errors=True)
        for stale in self.root.glob("build-*"):
            if stale.name != build_dir.name and stale.is_dir():
                # an interrupted earlier build; never the live one
                shutil.rmtree(stale, ignore_errors=True)
        with self._lock:
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
    def _word_query(word: str) -> Q.Query | None:
        alternatives = []
        for variant in sorted(synonyms_of(word)):
            grams = query_grams(variant)
            if not grams:
                continue
            per_field = [
                Q.And([Q.Term(name, gram) for gram in grams]) if len(grams) > 1 else Q.Term(name, grams[0])
                for name in TEXT_FIELDS
            ]
            alternatives.append(Q.Or(per_field))
        if not alternatives:
            return None
        return alternatives[0] if len(alternatives) == 1 else Q.Or(alternatives)

    @staticmethod
    def query_words(text: str) -> list[str]:
        return [w for w in words(text) if w not in _QUERY_OPERATORS]

    def _filter(self, query: SearchQuery) -> Q.Query | None:
        parts: list[Q.Query] = []
        if query.kinds:
            parts.append(Q.Or([Q.Term("kind", k) for k in query.kinds]))
        if query.targets:
            parts.append(Q.Or([Q.Term("targets", t) for t in query.targets]))
        day_terms: set[str] = set()
        for weekday in query.weekdays:
            day_terms |= {weekday} | {f"{weekday}#{n}" for n in range(1, 6)}
        if query.weekdays:
            parts.append(Q.Or([Q.Term("days", t) for t in sorted(day_terms)]))
        if query.open_on:
            open_terms: set[str] = set()
            for day in query.open_on:
                open_terms |= set(schedule_mod.terms_for_day(day))
            parts.append(Q.Or([Q.Term("days", t) for t in sorted(open_terms)]))
        if query.max_cost is not None:
            parts.append(Q.NumericRange("cost", 0, query.max_cost))
        if query.barrier_free:
            parts.append(Q.Term("barrier_free", True))
        if query.pickup:
            parts.append(Q.Term("pickup", True))
        if query.municipality_code:
            parts.append(Q.Term("municipality", query.municipality_code))
        box = query.bbox
        if query.near and query.radius_km:
            near_box = bbox_around(query.near[0], query.near[1], query.radius_km)
            box = near_box if box is None else (
                max(box[0], near_box[0]), max(box[1], near_box[1]),
                min(box[2], near_box[2]), min(box[3], near_box[3]),
            )
        if box is not None:
            parts.append(Q.Term("has_point", True))
            parts.append(Q.NumericRange("lon", box[0], box[2]))
            parts.append(Q.NumericRange("lat", box[1], box[3]))
        if query.ids is not None:
            parts.append(Q.Or([Q.Term("id", i) for i in query.ids]) if query.ids else Q.NullQuery)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Q.And(parts)

    def _fuzzy_ids(self, searcher: Any, text: str, exclude: set[str], want: int) -> list[tuple[str, float]]:
        """Names close to the query (typos): rapidfuzz over every indexed name."""
        generation = searcher.reader().generation() if hasattr(searcher.reader(), "generation") else id(searcher)
        with self._lock:
            if self._names is None or self._names_generation != (self._ix_target, generation):
                ids, names = [], []
                for stored in searcher.reader().all_stored_fields():
                    ids.append(stored["id"])
                    names.append(stored.get("name_norm") or "")
                self._names = (ids, names)
                self._names_generation = (self._ix_target, generation)
            ids, names = self._names
        needle = "".join(self.query_words(text))
        if len(needle) < 3:
            return []
        matches = process.extract(needle, names, scorer=fuzz.WRatio, score_cutoff=FUZZY_CUTOFF, limit=want + len(exclude))
        found = []
        for _name, score, position in matches:
            listing_id = ids[position]
            if listing_id not in exclude:
                found.append((listing_id, float(score)))
        return found[:want]

    def search(self, query: SearchQuery) -> SearchResult:
        """Ranked ids for a query; user syntax never raises (quotes, brackets, AND, * are plain text)."""
        searcher = self.searcher()
        terms = self.query_words(query.q)
        word_queries = [wq for wq in (self._word_query(w) for w in terms) if wq is not None]
        if word_queries:
            text_query: Q.Query = word_queries[0] if len(word_queries) == 1 else Q.And(word_queries)
        elif terms:
            text_query = Q.NullQuery
        else:
            text_query = Q.Every()
        filter_query = self._filter(query)
        by_distance = query.near is not None and not terms
        needs_all = by_distance or (query.near is not None and query.radius_km is not None)
        limit = None if needs_all or query.limit is None else query.offset + query.limit
        if not terms and filter_query is not None:
            # Filter-only queries: no scoring needed.
            results = searcher.search(filter_query, limit=limit, scored=False, sortedby=None)
        else:
            results = searcher.search(text_query, filter=filter_query, limit=limit)
        hits: list[Hit] = []
        if needs_all:
            lat0, lon0 = query.near  # type: ignore[misc]
            for doc in results:
                distance = haversine_km(lat0, lon0, doc["lat"], doc["lon"]) if doc.get("lat") else math.inf
                if query.radius_km is not None and distance > query.radius_km:
                    continue
                hits.append(Hit(doc["id"], float(doc.score or 0.0), distance))
            if by_distance:
                hits.sort(key=lambda hit: hit.distance_km if hit.distance_km is not None else math.inf)
            total = len(hits)
        else:
            total = results.scored_length() if limit is None else len(results)
            for doc in results:
                hits.append(Hit(doc["id"], float(doc.score or 0.0)))
        fuzzy_used = False
        want = (query.limit or 20) + query.offset
        if terms and len(hits) < want:
            seen = {hit.id for hit in hits}
            candidates = self._fuzzy_ids(searcher, query.q, seen, want - len(hits))
            if candidates:
                allowed_query = Q.Or([Q.Term("id", cid) for cid, _ in candidates])
                if filter_query is not None:
                    allowed_query = Q.And([allowed_query, filter_query])
                allowed = {doc["id"]: doc for doc in searcher.search(allowed_query, limit=None)}
                for cid, score in candidates:
                    if cid in allowed:
                        distance = None
                        if query.near is not None and allowed[cid].get("lat"):
                            distance = haversine_km(*query.near, allowed[cid]["lat"], allowed[cid]["lon"])
                            if query.radius_km is not None and distance > query.radius_km:
                                continue
                        hits.append(Hit(cid, score / 100.0, distance, fuzzy=True))
                        fuzzy_used = True
                total = len(hits) if fuzzy_used and total < len(hits) else total
        if query.limit is not None:
            page = hits[query.offset : query.offset + query.limit]
        else:
            page = hits[query.offset :]
        return SearchResult(page, max(total, len(hits)), fuzzy_used, terms)

    def state(self) -> dict[str, Any]:
        state_file = self.current / "STATE.json"
        return json.loads(state_file.read_text()) if state_file.exists() else {}
