"""A pool's rows read from listing dicts: the per-row numpy columns, flattened schedule entries and
the weekday × 3-hour schedule bitmask (forgiving about the shapes stored listings come in)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import numpy as np

from resdb.domain import schedule as sched
from resdb.domain.vocab import (
    GROUP_SIZES,
    KINDS,
    NOT_PARTICIPATION_KINDS,
    WEEKDAY_IDS,
    kind_id,
    target_id,
)

from .query import EVERY_WEEK_MASK, TARGET_BIT, weeks_mask

KIND_IDS: tuple[str, ...] = tuple(KINDS)
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(KIND_IDS)}
# Venues (buildings) and programmes (schemes) are not places a person joins: never in a View.
NOT_PROPOSABLE_CODES: tuple[int, ...] = tuple(sorted(KIND_CODE[k] for k in NOT_PARTICIPATION_KINDS))
GROUP_IDS: tuple[str | None, ...] = (None, *GROUP_SIZES)
GROUP_CODE: dict[str, int] = {g: i for i, g in enumerate(GROUP_IDS) if g}
_WD_INDEX: dict[str, int] = {w: i for i, w in enumerate(WEEKDAY_IDS)}


def _kind_code(value: Any, default: int) -> int:
    """Kind code from a Japanese label or alias (「居場所」「サロン」); `default` when unknown."""
    kid = kind_id(value) if isinstance(value, str) else None
    return KIND_CODE[kid] if kid else default


def _target_bit(value: Any) -> int:
    """Target bit from a Japanese label or alias (「高齢者」「誰でも」); 0 when unknown."""
    tid = target_id(value) if isinstance(value, str) else None
    return TARGET_BIT[tid] if tid else 0


def num(value: Any) -> float:
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


# Per-row columns: name → (dtype, value of a row whose field is missing).
COLUMNS: dict[str, tuple[Any, Any]] = {
    "lat": (float, math.nan),
    "lon": (float, math.nan),
    "kind": (np.int8, 0),
    "min_age": (float, math.nan),
    "max_age": (float, math.nan),
    "targets": (np.int32, 0),
    "residents_only": (bool, False),
    "has_area": (bool, False),
    "capacity": (float, math.nan),
    "cost": (float, math.nan),
    "pickup": (bool, False),
    "barrier_free": (bool, False),
    "referrals": (float, math.nan),
    "group": (np.int8, 0),
    "verified": (np.int32, 0),
    "sample": (bool, False),
    "reservation": (bool, False),
    "holidays_open": (bool, False),
    "outcome_rate": (float, math.nan),  # shrunk continuing rate of past referrals, nan = none
    "proposable": (bool, False),
    "sched_bins": (np.uint64, 0),  # weekday × 3-hour bins its sessions touch (schedule prefilter)
    "position": (np.int64, 0),  # the row's place in the caller's order (ties break by it)
    "alive": (bool, False),  # False once apply() replaced or removed the listing
}
ENTRY_COLUMNS: dict[str, Any] = {
    "ent_wd": np.int8,
    "ent_start": np.int16,
    "ent_end": np.int16,
    "ent_weeks": np.int8,
}
BIN_MINUTES = 180  # the schedule prefilter's time bins: 8 per day, 56 bits per week


def bins_of(weekday: int, start: int, end: int) -> int:
    """Bits of the weekday × 3-hour bins that minutes [start, end) touch."""
    if end <= start:
        return 0
    first, last = start // BIN_MINUTES, (end - 1) // BIN_MINUTES
    return sum(1 << (weekday * 8 + b) for b in range(first, min(last, 7) + 1))


def read_rows(
    source: list[Mapping[str, Any]],
) -> tuple[dict[str, np.ndarray], list[str], np.ndarray, dict[str, np.ndarray]]:
    """(columns, ids, entry counts, entry columns) of listings in the given order."""
    n = len(source)
    cols = {name: np.full(n, fill, dtype=dtype) for name, (dtype, fill) in COLUMNS.items()}
    cols["lat"] = np.array([num(item.get("lat")) for item in source], dtype=float).reshape(n)
    cols["lon"] = np.array([num(item.get("lon")) for item in source], dtype=float).reshape(n)
    kind, min_age, max_age, targets = (
        cols["kind"],
        cols["min_age"],
        cols["max_age"],
        cols["targets"],
    )
    residents_only, has_area = cols["residents_only"], cols["has_area"]
    capacity, cost, pickup, barrier_free = (
        cols["capacity"],
        cols["cost"],
        cols["pickup"],
        cols["barrier_free"],
    )
    referrals, group, verified = cols["referrals"], cols["group"], cols["verified"]
    sample, reservation, holidays_open = cols["sample"], cols["reservation"], cols["holidays_open"]
    outcome_rate, sched_bins = cols["outcome_rate"], cols["sched_bins"]
    ids: list[str] = []
    counts = np.zeros(n, dtype=np.int64)
    ent_rows: list[tuple[int, int, int, int]] = []
    other = KIND_CODE["other"]
    target_bit = TARGET_BIT
    for i, item in enumerate(source):
        get = item.get
        ids.append(str(get("id")))
        code = KIND_CODE.get(get("kind"))  # type: ignore[arg-type]
        kind[i] = code if code is not None else _kind_code(get("kind"), other)
        elig = get("eligibility")
        if elig:
            min_age[i] = num(elig.get("min_age"))
            max_age[i] = num(elig.get("max_age"))
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
        if area and isinstance(area, Mapping) and (area.get("districts") or area.get("geometry")):
            has_area[i] = True
        capacity[i] = num(get("capacity"))
        cost[i] = num(get("cost_yen"))
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
            outcome_rate[i] = num(outcome.get("rate"))
        rows = _entries(get("schedule"))
        bins = 0
        for wd, start, end, _weeks in rows:
            bins |= bins_of(wd, start, end)
        sched_bins[i] = bins
        ent_rows.extend(rows)
        counts[i] = len(rows)
    cols["proposable"] = ~np.isin(kind, NOT_PROPOSABLE_CODES)
    cols["alive"][:] = True
    ent = np.array(ent_rows, dtype=np.int32).reshape(-1, 4)
    entries = {
        name: ent[:, k].astype(dtype) for k, (name, dtype) in enumerate(ENTRY_COLUMNS.items())
    }
    return cols, ids, counts, entries
