"""Query evaluation: filters, n-gram text hits and relevance scores as numpy set algebra over each
segment's mapped arrays, then one total result order (score, distance, blake2b tiebreak) across
segments."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz import fuzz, process

from resdb.domain import schedule as schedule_mod
from resdb.domain.textnorm import query_grams, words
from resdb.domain.travel import bbox_around
from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS
from resdb.hostsnapshot import prefetch
from resdb.queryterms import expansions_of, intents_of
from resdb.search.schema import EXPANDED_TIER, FIELD_WEIGHTS, FUZZY_CUTOFF, VOCAB_FIELDS
from resdb.search.segments import _Segment, _Snapshot

if TYPE_CHECKING:
    from resdb.search.recent import RecentView

_QUERY_OPERATORS = {"and", "or", "not"}
# Typo matches (fuzzy names) are added when exact hits are this few, whatever page is asked for.
FUZZY_WHEN_FEWER = 10
# Names scored by rapidfuzz per typo query at most, over all segments (those sharing the most bigrams first).
FUZZY_CANDIDATES = 5_000
_NONE = np.zeros(0, dtype=np.int64)
_NO_SCORES = np.zeros(0, dtype=np.float32)


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
    # Committed changes this answer could not see: 0, except after a backlog too large to read into
    # memory while the host's index is rebuilt in the background (answers then come from the index as
    # it was, and say so).
    pending_changes: int = 0

    @property
    def ids(self) -> list[str]:
        return [hit.id for hit in self.hits]


def week_days(start: date, days: int = 7) -> list[date]:
    return [start + timedelta(days=i) for i in range(days)]


def combine_word_evidence(exact: np.ndarray, other: np.ndarray) -> np.ndarray:
    """One word's score from its exact-hit weight and other evidence (see _word_scores)."""
    capped = EXPANDED_TIER * np.minimum(other, 1.0)
    combined: np.ndarray = np.where(exact > 0, exact + 0.5 * capped, capped).astype(np.float32)
    return combined


def query_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in _QUERY_OPERATORS]


def _text_hits(seg: _Segment, term: str, field_name: str) -> np.ndarray:
    """Documents of one segment whose `field_name` holds every n-gram of `term`."""
    grams = query_grams(term)
    if not grams or (len(term) == 1 and field_name != "name"):
        return _NONE  # single characters are indexed in names only
    lists = [seg.postings(field_name, gram) for gram in grams]
    if any(not len(x) for x in lists):
        return _NONE
    for (
        found
    ) in lists:  # read from disk in large requests, all grams' lists at once, when not cached
        prefetch(found)
    docs = lists[0]
    for other in lists[1:]:
        if not len(docs):
            break
        if len(other) < len(docs):
            docs, other = other, docs
        # both sorted and unique: keep the shorter list's documents found in the longer (linear)
        present = np.zeros(seg.size, dtype=bool)
        present[other] = True
        docs = docs[present[docs]]
    return docs


def _word_evidence(seg: _Segment, word: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one query word, the documents of a segment with any evidence (sorted), their best exact field
    weight and their summed other evidence. Only the documents in the postings read are touched (no
    pass over every document but one over a flag per document)."""
    exact = np.zeros(seg.size, dtype=np.float32)
    other = np.zeros(seg.size, dtype=np.float32)
    found = np.zeros(seg.size, dtype=np.float32)  # one expanded term's best field weight
    seen = np.zeros(seg.size, dtype=bool)
    top_weight = max(FIELD_WEIGHTS.values())
    exact_written = False
    for term, term_weight in expansions_of(word).items():
        hit: list[np.ndarray] = []
        for field_name, weight in FIELD_WEIGHTS.items():
            docs = _text_hits(seg, term, field_name)
            if len(docs):
                value = np.float32(
                    weight
                    if term_weight >= 1.0
                    else term_weight * (0.5 + 0.5 * weight / top_weight)
                )
                exact_term = term_weight >= 1.0
                target = exact if exact_term else found
                if exact_written if exact_term else hit:  # docs are unique
                    target[docs] = np.maximum(target[docs], value)
                else:  # nothing written to `target` yet: still zero there
                    target[docs] = value
                exact_written = exact_written or exact_term
                seen[docs] = True
                hit.append(docs)
        if term_weight < 1.0 and hit:
            docs = np.concatenate(hit) if len(hit) > 1 else hit[0]
            other[docs] += found[docs]  # a document in several lists gets its best once
            found[docs] = 0
    for intent in intents_of(word):
        vocab_field = VOCAB_FIELDS.get(intent.field)
        if vocab_field is not None:
            docs = seg.postings(vocab_field, intent.value)
            other[docs] += np.float32(intent.weight)
            seen[docs] = True
    touched = np.flatnonzero(seen)
    return touched, exact[touched], other[touched]


_LENGTH_FACTORS = np.zeros(0, dtype=np.float32)


def _length_factors(lengths: np.ndarray) -> np.ndarray:
    """1 + 1 / (1 + length / 8) per name length, as float32: shorter names (closer to the query)
    first among equal hits. Looked up in a table made once per longest length seen."""
    global _LENGTH_FACTORS
    at = lengths.astype(np.intp)  # whole numbers of characters (sidecar.column_arrays)
    table = _LENGTH_FACTORS
    longest = int(at.max()) if len(at) else 0
    if longest >= len(table):
        every = np.arange(max(longest + 1, 256), dtype=lengths.dtype)
        table = _LENGTH_FACTORS = (1.0 + 1.0 / (1.0 + every / 8.0)).astype(np.float32)
    factors: np.ndarray = table[at]
    return factors


def _filter_mask(seg: _Segment, live: np.ndarray, query: SearchQuery) -> np.ndarray:
    mask = live.copy()
    hidden = [k for k in HIDDEN_IN_SEARCH_KINDS if k not in query.kinds]
    if hidden and not query.include_venues and query.ids is None:
        for term in hidden:  # few documents: cleared where they are
            mask[seg.postings("kind", term)] = False
    if query.kinds:
        mask &= seg.mask_of("kind", query.kinds)
    if query.targets:
        mask &= seg.mask_of("targets", query.targets)
    if query.weekdays:
        terms = set(query.weekdays) | {f"{w}#{n}" for w in query.weekdays for n in range(1, 6)}
        mask &= seg.mask_of("days", terms)
    if query.open_on:
        mask &= seg.mask_of("days", schedule_mod.terms_for_days(list(query.open_on)))
    if query.max_cost is not None:
        prefetch(seg.cost)
        mask &= (seg.cost >= 0) & (seg.cost <= query.max_cost)
    if query.barrier_free:
        mask &= seg.mask_of("flags", ["barrier_free"])
    if query.pickup:
        mask &= seg.mask_of("flags", ["pickup"])
    if query.municipality_code:
        mask &= seg.mask_of("municipality", [query.municipality_code])
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
        mask &= seg.mask_of("flags", ["point"])
        candidates = np.flatnonzero(mask)  # coordinates read only where the mask still holds
        if len(candidates) > seg.size // 8:  # most rows: compare whole columns (no gathering)
            prefetch(seg.lon)
            prefetch(seg.lat)
            mask &= seg.lon >= box[0]
            mask &= seg.lon <= box[2]
            mask &= seg.lat >= box[1]
            mask &= seg.lat <= box[3]
        else:
            lon, lat = seg.lon[candidates], seg.lat[candidates]
            inside = (lon >= box[0]) & (lon <= box[2]) & (lat >= box[1]) & (lat <= box[3])
            mask[candidates[~inside]] = False
    if query.ids is not None:
        mask &= seg.mask_of("id", query.ids)
    return mask


def _distances(seg: _Segment, docs: np.ndarray, lat: float, lon: float) -> np.ndarray:
    lat1, lon1 = np.radians(lat), np.radians(lon)
    lat2, lon2 = np.radians(seg.lat[docs]), np.radians(seg.lon[docs])
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    km: np.ndarray = 2 * 6371.0088 * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return km


def _fuzzy_shared(
    seg: _Segment, needle: str, eligible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Documents (ascending) whose name shares enough bigrams with the needle to possibly score
    FUZZY_CUTOFF, and how many each shares: a name within k edits of the needle (or a window of the
    longer of the two, for WRatio's partial match) keeps all but about 2k of the shorter one's bigrams,
    and cutting place names out of the `name` field loses at most two more, so the bar is low and typo
    search never decodes and scores every name of a million. `eligible`: a mask of the documents that
    may be returned at all (filters, not already matched)."""
    grams = sorted({needle[i : i + 2] for i in range(len(needle) - 1)})
    lists = [seg.postings(field_name, g) for g in grams for field_name in ("name", "place")]
    lists = [x for x in lists if len(x)]
    if not lists:
        return _NONE, _NONE
    counts = np.bincount(np.concatenate(lists), minlength=seg.size)  # no sort, unlike np.unique
    if eligible is not None:
        counts[~eligible] = 0
    docs = np.flatnonzero(counts)
    shared = counts[docs]
    # WRatio compares the shorter string with a window of the longer one: the bar follows the shorter.
    shorter = np.minimum(np.asarray(seg.name_len[docs]), len(needle))
    max_edits = np.floor(shorter * (100.0 - FUZZY_CUTOFF) / 100.0) + 1
    keep = shared >= np.maximum(1, np.minimum(len(grams), shorter - 1) - 2 * max_edits - 2)
    return docs[keep], shared[keep]


def _best_shared(found: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """At most FUZZY_CANDIDATES documents over all segments, those sharing the most bigrams first (ties
    in segment and document order), each segment's ascending: the typo stage's work stays bounded
    however many segments the index has."""
    if sum(len(docs) for docs, _ in found) <= FUZZY_CANDIDATES:
        return [docs.astype(np.int64, copy=False) for docs, _ in found]
    order = np.argsort(-np.concatenate([shared for _, shared in found]), kind="stable")
    chosen = np.zeros(len(order), dtype=bool)
    chosen[order[:FUZZY_CANDIDATES]] = True
    kept, start = [], 0
    for docs, _ in found:
        kept.append(docs[chosen[start : start + len(docs)]].astype(np.int64, copy=False))
        start += len(docs)
    return kept


def _fuzzy_candidates(seg: _Segment, needle: str, eligible: np.ndarray | None = None) -> np.ndarray:
    """One segment's documents the typo stage scores (see _fuzzy_shared), at most FUZZY_CANDIDATES."""
    return _best_shared([_fuzzy_shared(seg, needle, eligible)])[0]


def _fuzzy(
    seg: _Segment, text: str, allowed: np.ndarray, matched: np.ndarray
) -> list[tuple[int, float]]:
    """Every name of one segment close to the query (typos) among allowed, not already matched
    documents (run_search picks the candidates over all segments at once, then `_fuzzy_scores`)."""
    needle = "".join(query_words(text))
    if len(needle) < 3:
        return []
    return _fuzzy_scores(seg, needle, _fuzzy_candidates(seg, needle, allowed & ~matched))


def _fuzzy_scores(seg: _Segment, needle: str, candidates: np.ndarray) -> list[tuple[int, float]]:
    """rapidfuzz's WRatio of `needle` against the names of `candidates` (decoded at once from the
    mapped names), those reaching FUZZY_CUTOFF."""
    if not len(candidates):
        return []
    names = seg.names_at(candidates)
    return [
        (int(candidates[at]), float(score))
        for _name, score, at in process.extract(
            needle, names, scorer=fuzz.WRatio, score_cutoff=FUZZY_CUTOFF, limit=None
        )
    ]


def _first_in_order(
    primary: np.ndarray, tiebreak_of: Callable[[np.ndarray], np.ndarray], want: int
) -> np.ndarray:
    """Positions of the `want` first entries in the total order (primary, then the tiebreak of the
    positions asked for): the same answer whatever `want` is, so pages never repeat or drop a hit."""
    if want <= 0:
        return np.zeros(0, dtype=np.int64)
    if want < len(primary):
        kth = np.partition(primary, want - 1)[want - 1]
        candidates = np.flatnonzero(primary <= kth)  # every tie at the cut-off competes on tiebreak
    else:
        candidates = np.arange(len(primary))
    order = np.lexsort((tiebreak_of(candidates), primary[candidates]))
    return candidates[order][:want]


def _tiebreak_of(seg: _Segment, docs: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The tiebreak of positions in `docs` (gathered only for the positions asked for)."""
    return lambda at: np.asarray(seg.tiebreak[docs[at]])


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def run_search(snap: _Snapshot | RecentView, query: SearchQuery) -> SearchResult:
    """Ranked ids for a query; user syntax never raises (quotes, brackets, AND, * are plain text)."""
    parts = snap.parts
    allowed = [_filter_mask(seg, live, query) for seg, live, _ in parts]
    terms = query_words(query.q)
    scores: list[np.ndarray | None] = [None] * len(parts)
    local_docs: list[np.ndarray]
    if terms:
        # Per segment, the documents matching every word so far (sorted) and their summed scores.
        matched: list[np.ndarray | None] = [None] * len(parts)
        totals: list[np.ndarray] = [_NO_SCORES] * len(parts)
        for word in terms:
            evidence = [_word_evidence(seg, word) for seg, _, _ in parts]
            bests = [(docs, combine_word_evidence(ex, ot)) for docs, ex, ot in evidence]
            count = sum(
                int(np.count_nonzero((best > 0) & live[docs]))
                for (docs, best), (_, live, _) in zip(bests, parts, strict=True)
            )
            factor = math.log(1.0 + snap.live_count / count) if count else None
            for i, (docs, best) in enumerate(bests):
                if factor is not None:
                    best *= factor
                before = matched[i]
                if before is None:  # the first word: its documents that the filters allow
                    keep = (best > 0) & allowed[i][docs]
                    matched[i], totals[i] = docs[keep], best[keep]
                    continue
                at = np.minimum(np.searchsorted(docs, before), max(len(docs) - 1, 0))
                keep = (docs[at] == before) & (best[at] > 0) if len(docs) else at < 0
                matched[i], totals[i] = before[keep], totals[i][keep] + best[at[keep]]
        local_docs = [m if m is not None else _NONE for m in matched]
        for i, (seg, _, _) in enumerate(parts):
            docs = local_docs[i]
            # Among equal hits, shorter names (closer to the query) first.
            scores[i] = totals[i] * _length_factors(np.asarray(seg.name_len[docs]))
    else:
        local_docs = [np.flatnonzero(a) for a in allowed]
    primaries: list[np.ndarray] = []
    distance_of: list[np.ndarray | None] = []
    for i, (seg, _, _) in enumerate(parts):
        docs = local_docs[i]
        score = scores[i]
        distances = None
        if query.near is not None and len(docs):
            distances = _distances(seg, docs, *query.near)
            if query.radius_km is not None:
                inside = distances <= query.radius_km
                docs, distances = docs[inside], distances[inside]
                score = score[inside] if score is not None else None
                local_docs[i], scores[i] = docs, score
        if score is not None:
            primary = -score.astype(np.float64)
            if distances is not None:
                primary = primary + distances * 1e-6  # nearer first among equal scores
        elif distances is not None:
            primary = distances
        else:
            primary = np.asarray(seg.name_len[docs])  # short names first
        primaries.append(primary)
        distance_of.append(distances)
    total = sum(len(docs) for docs in local_docs)
    want = min(total, query.offset + query.limit) if query.limit is not None else total
    # Each segment's own first `want` (the answer's first `want` are among them), then those in order.
    primary_parts: list[np.ndarray] = []
    tiebreaks: list[np.ndarray] = []
    distance_parts: list[np.ndarray] = []
    segment_of: list[np.ndarray] = []
    local_of: list[np.ndarray] = []
    score_parts: list[np.ndarray] = []
    for i, (seg, _, _) in enumerate(parts):
        docs = local_docs[i]
        first = _first_in_order(primaries[i], _tiebreak_of(seg, docs), want)
        primary_parts.append(primaries[i][first])
        tiebreaks.append(np.asarray(seg.tiebreak[docs[first]]))
        found_distances = distance_of[i]
        distance_parts.append(
            found_distances[first] if found_distances is not None else np.full(len(first), np.nan)
        )
        segment_of.append(np.full(len(first), i, dtype=np.int32))
        local_of.append(docs[first])
        score = scores[i]
        if score is not None:
            score_parts.append(score[first])
    tiebreak_all = _concat(tiebreaks, np.int64)
    top = _first_in_order(_concat(primary_parts, np.float64), lambda at: tiebreak_all[at], want)
    seg_all, local_all = _concat(segment_of, np.int32), _concat(local_of, np.int64)
    score_all = _concat(score_parts, np.float32) if terms else None
    distance_all = _concat(distance_parts, np.float64)
    hits = [
        Hit(
            parts[int(seg_all[i])][0].id_at(int(local_all[i])),
            float(score_all[i]) if score_all is not None else 0.0,
            float(distance_all[i]) if query.near is not None else None,
        )
        for i in top
    ]
    fuzzy_used = False
    if terms and total < FUZZY_WHEN_FEWER:
        # Counted whole whatever the page size, so `total` and the pager agree on every page.
        found: list[tuple[float, int, int, int]] = []
        needle = "".join(terms)
        eligible = []
        for mask, matched_docs in zip(allowed, local_docs, strict=True):
            mask = mask.copy()
            mask[matched_docs] = False  # already matched
            eligible.append(mask)
        candidates = (
            _best_shared(
                [_fuzzy_shared(seg, needle, eligible[i]) for i, (seg, _, _) in enumerate(parts)]
            )
            if len(needle) >= 3
            else [_NONE for _ in parts]
        )
        for i, (seg, _, _) in enumerate(parts):
            for docnum, fscore in _fuzzy_scores(seg, needle, candidates[i]):
                found.append((-fscore, int(seg.tiebreak[docnum]), i, docnum))
        found.sort()
        for neg_score, _, i, docnum in found:
            seg = parts[i][0]
            distance = None
            if query.near is not None:
                distance = float(_distances(seg, np.array([docnum]), *query.near)[0])
                if query.radius_km is not None and distance > query.radius_km:
                    continue
            hits.append(Hit(seg.id_at(docnum), -neg_score / 100.0, distance, fuzzy=True))
            fuzzy_used = True
            total += 1
    page = (
        hits[query.offset : query.offset + query.limit]
        if query.limit is not None
        else hits[query.offset :]
    )
    return SearchResult(page, total, fuzzy_used, terms)
