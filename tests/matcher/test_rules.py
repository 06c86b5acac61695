"""Every contract rule: a listing that breaks it is never proposed and shows up in `excluded`."""

from __future__ import annotations

from typing import Any

import pytest

from matcher import RULES, check_listing, match, parse_person

from .data import TODAY, TOIDE, ids, make_listing, make_person


def answer_for(
    listing: dict[str, Any],
    person: dict[str, Any] | None = None,
    ok: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Match against a listing that passes every rule ("ok") and the one under test."""
    return match(
        person or make_person(), [ok or make_listing("ok"), listing], today=TODAY, **kwargs
    )


def assert_excluded(answer: dict[str, Any], rid: str, reason: str, rule: str) -> None:
    assert rid not in ids(answer["proposals"])
    assert "ok" in ids(answer["proposals"])
    entry = next(e for e in answer["excluded"] if e["resource_id"] == rid)
    assert entry["reason"] == reason
    assert entry["rule"] == rule


def test_baseline_listing_is_proposed() -> None:
    answer = match(make_person(), [make_listing("ok")], today=TODAY)
    assert ids(answer["proposals"]) == ["ok"] and answer["excluded"] == []


@pytest.mark.parametrize(
    ("fields", "age", "reason"),
    [
        ({"min_age": 65, "max_age": None}, 45, "年齢が対象外です（65歳以上）"),
        ({"min_age": None, "max_age": 18}, 45, "年齢が対象外です（18歳以下）"),
        ({"min_age": 15, "max_age": 39}, 45, "年齢が対象外です（15〜39歳）"),
        ({"min_age": 15, "max_age": 39}, 14, "年齢が対象外です（15〜39歳）"),
    ],
)
def test_age(fields: dict[str, Any], age: int, reason: str) -> None:
    listing = make_listing("bad", eligibility={**fields, "residents_only": False})
    assert_excluded(answer_for(listing, make_person(age=age)), "bad", reason, "age")


def test_age_bounds_are_inclusive_and_unknown_age_passes() -> None:
    listing = make_listing(
        "edge", eligibility={"min_age": 65, "max_age": 80, "residents_only": False}, targets=["all"]
    )
    assert "edge" in ids(match(make_person(age=65), [listing], today=TODAY)["proposals"])
    assert "edge" in ids(match(make_person(age=80), [listing], today=TODAY)["proposals"])
    assert "edge" in ids(match(make_person(age=None), [listing], today=TODAY)["proposals"])


def test_targets() -> None:
    listing = make_listing("bad", targets=["disability"])
    answer = answer_for(listing)
    assert_excluded(answer, "bad", "対象者が合いません（障がいのある人向け）", "targets")
    assert answer["excluded"][0]["reason"].startswith("対象者が合いません")


@pytest.mark.parametrize(
    ("targets", "age", "person_targets", "ok"),
    [
        (["elderly"], 65, [], True),  # implied by age
        (["elderly"], 64, [], False),
        (["youth"], 15, [], True),
        (["youth"], 39, [], True),
        (["youth"], 40, [], False),
        (["children"], 17, [], True),
        (["children"], 18, [], False),
        (["hikikomori", "youth"], 52, ["hikikomori"], True),
        (["all", "elderly"], 30, [], True),
        ([], 30, [], True),  # no targets given = not restricted
        (["foreign"], 30, ["外国人"], True),  # Japanese label accepted
    ],
)
def test_targets_table(targets: list[str], age: int, person_targets: list[str], ok: bool) -> None:
    listing = make_listing("t", targets=targets)
    answer = match(make_person(age=age, targets=person_targets), [listing], today=TODAY)
    assert ("t" in ids(answer["proposals"])) is ok


def test_residents_only_outside_service_area() -> None:
    listing = make_listing(
        "bad",
        eligibility={"min_age": None, "max_age": None, "residents_only": True},
        service_area={"districts": ["大島"]},
    )
    assert_excluded(answer_for(listing), "bad", "担当地区外です", "area")


def test_center_service_area_uses_covers_home_callback() -> None:
    center = make_listing("center", kind="center", service_area={"districts": ["大島"]})
    person = make_person()
    # district fallback: 戸破 is not 大島
    assert_excluded(answer_for(center, person), "center", "担当地区外です", "area")
    # the caller's answer wins
    inside = answer_for(center, person, covers_home=lambda listing: listing["id"] == "center")
    assert "center" in ids(inside["proposals"])
    # unknown (None) with a declared area: not satisfied
    unknown_person = make_person(home={"lat": TOIDE[0], "lon": TOIDE[1]})
    unknown = answer_for(center, unknown_person, covers_home=lambda listing: None)
    assert "center" not in ids(unknown["proposals"])
    # unknown without a declared area: the rule has nothing to hold against it
    open_center = make_listing("center", kind="center", service_area=None)
    assert "center" in ids(
        answer_for(open_center, unknown_person, covers_home=lambda listing: None)["proposals"]
    )


def test_district_names_are_compared_loosely() -> None:
    center = make_listing("center", kind="center", service_area={"districts": ["戸破地区"]})
    assert "center" in ids(answer_for(center)["proposals"])


def test_capacity_zero() -> None:
    assert_excluded(
        answer_for(make_listing("bad", capacity=0)), "bad", "定員に空きがありません", "capacity"
    )
    assert "c" in ids(
        match(make_person(), [make_listing("c", capacity=None)], today=TODAY)["proposals"]
    )


def test_cost_over_budget() -> None:
    answer = answer_for(make_listing("bad", cost_yen=500), make_person(budget_yen=300))
    assert_excluded(answer, "bad", "費用が予算を超えます（500円）", "cost")
    free_only = answer_for(make_listing("bad", cost_yen=100), make_person(budget_yen=0))
    assert_excluded(free_only, "bad", "費用が予算を超えます（100円）", "cost")
    no_budget = match(make_person(budget_yen=None), [make_listing("c", cost_yen=5000)], today=TODAY)
    assert ids(no_budget["proposals"]) == ["c"]


def test_schedule_without_overlap() -> None:
    listing = make_listing("bad", schedule=[{"weekday": "thu", "start": "10:00", "end": "12:00"}])
    assert_excluded(answer_for(listing), "bad", "参加できる時間帯に開催がありません", "schedule")
    touching = make_listing("bad", schedule=[{"weekday": "tue", "start": "12:00", "end": "13:00"}])
    assert_excluded(answer_for(touching), "bad", "参加できる時間帯に開催がありません", "schedule")


def test_schedule_weeks_are_honoured() -> None:
    second_wed = make_listing(
        "wed2", schedule=[{"weekday": "wed", "weeks": [2], "start": "13:30", "end": "15:00"}]
    )
    person = make_person(available=[{"weekday": "wed", "start": "13:00", "end": "16:00"}])
    answer = match(person, [second_wed], today=TODAY)
    assert ids(answer["proposals"]) == ["wed2"]
    assert answer["proposals"][0]["next_sessions"] == ["2026-12-09T13:30+09:00"]


def test_schedule_rule_needs_times_on_both_sides() -> None:
    no_times = make_person(available=[])
    thursday = make_listing("thu", schedule=[{"weekday": "thu", "start": "10:00", "end": "12:00"}])
    assert ids(match(no_times, [thursday], today=TODAY)["proposals"]) == ["thu"]
    unscheduled = make_listing("none", schedule=[])
    answer = match(make_person(), [unscheduled], today=TODAY)
    assert ids(answer["proposals"]) == ["none"]
    assert "開催日時が登録されていません（要確認）" in answer["proposals"][0]["cautions"]


def test_travel_time_over_limit() -> None:
    # about 8.1 km north-west of 戸破: by bicycle (15 km/h, detour 1.3) ≈ 42 minutes
    far = make_listing("bad", lat=36.7780, lon=137.0440)
    answer = answer_for(far, make_person(mobility="bicycle", max_minutes=30))
    entry = next(e for e in answer["excluded"] if e["resource_id"] == "bad")
    assert entry["rule"] == "travel"
    assert entry["reason"].startswith("自転車で約") and entry["reason"].endswith(
        "分かかり、上限の30分を超えます"
    )
    minutes = int(entry["reason"].removeprefix("自転車で約").split("分")[0])
    assert 40 <= minutes <= 45
    by_car = match(make_person(mobility="car", max_minutes=30), [far], today=TODAY)
    assert ids(by_car["proposals"]) == ["bad"]


def test_far_beyond_the_limit_is_dropped_silently() -> None:
    tokyo = make_listing("tokyo", lat=35.6812, lon=139.7671)
    answer = match(make_person(), [tokyo, make_listing("ok")], today=TODAY)
    assert ids(answer["proposals"]) == ["ok"] and answer["excluded"] == []


def test_pickup_needed() -> None:
    person = make_person(mobility="pickup_needed")
    answer = answer_for(
        make_listing("bad", pickup=False), person, ok=make_listing("ok", pickup=True)
    )
    assert_excluded(answer, "bad", "送迎がありません", "pickup")
    with_pickup = match(person, [make_listing("p", pickup=True)], today=TODAY)
    assert ids(with_pickup["proposals"]) == ["p"]
    needs_pickup = make_person(needs={"pickup": True})
    assert "bad" not in ids(
        match(needs_pickup, [make_listing("bad", pickup=False)], today=TODAY)["proposals"]
    )


def test_pickup_needed_excludes_the_ok_listing_too() -> None:
    # sanity for the helper above: "ok" has no pickup, so it is excluded for such a person
    person = make_person(mobility="pickup_needed")
    answer = match(person, [make_listing("ok")], today=TODAY)
    assert answer["proposals"] == [] and answer["excluded"][0]["reason"] == "送迎がありません"


def test_barrier_free_needed() -> None:
    person = make_person(needs={"barrier_free": True})
    assert_excluded(
        answer_for(make_listing("bad", barrier_free=False), person),
        "bad",
        "バリアフリーではありません",
        "barrier_free",
    )
    unknown = match(person, [make_listing("u", barrier_free=None)], today=TODAY)
    assert unknown["proposals"] == []


def test_exclude_list() -> None:
    person = make_person(exclude=["bad"])
    assert_excluded(
        answer_for(make_listing("bad"), person), "bad", "除外リストに入っています", "exclude"
    )


def test_several_broken_rules_are_all_listed_first_one_as_reason() -> None:
    listing = make_listing("bad", capacity=0, cost_yen=900, barrier_free=False)
    answer = answer_for(listing, make_person(budget_yen=0, needs={"barrier_free": True}))
    entry = next(e for e in answer["excluded"] if e["resource_id"] == "bad")
    assert [r["rule"] for r in entry["rules"]] == ["capacity", "cost", "barrier_free"]
    assert entry["reason"] == "定員に空きがありません"


def test_excluded_only_lists_near_misses() -> None:
    # eleven rule-breakers; with limit=3 only those that would rank in the top 3 are listed
    breakers = [make_listing(f"b{i}", capacity=0) for i in range(11)]
    answer = match(make_person(), [*breakers, make_listing("ok")], today=TODAY, limit=3)
    assert len(answer["excluded"]) <= 3
    assert ids(answer["proposals"]) == ["ok"]


def test_check_listing_scalar_helper() -> None:
    q = parse_person(make_person(budget_yen=0), TODAY)
    assert check_listing(q, make_listing("ok")) == []
    broken = check_listing(q, make_listing("bad", cost_yen=300, capacity=0))
    assert broken == [
        ("capacity", "定員に空きがありません"),
        ("cost", "費用が予算を超えます（300円）"),
    ]
    far = check_listing(q, make_listing("tokyo", lat=35.68, lon=139.77))
    assert (
        far[0][0] == "travel"
        and far[0][1].startswith("自転車で約")
        and far[0][1].endswith("上限の30分を超えます")
    )
    assert check_listing(q, make_listing("nowhere", lat=None, lon=None))[0][0] == "travel"


def test_rule_table_covers_the_contract() -> None:
    assert [r.id for r in RULES] == [
        "exclude",
        "active",
        "age",
        "targets",
        "area",
        "capacity",
        "cost",
        "schedule",
        "travel",
        "pickup",
        "barrier_free",
    ]


@pytest.mark.parametrize(
    ("person", "field"),
    [
        ({"mobility": "rocket"}, "mobility"),
        ({"goals": ["fame"]}, "goals"),
        ({"targets": ["aliens"]}, "targets"),
        ({"age": "old"}, "age"),
        ({"available": [{"weekday": "tue", "start": "12:00", "end": "10:00"}]}, "available[0].end"),
        ({"home": {"lat": 36.7}}, "home"),
        ({"prefers": {"group_size": "huge"}}, "prefers.group_size"),
        ({"budget_yen": -1}, "budget_yen"),
    ],
)
def test_bad_person_input_names_the_field(person: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError) as err:
        match(make_person(**person), [make_listing("ok")], today=TODAY)
    assert str(err.value).startswith(field)
