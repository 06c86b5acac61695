"""The contract's hard rules: named, vectorized checks with the Japanese reason a coordinator reads.

A listing that breaks any rule is never proposed. Rules are listed in RULES in priority order:
the first broken rule is the reason shown for a near miss in ``excluded``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from resdb.domain.textnorm import place_key
from resdb.domain.travel import haversine_km, travel_minutes
from resdb.domain.vocab import TARGETS

from .pool import KIND_CODE, View
from .query import ALL_BIT, TARGET_BIT, Query

CoversHome = Callable[[Mapping[str, Any]], "bool | None"]


@dataclass(frozen=True)
class Rule:
    """One hard rule. `check` gives the violation mask over a View; `message` the reason for one listing.

    A `lazy` rule (the service-area rule) needs a per-listing callback: `check` then returns the
    mask of listings the rule applies to and the engine resolves those it needs with `resolve`.
    """

    id: str
    label: str
    check: Callable[[Query, View], np.ndarray]
    message: Callable[[Query, View, int], str]
    lazy: bool = False


def _none(v: View) -> np.ndarray:
    return np.zeros(len(v), dtype=bool)


def _fmt_minutes(value: float) -> str:
    return f"{value:g}"


# --- exclude ---------------------------------------------------------------------------------
def _exclude(q: Query, v: View) -> np.ndarray:
    if not q.exclude:
        return _none(v)
    ids = v.pool.ids
    return np.fromiter((ids[i] in q.exclude for i in v.idx), dtype=bool, count=len(v))


def _exclude_msg(q: Query, v: View, i: int) -> str:
    return "除外リストに入っています"


def _active(q: Query, v: View) -> np.ndarray:
    if not q.active_places:
        return _none(v)
    ids = v.pool.ids
    return np.fromiter((ids[i] in q.active_places for i in v.idx), dtype=bool, count=len(v))


def _active_msg(q: Query, v: View, i: int) -> str:
    return "すでに参加中の場所です"


# --- age -------------------------------------------------------------------------------------
def _age(q: Query, v: View) -> np.ndarray:
    if q.age is None:
        return _none(v)
    with np.errstate(invalid="ignore"):
        return (v.col("min_age") > q.age) | (v.col("max_age") < q.age)


def age_range_text(min_age: float | None, max_age: float | None) -> str:
    """「65歳以上」「18歳以下」「15〜39歳」."""
    lo = None if min_age is None or math.isnan(min_age) else int(min_age)
    hi = None if max_age is None or math.isnan(max_age) else int(max_age)
    if lo is not None and hi is not None:
        return f"{lo}〜{hi}歳"
    if lo is not None:
        return f"{lo}歳以上"
    if hi is not None:
        return f"{hi}歳以下"
    return "年齢制限なし"


def _age_msg(q: Query, v: View, i: int) -> str:
    pool, j = v.pool, int(v.idx[i])
    return f"年齢が対象外です（{age_range_text(pool.min_age[j], pool.max_age[j])}）"


# --- targets ---------------------------------------------------------------------------------
def _targets(q: Query, v: View) -> np.ndarray:
    t = v.col("targets")
    ok = (t == 0) | ((t & ALL_BIT) != 0) | ((t & q.target_mask) != 0)
    violated: np.ndarray = ~ok
    return violated


def target_labels(mask: int) -> list[str]:
    return [TARGETS[t] for t, bit in TARGET_BIT.items() if mask & bit]


def _targets_msg(q: Query, v: View, i: int) -> str:
    labels = target_labels(int(v.pool.targets[int(v.idx[i])]))
    return f"対象者が合いません（{'・'.join(labels)}向け）" if labels else "対象者が合いません"


# --- service area (lazy) ---------------------------------------------------------------------
def _area_applies(q: Query, v: View) -> np.ndarray:
    applies: np.ndarray = v.col("residents_only") | (v.col("kind") == KIND_CODE["center"])
    return applies


def _area_msg(q: Query, v: View, i: int) -> str:
    return "担当地区外です"


def district_covers(q: Query, listing: Mapping[str, Any]) -> bool | None:
    """Fallback coverage by district name (place_key match); None when it cannot tell."""
    area = listing.get("service_area")
    districts = area.get("districts") if isinstance(area, Mapping) else None
    if not districts or not q.district:
        return None
    home = place_key(q.district)
    return any(place_key(str(d)) == home for d in districts)


def area_violated(
    q: Query, listing: Mapping[str, Any], has_area: bool, covers_home: CoversHome | None
) -> bool:
    """The service-area rule for one listing it applies to (residents_only or a center).

    covers_home(listing) True → inside; False → outside; None (unknown) → district-name fallback,
    and when still unknown the rule fails only if the listing declares a service area.
    """
    answer = covers_home(listing) if covers_home is not None else None
    if answer is None:
        answer = district_covers(q, listing)
    if answer is None:
        return has_area
    return not answer


# --- capacity, cost --------------------------------------------------------------------------
def _capacity(q: Query, v: View) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return v.col("capacity") <= 0


def _capacity_msg(q: Query, v: View, i: int) -> str:
    return "定員に空きがありません"


def _cost(q: Query, v: View) -> np.ndarray:
    if q.budget is None:
        return _none(v)
    with np.errstate(invalid="ignore"):
        return v.col("cost") > q.budget


def _cost_msg(q: Query, v: View, i: int) -> str:
    cost = v.pool.cost[int(v.idx[i])]
    return f"費用が予算を超えます（{int(cost):,}円）"


# --- schedule --------------------------------------------------------------------------------
def _schedule(q: Query, v: View) -> np.ndarray:
    if not q.slots:
        return _none(v)
    violated: np.ndarray = v.has_schedule & ~v.schedule_overlap
    return violated


def _schedule_msg(q: Query, v: View, i: int) -> str:
    return "参加できる時間帯に開催がありません"


# --- travel, pickup, barrier-free ------------------------------------------------------------
def _travel(q: Query, v: View) -> np.ndarray:
    if not q.has_home:
        return _none(v)
    with np.errstate(invalid="ignore"):
        return v.minutes > q.max_minutes


def _travel_msg(q: Query, v: View, i: int) -> str:
    minutes = max(int(float(v.minutes[i]) + 0.5), 1)  # rounded as in the proposal's travel reason
    return f"{q.mode_label}で約{minutes}分かかり、上限の{_fmt_minutes(q.max_minutes)}分を超えます"


def _pickup(q: Query, v: View) -> np.ndarray:
    if not q.need_pickup:
        return _none(v)
    return ~v.col("pickup")


def _pickup_msg(q: Query, v: View, i: int) -> str:
    return "送迎がありません"


def _barrier_free(q: Query, v: View) -> np.ndarray:
    if not q.need_barrier_free:
        return _none(v)
    return ~v.col("barrier_free")


def _barrier_free_msg(q: Query, v: View, i: int) -> str:
    return "バリアフリーではありません"


RULES: tuple[Rule, ...] = (
    Rule("exclude", "除外リスト", _exclude, _exclude_msg),
    Rule("active", "参加中", _active, _active_msg),
    Rule("age", "年齢", _age, _age_msg),
    Rule("targets", "対象者", _targets, _targets_msg),
    Rule("area", "担当地区", _area_applies, _area_msg, lazy=True),
    Rule("capacity", "定員", _capacity, _capacity_msg),
    Rule("cost", "費用", _cost, _cost_msg),
    Rule("schedule", "開催日時", _schedule, _schedule_msg),
    Rule("travel", "移動時間", _travel, _travel_msg),
    Rule("pickup", "送迎", _pickup, _pickup_msg),
    Rule("barrier_free", "バリアフリー", _barrier_free, _barrier_free_msg),
)
RULE_INDEX: dict[str, int] = {rule.id: r for r, rule in enumerate(RULES)}
AREA = RULE_INDEX["area"]

# Generic (listing-independent) wording, used when summarizing why nothing fits.
GENERIC_MESSAGES: dict[str, str] = {
    "exclude": "除外リストに入っています",
    "active": "すでに参加中の場所です",
    "age": "年齢が対象外です",
    "targets": "対象者が合いません",
    "area": "担当地区外です",
    "capacity": "定員に空きがありません",
    "cost": "費用が予算を超えます",
    "schedule": "参加できる時間帯に開催がありません",
    "travel": "移動時間が上限を超えます",
    "pickup": "送迎がありません",
    "barrier_free": "バリアフリーではありません",
}


def check_listing(
    person: Query, listing: Mapping[str, Any], covers_home: CoversHome | None = None
) -> list[tuple[str, str]]:
    """(rule id, Japanese reason) for every rule `listing` breaks for this person (scalar helper)."""
    from .pool import CandidatePool  # local: avoid a cycle at import time

    pool = CandidatePool([listing])
    view = pool.view(person)
    if len(view) == 0:  # no coordinates, or beyond even the near-miss radius
        if not person.has_home:
            return []
        assert person.lat is not None and person.lon is not None
        if math.isnan(pool.lat[0]) or math.isnan(pool.lon[0]):
            return [("travel", "場所が分からないため移動時間を計算できません")]
        km = haversine_km(person.lat, person.lon, float(pool.lat[0]), float(pool.lon[0]))
        minutes = max(math.ceil(travel_minutes(km, person.mobility)), 1)
        return [
            (
                "travel",
                f"{person.mode_label}で約{minutes}分かかり、上限の{_fmt_minutes(person.max_minutes)}分を超えます",
            )
        ]
    broken = []
    for rule in RULES:
        mask = rule.check(person, view)
        if not mask[0]:
            continue
        if rule.lazy and not area_violated(person, listing, bool(pool.has_area[0]), covers_home):
            continue
        broken.append((rule.id, rule.message(person, view, 0)))
    return broken
