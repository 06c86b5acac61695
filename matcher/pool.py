"""CandidatePool: a listing set turned once into numpy columns, and per-person Views of nearby listings.

Build a pool once per listing set (``CandidatePool(listings)``) and pass it to ``match``,
``match_batch`` and ``gap_report`` instead of the list: coordinates, eligibility, capacities,
costs and flattened schedules become numpy arrays, so one person is checked against tens of
thousands of listings with vector operations. Text (name, description, activities) is
normalized once for the whole pool into one string; a search term's matching listings are found
with one regular-expression scan of it and cached per pool.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import cached_property
from typing import Any

import numpy as np

from resdb.domain import schedule as sched
from resdb.domain.textnorm import normalize
from resdb.domain.travel import EARTH_RADIUS_KM, MODES
from resdb.domain.vocab import (
    GROUP_SIZES,
    KINDS,
    NOT_PARTICIPATION_KINDS,
    WEEKDAY_IDS,
    kind_id,
    target_id,
)

from .query import EVERY_WEEK_MASK, TARGET_BIT, Query, weeks_mask, window_tables

KIND_IDS: tuple[str, ...] = tuple(KINDS)
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(KIND_IDS)}
# Venues (buildings) and programmes (schemes) are not places a person joins: never in a View.
NOT_PROPOSABLE_CODES: tuple[int, ...] = tuple(sorted(KIND_CODE[k] for k in NOT_PARTICIPATION_KINDS))
GROUP_IDS: tuple[str | None, ...] = (None, *GROUP_SIZES)
GROUP_CODE: dict[str, int] = {g: i for i, g in enumerate(GROUP_IDS) if g}
_WD_INDEX: dict[str, int] = {w: i for i, w in enumerate(WEEKDAY_IDS)}
TERM_CACHE_SIZE = 512
NEAR_MISS_FACTOR = 1.5  # listings up to 1.5 × the reachable distance are kept to report near misses


def _kind_code(value: Any, default: int) -> int:
    """Kind code from a Japanese label or alias (「居場所」「サロン」); `default` when unknown."""
    kid = kind_id(value) if isinstance(value, str) else None
    return KIND_CODE[kid] if kid else default


def _target_bit(value: Any) -> int:
    """Target bit from a Japanese label or alias (「高齢者」「誰でも」); 0 when unknown."""
    tid = target_id(value) if isinstance(value, str) else None
    return TARGET_BIT[tid] if tid else 0


def _num(value: Any) -> float:
    if value is None or value == "" or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _flag(value: Any) -> float:
    """1.0 / 0.0 for booleans (and their usual spellings), nan when unknown."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return 1.0 if value else 0.0
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "はい", "あり", "有", "可"):
        return 1.0
    if text in ("false", "0", "no", "n", "いいえ", "なし", "無", "不可"):
        return 0.0
    return math.nan


def _day_ordinal(value: Any) -> int:
    if isinstance(value, datetime):
        return value.date().toordinal()
    if isinstance(value, date):
        return value.toordinal()
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10]).toordinal()
        except ValueError:
            return 0
    return 0


_TIME_CACHE: dict[str, int | None] = {}


def _hhmm(value: Any) -> int | None:
    """Minutes of an exact "HH:MM" string (cached); None for anything else."""
    if not isinstance(value, str):
        return None
    cached = _TIME_CACHE.get(value, -1)
    if cached != -1:
        return cached
    minutes = None
    if len(value) == 5 and value[2] == ":":
        h, m = value[:2], value[3:]
        if h.isdigit() and m.isdigit() and int(h) < 24 and int(m) < 60:
            minutes = int(h) * 60 + int(m)
    if len(_TIME_CACHE) < 10_000:
        _TIME_CACHE[value] = minutes
    return minutes


def _fast_weeks(weeks: Any) -> int | None:
    """Weeks mask of a plain list of ints 1–5 (None = use the slow path)."""
    if not weeks:
        return EVERY_WEEK_MASK
    if not isinstance(weeks, list | tuple):
        return None
    mask = 0
    for n in weeks:
        if type(n) is not int or not 1 <= n <= 5:
            return None
        mask |= 1 << (n - 1)
    return mask


def _raw_text(item: Mapping[str, Any]) -> str:
    parts = [str(item.get("name") or ""), str(item.get("description") or "")]
    parts.extend(str(a) for a in (item.get("activities") or ()))
    return " ".join(parts).replace("\r", " ").replace("\n", " ")


def _entries(schedule: Any) -> list[tuple[int, int, int, int]]:
    """(weekday, start minute, end minute, weeks mask) of a stored schedule, skipping bad entries."""
    if not schedule or not isinstance(schedule, list | tuple):
        return []
    out = []
    for item in schedule:
        if not isinstance(item, Mapping):
            continue
        wd = _WD_INDEX.get(item.get("weekday"))  # type: ignore[arg-type]
        start, end = _hhmm(item.get("start")), _hhmm(item.get("end"))
        mask = _fast_weeks(item.get("weeks"))
        if wd is not None and start is not None and end is not None and mask is not None:
            if start < end:
                out.append((wd, start, end, mask))
            continue
        try:  # the slow, forgiving path (Japanese weekdays, 9:00, weeks as strings …)
            entry = sched.parse_entry(item)
        except sched.ScheduleError:
            continue
        out.append((entry.weekday, entry.start_minute, entry.end_minute, weeks_mask(entry.weeks)))
    return out


class CandidatePool:
    """Listings (contract-shaped dicts) with their matching-relevant fields as numpy columns.

    prepare_text=False defers text normalization (about 6 µs per listing) to the first query
    that needs it; by default it is done here so that every query has the same latency.
    """

    def __init__(self, listings: Iterable[Mapping[str, Any]], *, prepare_text: bool = True) -> None:
        source = list(listings)
        n = len(source)
        # Rows are stored by latitude (listings without coordinates last): a person's latitude band
        # is then one contiguous slice and column gathers stay cache-friendly. `position` maps a
        # row back to the caller's order (used to break ties the same way whatever the layout).
        first_lat = np.array([_num(item.get("lat")) for item in source], dtype=float).reshape(n)
        first_lon = np.array([_num(item.get("lon")) for item in source], dtype=float).reshape(n)
        missing = np.isnan(first_lat) | np.isnan(first_lon)
        self.position = np.argsort(np.where(missing, np.inf, first_lat), kind="stable").astype(
            np.int64
        )
        self.n_located = int((~missing).sum())
        self.listings: list[Mapping[str, Any]] = [source[i] for i in self.position]
        lat = first_lat[self.position]
        lon = first_lon[self.position]
        kind = np.zeros(n, dtype=np.int8)
        min_age = np.full(n, np.nan)
        max_age = np.full(n, np.nan)
        targets = np.zeros(n, dtype=np.int32)
        residents_only = np.zeros(n, dtype=bool)
        has_area = np.zeros(n, dtype=bool)
        capacity = np.full(n, np.nan)
        cost = np.full(n, np.nan)
        pickup = np.zeros(n, dtype=bool)
        barrier_free = np.zeros(n, dtype=bool)
        referrals = np.full(n, np.nan)
        group = np.zeros(n, dtype=np.int8)
        verified = np.zeros(n, dtype=np.int32)
        sample = np.zeros(n, dtype=bool)
        reservation = np.zeros(n, dtype=bool)
        holidays_open = np.zeros(n, dtype=bool)
        outcome_rate = np.full(
            n, np.nan
        )  # shrunk continuing rate of past referrals (resdb.outcomes), nan = none
        ids: list[str] = []
        ent_ptr = np.zeros(n + 1, dtype=np.int64)
        ent_rows: list[tuple[int, int, int, int]] = []
        other = KIND_CODE["other"]
        target_bit = TARGET_BIT
        for i, item in enumerate(self.listings):
            get = item.get
            ids.append(str(get("id")))
            code = KIND_CODE.get(get("kind"))  # type: ignore[arg-type]
            kind[i] = code if code is not None else _kind_code(get("kind"), other)
            elig = get("eligibility")
            if elig:
                min_age[i] = _num(elig.get("min_age"))
                max_age[i] = _num(elig.get("max_age"))
                residents_only[i] = _flag(elig.get("residents_only")) == 1.0
            mask = 0
            raw_targets = get("targets") or ()
            if isinstance(raw_targets, str):
                raw_targets = raw_targets.replace("、", ",").split(",")
            for t in raw_targets:
                bit = target_bit.get(t)
                mask |= bit if bit is not None else _target_bit(t)
            targets[i] = mask
            area = get("service_area")
            if (
                area
                and isinstance(area, Mapping)
                and (area.get("districts") or area.get("geometry"))
            ):
                has_area[i] = True
            capacity[i] = _num(get("capacity"))
            cost[i] = _num(get("cost_yen"))
            pickup[i] = _flag(get("pickup")) == 1.0
            barrier_free[i] = _flag(get("barrier_free")) == 1.0
            referrals[i] = _flag(get("accepts_referrals"))
            group[i] = GROUP_CODE.get(get("group_size"), 0)  # type: ignore[arg-type]
            verified[i] = _day_ordinal(get("verified_at"))
            sample[i] = _flag(get("is_sample")) == 1.0
            reservation[i] = _flag(get("reservation_required")) == 1.0
            holidays_open[i] = _flag(get("holidays_closed")) == 0.0
            outcome = get("outcome")
            if isinstance(outcome, Mapping):
                outcome_rate[i] = _num(outcome.get("rate"))
            rows = _entries(get("schedule"))
            ent_rows.extend(rows)
            ent_ptr[i + 1] = len(ent_rows)
        self.ids = ids
        self.index_of: dict[str, int] = {}
        for i, rid in enumerate(ids):
            self.index_of.setdefault(rid, i)
        self.lat, self.lon = lat, lon
        self.kind, self.min_age, self.max_age, self.targets = kind, min_age, max_age, targets
        self.residents_only, self.has_area = residents_only, has_area
        self.capacity, self.cost, self.pickup, self.barrier_free = (
            capacity,
            cost,
            pickup,
            barrier_free,
        )
        self.referrals, self.group, self.verified = referrals, group, verified
        self.sample, self.reservation, self.holidays_open = sample, reservation, holidays_open
        self.proposable = ~np.isin(kind, NOT_PROPOSABLE_CODES)
        self.outcome_rate = outcome_rate
        ent = np.array(ent_rows, dtype=np.int32).reshape(-1, 4)
        self.ent_ptr = ent_ptr
        self.ent_wd = ent[:, 0].astype(np.int8)
        self.ent_start = ent[:, 1].astype(np.int16)
        self.ent_end = ent[:, 2].astype(np.int16)
        self.ent_weeks = ent[:, 3].astype(np.int8)
        lat[self.n_located :] = np.nan  # rows without a usable pair of coordinates
        lon[self.n_located :] = np.nan
        self._lat_sorted = lat[: self.n_located]
        self._lines: list[str] | None = None
        self._blob = ""
        self._line_starts = np.zeros(0, dtype=np.int64)
        self._term_cache: OrderedDict[frozenset[str], np.ndarray] = OrderedDict()
        self._acts: dict[int, list[str]] = {}
        if prepare_text:
            self._ensure_text()

    def __len__(self) -> int:
        return len(self.listings)

    # --- normalized text, searched as one blob ---------------------------------------------
    def _ensure_text(self) -> list[str]:
        """Normalize name + description + activities of every listing at once (one line each)."""
        if self._lines is None:
            raw = "\n".join(_raw_text(item) for item in self.listings)
            blob = normalize(raw)
            lines = blob.split("\n")
            if len(lines) != len(
                self.listings
            ):  # a normalization changed line breaks: go one by one
                lines = [normalize(_raw_text(item)) for item in self.listings]
                blob = "\n".join(lines)
            lengths = np.fromiter(
                (len(line) + 1 for line in lines), dtype=np.int64, count=len(lines)
            )
            self._line_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
            self._blob = blob
            self._lines = lines
        return self._lines

    def text(self, i: int) -> str:
        """Normalized name + description + activities of listing i."""
        return self._ensure_text()[i]

    def term_hits(self, terms: frozenset[str]) -> np.ndarray:
        """Sorted pool indices whose text contains any of the (normalized) terms; cached per pool."""
        cached = self._term_cache.get(terms)
        if cached is not None:
            self._term_cache.move_to_end(terms)
            return cached
        self._ensure_text()
        usable = sorted((t for t in terms if t and "\n" not in t), key=len, reverse=True)
        if usable and self.listings:
            pattern = re.compile("|".join(re.escape(t) for t in usable))
            positions = np.fromiter(
                (m.start() for m in pattern.finditer(self._blob)), dtype=np.int64
            )
            hits = np.unique(np.searchsorted(self._line_starts, positions, side="right") - 1)
        else:
            hits = np.zeros(0, dtype=np.int64)
        self._term_cache[terms] = hits
        if len(self._term_cache) > TERM_CACHE_SIZE:
            self._term_cache.popitem(last=False)
        return hits

    def contains_any(self, terms: frozenset[str], idx: np.ndarray) -> np.ndarray:
        """For each pool index in idx: does its text contain one of the terms?"""
        hits = self.term_hits(terms)
        if hits.size == 0:
            return np.zeros(idx.size, dtype=bool)
        mask = np.zeros(len(self.listings), dtype=bool)
        mask[hits] = True
        return mask[idx]

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
        lo = int(np.searchsorted(self._lat_sorted, lat - dlat, side="left"))
        hi = int(np.searchsorted(self._lat_sorted, lat + dlat, side="right"))
        if hi <= lo:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        coslat = max(0.01, math.cos(math.radians(lat)))
        dlon = radius_km / (111.2 * coslat) + 1e-6
        band = lo + np.flatnonzero(np.abs(self.lon[lo:hi] - lon) <= dlon)
        dist = haversine_many(lat, lon, self.lat[band], self.lon[band])
        keep = dist <= radius_km
        return band[keep], dist[keep]

    def view(self, q: Query) -> View:
        """The listings this person could reach (plus near misses up to 1.5× the distance)."""
        if q.has_home:
            assert q.lat is not None and q.lon is not None
            radius = NEAR_MISS_FACTOR * q.max_km + 0.05
            idx, dist = self.nearby(q.lat, q.lon, radius)
        else:
            idx = np.arange(len(self.listings), dtype=np.int64)
            dist = np.full(idx.size, np.nan)
        keep = self.proposable[idx]
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
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))


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
        return getattr(self.pool, name)[self.idx]

    def listing(self, local: int) -> Mapping[str, Any]:
        return self.pool.listings[int(self.idx[local])]

    @cached_property
    def _entry_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(entry positions in the pool's entry arrays, owning local index) for this view."""
        ptr = self.pool.ent_ptr
        starts = ptr[self.idx]
        counts = ptr[self.idx + 1] - starts
        total = int(counts.sum())
        owner = np.repeat(np.arange(self.idx.size), counts)
        if total == 0:
            return np.zeros(0, dtype=np.int64), owner
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        return offsets + np.arange(total), owner

    @cached_property
    def has_schedule(self) -> np.ndarray:
        ptr = self.pool.ent_ptr
        return (ptr[self.idx + 1] - ptr[self.idx]) > 0

    @cached_property
    def entry_overlap(self) -> np.ndarray:
        """Per gathered entry: does it overlap one of the person's slots (weeks honoured)?"""
        pos, _owner = self._entry_positions
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
        return hit

    @cached_property
    def schedule_overlap(self) -> np.ndarray:
        """Per listing: some session overlaps the person's available times."""
        _pos, owner = self._entry_positions
        return np.bincount(owner, weights=self.entry_overlap, minlength=self.idx.size) > 0

    @cached_property
    def upcoming(self) -> np.ndarray:
        """Per listing: sessions in the next 4 weeks within the person's availability (holidays skipped
        unless the listing says it opens on holidays); all sessions when the person gave no times."""
        pos, owner = self._entry_positions
        skip, every = window_tables(self.q.today)
        wd = self.pool.ent_wd[pos].astype(np.int64)
        weeks = self.pool.ent_weeks[pos].astype(np.int64)
        opens_on_holidays = self.pool.holidays_open[self.idx][owner]
        counts = np.where(opens_on_holidays, every[wd, weeks], skip[wd, weeks]).astype(float)
        if self.q.slots:
            counts = counts * self.entry_overlap
        return np.bincount(owner, weights=counts, minlength=self.idx.size)
