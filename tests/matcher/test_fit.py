"""Proposals a coordinator can read aloud: known-to-fit before 要確認の候補, reasons only positive facts, the
person's own time window, interests that count, near misses by travel, every exclusion, no venue or programme."""

from __future__ import annotations

from typing import Any

from matcher import match, match_batch
from resdb.domain.travel import travel_minutes

from .data import TODAY, TOIDE, make_listing, make_person

UNSURE_WORDS = ("要確認", "不明", "分かりません", "以上前", "要相談", "ありません", "可能性")


def km_for(minutes: float, mobility: str = "bicycle") -> float:
    """Straight-line km that the travel estimate turns into about `minutes`."""
    low, high = 0.0, 50.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if travel_minutes(mid, mobility) < minutes else (low, mid)
    return low


def north(km: float) -> float:
    return TOIDE[0] + km / 111.2


def test_time_reason_states_the_persons_own_window() -> None:
    listing = make_listing(
        "open-all-day", schedule=[{"weekday": "thu", "start": "10:00", "end": "16:00"}]
    )
    person = make_person(available=[{"weekday": "thu", "start": "14:00", "end": "18:00"}])
    proposal = match(person, [listing], today=TODAY)["proposals"][0]
    text = next(r["text"] for r in proposal["reasons"] if r["factor"] == "schedule")
    assert text.startswith("木曜 14:00〜16:00 に参加できます（次回 12月")


def test_unknowns_and_stale_data_are_cautions_never_reasons() -> None:
    unknown = make_listing(
        "unknown",
        schedule=[],
        cost_yen=None,
        verified_at=None,
        accepts_referrals=None,
        group_size="large",
    )
    stale = make_listing("stale", verified_at="2024-01-10")
    answer = match(make_person(prefers={"group_size": "small"}), [unknown, stale], today=TODAY)
    by_id = {p["resource_id"]: p for p in answer["proposals"]}
    for proposal in by_id.values():
        for reason in proposal["reasons"]:
            assert not any(word in reason["text"] for word in UNSURE_WORDS), reason
        assert proposal["fit"] == "to_confirm"
    assert set(by_id["unknown"]["to_confirm"]) == {
        "開催日時",
        "費用",
        "情報の新しさ",
        "紹介での受け入れ",
    }
    cautions = " ".join(by_id["unknown"]["cautions"])
    assert "開催日時が登録されていません" in cautions and "費用が登録されていません" in cautions
    assert "最終確認日が不明" in cautions
    assert by_id["stale"]["to_confirm"] == ["情報の新しさ"]
    assert any("1年以上前" in c for c in by_id["stale"]["cautions"])
    assert not any(
        r["factor"] == "group" for r in by_id["unknown"]["reasons"]
    )  # 大人数 is not what they asked for


def test_stale_days_setting_moves_the_line() -> None:
    listing = make_listing("half-year", verified_at="2026-04-01")
    assert match(make_person(), [listing], today=TODAY)["proposals"][0]["fit"] == "known"
    strict = match(make_person(), [listing], today=TODAY, stale_days=90)["proposals"][0]
    assert strict["fit"] == "to_confirm" and strict["to_confirm"] == ["情報の新しさ"]


def test_known_fits_come_before_places_to_confirm_and_are_labelled() -> None:
    better_but_unsure = make_listing(
        "unsure", verified_at=None, activities=["交流", "ゲーム"], lat=TOIDE[0] + 0.001
    )
    plain_known = make_listing("known", lat=TOIDE[0] + 0.02, group_size="large")
    answer = match(make_person(interests=["ゲーム"]), [better_but_unsure, plain_known], today=TODAY)
    assert [p["resource_id"] for p in answer["proposals"]] == ["known", "unsure"]
    assert answer["proposals"][0]["score"] < answer["proposals"][1]["score"]
    assert [p["fit_label"] for p in answer["proposals"]] == [
        "合うことが確認できた場",
        "要確認の候補",
    ]
    assert answer["fit_counts"] == {"known": 1, "to_confirm": 1}


def test_interest_outweighs_a_mere_goal_match() -> None:
    farm = make_listing(
        "farm", kind="work_trial", name="畑の体験", activities=["農作業"], lat=TOIDE[0] + 0.02
    )
    ibasho = make_listing("ibasho", kind="ibasho", activities=["交流"], lat=TOIDE[0] + 0.003)
    person = make_person(
        goals=["first_step"], interests=["農作業"], prefers={"group_size": "small"}
    )
    answer = match(person, [ibasho, farm], today=TODAY)
    assert [p["resource_id"] for p in answer["proposals"]][0] == "farm"


def test_travel_near_miss_within_20_percent_is_shown_with_what_it_offers() -> None:
    near = make_listing(
        "near-farm", kind="work_trial", activities=["農作業"], lat=north(km_for(34))
    )
    far = make_listing("far-farm", kind="work_trial", activities=["農作業"], lat=north(km_for(40)))
    answer = match(make_person(interests=["農作業"], max_minutes=30), [near, far], today=TODAY)
    assert answer["proposals"] == []
    assert [m["resource_id"] for m in answer["near_misses"]] == ["near-farm"]
    miss = answer["near_misses"][0]
    assert miss["text"] == f"少し遠い（自転車で約{miss['travel_minutes']}分）が農作業ができる"
    assert 33 <= miss["travel_minutes"] <= 35
    assert {e["resource_id"] for e in answer["excluded"]} == {"near-farm", "far-farm"}


def test_a_near_miss_breaking_another_rule_is_not_offered() -> None:
    near = make_listing("near-full", activities=["農作業"], lat=north(km_for(33)), capacity=0)
    answer = match(make_person(interests=["農作業"], max_minutes=30), [near], today=TODAY)
    assert answer["near_misses"] == []


def test_every_exclusion_can_be_listed() -> None:
    listings = [make_listing(f"old-{i}", eligibility={"min_age": 65}) for i in range(12)]
    answer = match(make_person(), listings, today=TODAY, limit=3)
    assert len(answer["excluded"]) == 3
    every = match(make_person(), listings, today=TODAY, limit=3, all_excluded=True)
    assert len(every["excluded"]) == 12
    assert {e["reason"] for e in every["excluded"]} == {"年齢が対象外です（65歳以上）"}


def test_venues_and_programmes_are_never_proposed_or_listed() -> None:
    venue = make_listing(
        "hall", kind="venue", name="戸破コミュニティセンター", activities=[], targets=[]
    )
    programme = make_listing("scheme", kind="program", name="地域支え合いネットワーク事業")
    real = make_listing("real")
    answer = match(
        make_person(goals=["first_step"]), [venue, programme, real], today=TODAY, all_excluded=True
    )
    seen = {p["resource_id"] for p in answer["proposals"]} | {
        e["resource_id"] for e in answer["excluded"]
    }
    seen |= {m["resource_id"] for m in answer["near_misses"]}
    assert seen == {"real"}


def test_active_placement_is_never_proposed_again() -> None:
    listings = [make_listing("a", capacity=3), make_listing("b", capacity=3, lat=TOIDE[0] + 0.02)]
    person: dict[str, Any] = make_person(active_places=["a"])
    answer = match(person, listings, today=TODAY)
    assert [p["resource_id"] for p in answer["proposals"]] == ["b"]
    assert any(
        e["resource_id"] == "a" and e["reason"] == "すでに参加中の場所です"
        for e in answer["excluded"]
    )
    batch = match_batch([person, make_person()], listings, today=TODAY)
    placed = {a["person"]: a["resource_id"] for a in batch["assignments"]}
    assert placed[0] == "b"
