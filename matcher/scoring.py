"""Scoring factors and their weights, declared once in FACTORS; a listing's score is their weighted mean (0..1).

Each factor maps (Query, View, local indices) to values in 0..1, vectorized over the candidates
(text factors use the pool's cached term index). A factor too costly to compute for every
candidate may declare a cheap upper `bound`; the engine then computes its exact value only for
listings whose bound could still reach the top (none of the current factors needs this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from resdb.domain.textnorm import expand_terms, normalize
from resdb.domain.vocab import GOALS, KINDS

from .pool import GROUP_CODE, View
from .query import DEFAULT_STALE_DAYS, Query

FactorFn = Callable[[Query, View, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Factor:
    """One scoring factor: id, Japanese label, weight and value function (0..1 per listing)."""

    id: str
    label: str
    weight: float
    function: FactorFn
    bound: FactorFn | None = (
        None  # cheap upper bound of a costly function; None = function is cheap
    )

    @property
    def cheap(self) -> bool:
        return self.bound is None


# --- goal fit --------------------------------------------------------------------------------
# How well each kind of place serves each goal (rows: goals, columns: kinds). first_step favours
# low-threshold 居場所/通いの場 well before 就労体験; work → work_trial; role → volunteer;
# childcare_peers → kosodate; consult → center; health → kayoi; learn → learning; friends →
# ibasho/kayoi/shokudo; routine → chikatsu and places with regular weekly sessions. A place whose
# text shows the goal (体操 for health, 就労 for work …, GOAL_KEYWORDS) gains KEYWORD_BONUS.
GOAL_KIND_FIT: dict[str, dict[str, float]] = {
    "first_step": {
        "ibasho": 1.0,
        "kayoi": 0.85,
        "shokudo": 0.75,
        "chikatsu": 0.65,
        "learning": 0.6,
        "kosodate": 0.55,
        "volunteer": 0.5,
        "center": 0.45,
        "work_trial": 0.3,
        "other": 0.4,
    },
    "friends": {
        "ibasho": 1.0,
        "kayoi": 0.95,
        "shokudo": 0.9,
        "volunteer": 0.7,
        "kosodate": 0.7,
        "learning": 0.6,
        "chikatsu": 0.6,
        "work_trial": 0.35,
        "center": 0.2,
        "other": 0.4,
    },
    "role": {
        "volunteer": 1.0,
        "work_trial": 0.65,
        "shokudo": 0.6,
        "chikatsu": 0.55,
        "ibasho": 0.4,
        "kayoi": 0.4,
        "learning": 0.3,
        "kosodate": 0.3,
        "center": 0.1,
        "other": 0.4,
    },
    "work": {
        "work_trial": 1.0,
        "chikatsu": 0.7,
        "volunteer": 0.5,
        "learning": 0.4,
        "center": 0.4,
        "ibasho": 0.3,
        "shokudo": 0.25,
        "kayoi": 0.15,
        "kosodate": 0.1,
        "other": 0.3,
    },
    "health": {
        "kayoi": 0.85,
        "ibasho": 0.45,
        "volunteer": 0.4,
        "learning": 0.4,
        "shokudo": 0.4,
        "chikatsu": 0.4,
        "work_trial": 0.3,
        "kosodate": 0.3,
        "center": 0.3,
        "other": 0.3,
    },
    "learn": {
        "learning": 1.0,
        "work_trial": 0.5,
        "chikatsu": 0.5,
        "volunteer": 0.5,
        "kayoi": 0.4,
        "ibasho": 0.4,
        "kosodate": 0.4,
        "shokudo": 0.3,
        "center": 0.2,
        "other": 0.3,
    },
    "childcare_peers": {
        "kosodate": 1.0,
        "shokudo": 0.7,
        "ibasho": 0.5,
        "learning": 0.4,
        "center": 0.4,
        "kayoi": 0.3,
        "volunteer": 0.3,
        "chikatsu": 0.1,
        "work_trial": 0.1,
        "other": 0.2,
    },
    "consult": {
        "center": 1.0,
        "ibasho": 0.6,
        "kosodate": 0.6,
        "chikatsu": 0.5,
        "shokudo": 0.4,
        "kayoi": 0.4,
        "learning": 0.3,
        "volunteer": 0.3,
        "work_trial": 0.3,
        "other": 0.3,
    },
    "routine": {
        "chikatsu": 1.0,
        "work_trial": 0.8,
        "kayoi": 0.7,
        "ibasho": 0.6,
        "volunteer": 0.5,
        "learning": 0.5,
        "kosodate": 0.5,
        "shokudo": 0.4,
        "center": 0.2,
        "other": 0.3,
    },
}
GOAL_IDS: tuple[str, ...] = tuple(GOALS)
GOAL_FIT = np.array(
    [[GOAL_KIND_FIT[g].get(k, 0.0) for k in KINDS] for g in GOAL_IDS]
)  # venues/programmes: 0

# Words in a listing's activities/description that show it serves a goal (synonyms added).
GOAL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "first_step": ("居場所", "フリースペース", "カフェ", "見学", "気軽"),
    "friends": ("交流", "仲間", "サロン", "カフェ", "おしゃべり"),
    "role": ("ボランティア", "担い手", "役割", "お手伝い"),
    "work": ("就労", "仕事", "作業", "農作業", "職場体験"),
    "health": ("体操", "運動", "介護予防", "ウォーキング"),
    "learn": ("講座", "学習", "教室", "日本語"),
    "childcare_peers": ("子育て", "親子", "赤ちゃん", "乳幼児", "ママ"),
    "consult": ("相談",),
    "routine": ("作業", "通所", "日中活動", "毎日"),
}
KEYWORD_BONUS = 0.2
GROUP_ADJUST_FIRST_STEP = {1: 0.1, 2: 0.0, 3: -0.2}  # small groups help a first step


@lru_cache(maxsize=1)
def goal_terms() -> dict[str, frozenset[str]]:
    """Normalized keyword sets per goal, with the shared synonym groups."""
    return {
        g: frozenset(expand_terms(words) | {normalize(w) for w in words})
        for g, words in GOAL_KEYWORDS.items()
    }


def _goal_rows(q: Query) -> list[int]:
    return [GOAL_IDS.index(g) for g in q.goals]


def goal_kind_fits(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """(goals × listings) fit from kind, group size (first_step) and weekly regularity (routine)."""
    kinds = v.pool.kind[v.idx[sel]]
    fits = GOAL_FIT[_goal_rows(q)][:, kinds].copy()
    for row, goal in enumerate(q.goals):
        if goal == "first_step":
            groups = v.pool.group[v.idx[sel]]
            adjust = np.zeros(sel.size)
            for code, delta in GROUP_ADJUST_FIRST_STEP.items():
                adjust[groups == code] = delta
            fits[row] = np.clip(fits[row] + adjust, 0.0, 1.0)
        elif goal == "routine":
            regular = np.where(
                v.has_schedule[sel], 0.6 + 0.4 * np.minimum(v.upcoming[sel], 4) / 4, 0.7
            )
            fits[row] = fits[row] * regular
    return fits


def _combine(fits: np.ndarray) -> np.ndarray:
    """Best goal counts most; serving several of the person's goals adds a little."""
    combined: np.ndarray = 0.7 * fits.max(axis=0) + 0.3 * fits.mean(axis=0)
    return combined


def goal_keyword_hits(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """(goals × listings): the goal's keywords appear in the listing's text."""
    terms = goal_terms()
    idx = v.idx[sel]
    if not q.goals:
        return np.zeros((0, sel.size), dtype=bool)
    return np.array([v.pool.contains_any(terms[g], idx) for g in q.goals]).reshape(
        len(q.goals), sel.size
    )


def goal_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    if not q.goals:
        return np.full(sel.size, 0.5)
    fits = goal_kind_fits(q, v, sel) + KEYWORD_BONUS * goal_keyword_hits(q, v, sel)
    return _combine(np.minimum(1.0, fits))


# --- interests -------------------------------------------------------------------------------
def interest_hits(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """(interests × listings): the interest (or a synonym: 畑 ↔ 農作業) appears in the listing's text."""
    idx = v.idx[sel]
    rows = [v.pool.contains_any(terms, idx) for _interest, terms in q.interest_terms]
    return np.array(rows, dtype=bool).reshape(len(rows), sel.size)


def matched_interests(q: Query, v: View, local: int) -> list[str]:
    """The person's interests (as they said them) found in one listing's text."""
    hits = interest_hits(q, v, np.array([local]))[:, 0]
    return [interest for (interest, _terms), hit in zip(q.interest_terms, hits, strict=True) if hit]


def interest_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """No interests given: neutral 0.5. Otherwise 0 when none is found, 0.7–1.0 by share found (an interest
    weighs enough that a feasible 農作業 place ranks above places that merely suit the goal)."""
    if not q.interest_terms:
        return np.full(sel.size, 0.5)
    share = interest_hits(q, v, sel).mean(axis=0)
    return np.where(share > 0, 0.7 + 0.3 * share, 0.0)


# --- travel ----------------------------------------------------------------------------------
def travel_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """1 next door, 0.3 at the person's limit, 0 at 1.5× the limit; 0.5 when unknown."""
    if not q.has_home:
        return np.full(sel.size, 0.5)
    ratio = v.minutes[sel] / max(q.max_minutes, 1.0)
    inside = 1.0 - 0.7 * ratio
    beyond = 0.3 - 0.6 * (ratio - 1.0)
    value = np.where(ratio <= 1.0, inside, beyond)
    fit: np.ndarray = np.clip(np.nan_to_num(value, nan=0.5), 0.0, 1.0)
    return fit


# --- schedule --------------------------------------------------------------------------------
def schedule_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """More sessions in the next 4 weeks within the person's times is better (4+ = full marks)."""
    count = np.minimum(v.upcoming[sel], 4.0)
    value = np.where(count > 0, 0.25 + 0.75 * count / 4.0, 0.1)
    return np.where(v.has_schedule[sel], value, 0.5)


# --- group size, cost, capacity, freshness, referrals -----------------------------------------
def group_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    groups = v.pool.group[v.idx[sel]].astype(float)
    known = groups > 0
    if q.group_size is None:
        return np.where(known, 0.7, 0.6)
    want = GROUP_CODE[q.group_size]
    gap = np.abs(groups - want)
    value = np.select([gap == 0, gap == 1], [1.0, 0.5], 0.1)
    return np.where(known, value, 0.4)


def cost_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    cost = v.pool.cost[v.idx[sel]]
    value = np.where(cost <= 0, 1.0, np.maximum(0.2, 1.0 - cost / 2000.0))
    return np.where(np.isnan(cost), 0.6, value)


def capacity_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    cap = v.pool.capacity[v.idx[sel]]
    value = np.select([cap >= 3, cap >= 2, cap >= 1], [1.0, 0.9, 0.8], 0.0)
    return np.where(np.isnan(cap), 0.7, value)


STALE_DAYS = DEFAULT_STALE_DAYS


def freshness_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """Checked within half a year = 1; down to 0.7 at a year; stale (over a year) 0.5 → 0.2; unknown 0.4."""
    verified = v.pool.verified[v.idx[sel]]
    days = (q.today.toordinal() - verified).astype(float)
    limit = max(q.stale_days, 1)
    half = min(180, limit / 2)
    fresh = np.where(days <= half, 1.0, 1.0 - 0.3 * (days - half) / max(limit - half, 1))
    stale = np.maximum(0.2, 0.5 - 0.3 * (days - limit) / 730)
    value = np.where(days <= limit, fresh, stale)
    return np.where(verified > 0, value, 0.4)


def referral_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    accepts = v.pool.referrals[v.idx[sel]]
    return np.where(np.isnan(accepts), 0.6, np.where(accepts > 0, 1.0, 0.2))


OUTCOME_POSITIVE = (
    0.5  # a shrunk continuing rate from here up is read aloud as a reason, below as a caution
)


def outcome_fit(q: Query, v: View, sel: np.ndarray) -> np.ndarray:
    """Past referrals (≥ 5 cases, resdb.outcomes): the shrunk share still taking part; 0.5 when unknown."""
    rate = v.pool.outcome_rate[v.idx[sel]]
    return np.where(np.isnan(rate), 0.5, np.clip(rate, 0.0, 1.0))


FACTORS: tuple[Factor, ...] = (
    Factor("goal", "目的に合う", 0.18, goal_fit),
    Factor("interest", "関心のある活動", 0.24, interest_fit),
    Factor("travel", "移動時間", 0.14, travel_fit),
    Factor("schedule", "開催日時", 0.11, schedule_fit),
    Factor("group", "人数規模", 0.05, group_fit),
    Factor("cost", "費用", 0.05, cost_fit),
    Factor("capacity", "空き", 0.04, capacity_fit),
    Factor("freshness", "情報の新しさ", 0.06, freshness_fit),
    Factor("referral", "紹介の受け入れ", 0.08, referral_fit),
    Factor("outcome", "紹介後の定着", 0.05, outcome_fit),
)
FACTOR_INDEX: dict[str, int] = {f.id: i for i, f in enumerate(FACTORS)}
WEIGHTS = np.array([f.weight for f in FACTORS]) / sum(f.weight for f in FACTORS)
CHEAP = np.array([f.cheap for f in FACTORS])


def score_values(values: np.ndarray) -> np.ndarray:
    """Weighted mean of factor values (factors × listings) → scores in 0..1.

    Summed factor by factor, so a listing's score is the same to the last bit wherever its column
    sits: a matrix product (BLAS) rounds differently by a column's place in memory, and near-equal
    listings would then be ordered, and cut at a limit, by where the pool happened to store them."""
    scores: np.ndarray = np.zeros(values.shape[1])
    term = np.empty_like(scores)
    for weight, row in zip(WEIGHTS.tolist(), values, strict=True):
        scores += np.multiply(row, weight, out=term)
    return scores
