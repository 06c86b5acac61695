"""Diversity re-ranking: the top proposals should offer different kinds of next step.

Greedy re-ranking (maximal-marginal-relevance style): from the best-scoring feasible candidates,
repeatedly take the one with the highest

    score − KIND_PENALTY × (proposals already chosen of the same kind)
          − ACTIVITY_PENALTY × (1 if it shares an activity with a chosen proposal)

so a second 居場所 must beat the best 通いの場 or 就労体験 by 0.08 to come before it, a third by
0.16, and so on. The shown score stays the listing's own score; only the order changes. Nothing is
dropped for being similar — similar places just move down the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

KIND_PENALTY = 0.08
ACTIVITY_PENALTY = 0.04


@dataclass(frozen=True)
class Candidate:
    key: int
    score: float
    kind: str
    activities: frozenset[str]


def diversify(candidates: Sequence[Candidate], limit: int) -> list[Candidate]:
    """Up to `limit` candidates in diversity-aware order (see module docstring)."""
    remaining = sorted(candidates, key=lambda c: (-c.score, c.key))
    chosen: list[Candidate] = []
    kind_counts: dict[str, int] = {}
    seen_activities: set[str] = set()
    while remaining and len(chosen) < limit:
        best_i, best_value = 0, float("-inf")
        for i, cand in enumerate(remaining):
            value = cand.score - KIND_PENALTY * kind_counts.get(cand.kind, 0)
            if cand.activities & seen_activities:
                value -= ACTIVITY_PENALTY
            if value > best_value + 1e-12:
                best_i, best_value = i, value
        pick = remaining.pop(best_i)
        chosen.append(pick)
        kind_counts[pick.kind] = kind_counts.get(pick.kind, 0) + 1
        seen_activities |= pick.activities
    return chosen
