"""The public pages in headless Chromium: clustered map, filters, popups, no-JS list, escaping, axe-core."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import TEST_TILE_URL, run_axe, screenshot, start_server

pytestmark = pytest.mark.browser

SAMPLE_ID = "imizu-sample-hibari-salon"
REAL_ID = "imizu-steppi-cafe"


def wait_for_map(page: Any) -> int:
    """Wait until the list beside the map is filled; the number of listings in view."""
    from playwright.sync_api import expect

    expect(page.locator("#list-status")).to_contain_text("件あります", timeout=15_000)
    return int(re.search(r"(\d+) 件", page.locator("#list-status").inner_text()).group(1))  # type: ignore[union-attr]


def test_map_loads_with_clustered_markers(live_server: Any, make_page: Any) -> None:
    page = make_page()
    tile_requests: list[str] = []
    page.on(
        "request",
        lambda request: (
            tile_requests.append(request.url) if "tiles.invalid" in request.url else None
        ),
    )
    page.goto(live_server.url + "/")
    count = wait_for_map(page)
    assert count > 50
    page.wait_for_selector(".leaflet-marker-icon.cluster")
    clusters = page.locator(".leaflet-marker-icon.cluster")
    assert clusters.count() >= 3
    # clusters and markers are keyboard-reachable buttons with a name
    first = clusters.first
    assert first.get_attribute("role") == "button" and first.get_attribute("tabindex") == "0"
    assert "件" in first.inner_text()
    assert tile_requests, "tiles come from the configured (here: blocked) tile server"
    assert page.locator(".leaflet-control-attribution").inner_text().strip() != ""
    assert (
        page.locator("#visible-list li").count() == 20
    )  # the list shows the first 20, then 「さらに表示」
    page.get_by_role("button", name="さらに表示").click()
    assert page.locator("#visible-list li").count() == min(40, count)
    assert page.console_errors == []  # also: no CSP violations


def test_filter_narrows_markers(live_server: Any, make_page: Any) -> None:
    from playwright.sync_api import expect

    page = make_page()
    page.goto(live_server.url + "/")
    before = wait_for_map(page)
    page.locator("#search-form summary").click()
    page.get_by_label("種別").select_option("center")
    expect(page.locator("#list-status")).not_to_contain_text(
        f"に {before} 件あります", timeout=10_000
    )
    after = wait_for_map(page)
    assert 0 < after < before
    tags = page.locator("#visible-list .tag").all_inner_texts()
    assert tags and set(tags) == {"相談支援機関"}
    assert "kind=center" in page.url  # the filters are kept in the address for reload and sharing
    page.get_by_label("無料").check()
    expect(page.locator("#list-status")).not_to_contain_text(
        f"に {after} 件あります", timeout=10_000
    )
    assert wait_for_map(page) <= after


def test_popup_opens_detail_page(live_server: Any, make_page: Any) -> None:
    page = make_page()
    page.goto(live_server.url + "/")
    wait_for_map(page)
    first = page.locator("#visible-list li").first
    name = first.locator("a").inner_text()
    first.get_by_role("button").click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=10_000)
    assert popup.locator("a").inner_text() == name
    popup.locator("a").click()
    page.wait_for_url(re.compile(r"/resources/"))
    assert page.locator("h1").inner_text() == name
    page.wait_for_selector("#detail-map.detail-map--live .leaflet-marker-icon")
    assert page.console_errors == []


def test_sample_badge_in_list_popup_and_detail(live_server: Any, make_page: Any) -> None:
    page = make_page()
    page.goto(live_server.url + "/?q=戸破ふれあいサロン")
    wait_for_map(page)
    item = page.locator("#visible-list li", has_text="戸破ふれあいサロン").first
    assert "サンプル（架空）" in item.inner_text()
    item.get_by_role("button").click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "サンプル（架空）" in popup.inner_text()
    popup.locator("a").click()
    page.wait_for_url(re.compile(SAMPLE_ID))
    assert "サンプル（架空）" in page.locator("main").inner_text()


def test_my_area_lookup(live_server: Any, make_page: Any) -> None:
    page = make_page()
    page.goto(live_server.url + "/")
    wait_for_map(page)
    page.get_by_label("住所（市町村名から）").fill("射水市戸破")
    page.get_by_role("button", name="調べる").click()
    results = page.locator("#area-results")
    results.locator("h3").wait_for()
    assert "戸破" in results.locator("h3").inner_text()
    assert results.locator("a").count() >= 1
    assert "地域包括支援センター" in results.inner_text()


def test_list_works_without_javascript(live_server: Any, make_page: Any) -> None:
    page = make_page(javascript=False)
    page.goto(live_server.url + "/")
    assert "JavaScript が必要です" in page.locator("#map").inner_text()
    page.get_by_label("キーワード").fill("サロン")
    page.get_by_role("button", name="探す", exact=True).click()
    page.wait_for_url(re.compile(r"/search\?"))
    assert (
        "「サロン」の検索結果" in page.locator("h1 + *, h2").first.inner_text()
        or page.get_by_text("「サロン」の検索結果").count()
    )
    results = page.locator(".results__list > li")
    assert results.count() >= 3
    # filters without JavaScript: a plain GET form
    page.goto(live_server.url + "/search")
    page.get_by_label("種別").select_option("center")
    page.get_by_label("市町村").select_option("162116")
    page.get_by_role("button", name="この条件で探す").click()
    page.wait_for_url(re.compile(r"kind=center"))
    tags = page.locator(".results__list .tag").all_inner_texts()
    assert tags and set(tags) == {"相談支援機関"}
    # pagination and the detail page's static map fallback
    page.goto(live_server.url + "/search?municipality=162116")
    page.get_by_role("link", name="次のページ").click()
    page.wait_for_url(re.compile(r"page=2"))
    page.locator(".results__list .result__title a").first.click()
    page.wait_for_url(re.compile(r"/resources/"))
    fallback = page.locator(".map-fallback")
    if fallback.count():
        assert "JavaScript" in fallback.inner_text()


def test_script_in_a_name_shows_as_text(make_directory: Any, make_page: Any) -> None:
    from resdb.demo import load_districts
    from resdb.web import create_app

    directory = make_directory("sqlite", name="xss")
    load_districts(directory, ("16211",))
    name = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">サロン'
    directory.create(
        {
            "id": "xss",
            "name": name,
            "kind": "kayoi",
            "lat": 36.7236,
            "lon": 137.0991,
            "municipality_code": "162116",
            "description": name,
            "operator": name,
        },
        actor="test",
    )
    server = start_server(
        create_app(
            {
                "DIRECTORY": directory,
                "TILE_URL": TEST_TILE_URL,
                "RATE_LIMIT": None,
                "SECRET_KEY": "x",
            }
        )
    )
    try:
        page = make_page()
        page.goto(server.url + "/")
        wait_for_map(page)
        link = page.locator("#visible-list a").first
        assert link.inner_text() == name
        page.locator("#visible-list li button").first.click()
        popup = page.locator(".leaflet-popup-content a")
        popup.wait_for()
        assert popup.inner_text() == name
        assert page.locator(".leaflet-popup-content img, #visible-list img").count() == 0
        popup.click()
        page.wait_for_url(re.compile(r"/resources/xss"))
        assert page.locator("h1").inner_text() == name
        assert page.title().startswith(name)
        page.goto(server.url + "/search?q=サロン")
        assert page.locator(".result__title a").first.inner_text() == name
        assert page.evaluate("window.__xss") is None
        assert not [e for e in page.console_errors if "Content Security Policy" in e]
    finally:
        server.shutdown()


def test_keyboard_skip_link_and_focus(live_server: Any, make_page: Any) -> None:
    page = make_page()
    page.goto(live_server.url + "/search")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "skip-link"
    assert page.locator(".skip-link").bounding_box()["y"] >= 0  # visible when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


AXE_PAGES = [
    "/",
    "/search?q=サロン",
    f"/resources/{REAL_ID}",
    f"/resources/{SAMPLE_ID}",
    "/areas?address=射水市戸破",
]


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("path", AXE_PAGES)
def test_axe_finds_no_serious_violations(
    live_server: Any, make_page: Any, path: str, width: int
) -> None:
    page = make_page(width=width, height=900 if width > 400 else 844, mobile=width < 400)
    page.goto(live_server.url + path)
    if path == "/":
        wait_for_map(page)
        page.locator("#search-form summary").click()  # check the filter controls too
    else:
        page.wait_for_load_state("networkidle")
    violations = run_axe(page)
    serious = [v for v in violations if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious


def test_axe_harness_does_detect_problems(live_server: Any, make_page: Any) -> None:
    page = make_page()
    page.goto(live_server.url + "/search")
    page.evaluate("document.querySelector('main').appendChild(document.createElement('input'))")
    assert "label" in {v["id"] for v in run_axe(page)}


@pytest.mark.parametrize(
    ("label", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844)]
)
def test_screenshots(live_server: Any, make_page: Any, label: str, width: int, height: int) -> None:
    """Screenshots of the map and a detail page (bench/out/screenshots) for people to look at."""
    page = make_page(width=width, height=height, mobile=width < 400)
    page.goto(live_server.url + "/")
    wait_for_map(page)
    page.wait_for_timeout(400)
    assert screenshot(page, f"map-{label}").stat().st_size > 10_000
    page.goto(live_server.url + f"/resources/{SAMPLE_ID}")
    page.wait_for_selector("#detail-map.detail-map--live")
    assert screenshot(page, f"detail-{label}").stat().st_size > 10_000
    # no horizontal scrolling on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
