"""The coordinator's flow in Chromium (desktop and 390 px): match → compare → Back → sheet without losing the
result or putting the person in a URL; the grid, the home on the map, 保存しました; tiles blocked; and a
district and an organisation named with markup shown as text in every tooltip, popup, label and page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import TEST_TILE_URL, LiveServer, run_axe, screenshot, start_server

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
EVIL = '<img src=x onerror="window.__xss=1">'
EVIL_CHIKU = EVIL + "戸破地区"
EVIL_ORG = EVIL + "社協"
SECRET = "カナリアQW3"


@pytest.fixture(scope="module")
def flow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """射水市 with the web-test listings; the 戸破地区 outline and one operator carry markup in their names."""
    from resdb import accounts, geo
    from resdb.directory import Directory
    from resdb.web import create_app
    from tests.web.conftest import FIXED_TODAY, LISTINGS

    folder = tmp_path_factory.mktemp("flow")
    directory = Directory.open(f"sqlite:///{folder / 'db.sqlite3'}", folder)
    records = geo.build_districts("16211")
    for record in records:
        if record.level == "chiku" and record.name == "戸破地区":
            record.name = EVIL_CHIKU
    directory.load_districts(records)
    for raw in LISTINGS:
        listing = dict(raw)
        if listing["id"] == "t-salon":
            listing["operator"] = EVIL_ORG
            listing["phone"] = "0766-00-1234"
            listing["reservation_required"] = False
        directory.create(listing, actor="fixture")
    directory.create(
        {
            "id": "t-taiso",
            "name": "戸破いきいき体操",
            "kind": "kayoi",
            "lat": 36.7226,
            "lon": 137.1003,
            "municipality_code": "162116",
            "targets": ["elderly"],
            "cost_yen": 0,
            "phone": "0766-00-5678",
            "schedule": [{"weekday": "wed", "start": "14:00", "end": "15:00"}],
            "reservation_required": True,
        },
        actor="fixture",
    )
    accounts.add_user(
        directory.engine, "coord@example.jp", "coordinator", PASSWORD, display_name="山田 花子"
    )
    app = create_app(
        {
            "DIRECTORY": directory,
            "TILE_URL": TEST_TILE_URL,
            "RATE_LIMIT": None,
            "SECRET_KEY": "flow",
            "SESSION_COOKIE_SECURE": False,
            "TODAY": lambda: FIXED_TODAY,
        }
    )
    server = start_server(app)
    yield server
    server.shutdown()
    directory.close()


def sign_in(page: Any, server: LiveServer) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/coordinator/match")
    page.fill("#email", "coord@example.jp")
    page.fill("#password", PASSWORD)
    page.locator("form[action^='/login'] button[type=submit]").first.click()
    expect(page.locator("h1")).to_contain_text("場所を探す")


def fill_person(page: Any) -> None:
    page.get_by_label("健康・介護予防").check()
    page.get_by_label("仲間・交流").check()
    page.fill("#interests", f"体操、{SECRET}")
    page.get_by_label("水曜 午後").check()  # one Tab stop per slot in the week grid
    page.select_option("#mobility", "walk")
    page.fill("#max_minutes", "20")
    page.fill("#home_district", "戸破")
    page.fill("#age", "82")
    page.get_by_label("高齢者").check()


def block_tiles(page: Any) -> None:
    page.route("https://tiles.invalid/**", lambda route: route.abort("connectionrefused"))


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_match_compare_back_sheet(
    flow_server: LiveServer, make_page: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=width, height=height, mobile=width < 400)
    block_tiles(page)
    visited: list[str] = []
    page.on("request", lambda r: visited.append(r.url))
    sign_in(page, flow_server)
    fill_person(page)
    page.get_by_role("button", name="提案を見る").click()
    expect(page.locator("h1")).to_contain_text("提案")
    result_url = page.url
    assert re.search(r"/coordinator/r/[A-Za-z0-9_-]{43}$", result_url)
    expect(page.locator(".proposals").first).to_contain_text(
        "戸破ふれあいサロン"
    )  # known fits come first
    # the proposal map: built-in base map (tiles blocked), numbered places and the person's home
    page.wait_for_selector("#desk-map[data-basemap=drawn]", timeout=15_000)
    expect(page.locator("#desk-map .map-notice")).to_contain_text("簡易地図")
    expect(page.locator("#desk-map .leaflet-marker-icon.desk-home")).to_have_count(1)
    assert page.locator("#desk-map .desk-pin").count() >= 1
    # a numbered place by keyboard: Enter opens its popup with focus on the link, Esc closes and returns
    pin = page.locator("#desk-map .leaflet-marker-icon.desk-pin").first
    pin.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#desk-map .leaflet-popup-content a")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#desk-map .leaflet-popup")).to_have_count(0)
    expect(pin).to_be_focused()
    serious = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious
    screenshot(page, f"desk-result-{width}")

    for name in ("戸破ふれあいサロン", "戸破いきいき体操"):
        page.locator(".proposal", has_text=name).get_by_label(
            "この場所を選ぶ（比べる・シート・保存）"
        ).check()
    page.get_by_role("button", name=re.compile("選んだ場所を比べる")).click()
    expect(page.locator("h1")).to_have_text("場所を比べる")
    table = page.locator("table.compare")
    expect(table).to_contain_text("連絡先")
    expect(table).to_contain_text("予約なしで見学できます")
    expect(table).to_contain_text(EVIL_ORG)  # the organisation's name as text
    expect(page.locator("main")).to_contain_text("担当: 山田 花子")
    serious = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious

    page.go_back()  # the browser's Back button: the proposals again, not ERR_CACHE_MISS
    expect(page.locator("h1")).to_contain_text("提案")
    assert page.url == result_url
    expect(page.locator(".proposals").first).to_contain_text(
        "戸破ふれあいサロン"
    )  # known fits come first
    page.locator(".proposal", has_text="戸破ふれあいサロン").get_by_label(
        "この場所を選ぶ（比べる・シート・保存）"
    ).check()
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="印刷用の提案シート").click()
    sheet = opened.value
    sheet.wait_for_load_state()
    expect(sheet.locator("h1")).to_contain_text("あなたに合いそうな場所のご案内")
    expect(sheet.locator("main")).to_contain_text("担当の相談員: 山田 花子")
    expect(sheet.locator(".sheet__place").first).to_contain_text("見学")
    expect(sheet.locator(".sheet__place").first).to_contain_text("0766-00-1234")

    # save: 「保存しました」
    page.fill("#pseudonym", "Aさん")
    page.get_by_label("本人同意").check()
    page.get_by_role("button", name="ケースとして保存").click()
    expect(page.locator("#saved-notice")).to_contain_text("保存しました")
    # nothing typed about the person in any URL the browser asked for
    assert not [u for u in visited if "QW3" in u or "%E3%82%AB%E3%83%8A%E3%83%AA%E3%82%A2" in u]
    assert page.evaluate("window.__xss") is None and sheet.evaluate("window.__xss") is None
    assert all(
        "tiles.invalid" in e or "ERR_CONNECTION_REFUSED" in e for e in page.console_errors
    ), page.console_errors


def test_gap_map_and_basemap_show_a_district_name_as_text(
    flow_server: LiveServer, make_page: Any
) -> None:
    from playwright.sync_api import expect

    page = make_page()
    block_tiles(page)
    sign_in(page, flow_server)
    page.goto(flow_server.url + "/coordinator/gaps")
    page.fill("#needs_text", "地区,目的,対象,移動手段,件数\n戸破,働きたい,障がいのある人,徒歩,3\n")
    page.get_by_role("button", name="報告をつくる").click()
    page.wait_for_selector("#desk-map[data-basemap=drawn]", timeout=15_000)
    # hover each district until the tooltip names the one with markup
    paths = page.locator("#desk-map .leaflet-overlay-pane path")
    found = None
    for n in range(paths.count()):
        box = paths.nth(n).bounding_box()
        if not box or box["width"] < 4:
            continue
        paths.nth(n).hover(force=True)
        tooltip = page.locator(".leaflet-tooltip")
        if (
            tooltip.count()
            and "不足" in tooltip.inner_text()
            and "戸破地区" in tooltip.inner_text()
        ):
            found = tooltip.inner_text()
            break
    assert found is not None and found.startswith(EVIL_CHIKU), found
    assert page.locator(".leaflet-tooltip img, #desk-map img[src=x]").count() == 0
    # the built-in base map's 地区 labels: text too
    page.locator("#desk-map").focus()
    labels = page.locator("#desk-map .basemap-label--chiku")
    for _ in range(4):
        if labels.filter(has_text="戸破地区").count():
            break
        page.keyboard.press("+")
        page.wait_for_timeout(400)
    expect(labels.filter(has_text="戸破地区").first).to_have_text(EVIL_CHIKU)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#desk-map .basemap-label img").count() == 0


def test_public_pages_show_organisation_and_district_names_as_text(
    flow_server: LiveServer, make_page: Any
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=390, height=844, mobile=True)
    block_tiles(page)
    page.goto(flow_server.url + "/resources/t-salon")
    expect(page.locator("main")).to_contain_text(EVIL_ORG)
    page.goto(flow_server.url + "/areas?address=射水市戸破")
    expect(page.locator("main")).to_contain_text("戸破")
    page.goto(flow_server.url + "/")
    page.get_by_role("button", name="地図を表示").click()
    page.wait_for_selector("#map[data-basemap=drawn]", timeout=15_000)
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img[src=x]").count() == 0
