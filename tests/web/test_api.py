"""The JSON API: search filters, Japanese 400s naming the parameter, 404s, ETag/412, 401/403, areas, GeoJSON."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import EditSetup


def ids(response: Any) -> set[str]:
    return {item["id"] for item in response.get_json()["items"]}


# -- search -----------------------------------------------------------------------------------------
def test_search_demo_finds_salons(client: Any) -> None:
    response = client.get("/api/resources?q=サロン&limit=5")
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] >= 5 and len(body["items"]) == 5
    assert all("version" in item and "id" in item for item in body["items"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("kind=kayoi", {"t-salon", "t-inagi"}),
        ("kind=kayoi,ibasho", {"t-salon", "t-inagi", "t-cafe"}),
        ("kind=kayoi&kind=shokudo", {"t-salon", "t-inagi", "t-shokudo"}),
        ("kind=通いの場", {"t-salon", "t-inagi"}),
        ("target=youth", {"t-cafe"}),
        ("weekday=tue", {"t-cafe"}),
        ("weekday=wed", {"t-salon", "t-inagi"}),
        ("open=today", {"t-salon", "t-inagi"}),  # Wed 2 Dec 2026: 第1水曜
        ("open=week", {"t-salon", "t-inagi", "t-cafe"}),  # 2–8 Dec: no 第2/第4土曜
        ("free=1", {"t-cafe", "t-inagi"}),
        ("barrier_free=1", {"t-salon"}),
        ("pickup=1", {"t-cafe"}),
        ("municipality=13225", {"t-inagi"}),
        ("bbox=137.0,36.7,137.2,36.8", {"t-salon", "t-cafe", "t-shokudo"}),
        ("lat=36.7236&lon=137.0991&radius_km=1", {"t-salon", "t-cafe"}),
        ("q=カフェ", {"t-cafe"}),
    ],
)
def test_search_filters(edit: EditSetup, query: str, expected: set[str]) -> None:
    response = edit.client.get(f"/api/resources?{query}")
    assert response.status_code == 200, response.get_json()
    assert ids(response) == expected


def test_near_search_is_sorted_by_distance(edit: EditSetup) -> None:
    items = edit.client.get("/api/resources?lat=36.7236&lon=137.0991").get_json()["items"]
    distances = [item["distance_km"] for item in items]
    assert items[0]["id"] == "t-salon"
    assert distances == sorted(distances)


def test_paging(edit: EditSetup) -> None:
    first = edit.client.get("/api/resources?limit=2&offset=0").get_json()
    second = edit.client.get("/api/resources?limit=2&offset=2").get_json()
    assert first["total"] == second["total"] == 4
    assert len(first["items"]) == len(second["items"]) == 2
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("kind=karaoke", "kind"),
        ("target=cats", "target"),
        ("weekday=funday", "weekday"),
        ("open=tomorrow", "open"),
        ("free=maybe", "free"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=137.2,36.7,137.0,36.8", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        ("lat=36.7", "lon"),
        ("lat=abc&lon=137", "lat"),
        ("lat=36.7&lon=137&radius_km=-3", "radius_km"),
        ("radius_km=5", "radius_km"),
        ("municipality=12", "municipality"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client: Any, query: str, field: str) -> None:
    paths = (
        ("/api/resources",)
        if query == "limit=101"
        else ("/api/resources", "/api/resources.geojson")
    )
    for path in paths:  # the map's GeoJSON may return more than 100 features
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        error = response.get_json()["error"]
        assert error["code"] == "bad_parameter"
        assert field in error["message"]
        assert any(p["field"] == field for p in error["problems"])
        assert any(
            "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in error["message"]
        )


def test_several_bad_parameters_are_all_reported(client: Any) -> None:
    error = client.get("/api/resources?kind=x&limit=500").get_json()["error"]
    assert {p["field"] for p in error["problems"]} == {"kind", "limit"}


def test_user_query_syntax_never_breaks_search(client: Any) -> None:
    for q in ['"', "(", "AND", "*", "サロン OR", "a:b", "\\"]:
        assert client.get("/api/resources", query_string={"q": q}).status_code == 200


# -- one listing, 404s ------------------------------------------------------------------------------
def test_get_one_has_etag_and_version(edit: EditSetup) -> None:
    response = edit.client.get("/api/resources/t-salon")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"v1"'
    assert response.get_json()["version"] == 1
    again = edit.client.get("/api/resources/t-salon", headers={"If-None-Match": '"v1"'})
    assert again.status_code == 304


def test_unknown_ids_are_404_json(client: Any) -> None:
    response = client.get("/api/resources/no-such-listing")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "not_found" and "no-such-listing" in error["message"]
    assert client.get("/api/nothing-here").get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_405_json(client: Any) -> None:
    response = client.patch("/api/resources")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


# -- authentication and authorisation ---------------------------------------------------------------
NEW = {
    "name": "新しい居場所",
    "kind": "ibasho",
    "lat": 36.73,
    "lon": 137.10,
    "municipality_code": "162116",
}


def test_write_without_token_is_401(edit: EditSetup) -> None:
    for method, path in (
        ("post", "/api/resources"),
        ("put", "/api/resources/t-salon"),
        ("delete", "/api/resources/t-salon"),
        ("get", "/api/resources/t-salon/history"),
    ):
        response = getattr(edit.client, method)(path, json=NEW)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["error"]["code"] == "unauthorized"
    bad = edit.client.post(
        "/api/resources", json=NEW, headers={"Authorization": "Bearer rdb_not-a-token"}
    )
    assert bad.status_code == 401
    assert edit.client.get("/api/resources/t-salon").headers["ETag"] == '"v1"'


def test_coordinator_may_not_write(edit: EditSetup) -> None:
    response = edit.client.post(
        "/api/resources", json=NEW, headers=edit.tokens.header("coordinator")
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert (
        edit.client.get(
            "/api/resources/t-salon/history", headers=edit.tokens.header("coordinator")
        ).status_code
        == 403
    )


def test_editor_outside_scope_is_403(edit: EditSetup) -> None:
    inagi = edit.tokens.header("editor_inagi")
    assert (
        edit.client.put("/api/resources/t-salon", json={"cost_yen": 0}, headers=inagi).status_code
        == 403
    )
    assert edit.client.delete("/api/resources/t-salon", headers=inagi).status_code == 403
    assert edit.client.post("/api/resources", json=NEW, headers=inagi).status_code == 403
    assert (
        edit.client.put("/api/resources/t-inagi", json={"cost_yen": 100}, headers=inagi).status_code
        == 200
    )
    # an operator-scoped editor only touches that operator's listings
    operator = edit.tokens.header("editor_operator")
    assert (
        edit.client.put(
            "/api/resources/t-salon", json={"cost_yen": 0}, headers=operator
        ).status_code
        == 403
    )
    assert (
        edit.client.put(
            "/api/resources/t-cafe", json={"cost_yen": 50}, headers=operator
        ).status_code
        == 200
    )
    # and cannot move a listing out of its scope
    moved = edit.client.put(
        "/api/resources/t-cafe", json={"operator": "別の法人"}, headers=operator
    )
    assert moved.status_code == 403
    assert edit.directory.get("t-salon")["cost_yen"] == 100


def test_scoped_editor_creates_inside_scope(edit: EditSetup) -> None:
    body = {k: v for k, v in NEW.items() if k != "municipality_code"}
    response = edit.client.post(
        "/api/resources", json=body, headers=edit.tokens.header("editor_imizu")
    )
    assert response.status_code == 201
    assert response.get_json()["municipality_code"] == "162116"


# -- writes ----------------------------------------------------------------------------------------
def test_create_returns_201_with_location_and_etag(edit: EditSetup) -> None:
    response = edit.client.post(
        "/api/resources", json={**NEW, "id": "t-new"}, headers=edit.tokens.header("editor")
    )
    assert response.status_code == 201
    assert response.headers["Location"].endswith("/api/resources/t-new")
    assert response.headers["ETag"] == '"v1"'
    assert edit.client.get("/api/resources/t-new").get_json()["name"] == "新しい居場所"
    again = edit.client.post(
        "/api/resources", json={**NEW, "id": "t-new"}, headers=edit.tokens.header("editor")
    )
    assert again.status_code == 409


def test_invalid_listing_is_422_with_problems(edit: EditSetup) -> None:
    response = edit.client.post(
        "/api/resources",
        json={"name": "x", "kind": "karaoke", "lat": 10, "lon": 10},
        headers=edit.tokens.header("admin"),
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    fields = {p["field"] for p in error["problems"]}
    assert "kind" in fields
    assert error["code"] == "invalid"


def test_body_must_be_a_json_object(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    assert edit.client.post("/api/resources", data="name=x", headers=admin).status_code == 415
    assert (
        edit.client.post(
            "/api/resources", data="[1, 2]", content_type="application/json", headers=admin
        ).status_code
        == 400
    )
    assert (
        edit.client.post(
            "/api/resources", data="{bad", content_type="application/json", headers=admin
        ).status_code
        == 400
    )


def test_update_with_if_match(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    ok = edit.client.put(
        "/api/resources/t-salon", json={"cost_yen": 0}, headers={**admin, "If-Match": '"v1"'}
    )
    assert ok.status_code == 200
    assert ok.headers["ETag"] == '"v2"' and ok.get_json()["cost_yen"] == 0
    stale = edit.client.put(
        "/api/resources/t-salon", json={"cost_yen": 500}, headers={**admin, "If-Match": '"v1"'}
    )
    assert stale.status_code == 412
    body = stale.get_json()
    assert body["error"]["code"] == "stale"
    assert body["current_version"] == 2 and body["current"]["cost_yen"] == 0
    assert edit.directory.get("t-salon")["cost_yen"] == 0  # nothing changed


def test_update_with_body_version(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    assert (
        edit.client.put(
            "/api/resources/t-cafe", json={"name": "カフェ2", "version": 1}, headers=admin
        ).status_code
        == 200
    )
    stale = edit.client.put(
        "/api/resources/t-cafe", json={"name": "カフェ3", "version": 1}, headers=admin
    )
    assert stale.status_code == 412
    assert stale.get_json()["current_version"] == 2
    assert edit.directory.get("t-cafe")["name"] == "カフェ2"
    bad = edit.client.put(
        "/api/resources/t-cafe", json={"name": "x"}, headers={**admin, "If-Match": "nonsense"}
    )
    assert bad.status_code == 400


def test_update_rejects_other_id_and_unknown(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    assert (
        edit.client.put("/api/resources/t-cafe", json={"id": "other"}, headers=admin).status_code
        == 400
    )
    assert (
        edit.client.put("/api/resources/nope", json={"name": "x"}, headers=admin).status_code == 404
    )


def test_delete_is_guarded_and_soft(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    stale = edit.client.delete("/api/resources/t-shokudo", headers={**admin, "If-Match": '"v7"'})
    assert stale.status_code == 412
    assert edit.client.get("/api/resources/t-shokudo").status_code == 200
    gone = edit.client.delete("/api/resources/t-shokudo?version=1", headers=admin)
    assert gone.status_code == 200 and gone.get_json()["status"] == "deleted"
    assert edit.client.get("/api/resources/t-shokudo").status_code == 404
    history = edit.client.get("/api/resources/t-shokudo/history", headers=admin)
    assert history.status_code == 200
    assert [entry["action"] for entry in history.get_json()["items"]] == ["create", "delete"]


def test_history_lists_every_accepted_write(edit: EditSetup) -> None:
    editor = edit.tokens.header("editor")
    edit.client.put("/api/resources/t-inagi", json={"cost_yen": 200}, headers=editor)
    items = edit.client.get("/api/resources/t-inagi/history", headers=editor).get_json()["items"]
    assert [(i["version"], i["action"], i["actor"]) for i in items] == [
        (1, "create", "fixture"),
        (2, "update", "editor@example.jp"),
    ]
    assert edit.client.get("/api/resources/none/history", headers=editor).status_code == 404


# -- areas -----------------------------------------------------------------------------------------
def test_areas_lookup_by_point_and_address(client: Any) -> None:
    by_point = client.get("/api/areas/lookup?lat=36.7236&lon=137.0991")
    assert by_point.status_code == 200
    body = by_point.get_json()
    assert body["items"], "a 射水市 point lies in some center's 担当地区"
    assert all(item["service_area"] for item in body["items"])
    assert body["town"]["municipality_code"] == "162116"
    assert body["town"]["municipality"] == "射水市"
    by_address = client.get("/api/areas/lookup", query_string={"address": "射水市戸破"}).get_json()
    assert by_address["town"]["name"].startswith("戸破")
    assert {i["id"] for i in by_address["items"]} & {i["id"] for i in body["items"]}


def test_areas_lookup_errors(client: Any) -> None:
    missing = client.get("/api/areas/lookup")
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "bad_parameter"
    assert client.get("/api/areas/lookup?lat=x&lon=137").status_code == 400
    unknown = client.get("/api/areas/lookup", query_string={"address": "どこでもない場所"})
    assert unknown.status_code == 422
    assert "住所" in unknown.get_json()["error"]["message"]


# -- GeoJSON ----------------------------------------------------------------------------------------
def test_geojson_shape(client: Any) -> None:
    response = client.get("/api/resources.geojson?bbox=136.9,36.6,137.3,36.9")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    body = response.get_json(force=True)
    assert body["type"] == "FeatureCollection"
    assert body["total"] == len(body["features"]) > 20
    for feature in body["features"]:
        assert feature["type"] == "Feature"
        assert set(feature["properties"]) == {
            "id",
            "name",
            "kind",
            "kind_label",
            "is_sample",
            "next",
            "cost",
        }
        assert feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert 136.9 <= lon <= 137.3 and 36.6 <= lat <= 36.9
    samples = [f for f in body["features"] if f["properties"]["is_sample"]]
    assert samples, "the 射水市 demo has labelled samples"


def test_geojson_filters_like_search(client: Any) -> None:
    geo = client.get("/api/resources.geojson?kind=center&municipality=16211").get_json(force=True)
    search = client.get("/api/resources?kind=center&municipality=16211&limit=100").get_json()
    assert {f["id"] for f in geo["features"]} == {i["id"] for i in search["items"]}
    assert all(f["properties"]["kind_label"] == "相談支援機関" for f in geo["features"])


def test_geojson_etag_and_gzip(client: Any) -> None:
    first = client.get("/api/resources.geojson", headers={"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip"
    assert (
        client.get(
            "/api/resources.geojson", headers={"If-None-Match": first.headers["ETag"]}
        ).status_code
        == 304
    )


def test_geojson_follows_writes(edit: EditSetup) -> None:
    before = edit.client.get("/api/resources.geojson").get_json(force=True)
    assert before["total"] == 4
    edit.client.post(
        "/api/resources", json={**NEW, "id": "t-map"}, headers=edit.tokens.header("admin")
    )
    after = edit.client.get("/api/resources.geojson").get_json(force=True)
    assert "t-map" in {f["id"] for f in after["features"]}
    edit.client.delete("/api/resources/t-map", headers=edit.tokens.header("admin"))
    assert "t-map" not in {
        f["id"] for f in edit.client.get("/api/resources.geojson").get_json(force=True)["features"]
    }


# -- rate limit ------------------------------------------------------------------------------------
def test_rate_limit_returns_429_json(demo_directory: Any) -> None:
    from resdb.web import create_app

    app = create_app({"DIRECTORY": demo_directory, "RATE_LIMIT": (3, 0.01), "SECRET_KEY": "x"})
    client = app.test_client()
    codes = [client.get("/api/resources?q=サロン").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/resources.geojson")
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    page = client.get("/search?q=x")
    assert page.status_code == 429 and "アクセスが集中" in page.get_data(as_text=True)
    assert (
        client.get("/api/resources/imizu-steppi-cafe").status_code == 200
    )  # one listing is not limited
    other = client.get("/api/resources", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def test_token_bucket_refills() -> None:
    from resdb.web.security import TokenBucket

    now = [0.0]
    bucket = TokenBucket(2, 1.0, clock=lambda: now[0])
    assert [bucket.take("a") for _ in range(3)][:2] == [0.0, 0.0]
    assert bucket.take("a") > 0
    now[0] += 1.0
    assert bucket.take("a") == 0.0
    assert bucket.take("b") == 0.0
