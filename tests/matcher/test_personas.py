"""Persona cases drawn from the plans (8050, ひきこもり, ヤングケアラー, 転入した子育て世帯, 障がいのある人の就労,
外国籍住民, 移動手段のない高齢者) against the small fictional listing set in data.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from matcher import match, match_batch, parse_person

from .data import PERSONS_DIR, TODAY, ids, listings, persona

PERSONAS = [
    "8050_elder",
    "hikikomori_youth",
    "young_carer",
    "new_parent",
    "disability_work",
    "foreign_resident",
    "elder_no_car",
]


def run(name: str, limit: int = 5) -> dict[str, Any]:
    return match(persona(name), listings(), today=TODAY, limit=limit)


def excluded_reason(answer: dict[str, Any], rid: str) -> str:
    return next(e["reason"] for e in answer["excluded"] if e["resource_id"] == rid)


@pytest.mark.parametrize("name", PERSONAS)
def test_persona_files_are_fictional_contract_persons(name: str) -> None:
    data = persona(name)
    assert data["note"] == "架空の事例（デモ用）"
    assert {"home", "age", "mobility", "max_minutes", "available", "goals", "targets"} <= set(data)
    lat, lon = data["home"]["lat"], data["home"]["lon"]
    assert 36.65 < lat < 36.80 and 137.0 < lon < 137.2  # 射水市
    parse_person(data, TODAY)  # valid


def test_caseload_file() -> None:
    caseload = json.loads((PERSONS_DIR / "caseload.json").read_text(encoding="utf-8"))
    assert isinstance(caseload, list) and 6 <= len(caseload) <= 12
    for person in caseload:
        assert person["note"] == "架空の事例（デモ用）"
        parse_person(person, TODAY)
    answer = match_batch(caseload, listings(), today=TODAY)
    placed = {a["person"] for a in answer["assignments"]}
    assert placed | {u["person"] for u in answer["unassigned"]} == set(range(len(caseload)))
    assert len(placed) >= len(caseload) - 1


def test_8050_elder_walks_to_nearby_exercise_and_salon() -> None:
    answer = run("8050_elder")
    got = ids(answer["proposals"])
    assert got[:2] == ["sanga-100sai", "toide-salon"]
    assert "shosei-100sai" not in got  # 新湊: far beyond a 20-minute walk
    assert "toide-young-only" not in got
    assert excluded_reason(answer, "toide-young-only") == "年齢が対象外です（15〜39歳）"
    assert excluded_reason(answer, "toide-ryouri-kouza") == "費用が予算を超えます（1,500円）"
    first = answer["proposals"][0]
    texts = " ".join(r["text"] for r in first["reasons"])
    assert "徒歩で約" in texts and "100歳体操" in texts and "体操ができる" in texts


def test_withdrawn_youth_gets_a_low_threshold_first_step_not_work() -> None:
    answer = run("hikikomori_youth")
    got = ids(answer["proposals"])
    assert set(got[:2]) == {"yorimichi", "hotto-cafe"}
    assert all(p["kind"] != "work_trial" for p in answer["proposals"])
    assert "yurutto-full" not in got
    assert excluded_reason(answer, "yurutto-full") == "定員に空きがありません"
    top = answer["proposals"][0]
    assert any(r["factor"] == "interest" and "ゲーム" in r["text"] for r in top["reasons"])
    assert any(r["text"] == "少人数" for r in top["reasons"])


def test_young_carer_finds_study_support_and_peers_after_school() -> None:
    answer = run("young_carer")
    got = ids(answer["proposals"])
    assert set(got[:2]) == {"oshima-gakushu", "carer-tsudoi"}
    assert "noufuku-hatake" not in got and "keisagyo" not in got
    study = next(p for p in answer["proposals"] if p["resource_id"] == "oshima-gakushu")
    assert study["next_sessions"][0] == "2026-12-02T17:00+09:00"


def test_new_parent_gets_barrier_free_peers_and_the_center_for_her_district() -> None:
    answer = run("new_parent")
    got = ids(answer["proposals"])
    assert got[:2] == ["hiroba", "kodomo-katei-center"]
    assert "hiroba-stairs" not in got
    assert excluded_reason(answer, "hiroba-stairs") == "バリアフリーではありません"
    assert "toide-houkatsu" not in got  # a center for 大島 only


def test_person_with_disability_who_wants_to_work() -> None:
    answer = run("disability_work")
    got = ids(answer["proposals"])
    assert got[:2] == ["noufuku-hatake", "keisagyo"]
    farm = answer["proposals"][0]
    interest = next(r for r in farm["reasons"] if r["factor"] == "interest")
    assert interest["text"] == "農作業ができる"  # 農作業 ↔ 畑 via the shared synonym groups
    assert "sanga-100sai" not in got  # for elderly


def test_foreign_resident_finds_japanese_class_on_sunday() -> None:
    answer = run("foreign_resident")
    got = ids(answer["proposals"])
    assert got[0] == "nihongo"
    assert "tabunka-cafe" in got
    assert "yorimichi" not in got
    assert excluded_reason(answer, "yorimichi") == "参加できる時間帯に開催がありません"


def test_elder_without_car_only_gets_places_with_pickup() -> None:
    answer = run("elder_no_car")
    got = ids(answer["proposals"])
    assert got == ["kamo-pickup-salon"]
    assert excluded_reason(answer, "kamo-salon") == "送迎がありません"
    text = " ".join(r["text"] for r in answer["proposals"][0]["reasons"])
    assert "送迎あり（車で約" in text


@pytest.mark.parametrize("name", PERSONAS)
def test_answer_has_exactly_the_contract_shape(name: str) -> None:
    answer = run(name, limit=10)
    assert set(answer) == {
        "proposals",
        "excluded",
        "near_misses",
        "fit_counts",
    }  # contract + documented additions
    for p in answer["proposals"]:
        assert {
            "resource_id",
            "name",
            "score",
            "travel_minutes",
            "next_sessions",
            "reasons",
            "cautions",
        } <= set(p)
        assert p["fit"] in ("known", "to_confirm") and (p["fit"] == "known") == (
            not p["to_confirm"]
        )
        assert 0.0 <= p["score"] <= 1.0
        assert isinstance(p["travel_minutes"], int)
        for r in p["reasons"]:
            assert set(r) == {"factor", "score", "text"} and r["text"]
        assert all(isinstance(c, str) for c in p["cautions"])
    for e in answer["excluded"]:
        assert {"resource_id", "reason"} <= set(e) and e["reason"]
    assert not set(ids(answer["proposals"])) & {e["resource_id"] for e in answer["excluded"]}
    json.dumps(answer, ensure_ascii=False)
