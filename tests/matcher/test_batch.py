"""Caseload placement: capacities respected, exact optimum over the candidates, reasons for the rest."""

from __future__ import annotations

from collections import Counter
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matcher import CandidatePool, greedy_baseline, match_batch, total_score
from matcher.batch import PersonCandidates, greedy_assignment, solve_assignment

from .data import TODAY, make_listing, make_person


def pc(person: int, options: dict[int, float]) -> PersonCandidates:
    ranked = sorted(options.items(), key=lambda kv: -kv[1])
    return PersonCandidates(
        person, [j for j, _ in ranked], [s for _, s in ranked], False, "" if ranked else "なし"
    )


def pool_with(capacities: list[int | None]) -> CandidatePool:
    """Listings l0, l1 … at one spot: pool rows keep the given order (checked)."""
    pool = CandidatePool([make_listing(f"l{j}", capacity=c) for j, c in enumerate(capacities)])
    assert pool.ids == [f"l{j}" for j in range(len(capacities))]
    return pool


def brute_force(
    cands: list[PersonCandidates], capacities: list[int | None]
) -> tuple[int, float, float]:
    """(most placements, best total with that many, best total overall) by enumeration."""
    choices = [[None, *c.listings] for c in cands]
    best_cov: tuple[int, float] = (0, 0.0)
    best_score = 0.0
    for combo in product(*choices):
        used = Counter(j for j in combo if j is not None)
        if any(capacities[j] is not None and used[j] > capacities[j] for j in used):
            continue
        total = sum(
            c.scores[c.listings.index(j)]
            for c, j in zip(cands, combo, strict=True)
            if j is not None
        )
        count = sum(j is not None for j in combo)
        best_cov = max(best_cov, (count, round(total, 9)))
        best_score = max(best_score, total)
    return best_cov[0], best_cov[1], best_score


def summary(result: dict[int, tuple[int, float]]) -> tuple[int, float]:
    return len(result), sum(score for _j, score in result.values())


def test_exact_beats_greedy_on_the_classic_case() -> None:
    # A likes X (0.9) and Y (0.8); B can only use X (0.85). One place each.
    pool = pool_with([1, 1])
    cands = [pc(0, {0: 0.9, 1: 0.8}), pc(1, {0: 0.85})]
    greedy = greedy_assignment(cands, pool)
    assert summary(greedy) == (1, 0.9)
    exact = solve_assignment(cands, pool, "coverage")
    assert exact == {0: (1, 0.8), 1: (0, 0.85)}
    assert solve_assignment(cands, pool, "score") == exact  # 1.65 > 0.9 as well


def test_score_objective_may_leave_someone_out_when_that_scores_more() -> None:
    pool = pool_with([1, 1])
    cands = [pc(0, {0: 0.9, 1: 0.05}), pc(1, {0: 0.1})]
    assert summary(solve_assignment(cands, pool, "score")) == (1, 0.9)
    assert summary(solve_assignment(cands, pool, "coverage"))[0] == 2


def test_unlimited_capacity_takes_everyone() -> None:
    pool = pool_with([None])
    cands = [pc(i, {0: 0.5}) for i in range(5)]
    assert len(solve_assignment(cands, pool)) == 5


capacities_st = st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(capacities_st, st.data())
def test_solver_is_optimal_and_respects_capacity(
    capacities: list[int | None], data: st.DataObject
) -> None:
    pool = pool_with(capacities)
    n_persons = data.draw(st.integers(1, 4))
    usable = [j for j, c in enumerate(capacities) if c != 0]  # capacity 0 never passes the rules
    cands = []
    for i in range(n_persons):
        chosen = (
            data.draw(st.lists(st.sampled_from(usable), unique=True, max_size=len(usable)))
            if usable
            else []
        )
        scores = data.draw(
            st.lists(st.floats(0.01, 1.0), min_size=len(chosen), max_size=len(chosen))
        )
        cands.append(pc(i, dict(zip(chosen, scores, strict=True))))
    best_count, best_cov_total, best_total = brute_force(cands, capacities)
    greedy = summary(greedy_assignment(cands, pool))
    for objective in ("coverage", "score"):
        result = solve_assignment(cands, pool, objective)
        used = Counter(j for j, _ in result.values())
        assert all(capacities[j] is None or used[j] <= capacities[j] for j in used)
        for person, (j, score) in result.items():
            assert (
                j in cands[person].listings
                and score == cands[person].scores[cands[person].listings.index(j)]
            )
        count, total = summary(result)
        if objective == "coverage":
            assert count == best_count and total == pytest.approx(best_cov_total, abs=1e-9)
            assert (count, total + 1e-9) >= greedy
        else:
            assert total == pytest.approx(best_total, abs=1e-9)
            assert total >= greedy[1] - 1e-9


# --- end to end ---------------------------------------------------------------------------------
def test_match_batch_shape_capacity_and_reasons() -> None:
    listings = [
        make_listing("one-seat", capacity=1),
        make_listing("two-seats", capacity=2, kind="kayoi", lat=36.7300),
    ]
    persons = [make_person() for _ in range(4)] + [make_person(mobility="pickup_needed")]
    answer = match_batch(persons, listings, today=TODAY)
    assert set(answer) == {"assignments", "unassigned"}
    used = Counter(a["resource_id"] for a in answer["assignments"])
    assert used["one-seat"] <= 1 and used["two-seats"] <= 2
    assert len(answer["assignments"]) == 3
    for a in answer["assignments"]:
        assert {"person", "resource_id", "score"} <= set(a) and 0 < a["score"] <= 1
    reasons = {u["person"]: u["reason"] for u in answer["unassigned"]}
    assert len(reasons) == 2 and 4 in reasons
    assert reasons[4].startswith("送迎がありません")
    full = [r for p, r in reasons.items() if p != 4]
    assert full and "定員" in full[0]


def test_nothing_in_reach_is_explained() -> None:
    tokyo = make_listing("tokyo", lat=35.6812, lon=139.7671)
    answer = match_batch([make_person(mobility="walk", max_minutes=15)], [tokyo], today=TODAY)
    assert answer["assignments"] == []
    assert answer["unassigned"][0]["reason"].startswith(
        "移動できる範囲（徒歩で15分）に場がありません"
    )


def test_short_candidate_lists_are_extended_when_someone_is_left_out() -> None:
    listings = [make_listing("best", capacity=1), make_listing("second", capacity=1, lat=36.7300)]
    persons = [make_person(), make_person()]
    answer = match_batch(persons, listings, today=TODAY, top_k=1)
    assert sorted(a["resource_id"] for a in answer["assignments"]) == ["best", "second"]


def test_batch_against_greedy_on_synthetic_caseload() -> None:
    from matcher.synthetic import listings as make_listings
    from matcher.synthetic import persons as make_persons

    pool = CandidatePool(make_listings(1500, seed=11, radius_km=8))
    persons = make_persons(40, seed=12, radius_km=6)
    exact = match_batch(persons, pool, today=TODAY)
    greedy = greedy_baseline(persons, pool, today=TODAY)
    for answer in (exact, greedy):
        used = Counter(a["resource_id"] for a in answer["assignments"])
        for rid, n in used.items():
            cap = pool.capacity[pool.index_of[rid]]
            assert cap != cap or n <= cap  # nan = unlimited
    assert len(exact["assignments"]) >= len(greedy["assignments"])
    if len(exact["assignments"]) == len(greedy["assignments"]):
        assert total_score(exact) >= total_score(greedy) - 0.01


def test_bad_person_in_batch_names_the_index() -> None:
    with pytest.raises(ValueError, match=r"^persons\[1\]\.mobility"):
        match_batch([make_person(), make_person(mobility="jet")], [make_listing("a")], today=TODAY)
