"""A サロン held in a private home never shows its street address or true point on any public output;
staff pages, editors' API reads and the matcher keep the real ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from resdb import exchange, opendata
from resdb.cli import main
from resdb.matching import Matching
from tests.web.conftest import PASSWORD

TRUE_LAT, TRUE_LON = 36.72231, 137.10912
STREET = "1234番地5"
PRIVATE = {
    "id": "t-home-salon",
    "name": "ひだまり宅サロン",
    "kind": "kayoi",
    "municipality_code": "162116",
    "address": f"富山県射水市戸破{STREET}",
    "lat": TRUE_LAT,
    "lon": TRUE_LON,
    "venue": "山田様宅",
    "targets": ["elderly"],
    "phone": "0766-00-0000",
    "location_private": True,
    "schedule": [{"weekday": "thu", "start": "13:30", "end": "15:00"}],
    "source": "広報いみず",
}


def _leaks(text: str) -> list[str]:
    """What of the home's street address or true point a public text gives away."""
    found = [s for s in (STREET, "1234", "山田様宅") if s in text]
    found += [s for s in (f"{TRUE_LAT}", f"{TRUE_LON}", "36.7223", "137.1091") if s in text]
    return found


@pytest.fixture
def setup(staff: Any) -> Any:
    staff.directory.create(dict(PRIVATE), actor="fixture")
    return staff


def _town(directory: Any) -> Any:
    town = directory.gazetteer().town_at(TRUE_LAT, TRUE_LON, "162116")
    assert town is not None and town.name == "戸破"
    return town


def test_detail_page_shows_the_town_and_the_reason_only(setup: Any) -> None:
    html = setup.client().get("/resources/t-home-salon").get_data(as_text=True)
    assert _leaks(html) == []
    assert "射水市戸破" in html and "個人宅で開かれているため" in html
    town = _town(setup.directory)
    assert f"{town.lat:.5f}" in html  # the no-JS text location is the 町字's point


def test_list_page_and_json_search_show_the_town_only(setup: Any) -> None:
    client = setup.client()
    for path in (
        "/search?q=ひだまり",
        "/search?q=戸破",
        "/api/resources?q=ひだまり",
        "/api/resources?kind=kayoi&limit=100",
        "/api/resources?lat=36.7217&lon=137.1107&radius_km=3&limit=100",
    ):
        response = client.get(path)
        text = response.get_data(as_text=True)
        assert response.status_code == 200 and "ひだまり宅サロン" in text, path
        assert _leaks(text) == [], path
    item = next(
        x
        for x in client.get("/api/resources?q=ひだまり").get_json()["items"]
        if x["id"] == "t-home-salon"
    )
    town = _town(setup.directory)
    assert (item["lat"], item["lon"]) == (round(town.lat, 6), round(town.lon, 6))
    assert (
        item["address"] == "射水市戸破"
        and item["venue"] is None
        and item["location_private"] is True
    )


def test_search_index_holds_no_street_address_nor_true_point(setup: Any) -> None:
    client = setup.client()
    assert "ひだまり" not in client.get("/api/resources?q=1234番地5").get_data(as_text=True)
    # A tiny box around the true point (not holding the 町字 point) finds nothing on the map or the list.
    box = f"{TRUE_LON - 0.0005},{TRUE_LAT - 0.0005},{TRUE_LON + 0.0005},{TRUE_LAT + 0.0005}"
    assert "t-home-salon" not in client.get(f"/api/resources.geojson?bbox={box}").get_data(
        as_text=True
    )
    assert "t-home-salon" not in client.get(f"/api/resources?bbox={box}").get_data(as_text=True)
    town = _town(setup.directory)
    near_town = f"{town.lon - 0.0005},{town.lat - 0.0005},{town.lon + 0.0005},{town.lat + 0.0005}"
    assert "t-home-salon" in client.get(f"/api/resources.geojson?bbox={near_town}").get_data(
        as_text=True
    )


def test_geojson_point_is_the_town_point(setup: Any) -> None:
    collection = json.loads(setup.client().get("/api/resources.geojson").get_data(as_text=True))
    feature = next(f for f in collection["features"] if f["id"] == "t-home-salon")
    town = _town(setup.directory)
    assert feature["geometry"]["coordinates"] == [round(town.lon, 6), round(town.lat, 6)]
    assert _leaks(json.dumps(collection, ensure_ascii=False)) == []


def test_api_detail_masked_for_the_public_real_for_editors(setup: Any) -> None:
    from resdb import accounts

    client = setup.client()
    public = client.get("/api/resources/t-home-salon")
    assert _leaks(public.get_data(as_text=True)) == [] and "Authorization" in public.headers["Vary"]
    token = accounts.create_token(setup.directory.engine, "imizu@example.jp")
    coordinator = accounts.create_token(setup.directory.engine, "coord@example.jp")
    real = client.get(
        "/api/resources/t-home-salon", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    assert real["address"].endswith(STREET) and (real["lat"], real["lon"]) == (TRUE_LAT, TRUE_LON)
    seen_by_coordinator = client.get(
        "/api/resources/t-home-salon", headers={"Authorization": f"Bearer {coordinator}"}
    )
    assert _leaks(seen_by_coordinator.get_data(as_text=True)) == []
    # An editor who reads, changes one field and writes back keeps the true address and point.
    client.patch(
        "/api/resources/t-home-salon",
        json={"name": "ひだまり宅サロン（木曜）"},
        headers={"Authorization": f"Bearer {token}", "If-Match": f'"v{real["version"]}"'},
    )
    stored = setup.directory.get("t-home-salon")
    assert stored["address"].endswith(STREET) and stored["lat"] == TRUE_LAT


def test_exports_csv_json_geojson_hsds_and_municipal_formats(setup: Any) -> None:
    directory = setup.directory
    public = list(directory.iter_published(public=True))
    outputs = {
        "csv": exchange.to_csv(public),
        "csv-ja": exchange.to_csv(public, japanese_headers=True),
        "json": exchange.to_json(public),
        "geojson": exchange.to_geojson(public),
        "hsds": exchange.to_hsds(public),
    }
    for name in opendata.FORMATS:  # every listing offered to every dataset (each picks its own)
        outputs[name] = opendata.export_text(
            name, [{**x, "targets": ["elderly", "children"]} for x in public]
        )
    for name, text in outputs.items():
        assert "ひだまり宅サロン" in text, name
        assert _leaks(text) == [], name


def test_cli_export_masks_unless_staff_copy_asked(setup: Any, tmp_path: Any) -> None:
    directory = setup.directory
    env = {
        "RESDB_DATABASE_URL": directory.engine.url.render_as_string(hide_password=False),
        "RESDB_INSTANCE": str(directory.instance_dir),
    }
    for fmt in ("csv", "json", "geojson", "hsds", "event", "kaigo", "kosodate"):
        out = tmp_path / f"x.{fmt}"
        result = CliRunner().invoke(
            main, ["export", "--format", fmt, "-o", str(out)], env=env, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        text = out.read_bytes().decode("utf-8-sig")
        assert _leaks(text) == [], fmt
    staff_copy = tmp_path / "staff.json"
    CliRunner().invoke(
        main,
        ["export", "--format", "json", "--private-locations", "-o", str(staff_copy)],
        env=env,
        catch_exceptions=False,
    )
    assert STREET in staff_copy.read_text(encoding="utf-8")


def test_editor_page_and_matcher_use_the_real_place(setup: Any) -> None:
    client = setup.login("imizu@example.jp", PASSWORD)
    html = client.get("/editor/listings/t-home-salon").get_data(as_text=True)
    assert STREET in html and str(TRUE_LAT) in html
    pool = Matching(setup.directory).pool()
    listing = next(x for x in setup.directory.iter_published() if x["id"] == "t-home-salon")
    assert (listing["lat"], listing["lon"]) == (TRUE_LAT, TRUE_LON)
    assert pool is not None


def test_a_home_without_a_known_town_shows_only_the_municipality(directory: Any) -> None:
    from resdb import hosts

    listing = {
        "id": "x",
        "name": "x",
        "kind": "kayoi",
        "municipality_code": "162116",
        "address": "どこか1-2-3",
        "lat": None,
        "lon": None,
        "district": None,
        "location_private": True,
    }
    shown = hosts.public_view(listing, directory.gazetteer())
    assert shown["address"] == "射水市" and "1-2-3" not in json.dumps(shown, ensure_ascii=False)


def test_editor_marks_a_listing_private_on_the_form(setup: Any) -> None:
    from tests.web.conftest import csrf_of

    client = setup.login("imizu@example.jp", PASSWORD)
    form = {
        "csrf_token": csrf_of(client, "/editor/listings/new"),
        "name": "縁側サロン",
        "kind": "kayoi",
        "municipality_code": "162116",
        "address": "富山県射水市戸破5678番地",
        "lat": "36.7219",
        "lon": "137.1101",
        "accepts_referrals": "true",
        "holidays_closed": "true",
        "location_private": "true",
        "status": "published",
        "source": "射水市社会福祉協議会",
        "source_url": "https://example.jp/salon",
        "source_read_at": "2026-11-30",
    }
    response = client.post("/editor/listings/new", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    listing_id = response.headers["Location"].split("/editor/listings/")[1].split("?")[0]
    stored = setup.directory.get(listing_id)
    assert stored["location_private"] is True and stored["source_read_at"] == "2026-11-30"
    edit_page = client.get(f"/editor/listings/{listing_id}").get_data(as_text=True)
    assert "5678番地" in edit_page and "個人宅（公開は町字まで）" in edit_page
    public = setup.client().get(f"/resources/{listing_id}").get_data(as_text=True)
    assert (
        "5678" not in public
        and "射水市戸破" in public
        and 'href="https://example.jp/salon"' in public
    )
    assert "2026-11-30 閲覧" in public


def test_an_uploaded_file_name_is_never_the_public_source(setup: Any) -> None:
    setup.directory.create(
        {
            "id": "t-legacy",
            "name": "古い取り込みのサロン",
            "kind": "kayoi",
            "lat": 36.7236,
            "lon": 137.0991,
            "municipality_code": "162116",
            "source": "import_good.csv",
        },
        actor="fixture",
    )
    client = setup.client()
    for path in ("/resources/t-legacy", "/api/resources/t-legacy", "/api/resources?q=古い取り込み"):
        text = client.get(path).get_data(as_text=True)
        assert "古い取り込みのサロン" in text and "import_good.csv" not in text, path
    assert "出典の記載なし" in client.get("/resources/t-legacy").get_data(as_text=True)
    assert setup.directory.get("t-legacy")["source"] == "import_good.csv"  # kept for editors
    assert "import_good.csv" not in exchange.to_csv(setup.directory.iter_published(public=True))


def test_area_lookup_shows_a_private_centre_at_its_town(setup: Any) -> None:
    setup.directory.create(
        {
            "id": "t-home-center",
            "name": "自宅開放の相談所",
            "kind": "center",
            "municipality_code": "162116",
            "address": f"富山県射水市戸破{STREET}",
            "lat": TRUE_LAT,
            "lon": TRUE_LON,
            "location_private": True,
            "service_area": {"districts": ["戸破"]},
        },
        actor="fixture",
    )
    town = _town(setup.directory)
    client = setup.client()
    for path in (
        f"/api/areas/lookup?lat={town.lat}&lon={town.lon}",
        f"/areas?lat={town.lat}&lon={town.lon}",
    ):
        text = client.get(path).get_data(as_text=True)
        assert "自宅開放の相談所" in text and _leaks(text) == [], path
