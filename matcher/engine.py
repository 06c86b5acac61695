"""The ranking pipeline: spatial prefilter → vectorized rules and cheap factors → bounded exact scoring.

1. ``pool.view(q)`` keeps listings within 1.5× the person's reachable distance (the extra half
   only so that near misses of the travel rule can be reported).
2. Every non-lazy rule and every cheap factor is computed with numpy over the whole view.
3. Listings are visited in order of their score upper bound (cheap factors exact, costly
   text factors at their bound) in chunks; costly factors and the service-area callback are
   evaluated only for visited listings. Visiting stops once no unvisited listing can still enter
   the wanted top lists (or after MAX_EXACT listings, a safety cap for pathological inputs).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .pool import CandidatePool, View
from .query import Query
from .rules import AREA, GENERIC_MESSAGES, RULES, CoversHome, area_violated
from .scoring import FACTORS, score_values

CHUNK = 64
MAX_EXACT = 4000


class _TopK:
    """The k largest values seen so far (a min-heap)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.heap: list[float] = []

    def push(self, values: np.ndarray) -> None:
        if self.k <= 0:
            return
        for value in values.tolist():
            if len(self.heap) < self.k:
                heapq.heappush(self.heap, value)
            elif value > self.heap[0]:
                heapq.heapreplace(self.heap, value)

    def threshold(self) -> float:
        """Scores below this cannot enter the list (+inf when nothing is wanted)."""
        if self.k <= 0:
            return math.inf
        return self.heap[0] if len(self.heap) >= self.k else -math.inf


@dataclass
class Ranking:
    """One person's evaluated view: rule violations, factor values and exact scores."""

    q: Query
    view: View
    violated: np.ndarray  # (rules, n): known violations (the area row only where resolved)
    area_applies: np.ndarray  # (n,)
    area_known: np.ndarray  # (n,)
    values: np.ndarray  # (factors, n): nan for costly factors not evaluated
    upper: np.ndarray  # (n,) score upper bound
    exact: np.ndarray  # (n,) exact score, nan where not evaluated
    covers_home: CoversHome | None = None
    truncated: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    def resolve_area(self, locals_: np.ndarray) -> None:
        """Run the service-area rule (covers_home callback) for these listings where it applies."""
        todo = locals_[self.area_applies[locals_] & ~self.area_known[locals_]]
        pool, v = self.view.pool, self.view
        for local in todo.tolist():
            j = int(v.idx[local])
            self.violated[AREA, local] = area_violated(
                self.q, pool.listings[j], bool(pool.has_area[j]), self.covers_home
            )
            self.area_known[local] = True

    @property
    def evaluated(self) -> np.ndarray:
        known: np.ndarray = ~np.isnan(self.exact)
        return known

    def feasible(self) -> np.ndarray:
        """Evaluated listings breaking no rule."""
        return self.evaluated & ~self.violated.any(axis=0)

    def top(self, k: int, *, feasible_only: bool) -> np.ndarray:
        """Local indices of the best k evaluated listings, best first (ties: the caller's order)."""
        mask = self.feasible() if feasible_only else self.evaluated
        locals_ = np.flatnonzero(mask)
        order = np.lexsort((self.view.pool.position[self.view.idx[locals_]], -self.exact[locals_]))
        return locals_[order][:k]

    def broken(self, local: int) -> list[tuple[str, str]]:
        """(rule id, message) of each rule this listing breaks, in priority order."""
        return [
            (rule.id, rule.message(self.q, self.view, local))
            for r, rule in enumerate(RULES)
            if self.violated[r, local]
        ]

    def blocking_rule(self) -> tuple[str | None, int]:
        """The rule blocking the most listings in reach (each listing counts once per rule)."""
        counts = Counter(
            {
                rule.id: int(self.violated[r].sum())
                for r, rule in enumerate(RULES)
                if self.violated[r].any()
            }
        )
        if not counts:
            return None, 0
        rule_id, count = counts.most_common(1)[0]
        return rule_id, count

    def blocking_reason(self) -> str:
        """Why nothing fits, in Japanese."""
        if len(self.view) == 0:
            return (
                f"移動できる範囲（{self.q.mode_label}で{self.q.max_minutes:g}分）に場がありません"
            )
        rule_id, count = self.blocking_rule()
        if rule_id is None:
            return "条件に合う場がありません"
        return f"{GENERIC_MESSAGES[rule_id]}（近くの{count}か所）"


def _best_first(
    keys: np.ndarray, tiebreak: np.ndarray, candidates: np.ndarray, block: int
) -> Iterator[np.ndarray]:
    """Chunks of candidates by descending key (ties: ascending tiebreak), sorted lazily: only the
    best `block` are sorted at first (argpartition), the rest when the caller asks for more."""
    remaining = candidates
    while remaining.size:
        if remaining.size > block:
            part = np.argpartition(-keys[remaining], block - 1)
            head, remaining = remaining[part[:block]], remaining[part[block:]]
        else:
            head, remaining = remaining, remaining[:0]
        head = head[np.lexsort((tiebreak[head], -keys[head]))]
        for start in range(0, head.size, CHUNK):
            yield head[start : start + CHUNK]
        block *= 4


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest value (+inf when nothing is wanted, -inf when there are fewer than k)."""
    if k <= 0:
        return math.inf
    if values.size < k:
        return -math.inf
    return float(np.partition(values, values.size - k)[values.size - k])


def _above_final_threshold(
    upper: np.ndarray,
    candidates: np.ndarray,
    violated: np.ndarray,
    applies: np.ndarray,
    want_feasible: int,
    want_overall: int,
) -> np.ndarray:
    """Candidates the best-first visit can reach, found with two partitions instead of the visit.

    When every factor is cheap, a listing's upper bound is its exact score. The visit stops below
    min(best `want_overall` score overall, best `want_feasible` score of listings surely feasible
    (no rule broken, the lazy area rule not applying)): both lists are full by the time the visit
    gets there, so nothing under that cut (beyond the chunk crossing it) is ever visited and it is
    dropped before sorting."""
    surely = ~violated.any(axis=0) & ~applies
    cut = min(
        _kth_largest(upper[candidates], want_overall) if want_overall > 0 else math.inf,
        _kth_largest(upper[surely], want_feasible),
    )
    if not math.isfinite(cut):
        return candidates
    above = upper[candidates] >= cut - 1e-12
    below = candidates[~above]
    if below.size:
        # The chunk that crosses the cut is visited whole (its listings count as evaluated, e.g. for
        # a batch's "more feasible than listed"): keep the next CHUNK in order below the cut too.
        next_best = _kth_largest(upper[below], min(CHUNK, below.size))
        above |= upper[candidates] >= next_best
    kept: np.ndarray = candidates[above]
    return kept


def evaluate_rules(q: Query, v: View) -> tuple[np.ndarray, np.ndarray]:
    """(violations of the vectorized rules, mask of listings the lazy area rule applies to)."""
    violated = np.zeros((len(RULES), len(v)), dtype=bool)
    applies = np.zeros(len(v), dtype=bool)
    for r, rule in enumerate(RULES):
        if rule.lazy:
            applies = rule.check(q, v)
        else:
            violated[r] = rule.check(q, v)
    return violated, applies


def rank(
    q: Query,
    pool: CandidatePool,
    covers_home: CoversHome | None,
    *,
    want_feasible: int,
    want_overall: int = 0,
    max_exact: int = MAX_EXACT,
) -> Ranking:
    """Exact scores for (at least) the best `want_feasible` rule-passing listings and, when
    `want_overall` > 0, the best `want_overall` listings ignoring the rules (near misses)."""
    v = pool.view(q)
    n = len(v)
    violated, applies = evaluate_rules(q, v)
    values = np.full((len(FACTORS), n), np.nan)
    bounds = np.empty((len(FACTORS), n))
    every = np.arange(n)
    for f, factor in enumerate(FACTORS):
        if factor.bound is None:
            values[f] = bounds[f] = factor.function(q, v, every)
        else:
            bounds[f] = factor.bound(q, v, every)
    upper = score_values(bounds) if n else np.zeros(0)
    ranking = Ranking(
        q=q,
        view=v,
        violated=violated,
        area_applies=applies,
        area_known=~applies,
        values=values,
        upper=upper,
        exact=np.full(n, np.nan),
        covers_home=covers_home,
    )
    if n == 0:
        return ranking
    candidates = every if want_overall > 0 else np.flatnonzero(~violated.any(axis=0))
    costly = [f for f, factor in enumerate(FACTORS) if factor.bound is not None]
    if not costly:
        candidates = _above_final_threshold(
            upper, candidates, violated, applies, want_feasible, want_overall
        )
    top_feasible, top_overall = _TopK(want_feasible), _TopK(want_overall)
    block = max(4 * (want_feasible + want_overall), 512)
    done = 0
    for chunk in _best_first(upper, pool.position[v.idx], candidates, block):
        threshold = min(top_feasible.threshold(), top_overall.threshold())
        if upper[chunk[0]] < threshold - 1e-12:
            break
        if done >= max_exact:
            ranking.truncated = True
            break
        done += chunk.size
        for f in costly:
            values[f, chunk] = FACTORS[f].function(q, v, chunk)
        ranking.exact[chunk] = score_values(values[:, chunk])
        ranking.resolve_area(chunk)
        ok = ~violated[:, chunk].any(axis=0)
        top_feasible.push(ranking.exact[chunk][ok])
        top_overall.push(ranking.exact[chunk])
    return ranking


def feasible_mask(
    q: Query, pool: CandidatePool, covers_home: CoversHome | None
) -> tuple[Ranking, np.ndarray]:
    """Every rule-passing listing in reach (area rule resolved for all that need it), unscored."""
    v = pool.view(q)
    violated, applies = evaluate_rules(q, v)
    n = len(v)
    ranking = Ranking(
        q=q,
        view=v,
        violated=violated,
        area_applies=applies,
        area_known=~applies,
        values=np.full((len(FACTORS), n), np.nan),
        upper=np.zeros(n),
        exact=np.full(n, np.nan),
        covers_home=covers_home,
    )
    feasible: np.ndarray = np.logical_not(violated.any(axis=0))
    ranking.resolve_area(np.flatnonzero(feasible))
    return ranking, feasible
