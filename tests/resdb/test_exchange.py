"""File formats: encodings, Japanese headers, Excel, GeoJSON in; CSV (formula-safe), GeoJSON, HSDS out."""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import Workbook

from resdb.exchange import FileProblem, read_bytes, safe_cell, to_csv, to_geojson, to_hsds

JAPANESE_CSV = "名称,種別,住所,緯度,経度,対象,費用,日程\r\nふれあいサロン,通いの場,富山県射水市戸破,36.72,137.09,高齢者,100,毎週火曜 10:00-12:00\r\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_csv_encodings_and_japanese_headers(encoding: str) -> None:
    records, warnings = read_bytes(JAPANESE_CSV.encode(encoding), "x.csv")
    assert warnings == []
    assert records == [
        (
            2,
            {
                "name": "ふれあいサロン",
                "kind": "通いの場",
                "address": "富山県射水市戸破",
                "lat": "36.72",
                "lon": "137.09",
                "targets": "高齢者",
                "cost_yen": "100",
                "schedule": "毎週火曜 10:00-12:00",
            },
        )
    ]


def test_unknown_header_is_a_warning_and_missing_name_is_refused() -> None:
    _records, warnings = read_bytes(
        "name,kind,lat,lon,好きな色\nA,ibasho,36.7,137.1,赤\n".encode(), "x.csv"
    )
    assert [w.field for w in warnings] == ["好きな色"]
    with pytest.raises(FileProblem) as caught:
        read_bytes(b"kind,lat,lon\nibasho,36.7,137.1\n", "x.csv")
    assert caught.value.problem.field == "name"


def test_row_with_too_many_cells_is_named() -> None:
    records, _ = read_bytes(b"name,kind,lat,lon\nA,ibasho,36.7,137.1,extra\n", "x.csv")
    assert records[0][0] == 2 and "__row_error__" in records[0][1]


def test_excel_rows_are_numbered_like_the_sheet() -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["名称", "種別", "緯度", "経度", "定員", "対象年齢下限"])
    sheet.append(["体操クラブ", "kayoi", 36.7, 137.1, 5, 65])
    buffer = io.BytesIO()
    book.save(buffer)
    records, _ = read_bytes(buffer.getvalue(), "list.xlsx")
    assert records == [
        (
            2,
            {
                "name": "体操クラブ",
                "kind": "kayoi",
                "lat": 36.7,
                "lon": 137.1,
                "capacity": 5,
                "eligibility": {"min_age": 65},
            },
        )
    ]


def test_geojson_points_become_coordinates() -> None:
    payload = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [137.1, 36.7]},
                "properties": {"name": "A", "kind": "ibasho"},
            }
        ],
    }
    records, _ = read_bytes(json.dumps(payload).encode(), "a.geojson")
    assert records == [(1, {"name": "A", "kind": "ibasho", "lat": 36.7, "lon": 137.1})]


def test_broken_json_is_a_file_problem() -> None:
    with pytest.raises(FileProblem):
        read_bytes(b"[{", "a.json")


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_csv_export_neutralises_formulas(value: str) -> None:
    assert safe_cell(value).startswith("'")
    text = to_csv([{"id": "a", "name": value, "kind": "other"}])
    row = list(csv.DictReader(io.StringIO(text)))[0]
    assert row["name"] == "'" + value


def test_csv_export_round_trips_lists_and_schedules() -> None:
    listing = {
        "id": "a",
        "name": "A",
        "kind": "kayoi",
        "targets": ["elderly", "all"],
        "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
        "lat": 36.7,
        "lon": 137.1,
    }
    records, _ = read_bytes(to_csv([listing]).encode(), "x.csv")
    record = records[0][1]
    assert record["targets"] == "elderly;all"
    assert record["schedule"] == listing["schedule"]


def test_geojson_and_hsds_exports() -> None:
    listing = {
        "id": "a",
        "name": "A",
        "kind": "kayoi",
        "lat": 36.7,
        "lon": 137.1,
        "operator": "社協",
        "phone": "0766-00-0000",
        "schedule": [{"weekday": "wed", "weeks": [1, 3], "start": "13:30", "end": "15:30"}],
    }
    collection = json.loads(to_geojson([listing]))
    assert collection["features"][0]["geometry"]["coordinates"] == [137.1, 36.7]
    hsds = json.loads(to_hsds([listing]))
    assert hsds["services"][0]["organization_id"] == hsds["organizations"][0]["id"]
    assert hsds["schedules"][0]["byday"] == "1WE,3WE"
    assert hsds["phones"][0]["number"] == "0766-00-0000"


def test_hsds_venue_is_a_location_that_services_name() -> None:
    hall = {
        "id": "hall",
        "name": "戸破コミュニティセンター",
        "kind": "venue",
        "municipality_code": "162116",
        "lat": 36.72,
        "lon": 137.10,
        "address": "富山県射水市戸破1",
    }
    salon = {
        "id": "salon",
        "name": "戸破ふれあいサロン",
        "kind": "kayoi",
        "municipality_code": "162116",
        "venue": "戸破コミュニティセンター",
        "lat": 36.72,
        "lon": 137.10,
    }
    elsewhere = {
        "id": "cafe",
        "name": "カフェ",
        "kind": "ibasho",
        "municipality_code": "162116",
        "venue": "どこかの店",
    }
    hsds = json.loads(to_hsds([hall, salon, elsewhere]))
    assert [s["id"] for s in hsds["services"]] == ["salon", "cafe"]  # a building is not a service
    assert {loc["id"] for loc in hsds["locations"]} == {"loc:hall", "loc:cafe"}
    links = {link["service_id"]: link["location_id"] for link in hsds["service_at_locations"]}
    assert links == {"salon": "loc:hall", "cafe": "loc:cafe"}
