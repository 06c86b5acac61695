"""CandidatePool: a listing set turned once into numpy columns, and per-person Views of nearby listings.

Build a pool once per listing set (``CandidatePool(listings)``) and pass it to ``match``,
``match_batch`` and ``gap_report`` instead of the list: coordinates, eligibility, capacities,
costs and flattened schedules become numpy arrays, so one person is checked against tens of
thousands of listings with vector operations; `apply` keeps a pool current after listings change
(only those rows are touched). Reachable area (a latitude band, then the longitude, then the
great-circle distance) and schedule (weekday × 3-hour bitmasks) are prefiltered with numpy before any
per-entry or text work; text is matched by matcher.textindex.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from functools import cached_property, lru_cache
from typing import Any, overload

import numpy as np

from resdb.domain.blobs import BlobColumn, FileBlob, utf8_blob
from resdb.domain.textnorm import normalize
from resdb.domain.travel import EARTH_RADIUS_KM, MODES

from .columns import (
    ENTRY_COLUMNS,
    GROUP_CODE,
    GROUP_IDS,
    KIND_CODE,
    KIND_IDS,
    NOT_PROPOSABLE_CODES,
    bins_of,
    num,
    read_rows,
)
from .query import Query, window_tables
from .textindex import TextIndex

__all__ = [
    "GROUP_CODE",
    "GROUP_IDS",
    "KIND_CODE",
    "KIND_IDS",
    "NOT_PROPOSABLE_CODES",
    "ARRAYS_FORMAT",
    "ROW_FIELDS",
    "CandidatePool",
    "View",
    "haversine_many",
    "row_fields",
]
ENTRY_NAMES = tuple(ENTRY_COLUMNS)
NEAR_MISS_FACTOR = 1.5  # listings up to 1.5 × the reachable distance are kept to report near misses
ARRAYS_FORMAT = "pool-2"  # bumped whenever what to_arrays() writes changes
SPARE_SHARE = 0.125  # to_arrays() leaves room for this share of rows (and entries) more …
SPARE_ROWS = 4096  # … plus this many, for rows apply() appends in place
LISTING_CACHE_SIZE = 4096  # decoded listings kept per process by a pool over arrays
# The only listing fields read per row once the columns are built (explanations, the service-area rule
# and its covers_home callbacks, batch and gap reports): a snapshot keeps just these of every listing.
ROW_FIELDS = ("id", "name", "activities", "schedule", "outcome", "service_area")
_STATE = ("rows", "entries", "n_sorted", "n_located", "next_position", "dead")


class _Growable:
    """A numpy column with spare capacity at its end: appends are amortized O(1). Over a copy-on-write
    mapped array an append writes into the spare rows (private copies of the touched pages only);
    beyond them the column moves into memory."""

    def __init__(self, values: np.ndarray, size: int | None = None) -> None:
        self.buf = values
        self.size = values.size if size is None else size

    def extend(self, values: np.ndarray) -> np.ndarray:
        need = self.size + values.size
        if need > self.buf.size:
            grown = np.empty(max(need, 2 * self.buf.size, 16), dtype=self.buf.dtype)
            grown[: self.size] = self.buf[: self.size]
            self.buf = grown
        self.buf[self.size : need] = values
        self.size = need
        return self.buf[:need]


def row_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a listing the matcher reads per row (ROW_FIELDS; those it has, in that order)."""
    return {name: item[name] for name in ROW_FIELDS if name in item}


def _spare(n: int) -> int:
    return n + int(n * SPARE_SHARE) + SPARE_ROWS


def _with_spare(values: np.ndarray, capacity: int) -> np.ndarray:
    out = np.zeros(capacity, dtype=values.dtype)
    out[: values.size] = values
    return out


class _RowIds(Sequence[str]):
    """Row ids of a pool over arrays: the snapshot's rows read from its blob, later rows kept here."""

    def __init__(self, base: BlobColumn) -> None:
        self.base = base
        self.n_base = len(base)
        self.tail: list[str] = []

    def __len__(self) -> int:
        return self.n_base + len(self.tail)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if i < self.n_base:
            return self.base.text(i)
        return self.tail[i - self.n_base]

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def extend(self, values: Iterable[str]) -> None:
        self.tail.extend(values)


class _RowListings(Sequence[Mapping[str, Any]]):
    """Listings of a pool over arrays: the snapshot's rows (their ROW_FIELDS only) decoded from its JSON
    blob when asked for (a few thousand kept per process), later rows kept here as given."""

    def __init__(self, base: BlobColumn, file: FileBlob | None = None) -> None:
        self.base = base
        self.file = file
        self.n_base = len(base)
        self.tail: list[Mapping[str, Any]] = []
        self._decode = lru_cache(maxsize=LISTING_CACHE_SIZE)(self._decode_row)

    def _raw(self, i: int) -> bytes:
        if self.file is None:
            return self.base[i]
        offsets = self.base.offsets
        return self.file.read(int(offsets[i]), int(offsets[i + 1]))

    def _decode_row(self, i: int) -> Mapping[str, Any]:
        decoded: Mapping[str, Any] = json.loads(self._raw(i))
        return decoded

    def __len__(self) -> int:
        return self.n_base + len(self.tail)

    @overload
    def __getitem__(self, i: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[Mapping[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> Mapping[str, Any] | list[Mapping[str, Any]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if 0 <= i < self.n_base:
            return self._decode(i)
        return self.tail[i - self.n_base]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for i in range(self.n_base):
            yield json.loads(self._raw(i))  # a whole pass is not cached
        yield from self.tail

    def extend(self, values: Iterable[Mapping[str, Any]]) -> None:
        self.tail.extend(values)


class _IdIndex(MutableMapping[str, int]):
    """id → live row of a pool over arrays: a binary search in the snapshot's rows sorted by id, under
    a small per-process overlay of what apply() changed since (None = no longer in the pool)."""

    def __init__(self, ids: BlobColumn, sorted_rows: np.ndarray) -> None:
        self.ids = ids
        self.sorted_rows = sorted_rows
        self.overlay: dict[str, int | None] = {}

    def _base(self, key: str) -> int | None:
        want = key.encode("utf-8")
        ids, rows = self.ids, self.sorted_rows
        lo, hi = 0, int(rows.size)
        while lo < hi:
            mid = (lo + hi) // 2
            if ids[int(rows[mid])] < want:
                lo = mid + 1
            else:
                hi = mid
        if lo < rows.size:
            row = int(rows[lo])
            if ids[row] == want:
                return row
        return None

    def _lookup(self, key: object) -> int | None:
        if not isinstance(key, str):
            return None
        if key in self.overlay:
            return self.overlay[key]
        return self._base(key)

    def __getitem__(self, key: str) -> int:
        row = self._lookup(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return self._lookup(key) is not None

    def __setitem__(self, key: str, row: int) -> None:
        self.overlay[key] = row

    def __delitem__(self, key: str) -> None:
        if self._lookup(key) is None:
            raise KeyError(key)
        self.overlay[key] = None

    def __iter__(self) -> Iterator[str]:
        for k in range(int(self.sorted_rows.size)):
            key = self.ids.text(int(self.sorted_rows[k]))
            if key not in self.overlay:
                yield key
        yield from (key for key, row in self.overlay.items() if row is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class CandidatePool:
    """Listings (contract-shaped dicts) with their matching-relevant fields as numpy columns.

    Rows at build are stored by latitude (listings without coordinates after them): a person's
    latitude band is one contiguous slice. `apply(upserts, removed_ids)` keeps the pool current
    without a rebuild: a changed listing's old row is marked dead and its new row appended to a
    tail that `nearby` scans directly (`tail_rows` tells a caller when a fresh build would pay off).
    prepare_text=False defers text normalization (about 6 µs per listing) to the first query
    that needs it; by default it is done here so that every query has the same latency.
    """

    lat: np.ndarray
    lon: np.ndarray
    kind: np.ndarray
    min_age: np.ndarray
    max_age: np.ndarray
    targets: np.ndarray
    residents_only: np.ndarray
    has_area: np.ndarray
    capacity: np.ndarray
    cost: np.ndarray
    pickup: np.ndarray
    barrier_free: np.ndarray
    referrals: np.ndarray
    group: np.ndarray
    verified: np.ndarray
    sample: np.ndarray
    reservation: np.ndarray
    holidays_open: np.ndarray
    outcome_rate: np.ndarray
    proposable: np.ndarray
    sched_bins: np.ndarray
    position: np.ndarray
    alive: np.ndarray
    ent_ptr: np.ndarray
    ent_wd: np.ndarray
    ent_start: np.ndarray
    ent_end: np.ndarray
    ent_weeks: np.ndarray

    def __init__(self, listings: Iterable[Mapping[str, Any]], *, prepare_text: bool = True) -> None:
        source = list(listings)
        n = len(source)
        # `position` maps a row back to the caller's order (used to break ties the same way whatever
        # the layout).
        first_lat = np.array([num(item.get("lat")) for item in source], dtype=float).reshape(n)
        first_lon = np.array([num(item.get("lon")) for item in source], dtype=float).reshape(n)
        missing = np.isnan(first_lat) | np.isnan(first_lon)
        order = np.argsort(np.where(missing, np.inf, first_lat), kind="stable").astype(np.int64)
        self.n_located = int((~missing).sum())
        self.n_sorted = n  # rows from here on were appended by apply() (the unsorted tail)
        self.listings: list[Mapping[str, Any]] | _RowListings = [source[i] for i in order]
        cols, ids, counts, entries = read_rows(self.listings)
        cols["position"] = order
        cols["lat"][self.n_located :] = np.nan  # rows without a usable pair of coordinates
        cols["lon"][self.n_located :] = np.nan
        self._cols = {name: _Growable(values) for name, values in cols.items()}
        self._ent = {name: _Growable(values) for name, values in entries.items()}
        self._ptr = _Growable(np.concatenate(([0], np.cumsum(counts))).astype(np.int64))
        self._publish()
        self.ids: list[str] | _RowIds = ids
        self.index_of: MutableMapping[str, int] = {}
        for i, rid in enumerate(ids):
            self.index_of.setdefault(rid, i)
        self._next_position = n
        self._dead = 0
        self._lat_sorted = self.lat[: self.n_located]
        self._text = TextIndex(lambda: self.listings)
        self._acts: dict[int, list[str]] = {}
        if prepare_text:
            self._text.ensure()

    # --- a shared, memory-mapped copy ------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything the pool holds as flat numpy arrays (see `from_arrays`): the columns and schedule
        entries with spare room at their end for rows appended later, ids, listings (one JSON text
        each, only the ROW_FIELDS the matcher reads per row) and normalized text lines as UTF-8 blobs
        with offsets, the ids' rows in id order, and the whole-pool hits of the cached term sets.
        Listings must be JSON data (as stored ones are)."""
        rows, entries = self._ptr.size - 1, self._ent["ent_wd"].size
        out: dict[str, np.ndarray] = {}
        for name, column in self._cols.items():
            out[f"col_{name}"] = _with_spare(column.buf[:rows], _spare(rows))
        for name, column in self._ent.items():
            out[name] = _with_spare(column.buf[:entries], _spare(entries))
        out["ent_ptr"] = _with_spare(self._ptr.buf[: rows + 1], _spare(rows) + 1)
        state = (rows, entries, self.n_sorted, self.n_located, self._next_position, self._dead)
        out["state"] = np.array(state, dtype=np.int64)
        out["ids_blob"], out["ids_offsets"] = utf8_blob(list(self.ids))
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode
        out["listings_blob"], out["listings_offsets"] = utf8_blob(
            [encode(row_fields(item)) for item in self.listings]
        )
        live = sorted(
            ((key.encode("utf-8"), row) for key, row in self.index_of.items()),
            key=lambda pair: pair[0],
        )
        out["id_rows"] = np.array([row for _key, row in live], dtype=np.int64)
        out["text_blob"], out["text_starts"] = self._text.to_arrays()
        cached = self._text.cached()
        out["terms_blob"], out["terms_offsets"] = utf8_blob(
            [json.dumps(sorted(terms), ensure_ascii=False) for terms, _found in cached]
        )
        out["term_hits_ptr"] = np.concatenate(
            ([0], np.cumsum([found.size for _terms, found in cached]))
        ).astype(np.int64)
        out["term_hits"] = np.concatenate(
            [np.zeros(0, dtype=np.int64), *(found for _terms, found in cached)]
        ).astype(np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> CandidatePool:
        """A pool over the arrays of `to_arrays` (e.g. memory-mapped copy-on-write: every worker of a
        host shares one copy). Nothing is copied: apply() appends into the spare rows, marks dead rows
        in place and keeps its other changes (ids, listings, text) in small per-process overlays."""
        pool = cls.__new__(cls)
        state = dict(zip(_STATE, (int(x) for x in arrays["state"]), strict=True))
        rows, entries = state["rows"], state["entries"]

        def column(name: str) -> np.ndarray:
            return np.asarray(arrays[name])  # a plain ndarray view (of the mapping, if mapped)

        pool._cols = {
            name[4:]: _Growable(column(name), rows) for name in arrays if name.startswith("col_")
        }
        pool._ent = {name: _Growable(column(name), entries) for name in ENTRY_NAMES}
        pool._ptr = _Growable(column("ent_ptr"), rows + 1)
        pool._publish()
        pool.n_sorted, pool.n_located = state["n_sorted"], state["n_located"]
        pool._next_position, pool._dead = state["next_position"], state["dead"]
        ids = BlobColumn(column("ids_blob"), column("ids_offsets"))
        pool.ids = _RowIds(ids)
        pool.listings = _RowListings(
            BlobColumn(column("listings_blob"), column("listings_offsets")),
            FileBlob.of(arrays["listings_blob"]),
        )
        pool.index_of = _IdIndex(ids, column("id_rows"))
        pool._lat_sorted = pool.lat[: pool.n_located]
        pool._text = TextIndex.from_blob(
            column("text_blob"), column("text_starts"), FileBlob.of(arrays["text_blob"])
        )
        terms = BlobColumn(column("terms_blob"), column("terms_offsets"))
        ptr, hits = column("term_hits_ptr"), column("term_hits")
        for k in range(len(terms)):
            found = hits[int(ptr[k]) : int(ptr[k + 1])]  # a view: shared, never written
            pool._text.seed(frozenset(json.loads(terms.text(k))), found)
        pool._acts = {}
        return pool

    def _publish(self) -> None:
        """Point the public column attributes at the current rows of the growable buffers."""
        for name, column in self._cols.items():
            setattr(self, name, column.buf[: column.size])
        for name, column in self._ent.items():
            setattr(self, name, column.buf[: column.size])
        self.ent_ptr = self._ptr.buf[: self._ptr.size]

    def __len__(self) -> int:
        """Listings in the pool (rows replaced or removed by apply() not counted)."""
        return len(self.listings) - self._dead

    @property
    def tail_rows(self) -> int:
        """Rows appended (or left dead) since the build: the work a fresh build would save."""
        return len(self.listings) - self.n_sorted + self._dead

    # --- keeping the pool current ---------------------------------------------------------------
    def apply(self, upserts: Iterable[Mapping[str, Any]], removed_ids: Iterable[str] = ()) -> None:
        """Replace or add `upserts` (by id) and drop `removed_ids`: only these rows are touched.

        The caller must keep readers out meanwhile (resdb.matching holds a write lock)."""
        items = list(upserts)
        cols, ids, counts, entries = read_rows(items)
        # An id seen before keeps its place in the caller's order; a new one comes after all others.
        positions = cols["position"]
        for k, rid in enumerate(ids):
            row = self.index_of.get(rid)
            if row is not None:
                positions[k] = self.position[row]
            else:
                positions[k] = self._next_position
                self._next_position += 1
        alive = self.alive
        for rid in {str(i) for i in removed_ids} | set(ids):
            row = self.index_of.pop(rid, None)
            if row is not None and alive[row]:
                alive[row] = False
                self._dead += 1
        if not items:
            return
        base = len(self.listings)
        for name, column in self._cols.items():
            column.extend(cols[name])
        start = int(self._ptr.buf[self._ptr.size - 1])
        self._ptr.extend(start + np.cumsum(counts))
        for name, column in self._ent.items():
            column.extend(entries[name])
        self._publish()
        self.listings.extend(items)
        self.ids.extend(ids)
        for k, rid in enumerate(ids):
            self.index_of[rid] = base + k
        self._text.append(items)

    # --- normalized text ------------------------------------------------------------------------
    def text(self, i: int) -> str:
        """Normalized name + description + activities of listing i."""
        return self._text.line(i)

    def term_hits(self, terms: frozenset[str]) -> np.ndarray:
        """Sorted pool indices whose text contains any of the (normalized) terms; cached per pool."""
        return self._text.hits(terms)

    def contains_any(self, terms: frozenset[str], idx: np.ndarray) -> np.ndarray:
        """For each pool index in idx: does its text contain one of the terms?"""
        return self._text.contains_any(terms, idx, len(self.listings))

    def activities(self, i: int) -> list[str]:
        """Normalized activity words of listing i (cached)."""
        cached = self._acts.get(i)
        if cached is None:
            cached = [normalize(str(a)) for a in (self.listings[i].get("activities") or ()) if a]
            self._acts[i] = cached
        return cached

    # --- selection ----------------------------------------------------------------------------
    def nearby(self, lat: float, lon: float, radius_km: float) -> tuple[np.ndarray, np.ndarray]:
        """(row indices ascending, haversine km) of located listings within radius_km of the point."""
        dlat = radius_km / 111.2 + 1e-6
        coslat = max(0.01, math.cos(math.radians(lat)))
        dlon = radius_km / (111.2 * coslat) + 1e-6
        lo = int(np.searchsorted(self._lat_sorted, lat - dlat, side="left"))
        hi = int(np.searchsorted(self._lat_sorted, lat + dlat, side="right"))
        band = lo + np.flatnonzero(np.abs(self.lon[lo:hi] - lon) <= dlon) if hi > lo else None
        parts = [] if band is None else [band]
        if len(self.listings) > self.n_sorted:  # rows appended since the build
            tail_lat = self.lat[self.n_sorted :]
            tail_lon = self.lon[self.n_sorted :]
            with np.errstate(invalid="ignore"):
                near = (np.abs(tail_lat - lat) <= dlat) & (np.abs(tail_lon - lon) <= dlon)
            parts.append(self.n_sorted + np.flatnonzero(near))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self._dead:
            rows = rows[self.alive[rows]]
        dist = haversine_many(lat, lon, self.lat[rows], self.lon[rows])
        keep = dist <= radius_km
        return rows[keep], dist[keep]

    def view(self, q: Query) -> View:
        """The listings this person could reach (plus near misses up to 1.5× the distance)."""
        if q.has_home:
            assert q.lat is not None and q.lon is not None
            radius = NEAR_MISS_FACTOR * q.max_km + 0.05
            idx, dist = self.nearby(q.lat, q.lon, radius)
        else:
            idx = np.arange(len(self.listings), dtype=np.int64)
            dist = np.full(idx.size, np.nan)
        keep = self.proposable[idx] & self.alive[idx]
        if not keep.all():
            idx, dist = idx[keep], dist[keep]
        return View(self, q, idx, dist)


def haversine_many(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Great-circle km from one point to many (vectorized resdb.domain.travel.haversine_km)."""
    p1 = math.radians(lat)
    p2 = np.radians(lats)
    dp = p2 - p1
    dl = np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    km: np.ndarray = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return km


class View:
    """One person's candidate listings: pool indices plus per-person derived columns."""

    def __init__(self, pool: CandidatePool, q: Query, idx: np.ndarray, dist_km: np.ndarray) -> None:
        self.pool = pool
        self.q = q
        self.idx = idx
        self.dist_km = dist_km
        mode = MODES[q.mobility]
        self.minutes = mode.overhead_min + dist_km * mode.detour / mode.speed_kmh * 60.0

    def __len__(self) -> int:
        return int(self.idx.size)

    def col(self, name: str) -> np.ndarray:
        """A pool column restricted to this view."""
        column: np.ndarray = getattr(self.pool, name)[self.idx]
        return column

    def listing(self, local: int) -> Mapping[str, Any]:
        return self.pool.listings[int(self.idx[local])]

    def _entries_of(self, locals_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(entry positions in the pool's entry arrays, owning local index) of these view rows."""
        ptr = self.pool.ent_ptr
        rows = self.idx[locals_]
        starts = ptr[rows]
        counts = ptr[rows + 1] - starts
        total = int(counts.sum())
        owner = np.repeat(locals_, counts)
        if total == 0:
            return np.zeros(0, dtype=np.int64), owner
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        return offsets + np.arange(total), owner

    @cached_property
    def _entry_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Entries of every listing in the view (see _entries_of)."""
        return self._entries_of(np.arange(self.idx.size))

    @cached_property
    def has_schedule(self) -> np.ndarray:
        ptr = self.pool.ent_ptr
        scheduled: np.ndarray = (ptr[self.idx + 1] - ptr[self.idx]) > 0
        return scheduled

    @cached_property
    def slot_candidates(self) -> np.ndarray:
        """Local indices whose sessions may overlap the person's slots: the schedule prefilter (one AND of
        weekday × 3-hour bitmasks); only their entries are compared minute by minute."""
        bins = 0
        for slot in self.q.slots:
            bins |= bins_of(slot.weekday, slot.start, slot.end)
        return np.flatnonzero((self.pool.sched_bins[self.idx] & np.uint64(bins)) != 0)

    @cached_property
    def _slot_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(entry positions, owner local index, overlaps a slot) for the prefiltered listings."""
        pos, owner = self._entries_of(self.slot_candidates)
        pool = self.pool
        wd, start, end, weeks = (
            pool.ent_wd[pos],
            pool.ent_start[pos],
            pool.ent_end[pos],
            pool.ent_weeks[pos],
        )
        hit = np.zeros(pos.size, dtype=bool)
        for slot in self.q.slots:
            hit |= (
                (wd == slot.weekday)
                & (start < slot.end)
                & (end > slot.start)
                & ((weeks & slot.weeks) != 0)
            )
        return pos, owner, hit

    @cached_property
    def schedule_overlap(self) -> np.ndarray:
        """Per listing: some session overlaps the person's available times."""
        _pos, owner, hit = self._slot_entries
        return np.bincount(owner, weights=hit, minlength=self.idx.size) > 0

    @cached_property
    def upcoming(self) -> np.ndarray:
        """Per listing: sessions in the next 4 weeks within the person's availability (holidays skipped
        unless the listing says it opens on holidays); all sessions when the person gave no times."""
        if self.q.slots:
            pos, owner, hit = self._slot_entries
        else:
            pos, owner = self._entry_positions
            hit = None
        skip, every = window_tables(self.q.today)
        wd = self.pool.ent_wd[pos].astype(np.int64)
        weeks = self.pool.ent_weeks[pos].astype(np.int64)
        opens_on_holidays = self.pool.holidays_open[self.idx][owner]
        counts = np.where(opens_on_holidays, every[wd, weeks], skip[wd, weeks]).astype(float)
        if hit is not None:
            counts = counts * hit
        return np.bincount(owner, weights=counts, minlength=self.idx.size)
