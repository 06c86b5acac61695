"""The map at every zoom: wide views come as counts per grid cell that add up to the list's count, street zoom
as points; an edit shows in the next answer; a private host's true point never leaves the server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import EditSetup
from tests.web.test_private_hosts import PRIVATE, _leaks

IMIZU = "136.9,36.6,137.3,36.9"


@pytest.fixture(scope="module")
def cells_client(demo_directory: Any) -> Any:
    """The demo with cells from 5 listings in view on (the demo is small)."""
    from resdb.web import create_app
    from tests.web.conftest import FIXED_TODAY

    app = create_app(
        {
            "DIRECTORY": demo_directory,
            "TESTING": True,
            "RATE_LIMIT": None,
            "SECRET_KEY": "cells",
            "TODAY": lambda: FIXED_TODAY,
            "MAP_POINTS_UP_TO": 5,
        }
    )
    return app.test_client()


def _map(client: Any, query: str) -> dict[str, Any]:
    response = client.get(f"/api/resources.geojson?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json(force=True)


def _counted(body: dict[str, Any]) -> int:
    """Listings a map answer stands for: each cell's count, each point once."""
    return sum(
        f["properties"]["count"] if f["properties"].get("cluster") else 1 for f in body["features"]
    )


def _cell_box(body: dict[str, Any], lat: float, lon: float) -> list[float]:
    """The bbox of the cell holding lat/lon."""
    for f in body["features"]:
        props = f["properties"]
        if props.get("cluster"):
            west, south, east, north = props["bbox"]
            if west <= lon < east and south <= lat < north:
                return list(props["bbox"])
    raise AssertionError(f"no cell at {lat},{lon}")


def _in_box(body: dict[str, Any], box: list[float]) -> int:
    """Listings the answer places inside box (cells by their position, points where they are)."""
    west, south, east, north = box
    found = 0
    for f in body["features"]:
        lon, lat = f["geometry"]["coordinates"]
        if west <= lon <= east and south <= lat <= north:
            found += f["properties"]["count"] if f["properties"].get("cluster") else 1
    return found


@pytest.mark.parametrize(
    "filters", ["", "&kind=kayoi", "&q=サロン", "&venues=1", "&kind=center,kayoi&free=1"]
)
def test_cells_add_up_to_the_lists_count(cells_client: Any, filters: str) -> None:
    for zoom in (5, 9, 11, 13):
        body = _map(cells_client, f"bbox={IMIZU}&zoom={zoom}{filters}")
        listed = cells_client.get(f"/api/resources?bbox={IMIZU}&limit=1{filters}").get_json()
        assert body["total"] == listed["total"] == _counted(body), (zoom, filters)
        if body["total"] > 5:
            assert body["clustered"] is True
            cells = [f for f in body["features"] if f["properties"].get("cluster")]
            assert cells, (zoom, filters)
            for cell in cells:
                props = cell["properties"]
                assert sum(props["kinds"].values()) == props["count"] >= 2
                assert 0 <= props["samples"] <= props["count"]
                west, south, east, north = props["bbox"]
                lon, lat = cell["geometry"]["coordinates"]
                assert west <= lon <= east and south <= lat <= north


def test_wider_zoom_means_fewer_bigger_cells(cells_client: Any) -> None:
    wide = _map(cells_client, f"bbox={IMIZU}&zoom=6")
    close = _map(cells_client, f"bbox={IMIZU}&zoom=13")
    assert wide["clustered"] and close["clustered"]
    assert len(wide["features"]) < len(close["features"])
    assert _counted(wide) == _counted(close)


def test_street_zoom_returns_points(cells_client: Any) -> None:
    body = _map(cells_client, "bbox=137.06,36.7,137.14,36.76&zoom=16")
    assert body["clustered"] is False and body["total"] == len(body["features"]) > 5
    for feature in body["features"]:
        assert set(feature["properties"]) == {
            "id",
            "name",
            "kind",
            "kind_label",
            "is_sample",
            "next",
            "cost",
        }
    samples = _map(cells_client, f"bbox={IMIZU}&zoom=16&kind=shokudo")
    assert any(f["properties"]["is_sample"] for f in samples["features"])


def test_no_zoom_keeps_every_point(cells_client: Any) -> None:
    body = _map(cells_client, f"bbox={IMIZU}")
    assert "clustered" not in body and body["total"] == len(body["features"]) > 5


def test_bad_zoom_is_a_clear_400(cells_client: Any) -> None:
    for raw in ("x", "-1", "23"):
        response = cells_client.get(f"/api/resources.geojson?zoom={raw}")
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["problems"][0]["field"] == "zoom" and "ズーム" in error["message"]


def test_zoom_is_in_the_openapi_document(cells_client: Any) -> None:
    spec = cells_client.get("/api/openapi.json").get_json()
    operation = spec["paths"]["/api/resources.geojson"]["get"]
    assert "zoom" in {p["name"] for p in operation["parameters"]}
    assert "ClusterProperties" in spec["components"]["schemas"]


def test_an_edit_shows_in_the_next_answer(edit: EditSetup) -> None:
    cache = edit.app.extensions["resdb.features"]
    cache.points_up_to = 0  # cells even for four listings
    view = "bbox=136.9,36.6,137.3,36.9&zoom=13"
    before = _map(edit.client, view)
    columns = cache._columns
    here = _cell_box(before, 36.7236, 137.0991)  # t-salon shares its cell with t-cafe
    there = [137.249, 36.859, 137.251, 36.861]
    assert _in_box(before, here) == 2 and _in_box(before, there) == 0
    current = edit.client.get("/api/resources/t-salon").get_json()
    response = edit.client.patch(
        "/api/resources/t-salon",
        json={"lat": 36.86, "lon": 137.25},
        headers={**edit.tokens.header("admin"), "If-Match": f'"v{current["version"]}"'},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    after = _map(edit.client, view)
    assert _in_box(after, here) == 1 and _in_box(after, there) == 1
    moved = [f for f in after["features"] if f["id"] == "t-salon"]
    assert moved and moved[0]["geometry"]["coordinates"] == [137.25, 36.86]
    assert _counted(after) == _counted(before) == after["total"]
    assert cache._columns is columns  # moved forward by the one change, not rebuilt
    snap = cache.snapshot()
    for name, mask in snap._masks.items():  # masks carried forward equal masks measured afresh
        if name != "row_numbers":
            assert (mask == snap._compute(name, slice(0, snap.count))).all(), name
    carried = snap.bounds("")
    snap._bounds.clear()
    assert snap.bounds("") == carried
    # deleting takes the listing out of every view; the list agrees
    edit.client.delete("/api/resources/t-salon", headers=edit.tokens.header("admin"))
    gone = _map(edit.client, view)
    assert _counted(gone) == after["total"] - 1 == gone["total"]
    assert "t-salon" not in {
        f["id"] for f in _map(edit.client, "bbox=136.9,36.6,137.3,36.9")["features"]
    }


def test_private_host_never_leaks_through_cells_or_points(edit: EditSetup) -> None:
    edit.directory.create(dict(PRIVATE), actor="fixture")
    # t-salon and t-cafe average to 36.7223, which the leak check would take for the home's latitude
    edit.client.delete("/api/resources/t-cafe", headers=edit.tokens.header("admin"))
    cache = edit.app.extensions["resdb.features"]
    for points_up_to in (0, 1000):
        cache.points_up_to = points_up_to
        for zoom in (8, 12, 14, 16, 18):
            for view in ("bbox=137.0,36.6,137.3,36.9", "bbox=137.105,36.72,137.112,36.725"):
                response = edit.client.get(f"/api/resources.geojson?{view}&zoom={zoom}")
                text = response.get_data(as_text=True)
                assert response.status_code == 200
                assert _leaks(text) == [], (zoom, view, points_up_to)
    everything = _map(edit.client, "zoom=18&bbox=136,36,138,37")
    assert "t-home-salon" in {f["id"] for f in everything["features"]}
