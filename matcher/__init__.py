"""matcher: pure-Python placement proposals, caseload assignment and gap reports over plain data.

No web framework, database or search-index imports: callers (resdb) hand in contract-shaped
listing dicts (or a reusable CandidatePool built from them) and persons whose home is already
resolved to {"lat", "lon"} (the district/address kept alongside).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import numpy as np

from .batch import CoversHomeFor, as_pool, greedy_baseline, match_batch, total_score
from .diversity import Candidate, diversify
from .engine import Ranking, rank
from .explain import Explainer
from .gaps import gap_csv, gap_report, write_gap_csv
from .pool import KIND_IDS, CandidatePool
from .query import DEFAULT_STALE_DAYS, Query, parse_person
from .rules import RULE_INDEX, RULES, CoversHome, check_listing
from .scoring import FACTORS, Factor, score_values

__all__ = [
    "DEFAULT_STALE_DAYS",
    "FACTORS",
    "RULES",
    "CandidatePool",
    "CoversHome",
    "CoversHomeFor",
    "Factor",
    "Query",
    "check_listing",
    "gap_csv",
    "gap_report",
    "greedy_baseline",
    "match",
    "match_batch",
    "parse_person",
    "total_score",
    "write_gap_csv",
]

DIVERSITY_POOL = 3  # re-rank among the best limit × 3 feasible listings (of each fit group)
CHECK_RESERVE = (
    3  # places kept for 「要確認の候補」 at the end of the list when enough are known to fit
)
NEAR_MISS_SLACK = (
    1.2  # a place at most 20 % over max_minutes (and breaking no other rule) is a near miss
)
NEAR_MISSES_SHOWN = 5


def _layout_rank(pool: CandidatePool, rows: np.ndarray) -> np.ndarray:
    """Rank of each row in a freshly built pool's layout (by latitude, then the caller's order)."""
    lats = pool.lat[rows]
    layout = np.lexsort((pool.position[rows], np.where(np.isnan(lats), np.inf, lats)))
    rank = np.empty(rows.size, dtype=np.int64)
    rank[layout] = np.arange(rows.size)
    return rank


def _fit_split(known: list[Candidate], check: list[Candidate], limit: int) -> list[Candidate]:
    """Known-to-fit first, then 「要確認の候補」 (at least CHECK_RESERVE of them when there are any)."""
    reserve = min(CHECK_RESERVE, len(check), limit // 3)
    n_known = min(len(known), limit - reserve)
    chosen = diversify(known, n_known)
    return chosen + diversify(check, limit - len(chosen))


def match(
    person: Mapping[str, Any],
    listings: Iterable[Mapping[str, Any]] | CandidatePool,
    *,
    today: date,
    covers_home: CoversHome | None = None,
    limit: int = 10,
    stale_days: int = DEFAULT_STALE_DAYS,
    all_excluded: bool = False,
) -> dict[str, Any]:
    """Ranked proposals for one person (contract shape plus `fit`, `near_misses`, `fit_counts`).

    `listings` may be a list of listing dicts or a CandidatePool (build one per listing set and
    reuse it: that is what makes 300,000 listings fast). `covers_home(listing)` answers whether
    the listing's service area holds the person's home (None = unknown). Proposals known to fit
    (schedule known and within the person's times, cost known, verified within `stale_days`,
    taking referrals) come first, then 「要確認の候補」; each carries `fit` and `to_confirm`.
    `near_misses` are places only a little too far (≤ 20 % over max_minutes) with what they offer.
    `excluded` holds the near misses of the contract, or with `all_excluded` every rule-breaking
    place in reach. Raises ValueError with a Japanese message naming the field when the person
    cannot be used.
    """
    if limit < 0:
        raise ValueError("limit: 0 以上で指定してください")
    q = parse_person(person, today, stale_days=stale_days)
    pool = as_pool(listings)
    if limit == 0:
        return {
            "proposals": [],
            "excluded": [],
            "near_misses": [],
            "fit_counts": {"known": 0, "to_confirm": 0},
        }
    ranking = rank(
        q, pool, covers_home, want_feasible=limit * DIVERSITY_POOL * 2, want_overall=limit
    )
    view = ranking.view
    best = ranking.top(limit * DIVERSITY_POOL * 2, feasible_only=True)
    known: list[Candidate] = []
    check: list[Candidate] = []
    explainers: dict[int, Explainer] = {}
    # Equal scores keep the order of a freshly built pool (by latitude, then the caller's order), also
    # for rows that CandidatePool.apply appended out of that order.
    layout_rank = _layout_rank(pool, view.idx[best])
    for n, local in enumerate(best):
        key = int(layout_rank[n])
        explainer = explainers[key] = Explainer(q, view, int(local), ranking.values[:, local])
        candidate = Candidate(
            key=key,
            score=float(ranking.exact[local]),
            kind=KIND_IDS[int(pool.kind[view.idx[local]])],
            activities=frozenset(pool.activities(int(view.idx[local]))),
        )
        (check if explainer.to_confirm() else known).append(candidate)
    proposals = [explainers[c.key].proposal(c.score) for c in _fit_split(known, check, limit)]
    return {
        "proposals": proposals,
        "excluded": _excluded(ranking, limit, all_excluded),
        "near_misses": _near_misses(ranking),
        "fit_counts": {
            "known": sum(p["fit"] == "known" for p in proposals),
            "to_confirm": sum(p["fit"] != "known" for p in proposals),
        },
    }


def _excluded(ranking: Ranking, limit: int, all_excluded: bool) -> list[dict[str, Any]]:
    view, pool = ranking.view, ranking.view.pool
    if all_excluded:
        every = np.arange(len(view))
        missing = every[np.isnan(ranking.exact)]
        ranking.exact[missing] = score_values(ranking.values[:, missing])
        ranking.resolve_area(every)
        order = ranking.top(len(view), feasible_only=False)
    else:
        order = ranking.top(limit, feasible_only=False)
    excluded = []
    for local in order:
        broken = ranking.broken(int(local))
        if not broken:
            continue
        j = int(view.idx[local])
        excluded.append(
            {
                "resource_id": pool.ids[j],
                "reason": broken[0][1],
                "name": str(pool.listings[j].get("name") or ""),
                "rule": broken[0][0],
                "rules": [{"rule": rid, "reason": text} for rid, text in broken],
            }
        )
    return excluded


def _near_misses(ranking: Ranking) -> list[dict[str, Any]]:
    """Places breaking only the travel rule, by at most NEAR_MISS_SLACK × max_minutes, best first."""
    q, view = ranking.q, ranking.view
    if not q.has_home or len(view) == 0:
        return []
    travel = RULE_INDEX["travel"]
    others = np.delete(ranking.violated, travel, axis=0).any(axis=0)
    near = np.flatnonzero(
        ranking.violated[travel] & ~others & (view.minutes <= q.max_minutes * NEAR_MISS_SLACK)
    )
    if near.size == 0:
        return []
    ranking.resolve_area(near)
    near = near[~np.delete(ranking.violated[:, near], travel, axis=0).any(axis=0)]
    scores = score_values(ranking.values[:, near])
    out = []
    rank = _layout_rank(view.pool, view.idx[near])
    for local, score, _rank in sorted(
        zip(near.tolist(), scores.tolist(), rank.tolist(), strict=True),
        key=lambda x: (-x[1], x[2]),
    )[:NEAR_MISSES_SHOWN]:
        explainer = Explainer(q, view, local, ranking.values[:, local])
        minutes = explainer.travel_minutes()
        proposal = explainer.proposal(score)
        proposal["near_miss"] = True
        proposal["text"] = f"少し遠い（{q.mode_label}で約{minutes}分）が{explainer.offer()}"
        out.append(proposal)
    return out
