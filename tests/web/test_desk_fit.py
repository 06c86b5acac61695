"""The desk reads aloud what is known: places known to fit and 要確認の候補 apart and labelled, a farm a little too
far shown with what it offers, every exclusion on request, and the printed sheet saying what to check."""

from __future__ import annotations

from typing import Any

from resdb.domain.travel import travel_minutes
from tests.web.conftest import StaffSetup
from tests.web.test_coordinator import form_of, post_form

HOME = (36.7236, 137.0991)


def _lat_for(minutes: float) -> float:
    km = 0.0
    while travel_minutes(km, "bicycle") < minutes:
        km += 0.01
    return HOME[0] + km / 111.2


def test_desk_groups_labels_near_misses_and_sheet(staff: StaffSetup) -> None:
    staff.directory.create(
        {
            "id": "t-farm",
            "name": "みどり農園の畑しごと",
            "kind": "work_trial",
            "lat": _lat_for(22),
            "lon": HOME[1],
            "municipality_code": "162116",
            "targets": ["all"],
            "activities": ["農作業"],
            "schedule": [{"weekday": "wed", "start": "13:00", "end": "16:00"}],
            "cost_yen": 0,
            "verified_at": "2026-10-01",
        },
        actor="test",
    )
    staff.directory.create(
        {
            "id": "t-hall",
            "name": "戸破コミュニティセンター",
            "kind": "venue",
            "lat": HOME[0],
            "lon": HOME[1],
            "municipality_code": "162116",
            "accepts_referrals": False,
        },
        actor="test",
    )
    person = {
        "home": {"lat": HOME[0], "lon": HOME[1], "district": "戸破"},
        "age": 70,
        "mobility": "bicycle",
        "targets": ["hikikomori"],
        "max_minutes": 20,
        "goals": ["friends"],
        "interests": ["農作業"],
        "budget_yen": 500,
        "available": [
            {"weekday": "wed", "start": "13:00", "end": "16:00"},
            {"weekday": "tue", "start": "09:00", "end": "12:00"},
        ],
    }
    coord = staff.login("coord@example.jp")
    html = post_form(coord, "/coordinator/match", form_of(person)).get_data(as_text=True)
    known_at, unsure_at = html.index("合うことが確認できた場（"), html.index("要確認の候補（")
    assert known_at < html.index("戸破ふれあいサロン") < unsure_at < html.index("すてっぴカフェ")
    assert "確認すること:" in html and "情報の新しさ" in html
    assert "水曜 13:30〜15:30 に参加できます" in html  # the person's own window, in words
    assert "少し遠い（自転車で約22分）が農作業ができる" in html
    assert "戸破コミュニティセンター" not in html  # a building is never proposed
    assert "外れた場所をすべて表示" in html

    every = post_form(coord, "/coordinator/match", form_of(person, all_excluded="1")).get_data(
        as_text=True
    )
    assert (
        "外れた場所（すべて）" in every and "稲城の体操クラブ" not in every
    )  # far away: not in reach at all

    sheet = post_form(
        coord, "/coordinator/match/sheet", form_of(person, pick=["t-salon", "t-cafe", "t-farm"])
    )
    text = sheet.get_data(as_text=True)
    assert "日時・費用・受け入れを確かめてあります。" in text
    assert "行く前に確かめること:" in text and "少し遠い（自転車で約22分）が農作業ができる" in text


def test_api_documents_the_added_fields(staff: StaffSetup) -> None:
    spec: dict[str, Any] = staff.client().get("/api/openapi.json").get_json()
    text = str(spec)
    for name in ("fit", "to_confirm", "near_misses", "fit_counts"):
        assert name in text


def test_caseload_placement_never_proposes_a_place_the_person_is_already_at(
    staff: StaffSetup,
) -> None:
    from tests.web.test_coordinator import save_case

    for listing_id, lat in (("t-work-a", 36.7230), ("t-work-b", 36.7260)):
        staff.directory.create(
            {
                "id": listing_id,
                "name": f"作業体験 {listing_id}",
                "kind": "work_trial",
                "lat": lat,
                "lon": 137.0985,
                "municipality_code": "162116",
                "targets": ["disability"],
                "capacity": 5,
                "cost_yen": 0,
                "schedule": [{"weekday": "thu", "start": "10:00", "end": "12:00"}],
            },
            actor="test",
        )
    coord = staff.login("coord@example.jp")
    person = {
        "home": {"lat": 36.7236, "lon": 137.0991},
        "age": 45,
        "mobility": "walk",
        "max_minutes": 30,
        "goals": ["work"],
        "targets": ["disability"],
        "available": [{"weekday": "thu", "start": "09:00", "end": "13:00"}],
    }
    case_id = save_case(
        coord, person, "Eさん", ["t-work-a"]
    )  # already 「提案」 at t-work-a (the nearer one)
    html = post_form(
        coord, "/coordinator/batch", {"case": [str(case_id)]}, "/coordinator/batch"
    ).get_data(as_text=True)
    assert f'value="{case_id}:t-work-b:' in html and f'value="{case_id}:t-work-a:' not in html
