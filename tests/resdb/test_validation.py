"""Listing validation: every problem is named by field (and row) in Japanese; good input is normalized."""

from __future__ import annotations

import pytest

from resdb.validation import municipality_code6, parse_schedule, validate_listing

GOOD = {
    "name": "テスト食堂",
    "kind": "地域食堂・子ども食堂",
    "lat": "36.72",
    "lon": "137.09",
    "targets": "子ども;parents",
    "cost_yen": "300円",
    "schedule": "毎月第2・第4土曜 11:00〜13:00",
    "barrier_free": "○",
    "verified_at": "2025/3/1",
}


def test_good_record_is_normalized() -> None:
    clean, problems = validate_listing(GOOD, row=2)
    assert problems == []
    assert clean["kind"] == "shokudo"
    assert clean["targets"] == ["children", "parents"]
    assert clean["cost_yen"] == 300
    assert clean["barrier_free"] is True
    assert clean["schedule"] == [
        {"weekday": "sat", "weeks": [2, 4], "start": "11:00", "end": "13:00"}
    ]
    assert clean["verified_at"].isoformat() == "2025-03-01"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "カラオケ"}, "kind"),
        ({"kind": ""}, "kind"),
        ({"name": " "}, "name"),
        ({"lat": "51.5"}, "lat"),
        ({"lon": "-0.12"}, "lon"),
        ({"lat": "abc"}, "lat"),
        ({"cost_yen": "-5"}, "cost_yen"),
        ({"capacity": "たくさん"}, "capacity"),
        ({"schedule": "毎週火曜 25:00〜26:00"}, "schedule"),
        ({"schedule": "毎週火曜 12:00〜10:00"}, "schedule"),
        ({"schedule": [{"weekday": "xyz", "start": "10:00", "end": "11:00"}]}, "schedule"),
        ({"targets": "宇宙人"}, "targets"),
        ({"group_size": "huge"}, "group_size"),
        ({"id": "日本語id"}, "id"),
        ({"verified_at": "2999-01-01"}, "verified_at"),
        ({"eligibility": {"min_age": 70, "max_age": 60}}, "eligibility"),
        ({"municipality_code": "12"}, "municipality_code"),
    ],
)
def test_bad_fields_are_named(change: dict, field: str) -> None:
    _clean, problems = validate_listing({**GOOD, **change}, row=7)
    assert [p.field for p in problems] == [field]
    assert problems[0].row == 7
    assert problems[0].message  # Japanese reason
    assert str(problems[0]).startswith("7行目")


def test_location_is_required() -> None:
    _clean, problems = validate_listing({"name": "x", "kind": "ibasho"})
    assert [p.field for p in problems] == ["address"]


def test_partial_update_needs_no_required_fields() -> None:
    clean, problems = validate_listing({"capacity": 3}, partial=True)
    assert problems == [] and clean == {"capacity": 3}


def test_check_digit_added_to_five_digit_codes() -> None:
    assert municipality_code6("16211") == "162116"
    assert municipality_code6("13225") == "132250"
    assert municipality_code6("28206") == "282065"
    assert municipality_code6("07204") == "072044"
    assert municipality_code6("46533") == "465330"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("毎週火曜 10:00〜12:00", [{"weekday": "tue", "start": "10:00", "end": "12:00"}]),
        (
            "第１水曜日　１３：３０～１５：３０",
            [{"weekday": "wed", "weeks": [1], "start": "13:30", "end": "15:30"}],
        ),
        (
            "wed#1,3 13:30-15:30",
            [{"weekday": "wed", "weeks": [1, 3], "start": "13:30", "end": "15:30"}],
        ),
        (
            '[{"weekday": "fri", "start": "9:00", "end": "11:00"}]',
            [{"weekday": "fri", "start": "09:00", "end": "11:00"}],
        ),
    ],
)
def test_schedule_text_forms(text: str, expected: list) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "ftp://x", "//evil"])
def test_only_web_urls_are_accepted(url: str) -> None:
    _clean, problems = validate_listing({**GOOD, "url": url})
    assert [p.field for p in problems] == ["url"]
