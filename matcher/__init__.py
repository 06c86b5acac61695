"""matcher: pure-Python placement proposals, caseload assignment and gap reports over plain data.

No web framework, database or search-index imports: callers (resdb) hand in contract-shaped
listing dicts (or a reusable CandidatePool built from them) and persons whose home is already
resolved to {"lat", "lon"} (the district/address kept alongside).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from .batch import CoversHomeFor, as_pool, greedy_baseline, match_batch, total_score
from .diversity import Candidate, diversify
from .engine import rank
from .explain import Explainer
from .gaps import gap_csv, gap_report, write_gap_csv
from .pool import KIND_IDS, CandidatePool
from .query import Query, parse_person
from .rules import RULES, CoversHome, check_listing
from .scoring import FACTORS, Factor

__all__ = [
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

DIVERSITY_POOL = 3  # re-rank among the best limit × 3 feasible listings


def match(
    person: Mapping[str, Any],
    listings: Iterable[Mapping[str, Any]] | CandidatePool,
    *,
    today: date,
    covers_home: CoversHome | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """Ranked proposals for one person: {"proposals": [...], "excluded": [...]} (contract shape).

    `listings` may be a list of listing dicts or a CandidatePool (build one per listing set and
    reuse it: that is what makes 300,000 listings fast). `covers_home(listing)` answers whether
    the listing's service area holds the person's home (None = unknown). Raises ValueError with
    a Japanese message naming the field when the person cannot be used.
    """
    if limit < 0:
        raise ValueError("limit: 0 以上で指定してください")
    q = parse_person(person, today)
    pool = as_pool(listings)
    if limit == 0:
        return {"proposals": [], "excluded": []}
    ranking = rank(q, pool, covers_home, want_feasible=limit * DIVERSITY_POOL, want_overall=limit)
    view = ranking.view
    best = ranking.top(limit * DIVERSITY_POOL, feasible_only=True)
    candidates = [
        Candidate(
            key=int(local),
            score=float(ranking.exact[local]),
            kind=KIND_IDS[int(pool.kind[view.idx[local]])],
            activities=frozenset(pool.activities(int(view.idx[local]))),
        )
        for local in best
    ]
    proposals = [
        Explainer(q, view, c.key, ranking.values[:, c.key]).proposal(c.score) for c in diversify(candidates, limit)
    ]
    excluded = []
    for local in ranking.top(limit, feasible_only=False):
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
    return {"proposals": proposals, "excluded": excluded}
