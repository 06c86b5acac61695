"""Screens that fit the work (server side): the correction form, map features with next dates, the base map."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.web.conftest import csrf_of


def test_correction_form_prefills_current_values_and_gives_a_reference(staff: Any) -> None:
    public = staff.client()
    html = public.get("/resources/t-salon/report").get_data(as_text=True)
    assert 'value="100"' in html  # cost
    assert re.search(r'id="report-schedule"[^>]*value="[^"]*水曜', html)
    token = csrf_of(public, "/resources/t-salon/report")
    # the resident changes only the phone; the pre-filled schedule and cost are not proposed
    schedule_text = re.search(r'id="report-schedule"[^>]*value="([^"]*)"', html).group(1)  # type: ignore[union-attr]
    response = public.post(
        "/resources/t-salon/report",
        data={
            "csrf_token": token,
            "message": "電話が変わりました",
            "phone": "0766-99-9999",
            "cost_yen": "100",
            "schedule": schedule_text.replace("&amp;", "&"),
            "address": "",
        },
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    reference = re.search(r"受付番号: <strong class=\"reference\">(R-\d{6})</strong>", body)
    assert reference
    from resdb.workspace import Workspace

    stored = Workspace(staff.directory).corrections()
    assert stored[0]["proposed"] == {"phone": "0766-99-9999"}
    assert reference.group(1) == f"R-{stored[0]['id']:06d}"


def test_correction_errors_come_with_a_focusable_summary(staff: Any) -> None:
    public = staff.client()
    token = csrf_of(public, "/resources/t-salon/report")
    bad = public.post(
        "/resources/t-salon/report",
        data={"csrf_token": token, "message": "", "cost_yen": "たくさん"},
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert 'id="form-problems" tabindex="-1"' in html and "js/forms.js" in html
    assert 'href="#report-message"' in html
    assert 'value="たくさん"' in html  # nothing typed is lost


def test_map_features_carry_next_date_and_cost(client: Any) -> None:
    body = client.get("/api/resources.geojson?q=戸破ふれあいサロン").get_json()
    props = [f["properties"] for f in body["features"] if "サロン" in f["properties"]["name"]]
    assert props
    with_next = [p for p in props if p["next"]]
    assert with_next and with_next[0]["next"].startswith("次回 12月")
    assert all(p["cost"] is None or p["cost"] == "無料" or p["cost"].endswith("円") for p in props)


def test_basemap_for_each_shipped_municipality(client: Any) -> None:
    for code, name in [
        ("162116", "射水市"),
        ("132250", "稲城市"),
        ("282065", "芦屋市"),
        ("072044", "いわき市"),
        ("465330", "和泊町"),
    ]:
        response = client.get(f"/basemap/{code}.json")
        assert response.status_code == 200, code
        assert response.mimetype == "application/geo+json"
        body = json.loads(response.get_data())
        assert body["municipality"]["name"].endswith(name)
        towns = [f for f in body["features"] if f["properties"]["level"] == "town"]
        assert towns and all(f["properties"]["label"] for f in towns if f["geometry"])
        assert len(response.get_data()) < 400_000
    assert client.get("/basemap/16211.json").status_code == 200  # the 5-digit code works too
    for bad in ("162117", "000000", "1"):
        response = client.get(f"/basemap/{bad}.json")
        assert response.status_code == 404 and "地図はありません" in response.get_data(as_text=True)


def test_tiles_off_sends_no_tile_url_and_a_basemap(demo_directory: Any) -> None:
    from resdb.web import create_app

    app = create_app(
        {"DIRECTORY": demo_directory, "TILE_URL": "off", "RATE_LIMIT": None, "SECRET_KEY": "x"}
    )
    client = app.test_client()
    for path in ("/", "/resources/imizu-steppi-cafe"):
        html = client.get(path).get_data(as_text=True)
        config = json.loads(
            re.search(
                r'<script type="application/json" id="map-config">(.*?)</script>', html, re.S
            ).group(1)
        )  # type: ignore[union-attr]
        assert config["tileUrl"] is None and config["basemapUrl"] == "/basemap/__CODE__.json"
        assert config["basemapFocus"] == "162116"
        assert {a["code"] for a in config["basemapAreas"]} >= {"162116", "132250"}
    csp = client.get("/").headers["Content-Security-Policy"]
    assert "img-src 'self' data:;" in csp


def test_detail_page_location_text_names_the_town(client: Any) -> None:
    html = client.get("/resources/imizu-steppi-cafe").get_data(as_text=True)
    block = re.search(r'<p class="location-text" id="location-text">(.*?)</p>', html, re.S)
    assert block
    assert "付近" in block.group(1) and "https://maps.gsi.go.jp/#16/" in block.group(1)


def _text(html: str) -> str:
    main = html[html.index("<main") : html.index("</main>")]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def test_areas_first_contact_then_topics(client: Any) -> None:
    response = client.get("/areas", query_string={"address": "富山県射水市戸破2475"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    first = html[html.index('id="first-heading"') : html.index('class="topic-nav"')]
    assert "小杉・下地域包括支援センター" in first
    assert 'href="tel:0766558217"' in first
    assert "新湊西地域包括支援センター" not in html  # another area's center is not offered
    text = _text(html)
    order = [
        text.index(label)
        for label in (
            "まずはここ",
            "高齢・介護",
            "障がい",
            "子ども・子育て",
            "暮らし・お金",
            "ひきこもり・生きづらさ",
        )
    ]
    assert order == sorted(order)
    topics = {
        m.group(1): m.group(2) for m in re.finditer(r'id="topic-(\w+)"(.*?)</section>', html, re.S)
    }
    assert "障がい者相談支援" in topics["disability"] and "地域包括" not in topics["disability"]
    assert "こども家庭センター" in topics["children"]
    assert "すてっぷ" in topics["money"] and "すてっぷ" in topics["hikikomori"]
    assert "受付時間" in topics["elderly"]


def test_areas_outside_the_covered_municipalities_says_which_are_covered(client: Any) -> None:
    response = client.get("/areas", query_string={"address": "東京都新宿区西新宿2-8-1"})
    text = _text(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "射水市" in text and "稲城市" in text and "芦屋市" in text and "調べられるのは" in text
    response = client.get("/areas", query_string={"lat": "35.0", "lon": "135.0"})
    assert response.status_code == 200 and "対象地域" in _text(response.get_data(as_text=True))


# -- coordinator flow ---------------------------------------------------------------------------------------
def _follow(client: Any, path: str, data: dict[str, Any]) -> Any:
    posted = client.post(path, data={**data, "csrf_token": csrf_of(client, "/coordinator/match")})
    assert posted.status_code == 303, posted.get_data(as_text=True)[:400]
    return client.get(posted.headers["Location"])


GRID_FORM = {
    "goals": ["health", "friends"],
    "targets": ["elderly"],
    "home_district": "戸破",
    "mobility": "walk",
    "max_minutes": "20",
    "age": "82",
    "avail_grid": ["wed_pm", "fri_am"],
}


def test_availability_grid_matches_and_comes_back(staff: Any) -> None:
    from resdb.web.coordinator import person_from_values, values_from_person

    coord = staff.login("coord@example.jp")
    page = coord.get("/coordinator/match").get_data(as_text=True)
    assert page.count('name="avail_grid"') == 21  # a week × 午前/午後/夜
    result = _follow(coord, "/coordinator/match", GRID_FORM)
    html = result.get_data(as_text=True)
    assert "戸破ふれあいサロン" in html  # Wednesdays 13:30-15:30 fit 「水曜 午後」
    assert (
        'name="avail_grid" value="wed_pm"' in html and 'name="avail_grid" value="fri_am"' in html
    )  # carried
    with staff.app.test_request_context():
        person, problems = person_from_values(
            {
                **GRID_FORM,
                "avail_weekday_0": "sat",
                "avail_start_0": "10:30",
                "avail_end_0": "11:15",
            }
        )
        assert problems == []
        assert {"weekday": "wed", "start": "13:00", "end": "17:00"} in person["available"]
        again = values_from_person(person)
    assert sorted(again["avail_grid"]) == ["fri_am", "wed_pm"]
    assert (again["avail_weekday_0"], again["avail_start_0"], again["avail_end_0"]) == (
        "sat",
        "10:30",
        "11:15",
    )


def test_proposal_map_has_the_home_and_compare_sheet_have_contact_visit_and_name(
    staff: Any,
) -> None:
    from resdb import accounts

    accounts.add_user(
        staff.directory.engine,
        "named@example.jp",
        "coordinator",
        "correct horse battery staple",
        display_name="山田 花子",
    )
    coord = staff.login("named@example.jp", "correct horse battery staple")
    result = _follow(coord, "/coordinator/match", GRID_FORM)
    html = result.get_data(as_text=True)
    config = json.loads(
        re.search(
            r'<script type="application/json" id="desk-config">(.*?)</script>', html, re.S
        ).group(1)
    )  # type: ignore[union-attr]
    assert config["home"] and abs(config["home"]["lat"] - 36.72) < 0.05
    token = re.search(r'name="result_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    compared = _follow(
        coord,
        "/coordinator/match/compare",
        {**GRID_FORM, "pick": ["t-salon", "t-cafe"], "result_token": token},
    )
    text = compared.get_data(as_text=True)
    assert "連絡先" in text and "見学" in text and "戸破地区社協" in text
    assert "担当: 山田 花子" in text
    assert (
        f'href="/coordinator/r/{token}"' in text
    )  # 「提案の一覧に戻る」 is the stored result (GET), Back-safe
    sheet = _follow(coord, "/coordinator/match/sheet", {**GRID_FORM, "pick": ["t-salon"]})
    text = sheet.get_data(as_text=True)
    assert "担当の相談員: 山田 花子" in text and "見学" in text


def test_saved_notice_and_caseload_filters(staff: Any) -> None:
    from sqlalchemy import text

    for email, pseudonym in (("coord@example.jp", "Aさん"), ("coord2@example.jp", "Bさん")):
        client = staff.login(email)
        saved = client.post(
            "/coordinator/match/save",
            data={
                **GRID_FORM,
                "pseudonym": pseudonym,
                "legal_basis": "consent",
                "pick": ["t-salon"],
                "csrf_token": csrf_of(client, "/coordinator/match"),
            },
        )
        assert saved.status_code == 303 and saved.headers["Location"].endswith("?done=saved")
        assert "保存しました" in client.get(saved.headers["Location"]).get_data(as_text=True)
    with (
        staff.directory.engine.begin() as conn
    ):  # Aさん was saved long ago and nothing recorded since
        conn.execute(
            text("UPDATE \"case\" SET created_at = :old WHERE pseudonym = 'Aさん'"),
            {"old": "2026-09-01 00:00:00"},
        )
    admin = staff.login("admin@example.jp")
    everything = admin.get("/coordinator/").get_data(as_text=True)
    assert "Aさん" in everything and "Bさん" in everything and "日連絡なし" in everything
    quiet = admin.get("/coordinator/?quiet=30").get_data(as_text=True)
    assert "Aさん" in quiet and "Bさん" not in quiet and re.search(r"\d+日連絡なし", quiet)
    coord2 = re.search(r'<option value="(\d+)">coord2@example.jp</option>', everything).group(1)  # type: ignore[union-attr]
    mine = admin.get(f"/coordinator/?coordinator={coord2}").get_data(as_text=True)
    assert "Bさん" in mine and "Aさん" not in mine
    assert (
        admin.get("/coordinator/?quiet=abc&coordinator=x").status_code == 200
    )  # bad filters are ignored


# -- editor workflow ----------------------------------------------------------------------------------------
def _many_unverified(directory: Any, count: int = 30) -> None:
    for n in range(count):
        directory.create(
            {
                "id": f"q-{n:02d}",
                "name": f"確認待ちの通いの場{n:02d}",
                "kind": "kayoi",
                "lat": 36.72 + n / 1000,
                "lon": 137.1,
                "municipality_code": "162116",
                "verified_at": f"2025-{1 + n % 12:02d}-{1 + n // 12:02d}",
                **({"phone": "0766-00-0000"} if n % 3 else {}),
                **(
                    {"schedule": [{"weekday": "mon", "start": "10:00", "end": "11:00"}]}
                    if n % 2
                    else {}
                ),
            },
            actor="fixture",
        )


def test_queue_is_paged_per_municipality_and_kind_oldest_first(staff: Any) -> None:
    _many_unverified(staff.directory)
    editor = staff.login("imizu@example.jp")
    first = editor.get("/editor/queue?municipality=162116&kind=kayoi").get_data(as_text=True)
    names = re.findall(r">(確認待ちの通いの場\d\d)</a>", first)
    assert len(names) == 25 and "1 / 2ページ" in first
    second = editor.get("/editor/queue?municipality=162116&kind=kayoi&page=2").get_data(
        as_text=True
    )
    later = re.findall(r">(確認待ちの通いの場\d\d)</a>", second)
    assert len(later) == 5 and not set(names) & set(later)
    dates = [staff.directory.get(f"q-{n[-2:]}")["verified_at"] for n in names + later]
    assert dates == sorted(dates)  # oldest first across pages
    no_contact = editor.get(
        "/editor/queue?municipality=162116&kind=kayoi&issue=no_contact"
    ).get_data(as_text=True)
    rows = re.findall(r">(確認待ちの通いの場\d\d)</a>", no_contact)
    assert rows and all(int(r[-2:]) % 3 == 0 for r in rows)
    no_schedule = editor.get("/editor/queue?issue=no_schedule&kind=kayoi").get_data(as_text=True)
    assert all(
        int(r[-2:]) % 2 == 0 for r in re.findall(r">(確認待ちの通いの場\d\d)</a>", no_schedule)
    )
    assert editor.get("/editor/queue?page=abc&issue=zzz").status_code == 200
    # the 稲城市 editor sees none of them
    assert "確認待ちの通いの場" not in staff.login("inagi@example.jp").get(
        "/editor/queue"
    ).get_data(as_text=True)


def test_verify_needs_the_explicit_confirmation_from_the_listing_page(staff: Any) -> None:
    editor = staff.login("imizu@example.jp")
    page = editor.get("/editor/listings/t-salon?back=/editor/queue%3Fpage%3D2").get_data(
        as_text=True
    )
    assert "上の内容が今も正しいことを確かめました" in page and "毎月第1・第3水曜" in page
    token = csrf_of(editor, "/editor/listings/t-salon")
    refused = editor.post("/editor/listings/t-salon/verify", data={"csrf_token": token})
    assert refused.status_code == 400 and "チェックを入れて" in refused.get_data(as_text=True)
    assert staff.directory.get("t-salon")["verified_at"] == "2026-06-01"
    done = editor.post(
        "/editor/listings/t-salon/verify",
        data={"csrf_token": token, "confirm": "yes", "back": "/editor/queue?page=2"},
    )
    assert done.status_code == 303 and "verified=1" in done.headers["Location"]
    shown = editor.get(done.headers["Location"]).get_data(as_text=True)
    assert "確認日を" in shown and 'href="/editor/queue?page=2"' in shown
    assert staff.directory.get("t-salon")["verified_at"] != "2026-06-01"


def test_corrections_per_field_and_notices(staff: Any) -> None:
    public = staff.client()
    token = csrf_of(public, "/resources/t-salon/report")
    public.post(
        "/resources/t-salon/report",
        data={
            "csrf_token": token,
            "message": "電話と費用が変わりました",
            "phone": "0766-99-0000",
            "cost_yen": "200",
        },
    )
    editor = staff.login("imizu@example.jp")
    html = editor.get("/editor/corrections").get_data(as_text=True)
    request_id = re.search(r"/editor/corrections/(\d+)", html).group(1)  # type: ignore[union-attr]
    assert f"R-{int(request_id):06d}" in html and "+00:00" not in html and "年" in html
    token = csrf_of(editor, "/editor/corrections")
    response = editor.post(
        f"/editor/corrections/{request_id}",
        data={"csrf_token": token, "decision": "accept", "per_field": "1", "take": ["cost_yen"]},
    )
    assert response.status_code == 303
    listing = staff.directory.get("t-salon")
    assert (
        listing["cost_yen"] == 200 and listing["phone"] != "0766-99-0000"
    )  # the phone was not taken
    notice = editor.get(response.headers["Location"]).get_data(as_text=True)
    assert "採用しました" in notice and "費用（円）" in notice


def test_history_in_japanese_and_jst_and_restore_keeps_the_check_date(staff: Any) -> None:
    editor = staff.login("imizu@example.jp")
    token = csrf_of(editor, "/editor/listings/t-salon")
    staff.directory.update(
        "t-salon",
        {"group_size": "large", "cost_yen": 300},
        "imizu@example.jp",
        expected_version=None,
    )
    editor.post("/editor/listings/t-salon/verify", data={"csrf_token": token, "confirm": "yes"})
    checked = staff.directory.get("t-salon")["verified_at"]
    html = editor.get("/editor/listings/t-salon/history").get_data(as_text=True)
    text = re.sub(r"<[^>]+>", " ", html)
    assert (
        "kayoi" not in text
        and "通いの場" in text
        and "large" not in text
        and "published" not in text
    )
    assert "+00:00" not in text and re.search(r"\d{4}年\d+月\d+日 \d\d:\d\d", text)
    assert (
        "確認日も" in html and "のままにする" in html
    )  # restoring version 1 would roll 確認日 back
    kept = editor.post(
        "/editor/listings/t-salon/restore",
        data={"csrf_token": token, "to_version": "1", "keep_verified": "yes"},
    )
    assert kept.status_code == 303
    listing = staff.directory.get("t-salon")
    assert listing["cost_yen"] == 100 and listing["verified_at"] == checked
    assert "元に戻しました" in editor.get(kept.headers["Location"]).get_data(as_text=True)
    # without the box, the old 確認日 comes back with the old version (as the warning said)
    rolled = editor.post(
        "/editor/listings/t-salon/restore", data={"csrf_token": token, "to_version": "1"}
    )
    assert (
        rolled.status_code == 303 and staff.directory.get("t-salon")["verified_at"] == "2026-06-01"
    )
