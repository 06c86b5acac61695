"""自治体標準オープンデータセット in and out: イベント一覧 sessions become draft listings with weekly / 第n週
schedules and export back; 介護サービス事業所一覧 and 子育て施設一覧 round-trip; UTF-8 BOM and Shift_JIS; HSDS 3.1."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

import pytest

from resdb import opendata
from resdb.exchange import read_bytes, to_hsds


def _csv(headers: tuple[str, ...], rows: list[dict[str, str]], encoding: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([row.get(h, "") for h in headers])
    return out.getvalue().encode(encoding)


def _session(name: str, day: str, start: str, end: str, place: str, **extra: str) -> dict[str, str]:
    return {
        opendata.CODE: "162116",
        "イベント名": name,
        "開始日": day,
        "終了日": day,
        "開始時間": start,
        "終了時間": end,
        "場所名称": place,
        "住所": "富山県射水市戸破",
        "料金(基本)": "無料",
        "連絡先電話番号": "0766-51-6625",
        "主催者": "射水市 地域福祉課",
        "参加申込方法": "申込不要",
        **extra,
    }


# 100歳体操 every Monday (four weeks in a row) and a salon on the 1st and 3rd Wednesday (two months).
SESSIONS = [
    *[
        _session("大門地域振興会4班 きららか射水100歳体操", d, "13:30", "14:30", "栄町公民館")
        for d in ("2026-12-07", "2026-12-14", "2026-12-21", "2026-12-28")
    ],
    *[
        _session("戸破ふれあいサロン", d, "13:30", "15:30", "戸破公民館")
        for d in ("2026-12-02", "2026-12-16", "2027-01-06", "2027-01-20")
    ],
    {
        opendata.CODE: "162116",
        "イベント名": "桜町百花会 100歳体操",
        "開始日": "2026-12-01",
        "開始時間": "10:00",
        "終了時間": "11:00",
        "開始日時特記事項": "毎週火曜",
        "場所名称": "桜町公民館",
        "住所": "富山県射水市戸破",
    },
]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_event_sessions_import_as_drafts_with_schedules_and_export_back(
    directory: Any, encoding: str
) -> None:
    data = _csv(opendata.EVENT_HEADERS, SESSIONS, encoding)
    records, warnings = read_bytes(data, "events.csv")
    assert warnings == []
    report = directory.import_records(
        records,
        actor="t",
        source_name="events.csv",
        status="draft",
        source="射水市 地域福祉課 イベント一覧",
    )
    assert report.problems == [] and report.created == 3 and report.written
    drafts = {x["name"]: x for x in directory.all_listings(include_unpublished=True)}
    taiso = drafts["大門地域振興会4班 きららか射水100歳体操"]
    assert taiso["status"] == "draft" and taiso["kind"] == "kayoi"
    assert taiso["schedule"] == [{"weekday": "mon", "start": "13:30", "end": "14:30"}]
    assert taiso["source"] == "射水市 地域福祉課 イベント一覧" and taiso["cost_yen"] == 0
    assert taiso["reservation_required"] is False and taiso["venue"] == "栄町公民館"
    assert drafts["戸破ふれあいサロン"]["schedule"] == [
        {"weekday": "wed", "weeks": [1, 3], "start": "13:30", "end": "15:30"}
    ]
    assert drafts["桜町百花会 100歳体操"]["schedule"] == [
        {"weekday": "tue", "start": "10:00", "end": "11:00"}
    ]
    assert directory.published_count() == 0  # drafts wait for an editor

    # Export (one row per recurring schedule) and read back: the same schedules, nothing lost.
    listings = directory.all_listings(include_unpublished=True)
    text = opendata.export_text("event", listings, today=date(2026, 12, 1))
    exported = opendata.encode(text, encoding)
    rows = list(csv.reader(io.StringIO(exported.decode(encoding))))
    assert tuple(rows[0]) == opendata.EVENT_HEADERS and len(rows) == 4
    salon = next(r for r in rows if r[4] == "戸破ふれあいサロン")
    assert salon[opendata.EVENT_HEADERS.index("開始日時特記事項")] == "毎月第1・第3水曜"
    assert salon[opendata.EVENT_HEADERS.index("開始日")] == "2026-12-02"
    again, _ = read_bytes(exported, "back.csv")
    by_id = {r["id"]: r for _, r in again}
    for listing in listings:
        assert by_id[listing["id"]]["schedule"] == listing["schedule"]
    second = directory.import_records(again, actor="t", source_name="back.csv", status="draft")
    assert second.problems == [] and second.created == 0 and second.unchanged == 3


def test_event_dates_that_no_schedule_expresses_are_row_errors(directory: Any) -> None:
    rows = [
        _session("ばらばら体操", "2026-12-03", "10:00", "11:00", "公民館"),
        _session("ばらばら体操", "2026-12-10", "10:00", "11:00", "公民館"),
        _session("ばらばら体操", "2027-01-21", "10:00", "11:00", "公民館"),
        _session("一度きりの講座", "2026-12-05", "10:00", "11:00", "公民館"),
        _session("時刻のない会", "2026-12-05", "", "", "公民館"),
        _session("よい体操", "2026-12-07", "10:00", "11:00", "公民館"),
        _session("よい体操", "2026-12-14", "10:00", "11:00", "公民館"),
    ]
    records, _ = read_bytes(_csv(opendata.EVENT_HEADERS, rows, "utf-8-sig"), "e.csv")
    report = directory.import_records(records, actor="t", source_name="e.csv", dry_run=True)
    by_row = {p.row: p for p in report.problems}
    assert set(by_row) == {2, 5, 6}
    assert (
        by_row[2].field == "開始日"
        and "2行目、3行目、4行目" in by_row[2].message
        and "第1・第3木曜" in by_row[2].message
    )
    assert "1回だけの開催（2026-12-05）" in by_row[5].message
    assert by_row[6].field == "開始時間" and "10:00 のように" in by_row[6].message
    assert report.created == 1  # only よい体操 could be imported
    written = directory.import_records(
        records, actor="t", source_name="e.csv", good_rows_only=True, status="draft"
    )
    assert written.written and written.created == 1 and written.skipped_rows == [2, 5, 6]
    assert [x["name"] for x in directory.all_listings(include_unpublished=True)] == ["よい体操"]


def test_event_without_a_kind_asks_for_one(directory: Any) -> None:
    rows = [
        _session("年末の集い", d, "10:00", "11:00", "公民館") for d in ("2026-12-07", "2026-12-14")
    ]
    data = _csv(opendata.EVENT_HEADERS, rows, "utf-8-sig")
    records, _ = read_bytes(data, "e.csv")
    report = directory.import_records(records, actor="t", source_name="e.csv", dry_run=True)
    assert [p.field for p in report.problems] == ["種別"] and "種別を選んで" in report.problems[
        0
    ].message
    records, _ = read_bytes(data, "e.csv", default_kind="ibasho")
    assert (
        directory.import_records(records, actor="t", source_name="e.csv", dry_run=True).problems
        == []
    )


def test_kaigo_and_kosodate_round_trip(directory: Any) -> None:
    kaigo = [
        {
            opendata.CODE: "162116",
            "NO": "1",
            "名称": "ふれあいデイ戸破",
            "名称_カナ": "ふれあいでいへば",
            "事業所番号": "1670000001",
            "実施サービス": "通所型サービスB",
            "住所": "富山県射水市戸破",
            "電話番号": "0766-00-1111",
            "法人の名称": "NPO法人ささえあい",
            "利用可能曜日": "月〜金",
            "利用可能日時特記事項": "9:00〜16:00",
            "定員": "15",
        }
    ]
    kosodate = [
        {
            opendata.CODE: "162116",
            "NO": "1",
            "名称": "戸破子育て支援センター",
            "種別": "子育て支援センター",
            "住所": "富山県射水市戸破",
            "電話番号": "0766-00-2222",
            "団体名": "射水市",
            "収容定員": "20",
            "受入年齢": "0歳から就学前",
            "利用可能曜日": "月,水,金",
            "開始時間": "9:30",
            "終了時間": "12:00",
        }
    ]
    for fmt, headers, rows in (
        ("kaigo", opendata.KAIGO_HEADERS, kaigo),
        ("kosodate", opendata.KOSODATE_HEADERS, kosodate),
    ):
        records, _ = read_bytes(_csv(headers, rows, "cp932"), f"{fmt}.csv")
        report = directory.import_records(
            records, actor="t", source_name=f"{fmt}.csv", status="published"
        )
        assert report.problems == [] and report.created == 1, report.as_dict()
    listings = {x["name"]: x for x in directory.all_listings()}
    day = listings["ふれあいデイ戸破"]
    assert (
        day["kind"] == "kayoi" and day["operator"] == "NPO法人ささえあい" and day["capacity"] == 15
    )
    assert [e["weekday"] for e in day["schedule"]] == ["mon", "tue", "wed", "thu", "fri"]
    assert day["schedule"][0] == {"weekday": "mon", "start": "09:00", "end": "16:00"}
    centre = listings["戸破子育て支援センター"]
    assert centre["kind"] == "kosodate" and centre["targets"] == ["children", "parents"]
    assert [e["weekday"] for e in centre["schedule"]] == [
        "mon",
        "wed",
        "fri",
    ] and "受入年齢: 0歳から就学前" in centre["notes"]
    for fmt, headers, name in (
        ("kaigo", opendata.KAIGO_HEADERS, "ふれあいデイ戸破"),
        ("kosodate", opendata.KOSODATE_HEADERS, "戸破子育て支援センター"),
    ):
        text = opendata.export_text(fmt, directory.all_listings())
        rows = list(csv.reader(io.StringIO(text)))
        assert tuple(rows[0]) == headers
        row = next(r for r in rows[1:] if r[headers.index("名称")] == name)
        back, _ = read_bytes(text.encode("utf-8-sig"), "back.csv")
        again = next(r for _, r in back if r["name"] == name)
        assert (
            again["schedule"] == listings[name]["schedule"] and again["id"] == listings[name]["id"]
        )
        assert row[headers.index("利用可能曜日")]


def test_shift_jis_export_names_a_character_it_cannot_hold() -> None:
    text = opendata.export_text(
        "kaigo", [{"id": "a", "name": "髙橋デイ🌸", "kind": "kayoi", "targets": ["elderly"]}]
    )
    with pytest.raises(opendata.EncodeProblem, match="🌸"):
        opendata.encode(text, "cp932")
    assert opendata.encode(text, "utf-8-sig").startswith(b"\xef\xbb\xbf")


def test_templates_carry_the_current_headers() -> None:
    for fmt, spec in opendata.FORMATS.items():
        assert next(csv.reader(io.StringIO(opendata.template_text(fmt)))) == list(spec.headers)


def test_infer_pattern() -> None:
    d = date.fromisoformat
    assert opendata.infer_pattern([d("2026-12-07"), d("2026-12-14")]) == [{"weekday": "mon"}]
    assert opendata.infer_pattern([d("2026-12-02"), d("2026-12-16"), d("2027-01-06")]) == [
        {"weekday": "wed", "weeks": [1, 3]}
    ]
    assert opendata.infer_pattern([d("2026-12-02")]) is None
    assert opendata.infer_pattern([d("2026-12-03"), d("2026-12-10"), d("2027-01-21")]) is None


def test_hsds_3_1_service_capacity_with_its_timestamp() -> None:
    listing = {
        "id": "a",
        "name": "サロン",
        "kind": "kayoi",
        "capacity": 3,
        "updated_at": "2026-11-30T10:00:00+00:00",
        "verified_at": "2026-11-01",
        "schedule": [],
    }
    hsds = json.loads(
        to_hsds([listing, {"id": "b", "name": "b", "kind": "kayoi", "capacity": None}])
    )
    assert hsds["hsds_version"] == "3.1"
    assert hsds["service_capacity"] == [
        {
            "id": "cap:a",
            "service_id": "a",
            "unit_id": "unit:persons",
            "available": 3,
            "maximum": None,
            "description": "参加支援の紹介で受け入れられる人数",
            "updated": "2026-11-30T10:00:00+00:00",
        }
    ]
    assert hsds["units"][0]["id"] == "unit:persons"


def test_export_names_the_prefecture_and_municipality() -> None:
    listing = {
        "id": "a",
        "name": "体操",
        "kind": "kayoi",
        "municipality_code": "162116",
        "schedule": [{"weekday": "mon", "start": "10:00", "end": "11:00"}],
    }
    text = opendata.export_text(
        "event", [listing], municipality_names={"162116": "射水市"}, today=date(2026, 12, 1)
    )
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[:4] == ["162116", "a", "富山県", "射水市"]
    assert opendata.prefecture_name("132250") == "東京都" and opendata.prefecture_name("") == ""


def test_listing_csv_keeps_private_host_and_source_fields() -> None:
    listing = {
        "id": "a",
        "name": "縁側サロン",
        "kind": "kayoi",
        "lat": 36.72,
        "lon": 137.11,
        "location_private": True,
        "source_url": "https://example.jp/x",
        "source_read_at": "2026-11-30",
    }
    from resdb.exchange import to_csv
    from resdb.validation import validate_listing

    for japanese in (False, True):
        records, _ = read_bytes(to_csv([listing], japanese_headers=japanese).encode(), "x.csv")
        clean, problems = validate_listing(records[0][1])
        assert (
            problems == []
            and clean["location_private"] is True
            and clean["source_url"] == "https://example.jp/x"
        )
        assert clean["source_read_at"] == date(2026, 11, 30)
