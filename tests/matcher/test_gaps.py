"""Gap report: places per anonymous need, unmet needs grouped by district, Japanese CSV."""

from __future__ import annotations

import csv
import io

import pytest

from matcher import gap_csv, gap_report, write_gap_csv
from matcher.gaps import CSV_COLUMNS

from .data import TAIKOYAMA, TODAY, TOIDE, listings

KAMO = (36.742916, 137.148912)  # 加茂中部 (下地区)
KUSHIDA = (36.694923, 137.040822)  # 櫛田

NEEDS = [
    {
        "goal": "health",
        "targets": ["elderly"],
        "district": "戸破",
        "mobility": "walk",
        "lat": TOIDE[0],
        "lon": TOIDE[1],
        "age": 80,
        "count": 3,
    },
    {
        "goal": "first_step",
        "targets": ["hikikomori"],
        "district": "太閤山",
        "mobility": "bicycle",
        "home": {"lat": TAIKOYAMA[0], "lon": TAIKOYAMA[1]},
        "count": 2,
    },
    {
        "goal": "work",
        "targets": ["disability"],
        "district": "下地区",
        "mobility": "walk",
        "lat": KAMO[0],
        "lon": KAMO[1],
        "count": 2,
    },
    {
        "goal": "health",
        "targets": ["elderly"],
        "district": "下地区",
        "mobility": "walk",
        "lat": KAMO[0],
        "lon": KAMO[1],
        "age": 85,
        "needs": {"pickup": True},
    },
    {
        "goal": "childcare_peers",
        "targets": ["parents"],
        "district": "櫛田",
        "mobility": "walk",
        "lat": KUSHIDA[0],
        "lon": KUSHIDA[1],
        "count": 4,
    },
]


def test_counts_places_per_need() -> None:
    report = gap_report(NEEDS, listings(), today=TODAY)
    rows = report["needs"]
    assert [r["need"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["available"] >= 2  # 三ケ100歳体操, 戸破サロン
    assert rows[1]["available"] >= 2  # よりみち, ほっと
    assert rows[2]["available"] == 0  # no work trial within a walk of 加茂
    assert rows[3]["available"] == 1  # only the salon with pickup
    assert rows[4]["available"] == 0
    assert rows[0]["main_reason"] == "" and rows[2]["main_reason"]


def test_unmet_needs_grouped_by_district_with_the_main_reason() -> None:
    report = gap_report(NEEDS, listings(), today=TODAY)
    unmet = {g["district"]: g for g in report["unmet"]}
    assert set(unmet) == {"下地区", "櫛田"}
    assert unmet["櫛田"]["persons"] == 4 and unmet["櫛田"]["needs"] == 1
    assert unmet["櫛田"]["main_reason"] == "目的に合う種類の場が移動できる範囲にありません"
    assert unmet["下地区"]["goals"] == ["work"]
    assert [g["district"] for g in report["unmet"]] == ["櫛田", "下地区"]  # most persons first


def test_main_reason_is_the_most_common_blocking_rule() -> None:
    need = {
        "goal": "health",
        "district": "戸破",
        "mobility": "walk",
        "lat": TOIDE[0],
        "lon": TOIDE[1],
        "age": 40,
        "targets": [],
    }
    report = gap_report([need], listings(), today=TODAY, min_places=2)
    assert report["needs"][0]["available"] == 1  # the salon open to all
    assert (
        report["needs"][0]["main_reason"] == "対象者が合いません"
    )  # the nearby 体操 club is for elderly
    assert report["unmet"][0]["district"] == "戸破"


def test_csv_has_japanese_columns() -> None:
    report = gap_report(NEEDS, listings(), today=TODAY)
    text = gap_csv(report)
    rows = list(csv.reader(io.StringIO(text)))
    assert (
        tuple(rows[0])
        == CSV_COLUMNS
        == (
            "地区",
            "目的",
            "対象",
            "移動手段",
            "件数",
            "利用可能な場",
            "空き定員",
            "不足",
            "主な理由",
        )
    )
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert len(body) == len(NEEDS)
    kamo_work = next(r for r in body if r["地区"] == "下地区" and r["目的"] == "働きたい")
    assert kamo_work["対象"] == "障がいのある人" and kamo_work["移動手段"] == "徒歩"
    assert kamo_work["件数"] == "2" and kamo_work["利用可能な場"] == "0" and kamo_work["主な理由"]
    buffer = io.StringIO()
    write_gap_csv(report, buffer)
    assert buffer.getvalue() == text


def test_bad_need_names_its_index() -> None:
    with pytest.raises(ValueError, match=r"^needs\[0\]\.goals"):
        gap_report([{"goal": "nope", "lat": TOIDE[0], "lon": TOIDE[1]}], listings(), today=TODAY)


# --- an honest count: only places that could take the person; capacity against persons -----------------
def _place(id: str, **fields: object) -> dict:
    from .data import make_listing

    base: dict = {
        "kind": "work_trial",
        "targets": ["disability"],
        "activities": ["軽作業"],
        **fields,
    }
    return make_listing(id, **base)


def test_only_places_that_could_take_the_person_are_counted() -> None:
    places = [
        _place("ok", capacity=5),
        _place("no-schedule", schedule=[]),
        _place("no-referrals", accepts_referrals=False),
        _place("full", capacity=0),
        _place("hall", kind="venue", activities=[], targets=[]),
        _place("scheme", kind="program"),
    ]
    need = {
        "goal": "work",
        "targets": ["disability"],
        "district": "戸破",
        "mobility": "walk",
        "lat": TOIDE[0],
        "lon": TOIDE[1],
        "count": 2,
    }
    row = gap_report([need], places, today=TODAY)["needs"][0]
    assert row["available"] == 1 and row["open_capacity"] == 5 and row["flags"] == ["1か所のみ"]


def test_one_place_for_four_persons_is_flagged_by_district() -> None:
    places = [_place("only", capacity=1)]
    need = {
        "goal": "work",
        "targets": ["disability"],
        "district": "新湊",
        "mobility": "bus",
        "lat": TOIDE[0],
        "lon": TOIDE[1],
        "count": 4,
    }
    report = gap_report([need], places, today=TODAY)
    row = report["needs"][0]
    assert row["flags"] == ["1か所のみ", "定員不足"] and row["open_capacity"] == 1
    shortage = report["shortages"][0]
    assert shortage["district"] == "新湊" and shortage["persons"] == 4
    assert (
        shortage["needs"][0]["text"]
        == "働きたい・障がいのある人・バス・4人: 受け入れ可能な場 1か所（空き定員 1人）— 1か所のみ・定員不足"
    )
    csv_row = list(csv.DictReader(io.StringIO(gap_csv(report))))[0]
    assert csv_row["不足"] == "1か所のみ・定員不足" and csv_row["空き定員"] == "1"


def test_enough_open_places_raise_no_flag_and_unknown_capacity_is_not_a_shortage() -> None:
    need = {
        "goal": "work",
        "targets": ["disability"],
        "district": "戸破",
        "mobility": "walk",
        "lat": TOIDE[0],
        "lon": TOIDE[1],
        "count": 3,
    }
    assert (
        gap_report([need], [_place("a", capacity=2), _place("b", capacity=2)], today=TODAY)[
            "needs"
        ][0]["flags"]
        == []
    )
    unknown = gap_report(
        [need], [_place("a", capacity=None), _place("b", capacity=1)], today=TODAY
    )["needs"][0]
    assert unknown["open_capacity"] is None and unknown["flags"] == []
