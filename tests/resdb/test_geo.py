"""Tests of resdb.geo on the shipped real data (resdb/data/geo): districts, 担当地区 resolution, addresses, indexes."""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path

import pytest
import shapely

from resdb import geo
from resdb.geo import AreaIndex, DistrictRecord, Gazetteer, build_districts, split_area_names

CODES = ("16211", "13225", "28206", "07204", "46533")

# 射水市 実施計画 (../shared/seeds/004_574d9fa843edc779.txt), 地域包括支援センター and their 担当地区.
IMIZU_CENTERS = {
    "新湊西地域包括支援センター": "庄西町、港町、庄川本町、本町、放生津町、中央町、桜町、西新湊、三日曾根、善光寺、緑町、塚原地区、作道地区",
    "新湊東地域包括支援センター": "立町、八幡町、中新湊、二の丸町、越の潟町、海王町、片口地区、堀岡地区、海老江地区、本江地区、七美地区",
    "小杉・下地域包括支援センター": "三ヶ地区、戸破地区、大江地区、下地区",
    "小杉南地域包括支援センター": "橋下条地区、金山地区、黒河地区、池多地区、太閤山地区、中太閤山地区、南太閤山地区",
    "大門地域包括支援センター": "浅井地区、櫛田地区、水戸田地区、二口地区、大門地区",
    "大島地域包括支援センター": "大島地区",
}

# 稲城市 実施計画 (../shared/seeds/003_0dc0c3202cb85c38.txt), 地域包括支援センター and 対象圏域.
INAGI_CENTERS = {
    "地域包括支援センターひらお": "坂浜・平尾",
    "地域包括支援センターやのくち": "押立・矢野口",
    "地域包括支援センターエレガントもむら": "大丸・東長沼・百村",
    "地域包括支援センターこうようだい": "向陽台・長峰・若葉台",
}


@pytest.fixture(scope="module")
def districts() -> dict[str, list[DistrictRecord]]:
    return {code: build_districts(code) for code in CODES}


@pytest.fixture(scope="module")
def gazetteer(districts: dict[str, list[DistrictRecord]]) -> Gazetteer:
    return Gazetteer([record for records in districts.values() for record in records])


def _centre_areas(
    gazetteer: Gazetteer, centres: dict[str, str], code: str
) -> dict[str, shapely.Geometry]:
    areas = {}
    for centre, cell in centres.items():
        geometry, unresolved = gazetteer.resolve(split_area_names(cell), code)
        assert unresolved == [], f"{centre}: {unresolved}"
        assert geometry is not None and not geometry.is_empty
        areas[centre] = geometry
    return areas


def _inner_point(gazetteer: Gazetteer, name: str, code: str) -> tuple[float, float]:
    """A point inside a 担当地区: the 町字 point of (one of) its member towns."""
    matched = gazetteer.match(name, code)
    assert matched, name
    record = matched[0]
    if record.level == "chiku":
        town = gazetteer.match(record.members[0], code)[0]
        return town.lat, town.lon  # type: ignore[return-value]
    for candidate in matched:
        if candidate.lat is not None:
            return candidate.lat, candidate.lon  # type: ignore[return-value]
    raise AssertionError(f"no point for {name}")


# --------------------------------------------------------------------------- codes and loading


@pytest.mark.parametrize(
    ("code5", "code6"),
    [
        ("16211", "162116"),
        ("13225", "132250"),
        ("28206", "282065"),
        ("07204", "072044"),
        ("46533", "465330"),
    ],
)
def test_check_digit(code5: str, code6: str) -> None:
    assert geo.code6(code5) == code6
    assert geo.code6(code6) == code6
    assert geo.code5(code6) == code5


def test_bad_check_digit_refused() -> None:
    with pytest.raises(ValueError):
        geo.code6("162117")


def test_data_is_inside_the_project() -> None:
    project = Path(geo.__file__).resolve().parents[2]
    assert geo.GEO_DIR.resolve().is_relative_to(project)
    assert sorted(geo.available_municipalities()) == sorted(geo.code6(code) for code in CODES)


def test_load_municipality_imizu() -> None:
    imizu = geo.load_municipality("16211")
    assert imizu.code == "162116" and imizu.name == "射水市" and imizu.kana == "イミズシ"
    assert len(imizu.towns) == 244  # 251 points, 7 of them 小字 merged into their 町字
    habari = imizu.town("戸破")
    assert habari is not None and habari.kana == "ヒバリ" and len(habari.points) == 4
    chome = imizu.town("南太閤山三丁目")
    assert chome is not None and chome.base == "南太閤山" and chome.chome == 3
    assert chome.kana == "ミナミタイコウヤマサンチョウメ"
    assert len(imizu.chiku_names()) == 27


def test_numerals() -> None:
    assert [geo.kanji_number(n) for n in (1, 10, 11, 19, 20, 21)] == [
        "一",
        "十",
        "十一",
        "十九",
        "二十",
        "二十一",
    ]
    assert [geo.parse_kanji_number(t) for t in ("一", "十", "十一", "十九", "二十一")] == [
        1,
        10,
        11,
        19,
        21,
    ]
    assert geo.arabic_chome_to_kanji("南太閤山３丁目2番地1") == "南太閤山三丁目2番地1"
    assert geo.chome_kana(1) == "イッチョウメ" and geo.chome_kana(10) == "ジュッチョウメ"


# --------------------------------------------------------------------------- districts


def test_records_shape(districts: dict[str, list[DistrictRecord]]) -> None:
    for code, records in districts.items():
        assert {record.municipality_code for record in records} == {geo.code6(code)}
        assert {record.level for record in records} <= set(geo.LEVELS)
        assert [record.level for record in records].count("municipality") == 1
        for record in records:
            assert record.approximate == (record.level != "municipality"), record.name
            assert record.method and record.source
            # resdb.models.District column sizes
            assert (
                len(record.name) <= 100 and len(record.method) <= 100 and len(record.source) <= 300
            )
            assert record.kana is None or len(record.kana) <= 200
            assert record.geometry.is_valid
            row = record.as_row()
            assert json.loads(str(row["geometry"]))["type"] in ("Polygon", "MultiPolygon")


@pytest.mark.parametrize("code", CODES)
def test_voronoi_cells_tile_the_boundary(
    districts: dict[str, list[DistrictRecord]], code: str
) -> None:
    records = districts[code]
    boundary = records[0].geometry
    cells = [record.geometry for record in records if record.level == "town"]
    total = sum(cell.area for cell in cells)
    union = shapely.union_all(cells)
    assert total == pytest.approx(boundary.area, rel=1e-6)  # no overlaps…
    assert union.area == pytest.approx(boundary.area, rel=1e-6)  # …and no gaps
    assert boundary.symmetric_difference(union).area < boundary.area * 1e-6


def test_build_is_fast() -> None:
    started = time.perf_counter()
    for code in CODES:
        build_districts(code)
    assert time.perf_counter() - started < 5.0


def test_town_points_fall_in_their_own_cell(
    gazetteer: Gazetteer, districts: dict[str, list[DistrictRecord]]
) -> None:
    for record in districts["16211"]:
        if record.level == "town":
            found = gazetteer.town_at(record.lat, record.lon)  # type: ignore[arg-type]
            assert found is not None and found.name == record.name


def test_shelter_anchors() -> None:
    inagi = geo.load_municipality("13225")
    labels = {anchor.label: anchor.town for anchor in inagi.anchors}
    assert labels["稲城第二中学校"] == "坂浜五丁目"  # 坂浜5-1-1: a 町字 the town points lack
    iwaki = geo.load_municipality("07204")
    # 下小川集会所 is listed twice with one point ~23 km from both addresses: dropped as mis-geocoded.
    assert "下小川集会所" not in {anchor.label for anchor in iwaki.anchors}
    imizu = geo.load_municipality("16211")
    assert "いきいき長寿館" not in {anchor.label for anchor in imizu.anchors}  # address in 高岡市


def test_town_without_point_gets_a_shelter_seeded_cell(
    districts: dict[str, list[DistrictRecord]],
) -> None:
    towns = {record.name: record for record in districts["13225"] if record.level == "town"}
    assert towns["坂浜五丁目"].geometry.area > 0 and towns["坂浜五丁目"].lat is not None
    assert towns["坂浜三丁目"].geometry.is_empty and towns["坂浜三丁目"].method.startswith(
        geo.METHOD_NO_POINT
    )


def test_town_at_outside_is_none(gazetteer: Gazetteer) -> None:
    assert gazetteer.town_at(35.0, 135.0) is None  # 京都府 亀岡あたり


def test_chiku_csv_assigns_every_town_once() -> None:
    imizu = geo.load_municipality("16211")
    towns = [member.town for member in imizu.chiku]
    assert sorted(towns) == sorted(town.name for town in imizu.towns)
    assert {member.method for member in imizu.chiku} <= {
        "name_match",
        "postal_area",
        "nearest_community_center",
    }
    with (geo.GEO_DIR / "16211" / "chiku.csv").open(encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["chiku", "town", "method", "source"]


def test_chiku_csv_is_reproducible() -> None:
    from tools.build_chiku import derive_chiku_membership

    rows = derive_chiku_membership("16211")
    shipped = geo.load_municipality("16211").chiku
    assert [(r.chiku, r.town, r.method) for r in rows] == [
        (r.chiku, r.town, r.method) for r in shipped
    ]


def test_chiku_records(districts: dict[str, list[DistrictRecord]]) -> None:
    chiku = {record.name: record for record in districts["16211"] if record.level == "chiku"}
    assert chiku["三ヶ地区"].members == ["三ケ"] and chiku["三ヶ地区"].kana == "サンガチク"
    assert "小島" in chiku["大島地区"].members  # 大島コミュニティセンター stands in 小島
    assert "加茂中部" in chiku["下地区"].members  # 下村コミュニティセンター
    assert "南太閤山三丁目" in chiku["南太閤山地区"].members
    methods = {member.town: member.method for member in geo.load_municipality("16211").chiku}
    assert methods["本江北"] == "name_match" and methods["大門本江"] != "name_match"
    assert all(record.approximate for record in chiku.values())


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("centre", list(IMIZU_CENTERS))
def test_imizu_every_named_area_resolves(gazetteer: Gazetteer, centre: str) -> None:
    for name in split_area_names(IMIZU_CENTERS[centre]):
        geometry, unresolved = gazetteer.resolve([name], "162116")
        assert unresolved == [] and geometry is not None and geometry.area > 0, name


def test_imizu_name_forms(gazetteer: Gazetteer) -> None:
    shosei = gazetteer.match("庄西町", "162116")
    assert [record.name for record in shosei] == ["庄西町一丁目", "庄西町二丁目"]
    assert [record.name for record in gazetteer.match("三日曾根", "162116")] == ["三日曽根"]
    assert gazetteer.match("三ケ地区", "162116")[0].name == "三ヶ地区"
    assert gazetteer.match("大島地区", "162116")[0].level == "chiku"
    assert gazetteer.match("大島", "162116")[0].name == "大島地区"  # no 町字 大島: the 地区
    assert gazetteer.match("大江", "162116")[0].level == "town"  # 町 name → the 町字
    assert gazetteer.match("大江地区", "162116")[0].level == "chiku"
    whole, unresolved = gazetteer.resolve(["全市"], "16211")
    assert unresolved == [] and whole is not None
    assert whole.area == pytest.approx(gazetteer.municipality("16211").geometry.area)  # type: ignore[union-attr]


def test_unknown_and_ambiguous_names(gazetteer: Gazetteer) -> None:
    geometry, unresolved = gazetteer.resolve(["戸破地区", "存在しない地区"], "162116")
    assert geometry is not None and unresolved == ["存在しない地区"]
    assert gazetteer.resolve(["緑町"]) == (None, ["緑町"])  # 射水市 and 芦屋市 both have one
    assert gazetteer.match("緑町", "282065")[0].municipality_code == "282065"


def test_imizu_centre_areas_are_exclusive(gazetteer: Gazetteer) -> None:
    areas = _centre_areas(gazetteer, IMIZU_CENTERS, "162116")
    index = AreaIndex(list(areas.items()))
    for centre, cell in IMIZU_CENTERS.items():
        for name in split_area_names(cell):
            lat, lon = _inner_point(gazetteer, name, "162116")
            assert index.lookup(lat, lon) == [centre], (centre, name)


def test_imizu_centres_cover_the_city_once(
    gazetteer: Gazetteer, districts: dict[str, list[DistrictRecord]]
) -> None:
    areas = _centre_areas(gazetteer, IMIZU_CENTERS, "162116")
    index = AreaIndex(list(areas.items()))
    for record in districts["16211"]:
        if record.level == "town":
            assert len(index.lookup(record.lat, record.lon)) == 1, record.name  # type: ignore[arg-type]
    city = districts["16211"][0].geometry
    assert sum(area.area for area in areas.values()) == pytest.approx(city.area, rel=1e-6)


def test_inagi_centre_areas(
    gazetteer: Gazetteer, districts: dict[str, list[DistrictRecord]]
) -> None:
    areas = _centre_areas(gazetteer, INAGI_CENTERS, "132250")
    index = AreaIndex(list(areas.items()))
    for centre, cell in INAGI_CENTERS.items():
        for name in split_area_names(cell):
            lat, lon = _inner_point(gazetteer, name, "132250")
            assert index.lookup(lat, lon) == [centre], (centre, name)
    assert [r.name for r in gazetteer.match("平尾", "132250")] == ["平尾"] + [
        f"平尾{n}丁目" for n in "一二三四"
    ]
    assert len(gazetteer.match("向陽台", "132250")) == 6
    # 坂浜三丁目 has no point: it resolves to the area of 坂浜.
    sakahama, unresolved = gazetteer.resolve(["坂浜三丁目"], "132250")
    assert unresolved == [] and sakahama is not None
    assert sakahama.equals(gazetteer.match("坂浜", "132250")[0].geometry)
    city = districts["13225"][0].geometry
    assert sum(area.area for area in areas.values()) == pytest.approx(city.area, rel=1e-6)
    joined, unresolved = gazetteer.resolve(["坂浜・平尾"], "132250")
    assert (
        unresolved == []
        and joined is not None
        and joined.equals(areas["地域包括支援センターひらお"])
    )


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "code", "town"),
    [
        ("富山県射水市戸破2475番地", None, "戸破"),
        ("射水市南太閤山3丁目2番地1", None, "南太閤山三丁目"),
        ("富山県射水市南太閤山3-2-1", None, "南太閤山三丁目"),
        ("射水市中太閤山13-3-1", None, "中太閤山十三丁目"),
        ("射水市庄西町１－17－48", None, "庄西町一丁目"),
        ("射水市三日曾根3-23", None, "三日曽根"),
        ("射水市大字戸破4200番地11", None, "戸破"),
        ("三ヶ 3721 番地 8", "162116", "三ケ"),
        ("朴木211番地1", "162116", "朴木"),
        ("小島700番地1", None, "小島"),
        ("東京都稲城市平尾1-2-3", None, "平尾一丁目"),
        ("稲城市矢野口2200", None, "矢野口"),
        ("兵庫県芦屋市精道町7-6", None, "精道町"),
        ("鹿児島県大島郡和泊町和泊10", None, "大字和泊"),
        ("和泊町大字国頭1", None, "大字国頭"),
    ],
)
def test_place_address(gazetteer: Gazetteer, address: str, code: str | None, town: str) -> None:
    placement = gazetteer.place_address(address, code)
    assert placement is not None, address
    assert placement.town == town and placement.precision == "town"
    record = gazetteer.match(town, placement.municipality_code)[0]
    assert (placement.lat, placement.lon) == (record.lat, record.lon)


def test_place_address_refusals(gazetteer: Gazetteer) -> None:
    assert gazetteer.place_address("") is None
    assert gazetteer.place_address("富山県高岡市下牧野385-1") is None  # another city
    assert gazetteer.place_address("高岡市下牧野385-1") is None
    assert gazetteer.place_address("富山県戸破2475") is None  # a prefecture but none of our cities
    assert (
        gazetteer.place_address("東京都稲城市平尾1-2-3", "162116") is None
    )  # not in the given city
    assert gazetteer.place_address("緑町1") is None  # 射水市 or 芦屋市?
    assert gazetteer.place_address("緑町1", "282065").municipality_code == "282065"  # type: ignore[union-attr]
    no_point = gazetteer.place_address("稲城市坂浜三丁目1")
    assert no_point is not None and no_point.precision == "town_base"


# --------------------------------------------------------------------------- indexes and import


def test_area_index_is_fast(districts: dict[str, list[DistrictRecord]]) -> None:
    areas = [
        (f"{r.municipality_code}:{r.level}:{r.name}", r.geometry)
        for rs in districts.values()
        for r in rs
    ]
    index = AreaIndex(areas)
    minx, miny, maxx, maxy = districts["16211"][0].geometry.bounds
    rng = random.Random(7)
    points = [(rng.uniform(miny, maxy), rng.uniform(minx, maxx)) for _ in range(2000)]
    started = time.perf_counter()
    hits = [index.lookup(lat, lon) for lat, lon in points]
    per_lookup = (time.perf_counter() - started) / len(points)
    assert per_lookup < 0.002 / 4, per_lookup
    assert any(hits)
    steppi = index.lookup(36.721194, 137.096496)  # いみず市民交流プラザ, 戸破
    assert "162116:municipality:射水市" in steppi and "162116:town:戸破" in steppi
    assert "162116:chiku:戸破地区" in steppi
    assert AreaIndex([]).lookup(36.7, 137.1) == []


def _write_geojson(path: Path, features: list[tuple[str, shapely.Geometry]]) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"S_NAME": name, "KANA": "テスト"},
                "geometry": shapely.geometry.mapping(g),
            }
            for name, g in features
        ],
    }
    path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")


def test_import_district_polygons_geojson(
    tmp_path: Path, districts: dict[str, list[DistrictRecord]]
) -> None:
    square = shapely.box(137.09, 36.715, 137.12, 36.73)
    other = shapely.box(137.05, 36.73, 137.06, 36.74)
    path = tmp_path / "koshoku.geojson"
    _write_geojson(
        path,
        [("戸破", square), ("大門", other), ("大門", shapely.box(137.06, 36.73, 137.07, 36.74))],
    )
    records = geo.import_district_polygons(path, "16211", "S_NAME", kana_field="KANA")
    by_name = {record.name: record for record in records}
    assert set(by_name) == {"戸破", "大門"}
    assert by_name["戸破"].municipality_code == "162116"
    assert by_name["戸破"].approximate is False and by_name["戸破"].method == geo.METHOD_IMPORTED
    assert by_name["戸破"].geometry.equals(square) and by_name["戸破"].kana == "テスト"
    assert by_name["大門"].geometry.area == pytest.approx(2 * other.area)
    merged = geo.replace_districts(districts["16211"], records)
    assert len(merged) == len(districts["16211"])
    gazetteer = Gazetteer(merged)
    geometry, unresolved = gazetteer.resolve(["戸破"], "162116")
    assert unresolved == [] and geometry is not None and geometry.equals(square)
    assert gazetteer.town_at(36.72, 137.1).name == "戸破"  # type: ignore[union-attr]


def test_import_district_polygons_reprojects_shapefile(tmp_path: Path) -> None:
    import geopandas as gpd

    square = shapely.box(139.48, 35.61, 139.49, 35.62)
    frame = gpd.GeoDataFrame({"NAME": ["平尾"]}, geometry=[square], crs=4326).to_crs(
        6677
    )  # JGD2011 / IX系
    path = tmp_path / "inagi.shp"
    frame.to_file(path)
    records = geo.import_district_polygons(path, "132250", "NAME", level="chiku")
    assert len(records) == 1 and records[0].level == "chiku" and records[0].approximate is False
    assert records[0].geometry.symmetric_difference(square).area < square.area * 1e-4
    with pytest.raises(KeyError):
        geo.import_district_polygons(path, "132250", "NO_SUCH_FIELD")


def test_import_district_polygons_cp932_shapefile(tmp_path: Path) -> None:
    import geopandas as gpd

    square = shapely.box(137.09, 36.715, 137.12, 36.73)
    frame = gpd.GeoDataFrame({"S_NAME": ["戸破"], "KANA": [None]}, geometry=[square], crs=4326)
    path = tmp_path / "estat.shp"
    frame.to_file(path, encoding="cp932")
    path.with_suffix(".cpg").unlink(missing_ok=True)  # as e-Stat ships them: no .cpg
    records = geo.import_district_polygons(
        path, "162116", "S_NAME", kana_field="KANA", encoding="cp932"
    )
    assert [record.name for record in records] == ["戸破"] and records[0].kana is None
