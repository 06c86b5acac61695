"""Maps without the internet: with tiles off or blocked, every map draws the built-in base map and says so."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS, LiveServer, run_axe, screenshot, start_server

pytestmark = pytest.mark.browser

NOTICE_BLOCKED = "背景地図を読み込めないため、簡易地図"
NOTICE_OFF = "背景地図の配信を使わない設定"
FIGURES = SCREENSHOTS.parent / "offline_map_first_paint.json"


@pytest.fixture(scope="module")
def tiles_off_server(demo_directory: Any) -> Iterator[LiveServer]:
    from resdb.web import create_app

    server = start_server(
        create_app(
            {
                "DIRECTORY": demo_directory,
                "TILE_URL": "off",
                "RATE_LIMIT": None,
                "SECRET_KEY": "offline",
            }
        )
    )
    yield server
    server.shutdown()


def block_tiles(page: Any) -> list[str]:
    """Abort every request to the tile server (as a closed network would); the aborted URLs."""
    aborted: list[str] = []

    def abort(route: Any) -> None:
        aborted.append(route.request.url)
        route.abort("connectionrefused")

    page.route("https://tiles.invalid/**", abort)
    return aborted


def wait_for_basemap(page: Any, selector: str = "#map") -> None:
    page.wait_for_selector(f"{selector}[data-basemap=drawn]", timeout=15_000)


def first_paint_ms(page: Any) -> float:
    """Milliseconds from navigation start until the built-in base map was first drawn."""
    marks = page.evaluate("""() => ({drawn: performance.getEntriesByName('resdb-basemap-drawn')[0].startTime,
        start: performance.getEntriesByName('resdb-basemap-start')[0].startTime,
        dom: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd})""")
    record_figure("after_domcontentloaded_ms", marks["drawn"] - marks["dom"])
    return float(marks["drawn"])


def record_figure(name: str, value: float) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    found.setdefault(name, []).append(round(value, 1))
    FIGURES.write_text(json.dumps(found, ensure_ascii=False, indent=1))


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_home_map_with_tiles_blocked_draws_the_town_map(
    live_server: LiveServer, make_page: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=width, height=height, mobile=width < 400)
    aborted = block_tiles(page)
    page.goto(live_server.url + "/")
    if width < 400:
        page.get_by_role("button", name="地図を表示").click()
    wait_for_basemap(page)
    assert aborted, "the page did ask the tile server first"
    notice = page.locator("#map .map-notice")
    expect(notice).to_contain_text(NOTICE_BLOCKED)
    assert notice.get_attribute("role") == "status"
    # no tile images left; the boundary and the 町字 outlines are drawn as vectors
    assert page.locator("#map .leaflet-tile-pane img").count() == 0
    assert page.locator("#map .leaflet-basemap-pane path").count() > 50
    assert "国土数値情報" in page.locator("#map .leaflet-control-attribution").inner_text()
    # the markers still come, on top of the base map
    expect(page.locator("#list-status")).to_contain_text("件あります", timeout=15_000)
    # zoomed in, 町字 names appear (text, not HTML)
    page.locator("#map").focus()
    towns = page.locator("#map .basemap-label--town")
    for _ in range(6):
        if towns.count():
            break
        page.keyboard.press("+")
        page.wait_for_timeout(400)
    expect(towns.first).to_be_visible(timeout=5_000)
    assert towns.first.inner_text().strip()
    record_figure(f"home_blocked_{width}px_ms", first_paint_ms(page))
    violations = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert violations == [], violations
    screenshot(page, f"offline-map-{width}")
    assert page.console_errors == [] or all(
        "tiles.invalid" in e or "ERR_CONNECTION_REFUSED" in e for e in page.console_errors
    )


def test_tiles_off_never_asks_the_tile_server(tiles_off_server: LiveServer, make_page: Any) -> None:
    from playwright.sync_api import expect

    page = make_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(tiles_off_server.url) else None,
    )
    page.goto(tiles_off_server.url + "/")
    wait_for_basemap(page)
    expect(page.locator("#map .map-notice")).to_contain_text(NOTICE_OFF)
    expect(page.locator("#list-status")).to_contain_text("件あります", timeout=15_000)
    record_figure("home_off_1280px_ms", first_paint_ms(page))
    # the municipality's name labels the map at city zoom
    expect(page.locator("#map .basemap-label--municipality", has_text="射水市")).to_have_count(1)
    assert outside == []
    assert page.console_errors == []


def test_detail_page_keeps_its_text_location(live_server: LiveServer, make_page: Any) -> None:
    from playwright.sync_api import expect

    page = make_page(width=390, height=844, mobile=True)
    block_tiles(page)
    page.goto(live_server.url + "/resources/imizu-steppi-cafe")
    wait_for_basemap(page, "#detail-map")
    expect(page.locator("#detail-map .map-notice")).to_contain_text(NOTICE_BLOCKED)
    text = page.locator("#location-text")
    expect(text).to_be_visible()
    assert re.search(r"付近", text.inner_text())
    assert (
        text.get_by_role("link", name="地理院地図で開く")
        .get_attribute("href")
        .startswith("https://maps.gsi.go.jp/#16/")
    )
    assert page.locator("#detail-map .leaflet-basemap-pane path").count() > 5
    violations = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert violations == [], violations


def test_basemap_bytes_are_cached_and_unknown_codes_are_404(live_server: LiveServer) -> None:
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(live_server.url + "/basemap/162116.json") as response:
        body = json.loads(response.read())
        tag = response.headers["ETag"]
    levels = {f["properties"]["level"] for f in body["features"]}
    assert levels == {"municipality", "chiku", "town"}
    assert body["municipality"]["name"].endswith("射水市")
    request = urllib.request.Request(
        live_server.url + "/basemap/162116.json", headers={"If-None-Match": tag}
    )
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request)
    assert not_modified.value.code == 304
    for bad in ("999999", "162117", "abc"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(live_server.url + f"/basemap/{bad}.json")
        assert missing.value.code == 404
