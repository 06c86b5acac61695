"""Every bound holds before the database sees the value, the same on SQLite and PostgreSQL: a Japanese 422
naming the field (never a 500), request bodies limited in depth and size, the CSV dry run refusing what the
real import would refuse."""

from __future__ import annotations

import io
from typing import Any

from click.testing import CliRunner

from tests.web.conftest import EditSetup

NEW = {
    "name": "境界のサロン",
    "kind": "kayoi",
    "lat": 36.72,
    "lon": 137.10,
    "municipality_code": "162116",
}
# The probes of issue #9 (each gave a 500 on PostgreSQL or on both databases).
PROBES: list[tuple[str, Any]] = [
    ("venue", "あ" * 201),
    ("district", "あ" * 101),
    ("email", "a" * 190 + "@example.jp" * 2),
    ("source", "s" * 301),
    ("source_detail", "d" * 501),
    ("location_precision", "p" * 21),
    ("cost_yen", 2**31),
    ("cost_yen", 1_000_001),
    ("capacity", 2**63),
    ("capacity", 100_001),
    ("name", "サロン\x00"),
    ("name", "サロン\ud800"),
    ("notes", "x" * 5001),
    ("accepts_referrals", None),
    ("lat", float("nan")),
    ("activities", [["nested"]]),
    ("targets", {"a": 1}),
    ("phone", ["0766"]),
    ("service_area", {"geometry": {"type": "Polygon", "coordinates": [[["x"]]]}}),
]


def _json(client: Any, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    import json

    return client.open(
        url,
        method=method,
        data=json.dumps(body, allow_nan=True),
        headers=headers,
        content_type="application/json",
    )


def test_every_probe_is_a_japanese_422_naming_the_field(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    before = edit.directory.get("t-salon")
    for field, value in PROBES:
        for method, url, body in (
            ("POST", "/api/resources", {**NEW, field: value}),
            ("PATCH", "/api/resources/t-salon", {field: value}),
        ):
            response = _json(edit.client, method, url, body, admin)
            assert response.status_code == 422, (
                method,
                field,
                response.status_code,
                response.get_data(as_text=True)[:300],
            )
            error = response.get_json()["error"]
            assert field in [p["field"].split(".")[0].split("[")[0] for p in error["problems"]], (
                error
            )
            assert any("\u3040" <= ch <= "\u9fff" for ch in error["message"])  # Japanese
    assert edit.directory.get("t-salon") == before  # nothing changed
    assert len(edit.directory.all_listings()) == 4  # nothing created


def test_bounds_themselves_are_accepted(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    body = {
        **NEW,
        "venue": "会" * 200,
        "district": "地" * 100,
        "source": "s" * 300,
        "source_detail": "d" * 500,
        "cost_yen": 1_000_000,
        "capacity": 100_000,
        "notes": "メモ" * 2500,
    }
    response = _json(edit.client, "POST", "/api/resources", body, admin)
    assert response.status_code == 201, response.get_data(as_text=True)[:500]
    stored = edit.directory.get(response.get_json()["id"])
    assert (
        stored["venue"] == "会" * 200
        and stored["cost_yen"] == 1_000_000
        and stored["capacity"] == 100_000
    )
    hits = edit.directory.search(
        __import__("resdb.search", fromlist=["SearchQuery"]).SearchQuery(q="境界のサロン")
    )
    assert stored["id"] in [x["id"] for x in hits["items"]]  # the index holds the bounds too


JSON_ENDPOINTS = [
    ("POST", "/api/resources"),
    ("PATCH", "/api/resources/t-salon"),
    ("POST", "/api/match"),
    ("POST", "/api/match/batch"),
    ("POST", "/api/gaps"),
]


def test_deep_or_huge_json_is_refused_before_use(edit: EditSetup) -> None:
    admin = edit.tokens.header("admin")
    deep = b'{"a":' * 980 + b"1" + b"}" * 980
    huge = b'{"name": "' + b"a" * (1024 * 1024 + 1) + b'"}'
    surrogate = b'{"name": "\\ud800", "persons": [], "needs": []}'
    for method, url in JSON_ENDPOINTS:
        response = edit.client.open(
            url, method=method, data=deep, headers=admin, content_type="application/json"
        )
        assert (
            response.status_code == 400 and "入れ子" in response.get_json()["error"]["message"]
        ), url
        response = edit.client.open(
            url, method=method, data=huge, headers=admin, content_type="application/json"
        )
        assert response.status_code == 413, url
        response = edit.client.open(
            url, method=method, data=surrogate, headers=admin, content_type="application/json"
        )
        assert (
            response.status_code == 422
            and response.get_json()["error"]["problems"][0]["field"] == "name"
        ), url


def test_match_batch_with_text_coordinates_is_a_400(edit: EditSetup) -> None:
    response = edit.client.post(
        "/api/match/batch", json={"persons": [{"home": {"lat": "abc", "lon": "137.1"}}]}
    )
    assert response.status_code == 400
    assert "persons[0].home.lat" in response.get_json()["error"]["message"]
    assert "abc" not in response.get_data(as_text=True)


def test_csv_dry_run_reports_what_the_real_import_refuses(
    edit: EditSetup, tmp_path: Any, monkeypatch: Any
) -> None:
    from resdb.cli import main

    path = tmp_path / "long.csv"
    path.write_text(
        "名称,種別,緯度,経度,会場,費用\n長い会場のサロン,kayoi,36.72,137.10,"
        + "会" * 201
        + ",100\n"
        "高すぎるサロン,kayoi,36.72,137.10,公民館,2147483648\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(
        "RESDB_DATABASE_URL", edit.directory.engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("RESDB_INSTANCE", str(edit.directory.instance_dir))
    runner = CliRunner()
    dry = runner.invoke(main, ["import", str(path), "--dry-run", "--json"])
    real = runner.invoke(main, ["import", str(path), "--json"])
    assert dry.exit_code == real.exit_code == 1, (dry.output, real.output)
    import json

    dry_report, real_report = json.loads(dry.output), json.loads(real.output)
    assert [(p["row"], p["field"]) for p in dry_report["problems"]] == [
        (2, "venue"),
        (3, "cost_yen"),
    ]
    assert [(p["row"], p["field"]) for p in real_report["problems"]] == [
        (2, "venue"),
        (3, "cost_yen"),
    ]
    assert not real_report["written"] and len(edit.directory.all_listings()) == 4
    # the editor's import page says the same
    from resdb import accounts

    accounts.add_user(edit.directory.engine, "pw@example.jp", "admin", "long enough password")
    from tests.web.conftest import csrf_of

    client = edit.app.test_client()
    edit.app.config["SESSION_COOKIE_SECURE"] = False
    client.post(
        "/login",
        data={
            "email": "pw@example.jp",
            "password": "long enough password",
            "csrf_token": csrf_of(client),
        },
    )
    token = csrf_of(client, "/editor/import")
    page = client.post(
        "/editor/import",
        data={"csrf_token": token, "file": (io.BytesIO(path.read_bytes()), "long.csv")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "200文字以内" in html and "1,000,000" in html
