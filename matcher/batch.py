"""Caseload placement: one place per person, capacities respected, total score maximised exactly.

Method
------
1. Each person's feasible candidates (rule-passing) are ranked and cut to their best ``top_k``
   (default 30), which keeps the problem small even with 200 persons × 20,000 listings.
2. Every candidate listing becomes ``min(capacity, number of persons who could use it)`` slots
   (capacity null = unlimited → one slot per such person).
3. The person × slot matrix is solved with ``scipy.optimize.linear_sum_assignment``; pairs that
   are not feasible get cost 0, the same as staying unassigned, and are dropped afterwards.
   Feasible pairs cost ``-(score + bonus)``. With the default ``objective="coverage"`` the bonus
   exceeds any possible score total, so the solution places as many persons as possible and,
   among those placements, maximises the total score; ``objective="score"`` (bonus 0) maximises
   the total score alone. Independent groups of persons (sharing no candidate) are solved apart.
4. Persons left unassigned whose candidate list was cut at ``top_k`` get a longer list (×4,
   twice at most) and the problem is solved again, so the cut rarely costs a placement.

``greedy_baseline`` (best remaining pair first) gives the same output for benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from .engine import rank
from .pool import CandidatePool
from .query import parse_person
from .rules import CoversHome

CoversHomeFor = Callable[[int, Mapping[str, Any]], "bool | None"]
Objective = Literal["coverage", "score"]
DEFAULT_TOP_K = 30
EXPAND_ROUNDS = 2


@dataclass
class PersonCandidates:
    """One person's feasible listings (pool indices, best first) and why, if none, nothing fits."""

    person: int
    listings: list[int]
    scores: list[float]
    truncated: bool
    reason: str


def as_pool(listings: Iterable[Mapping[str, Any]] | CandidatePool) -> CandidatePool:
    return listings if isinstance(listings, CandidatePool) else CandidatePool(listings)


def _covers(covers_home_for: CoversHomeFor | None, i: int) -> CoversHome | None:
    if covers_home_for is None:
        return None
    return lambda listing: covers_home_for(i, listing)


def person_candidates(
    persons: Sequence[Mapping[str, Any]],
    pool: CandidatePool,
    *,
    today: date,
    covers_home_for: CoversHomeFor | None = None,
    top_k: int = DEFAULT_TOP_K,
    only: Iterable[int] | None = None,
) -> dict[int, PersonCandidates]:
    """Feasible candidates per person (ValueError names the person for bad input)."""
    out: dict[int, PersonCandidates] = {}
    for i in only if only is not None else range(len(persons)):
        try:
            q = parse_person(persons[i], today)
        except ValueError as exc:
            raise ValueError(f"persons[{i}].{exc}") from None
        ranking = rank(q, pool, _covers(covers_home_for, i), want_feasible=top_k)
        best = ranking.top(top_k, feasible_only=True)
        feasible_total = int(ranking.feasible().sum())
        out[i] = PersonCandidates(
            person=i,
            listings=[int(ranking.view.idx[b]) for b in best],
            scores=[float(ranking.exact[b]) for b in best],
            truncated=feasible_total > len(best) or ranking.truncated,
            reason=ranking.blocking_reason() if best.size == 0 else "",
        )
    return out


def _slots(cands: Sequence[PersonCandidates], pool: CandidatePool) -> dict[int, int]:
    """Slots per listing: min(capacity, persons who could use it); unlimited → that many persons."""
    demand: dict[int, int] = {}
    for pc in cands:
        for j in pc.listings:
            demand[j] = demand.get(j, 0) + 1
    slots = {}
    for j, wanted in demand.items():
        cap = float(pool.capacity[j])
        slots[j] = wanted if np.isnan(cap) else max(0, min(int(cap), wanted))
    return slots


def _components(cands: Sequence[PersonCandidates]) -> list[list[PersonCandidates]]:
    """Groups of persons connected through shared candidate listings (solved independently)."""
    parent = list(range(len(cands)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner: dict[int, int] = {}
    for k, pc in enumerate(cands):
        for j in pc.listings:
            if j in owner:
                parent[find(k)] = find(owner[j])
            else:
                owner[j] = k
    groups: dict[int, list[PersonCandidates]] = {}
    for k, pc in enumerate(cands):
        groups.setdefault(find(k), []).append(pc)
    return list(groups.values())


def solve_assignment(
    cands: Sequence[PersonCandidates], pool: CandidatePool, objective: Objective = "coverage"
) -> dict[int, tuple[int, float]]:
    """person → (pool index, score), optimal for the objective over the given candidates."""
    result: dict[int, tuple[int, float]] = {}
    for group in _components([pc for pc in cands if pc.listings]):
        slots = _slots(group, pool)
        columns: dict[int, list[int]] = {}
        col = 0
        for j, count in slots.items():
            columns[j] = list(range(col, col + count))
            col += count
        n = len(group)
        width = max(col, n)
        bonus = float(n + 1) if objective == "coverage" else 0.0
        cost = np.zeros((n, width))
        for row, pc in enumerate(group):
            for j, score in zip(pc.listings, pc.scores, strict=True):
                cost[row, columns[j]] = -(score + bonus)
        rows, cols = linear_sum_assignment(cost)
        col_listing = np.full(width, -1, dtype=np.int64)
        for j, cols_of in columns.items():
            col_listing[cols_of] = j
        for row, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if cost[row, c] < 0:
                pc = group[row]
                j = int(col_listing[c])
                result[pc.person] = (j, pc.scores[pc.listings.index(j)])
    return result


def greedy_assignment(
    cands: Sequence[PersonCandidates], pool: CandidatePool
) -> dict[int, tuple[int, float]]:
    """Best remaining (person, listing) pair first, while capacity lasts."""
    edges = sorted(
        (
            (score, pc.person, j)
            for pc in cands
            for j, score in zip(pc.listings, pc.scores, strict=True)
        ),
        key=lambda e: (-e[0], e[1], e[2]),
    )
    left: dict[int, float] = {}
    result: dict[int, tuple[int, float]] = {}
    for score, person, j in edges:
        if person in result:
            continue
        remaining = left.get(j, float(pool.capacity[j]))
        if not np.isnan(remaining) and remaining <= 0:
            continue
        left[j] = remaining - 1 if not np.isnan(remaining) else remaining
        result[person] = (j, score)
    return result


def _answer(
    persons: Sequence[Mapping[str, Any]],
    pool: CandidatePool,
    cands: dict[int, PersonCandidates],
    placed: dict[int, tuple[int, float]],
) -> dict[str, Any]:
    assignments = []
    unassigned = []
    for i in range(len(persons)):
        if i in placed:
            j, score = placed[i]
            assignments.append(
                {
                    "person": i,
                    "resource_id": pool.ids[j],
                    "score": round(score, 3),
                    "name": str(pool.listings[j].get("name") or ""),
                }
            )
            continue
        pc = cands[i]
        reason = (
            pc.reason
            or f"候補の場（{len(pc.listings)}か所）の定員が他の方への割り当てで埋まりました"
        )
        unassigned.append({"person": i, "reason": reason})
    return {"assignments": assignments, "unassigned": unassigned}


def match_batch(
    persons: Sequence[Mapping[str, Any]],
    listings: Iterable[Mapping[str, Any]] | CandidatePool,
    *,
    today: date,
    covers_home_for: CoversHomeFor | None = None,
    top_k: int = DEFAULT_TOP_K,
    objective: Objective = "coverage",
) -> dict[str, Any]:
    """One placement per person where possible, never more persons on a listing than its capacity.

    Returns {"assignments": [{"person": i, "resource_id", "score", "name"}],
             "unassigned": [{"person": i, "reason"}]}.
    """
    pool = as_pool(listings)
    cands = person_candidates(
        persons, pool, today=today, covers_home_for=covers_home_for, top_k=top_k
    )
    placed = solve_assignment(list(cands.values()), pool, objective)
    k = top_k
    for _round in range(EXPAND_ROUNDS):
        retry = [i for i, pc in cands.items() if i not in placed and pc.truncated]
        if not retry:
            break
        k *= 4
        cands.update(
            person_candidates(
                persons, pool, today=today, covers_home_for=covers_home_for, top_k=k, only=retry
            )
        )
        placed = solve_assignment(list(cands.values()), pool, objective)
    return _answer(persons, pool, cands, placed)


def greedy_baseline(
    persons: Sequence[Mapping[str, Any]],
    listings: Iterable[Mapping[str, Any]] | CandidatePool,
    *,
    today: date,
    covers_home_for: CoversHomeFor | None = None,
    top_k: int = DEFAULT_TOP_K,
) -> dict[str, Any]:
    """The greedy placement (same candidates, same output shape) for comparison and benchmarks."""
    pool = as_pool(listings)
    cands = person_candidates(
        persons, pool, today=today, covers_home_for=covers_home_for, top_k=top_k
    )
    return _answer(persons, pool, cands, greedy_assignment(list(cands.values()), pool))


def total_score(answer: Mapping[str, Any]) -> float:
    """Sum of assignment scores of a batch answer."""
    return float(sum(a["score"] for a in answer["assignments"]))
