"""Scoring factors (one table), explanations read aloud, cautions and diversity re-ranking."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pytest

from matcher import FACTORS, CandidatePool, match, parse_person
from matcher.diversity import Candidate, diversify
from matcher.engine import rank
from matcher.scoring import score_values

from .data import TODAY, TOIDE, ids, make_listing, make_person


def factor_values(
    person: dict[str, Any], listing: dict[str, Any], today: date = TODAY
) -> dict[str, float]:
    """Every factor's value for one listing (rules ignored)."""
    q = parse_person(person, today)
    ranking = rank(q, CandidatePool([listing]), None, want_feasible=0, want_overall=1)
    assert len(ranking.view) == 1
    return {f.id: float(ranking.values[i, 0]) for i, f in enumerate(FACTORS)}


def score_of(person: dict[str, Any], listing: dict[str, Any]) -> float:
    values = factor_values(person, listing)
    total = sum(f.weight for f in FACTORS)
    return sum(f.weight * values[f.id] for f in FACTORS) / total


def reason(proposal: dict[str, Any], factor: str) -> str:
    return next(r["text"] for r in proposal["reasons"] if r["factor"] == factor)


# --- the table -------------------------------------------------------------------------------
def test_factor_table_is_declared_once() -> None:
    assert [f.id for f in FACTORS] == [
        "goal",
        "interest",
        "travel",
        "schedule",
        "group",
        "cost",
        "capacity",
        "freshness",
        "referral",
        "outcome",
    ]
    assert math.isclose(sum(f.weight for f in FACTORS), 1.0)
    assert len({f.id for f in FACTORS}) == len(FACTORS)
    for f in FACTORS:
        assert f.weight > 0 and f.label and not f.label.isascii() and callable(f.function)


def test_a_listings_score_does_not_depend_on_where_it_is_stored() -> None:
    """The same factor values give the same score to the last bit alone, in a block, or shifted by
    one column: otherwise near-equal listings are ordered (and cut at a limit) by memory layout."""
    values = np.random.default_rng(1).random((len(FACTORS), 1000))
    together = score_values(values)
    assert [float(score_values(values[:, k : k + 1])[0]) for k in range(1000)] == together.tolist()
    assert score_values(values[:, 1:]).tolist() == together[1:].tolist()
    assert np.allclose(together, values.T @ [f.weight for f in FACTORS])


def test_every_factor_stays_in_0_1() -> None:
    person = make_person(
        goals=["first_step", "routine"], interests=["畑"], prefers={"group_size": "small"}
    )
    for listing in (
        make_listing("a"),
        make_listing(
            "b",
            kind="work_trial",
            group_size="large",
            cost_yen=3000,
            capacity=1,
            verified_at=None,
            accepts_referrals=False,
            lat=TOIDE[0] + 0.05,
            schedule=[],
        ),
    ):
        for value in factor_values(person, listing).values():
            assert 0.0 <= value <= 1.0


# --- goal fit ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("goal", "better", "worse"),
    [
        (
            "first_step",
            {"kind": "ibasho", "group_size": "small"},
            {"kind": "work_trial", "group_size": "small"},
        ),
        (
            "first_step",
            {"kind": "kayoi", "group_size": "small"},
            {"kind": "kayoi", "group_size": "large"},
        ),
        ("work", {"kind": "work_trial"}, {"kind": "ibasho"}),
        ("role", {"kind": "volunteer"}, {"kind": "learning"}),
        ("childcare_peers", {"kind": "kosodate"}, {"kind": "kayoi"}),
        ("consult", {"kind": "center"}, {"kind": "volunteer"}),
        (
            "health",
            {"kind": "kayoi", "activities": ["100歳体操"]},
            {"kind": "kayoi", "activities": ["おしゃべり"]},
        ),
        ("health", {"kind": "kayoi"}, {"kind": "learning"}),
        ("learn", {"kind": "learning"}, {"kind": "shokudo"}),
        ("friends", {"kind": "shokudo"}, {"kind": "center"}),
        ("routine", {"kind": "chikatsu"}, {"kind": "kosodate"}),
        (
            "routine",
            {
                "kind": "chikatsu",
                "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
            },
            {
                "kind": "chikatsu",
                "schedule": [{"weekday": "tue", "weeks": [1], "start": "10:00", "end": "12:00"}],
            },
        ),
    ],
)
def test_goal_fit(goal: str, better: dict[str, Any], worse: dict[str, Any]) -> None:
    person = make_person(goals=[goal])
    good = factor_values(person, make_listing("good", **better))["goal"]
    bad = factor_values(person, make_listing("bad", **worse))["goal"]
    assert good > bad


def test_first_step_ranks_low_threshold_places_before_work_trial() -> None:
    person = make_person(goals=["first_step"], targets=["hikikomori"])
    places = [
        make_listing("work", kind="work_trial", targets=["hikikomori"]),
        make_listing("cafe", kind="ibasho", targets=["hikikomori"]),
        make_listing("salon", kind="kayoi", group_size="small"),
    ]
    got = ids(match(person, places, today=TODAY)["proposals"])
    assert got.index("work") > got.index("cafe") and got.index("work") > got.index("salon")


# --- interests (synonyms shared with search) --------------------------------------------------
def test_interest_matches_synonyms() -> None:
    person = make_person(interests=["畑"])
    farm = make_listing("farm", activities=["農作業"])
    other = make_listing("other", activities=["カラオケ"])
    assert factor_values(person, farm)["interest"] > factor_values(person, other)["interest"]
    answer = match(
        make_person(interests=["農作業"]), [make_listing("f", activities=["畑しごと"])], today=TODAY
    )
    assert reason(answer["proposals"][0], "interest") == "農作業ができる"


def test_interest_matches_description_and_width_variants() -> None:
    person = make_person(interests=["ｹﾞｰﾑ"])
    listing = make_listing("g", activities=[], description="ボードゲームで遊びます")
    assert factor_values(person, listing)["interest"] == 1.0
    assert factor_values(make_person(interests=[]), listing)["interest"] == 0.5


# --- travel, schedule, group, cost, capacity, freshness, referrals -----------------------------
def test_nearer_is_better() -> None:
    person = make_person()
    near = factor_values(person, make_listing("near"))["travel"]
    far = factor_values(person, make_listing("far", lat=TOIDE[0] + 0.04))["travel"]
    assert near > far > 0


def test_schedule_fit_counts_sessions_in_the_next_four_weeks_skipping_holidays() -> None:
    monday = [{"weekday": "mon", "start": "10:00", "end": "12:00"}]
    person = make_person(available=[{"weekday": "mon", "start": "09:00", "end": "12:00"}])
    today = date(2026, 11, 16)  # the window holds 11/16, 11/23 (勤労感謝の日), 11/30, 12/7
    closed = factor_values(person, make_listing("c", schedule=monday), today)["schedule"]
    opened = factor_values(
        person, make_listing("o", schedule=monday, holidays_closed=False), today
    )["schedule"]
    monthly = factor_values(
        person,
        make_listing("m", schedule=[{**monday[0], "weeks": [1]}], holidays_closed=False),
        today,
    )["schedule"]
    assert opened == 1.0 and monthly < closed < opened
    answer = match(person, [make_listing("c", schedule=monday)], today=today)
    assert answer["proposals"][0]["next_sessions"] == [
        "2026-11-16T10:00+09:00",
        "2026-11-30T10:00+09:00",
        "2026-12-07T10:00+09:00",
    ]


def test_group_cost_capacity_referral_preferences() -> None:
    small = make_person(prefers={"group_size": "small"})
    assert (
        factor_values(small, make_listing("a", group_size="small"))["group"]
        > factor_values(small, make_listing("b", group_size="large"))["group"]
    )
    person = make_person()
    assert (
        factor_values(person, make_listing("a", cost_yen=0))["cost"]
        > factor_values(person, make_listing("b", cost_yen=400))["cost"]
    )
    assert (
        factor_values(person, make_listing("a", capacity=5))["capacity"]
        > factor_values(person, make_listing("b", capacity=1))["capacity"]
    )
    assert (
        factor_values(person, make_listing("a", accepts_referrals=True))["referral"]
        > factor_values(person, make_listing("b", accepts_referrals=False))["referral"]
    )


def test_freshness_loses_score_and_warns_after_a_year() -> None:
    person = make_person()
    fresh = make_listing("fresh", verified_at="2026-09-01")
    stale = make_listing("stale", verified_at="2024-03-01")
    unknown = make_listing("unknown", verified_at=None)
    assert factor_values(person, fresh)["freshness"] > factor_values(person, stale)["freshness"]
    answer = match(person, [fresh, stale, unknown], today=TODAY)
    by_id = {p["resource_id"]: p for p in answer["proposals"]}
    assert "情報の確認が1年以上前です（2024年3月1日）" in by_id["stale"]["cautions"]
    assert "最終確認日が不明です" in by_id["unknown"]["cautions"]
    assert not any("確認" in c for c in by_id["fresh"]["cautions"])
    assert by_id["fresh"]["score"] > by_id["stale"]["score"]


def test_cautions_for_reservation_and_samples() -> None:
    listing = make_listing("r", reservation_required=True, is_sample=True)
    cautions = match(make_person(), [listing], today=TODAY)["proposals"][0]["cautions"]
    assert "要予約" in cautions and "サンプル（架空）の情報です" in cautions
    real = make_listing("real", is_sample=False)
    assert (
        "サンプル（架空）の情報です"
        not in match(make_person(), [real], today=TODAY)["proposals"][0]["cautions"]
    )


# --- explanations --------------------------------------------------------------------------------
def test_explanations_read_aloud() -> None:
    listing = make_listing(
        "farm",
        name="畑の就労体験",
        kind="work_trial",
        activities=["農作業"],
        capacity=3,
        cost_yen=0,
        lat=TOIDE[0] + 0.018,
        group_size="small",
        schedule=[{"weekday": "tue", "start": "10:00", "end": "12:00"}],
    )
    person = make_person(goals=["work"], interests=["農作業"], mobility="bicycle", max_minutes=30)
    proposal = match(person, [listing], today=TODAY)["proposals"][0]
    assert reason(proposal, "travel") == f"自転車で約{proposal['travel_minutes']}分"
    assert 8 <= proposal["travel_minutes"] <= 12
    assert reason(proposal, "schedule") == "火曜 10:00〜12:00 に参加できます（次回 12月1日）"
    assert reason(proposal, "interest") == "農作業ができる"
    assert reason(proposal, "group") == "少人数"
    assert reason(proposal, "cost") == "無料"
    assert reason(proposal, "capacity") == "空きあり（あと3人）"
    assert reason(proposal, "goal").startswith("働く練習ができる就労体験の場")
    assert proposal["next_sessions"][0] == "2026-12-01T10:00+09:00"
    assert all(s.endswith("+09:00") for s in proposal["next_sessions"])
    for r in proposal["reasons"]:
        assert 0.0 <= r["score"] <= 1.0


def test_explanation_with_nth_week_and_walk() -> None:
    listing = make_listing(
        "s",
        schedule=[{"weekday": "sat", "weeks": [2, 4], "start": "13:30", "end": "15:00"}],
        cost_yen=300,
    )
    person = make_person(
        mobility="walk", available=[{"weekday": "sat", "start": "13:00", "end": "17:00"}]
    )
    proposal = match(person, [listing], today=TODAY)["proposals"][0]
    assert (
        reason(proposal, "schedule") == "第2・第4土曜 13:30〜15:00 に参加できます（次回 12月12日）"
    )
    assert reason(proposal, "travel").startswith("徒歩で約")
    assert reason(proposal, "cost") == "参加費 300円"


def test_unknown_home_keeps_matching_without_travel() -> None:
    person = make_person(home={"district": "戸破"})
    proposal = match(person, [make_listing("a")], today=TODAY)["proposals"][0]
    assert proposal["travel_minutes"] is None
    assert any("移動時間" in c for c in proposal["cautions"])


# --- diversity ---------------------------------------------------------------------------------------
def test_top_proposals_offer_different_kinds() -> None:
    person = make_person(goals=["first_step", "friends"])
    cafes = [make_listing(f"cafe{i}", kind="ibasho", lat=TOIDE[0] + 0.001 * i) for i in range(6)]
    others = [
        make_listing("salon", kind="kayoi", lat=TOIDE[0] + 0.004, group_size="medium"),
        make_listing("shokudo", kind="shokudo", lat=TOIDE[0] + 0.005, group_size="medium"),
    ]
    answer = match(person, cafes + others, today=TODAY, limit=4)
    kinds = [p["kind"] for p in answer["proposals"]]
    assert len(set(kinds[:3])) == 3
    assert kinds[0] == "ibasho"


def test_diversify_penalises_repeats_but_keeps_everything() -> None:
    cands = [
        Candidate(0, 0.90, "ibasho", frozenset({"かふぇ"})),
        Candidate(1, 0.89, "ibasho", frozenset({"かふぇ"})),
        Candidate(2, 0.85, "kayoi", frozenset({"体操"})),
        Candidate(3, 0.60, "kayoi", frozenset({"体操"})),
    ]
    order = [c.key for c in diversify(cands, 4)]
    assert order == [0, 2, 1, 3]
    assert [c.key for c in diversify(cands, 2)] == [0, 2]


def test_scores_are_the_weighted_mean_of_factors() -> None:
    person = make_person(goals=["health"], interests=["体操"])
    listing = make_listing("k", kind="kayoi", activities=["100歳体操"])
    proposal = match(person, [listing], today=TODAY)["proposals"][0]
    assert proposal["score"] == pytest.approx(score_of(person, listing), abs=1e-3)
    weights = np.array([f.weight for f in FACTORS])
    assert 0 < proposal["score"] <= weights.sum()
