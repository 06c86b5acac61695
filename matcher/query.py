"""Person input (contract Person format) validated into an immutable Query the engine works from."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from resdb.domain import schedule as sched
from resdb.domain.textnorm import expand_terms, normalize
from resdb.domain.travel import MODES, max_distance_km
from resdb.domain.vocab import (
    GOALS,
    GROUP_SIZES,
    MOBILITY,
    TARGETS,
    goal_id,
    mobility_id,
    target_id,
)

TARGET_IDS: tuple[str, ...] = tuple(TARGETS)
TARGET_BIT: dict[str, int] = {t: 1 << i for i, t in enumerate(TARGET_IDS)}
ALL_BIT = TARGET_BIT["all"]

DEFAULT_MOBILITY = "walk"
DEFAULT_MAX_MINUTES = 30.0
SCHEDULE_WINDOW_DAYS = 28
DEFAULT_STALE_DAYS = 365  # resdb passes RESDB_STALE_DAYS
EVERY_WEEK_MASK = 0b11111


def weeks_mask(weeks: tuple[int, ...] | None) -> int:
    """Bit n-1 set for each week n of the month; all five bits for every week."""
    if weeks is None:
        return EVERY_WEEK_MASK
    mask = 0
    for n in weeks:
        mask |= 1 << (n - 1)
    return mask


def implied_targets(age: int | None) -> set[str]:
    """Targets a person belongs to by age alone: elderly 65+, youth 15–39, children under 18."""
    if age is None:
        return set()
    implied = set()
    if age >= 65:
        implied.add("elderly")
    if 15 <= age <= 39:
        implied.add("youth")
    if age < 18:
        implied.add("children")
    return implied


@lru_cache(maxsize=64)
def window_tables(today: date, days: int = SCHEDULE_WINDOW_DAYS) -> tuple[np.ndarray, np.ndarray]:
    """Sessions per (weekday, weeks-mask) in the window starting today: (holidays skipped, all days).

    table[wd, mask] = how many days in the window fall on weekday `wd` in one of the weeks in `mask`.
    """
    counts = np.zeros((2, 7, 5), dtype=np.int16)
    for offset in range(days):
        day = today + timedelta(days=offset)
        nth = sched.week_of_month(day) - 1
        counts[1, day.weekday(), nth] += 1
        if not sched.is_holiday(day):
            counts[0, day.weekday(), nth] += 1
    tables = np.zeros((2, 7, 32), dtype=np.int16)
    for mask in range(32):
        bits = [n for n in range(5) if mask & (1 << n)]
        if bits:
            tables[:, :, mask] = counts[:, :, bits].sum(axis=2)
    return tables[0], tables[1]


@dataclass(frozen=True)
class Slot:
    """One available time slot of the person, in minutes of the day."""

    weekday: int
    start: int
    end: int
    weeks: int = EVERY_WEEK_MASK


@dataclass(frozen=True)
class Query:
    """Everything the engine needs to know about one person, validated and precomputed."""

    raw: Mapping[str, Any]
    today: date
    lat: float | None
    lon: float | None
    district: str | None
    age: int | None
    mobility: str
    max_minutes: float
    slots: tuple[Slot, ...]
    goals: tuple[str, ...]
    interests: tuple[str, ...]
    interest_terms: tuple[tuple[str, frozenset[str]], ...]
    targets: frozenset[str]
    target_mask: int
    group_size: str | None
    need_barrier_free: bool
    need_pickup: bool
    budget: int | None
    exclude: frozenset[str]
    stale_days: int = DEFAULT_STALE_DAYS
    active_places: frozenset[str] = (
        frozenset()
    )  # listings where the person already takes part (never proposed)

    @property
    def has_home(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def max_km(self) -> float:
        return max_distance_km(self.max_minutes, self.mobility)

    @property
    def mode_label(self) -> str:
        return MODES[self.mobility].label if self.mobility in MODES else MOBILITY[self.mobility]


def _bad(field_name: str, message: str) -> ValueError:
    return ValueError(f"{field_name}: {message}")


def _number(value: Any, field_name: str, *, minimum: float | None = None) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _bad(field_name, f"数値で指定してください（{value!r}）")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad(field_name, f"数値で指定してください（{value!r}）") from None
    if math.isnan(number) or math.isinf(number):
        raise _bad(field_name, f"数値で指定してください（{value!r}）")
    if minimum is not None and number < minimum:
        raise _bad(field_name, f"{minimum:g} 以上で指定してください（{value!r}）")
    return number


def _string_list(value: Any, field_name: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.replace("、", ",").split(",")) if part]
    if not isinstance(value, list | tuple | set | frozenset):
        raise _bad(field_name, "一覧（配列）で指定してください")
    out = []
    for item in value:
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise _bad(field_name, f"文字列で指定してください（{item!r}）")
        text = str(item).strip()
        if text:
            out.append(text)
    return out


def parse_person(
    person: Mapping[str, Any], today: date, *, stale_days: int = DEFAULT_STALE_DAYS
) -> Query:
    """Validate a contract Person (home already resolved to lat/lon where possible) into a Query.

    Raises ValueError with a Japanese message naming the field for unusable input.
    """
    if not isinstance(person, Mapping):
        raise ValueError("person: 相談者の情報はオブジェクトで指定してください")
    home = person.get("home") or {}
    if not isinstance(home, Mapping):
        raise _bad("home", "{lat, lon} などのオブジェクトで指定してください")
    lat = _number(home.get("lat"), "home.lat")
    lon = _number(home.get("lon"), "home.lon")
    if (lat is None) != (lon is None):
        raise _bad("home", "lat と lon は両方指定してください")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise _bad("home", f"緯度経度が正しくありません（{lat}, {lon}）")
    district = home.get("district")

    age_value = _number(person.get("age"), "age", minimum=0)
    age = int(age_value) if age_value is not None else None

    given = person.get("mobility") or DEFAULT_MOBILITY
    mobility = mobility_id(given) if isinstance(given, str) else None
    if mobility is None:
        raise _bad(
            "mobility",
            f"移動手段が正しくありません（{given!r}）。{', '.join(MOBILITY)} のいずれか",
        )
    max_minutes = _number(person.get("max_minutes"), "max_minutes", minimum=0)
    if max_minutes is None:
        max_minutes = DEFAULT_MAX_MINUTES

    slots = tuple(
        Slot(e.weekday, e.start_minute, e.end_minute, weeks_mask(e.weeks))
        for e in sched.parse(person.get("available") or [], "available")
    )

    goals = []
    for value in _string_list(person.get("goals"), "goals"):
        gid = goal_id(value)
        if gid is None:
            raise _bad(
                "goals", f"目的が正しくありません（{value!r}）。{', '.join(GOALS)} のいずれか"
            )
        if gid not in goals:
            goals.append(gid)

    interests = tuple(dict.fromkeys(_string_list(person.get("interests"), "interests")))
    interest_terms = tuple(
        (interest, frozenset(t for t in expand_terms([interest]) | {normalize(interest)} if t))
        for interest in interests
    )

    targets: set[str] = set()
    for value in _string_list(person.get("targets"), "targets"):
        tid = target_id(value)
        if tid is None:
            raise _bad(
                "targets", f"対象が正しくありません（{value!r}）。{', '.join(TARGETS)} のいずれか"
            )
        targets.add(tid)
    targets |= implied_targets(age)
    mask = 0
    for tid in targets:
        mask |= TARGET_BIT[tid]

    prefers = person.get("prefers") or {}
    if not isinstance(prefers, Mapping):
        raise _bad("prefers", "オブジェクトで指定してください")
    group_size = prefers.get("group_size") or None
    if group_size is not None and group_size not in GROUP_SIZES:
        raise _bad(
            "prefers.group_size",
            f"{', '.join(GROUP_SIZES)} のいずれかで指定してください（{group_size!r}）",
        )

    needs = person.get("needs") or {}
    if not isinstance(needs, Mapping):
        raise _bad("needs", "オブジェクトで指定してください")
    need_pickup = bool(needs.get("pickup")) or mobility == "pickup_needed"

    budget_value = _number(person.get("budget_yen"), "budget_yen", minimum=0)
    exclude = frozenset(str(x) for x in _string_list(person.get("exclude"), "exclude"))

    return Query(
        raw=person,
        today=today,
        lat=lat,
        lon=lon,
        district=str(district) if district else None,
        age=age,
        mobility=mobility,
        max_minutes=max_minutes,
        slots=slots,
        goals=tuple(goals),
        interests=interests,
        interest_terms=interest_terms,
        targets=frozenset(targets),
        target_mask=mask,
        group_size=group_size,
        need_barrier_free=bool(needs.get("barrier_free")),
        need_pickup=need_pickup,
        budget=int(budget_value) if budget_value is not None else None,
        exclude=exclude,
        stale_days=stale_days,
        active_places=frozenset(
            str(x) for x in _string_list(person.get("active_places"), "active_places")
        ),
    )
