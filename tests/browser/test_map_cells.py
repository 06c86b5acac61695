"""The map's server-side cells in headless Chromium: count bubbles at low zoom, a click zooms into the cell,
and at street zoom the listings come as markers with popups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import TEST_TILE_URL, LiveServer, start_server
from tests.browser.test_public_pages import wait_for_map

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def cells_server(demo_directory: Any) -> Iterator[LiveServer]:
    """The demo with cells from 5 listings in view on (the demo is small)."""
    from resdb.web import create_app

    app = create_app(
        {
            "DIRECTORY": demo_directory,
            "TILE_URL": TEST_TILE_URL,
            "RATE_LIMIT": None,
            "SECRET_KEY": "browser-cells",
            "MAP_POINTS_UP_TO": 5,
        }
    )
    server = start_server(app)
    yield server
    server.shutdown()


def test_cells_at_low_zoom_markers_after_zooming_in(cells_server: Any, make_page: Any) -> None:
    from playwright.sync_api import expect

    page = make_page()
    responses: list[Any] = []
    page.on(
        "response",
        lambda response: responses.append(response) if "zoom=" in response.url else None,
    )
    page.goto(cells_server.url + "/")
    total = wait_for_map(page)
    cells = page.locator(".leaflet-marker-icon.cluster--cell")
    expect(cells.first).to_be_visible(timeout=15_000)
    assert total > 5
    # the bubbles carry the server's counts and a name for screen readers
    first = cells.first
    assert "件のまとまり" in (first.get_attribute("title") or "")
    assert page.locator("#visible-list li").count() > 0  # the list beside the map still lists
    answered = [r for r in responses if r.ok and "resources.geojson" in r.url]
    assert any(r.json().get("clustered") for r in answered)

    pins = page.locator(".leaflet-marker-icon.pin")
    clicks = 0
    while cells.count() and clicks < 8:  # click into a cell until the view holds markers only
        cells.first.click()
        clicks += 1
        page.wait_for_timeout(900)
        wait_for_map(page)
    expect(pins.first).to_be_visible(timeout=10_000)
    assert clicks >= 1 and cells.count() == 0
    zooms = [int(r.url.split("zoom=")[1].split("&")[0]) for r in responses]
    assert max(zooms) > zooms[0]
    pins.first.click()
    expect(page.locator(".leaflet-popup-content a")).to_be_visible()
    assert page.console_errors == []


def _imizu_directory(make_directory: Any, name: str, listings: list[dict[str, Any]]) -> Any:
    """A fresh SQLite directory with 射水市's districts and `listings` published."""
    from resdb.demo import load_districts

    directory = make_directory("sqlite", name=name)
    load_districts(directory, ("16211",))
    for listing in listings:
        directory.create(listing, actor="t")
    return directory


def test_map_says_it_is_getting_ready_then_loads_by_itself(
    make_directory: Any, make_page: Any
) -> None:
    """While another worker of the host builds the map's columns the map answers 準備中 (503); the page
    says so, asks again after the server's Retry-After and then shows the listings."""
    from playwright.sync_api import expect

    from resdb.web import create_app
    from resdb.web.features import map_store

    directory = _imizu_directory(
        make_directory,
        "map-ready",
        [
            {
                "name": f"準備中テストのサロン{n}",
                "kind": "kayoi",
                "municipality_code": "162116",
                "lat": 36.72 + n * 0.002,
                "lon": 137.09,
            }
            for n in range(3)
        ],
    )
    lock = map_store(directory).exclusive()
    lock.__enter__()  # another worker is building the host's map snapshot
    try:
        app = create_app(
            {
                "DIRECTORY": directory,
                "TILE_URL": TEST_TILE_URL,
                "RATE_LIMIT": None,
                "SECRET_KEY": "browser-ready",
                "MAP_WAIT": 0.0,
            }
        )
        server = start_server(app)
        page = make_page()
        page.goto(server.url + "/")
        expect(page.locator("#list-status")).to_contain_text("準備中", timeout=15_000)
        expect(page.locator("#list-status")).to_contain_text("秒後にもう一度読み込みます")
    finally:
        lock.__exit__(None, None, None)  # the build goes ahead: the page retries by itself
    assert wait_for_map(page) == 3
    server.shutdown()


def test_map_list_says_when_search_has_not_seen_recent_changes(
    make_directory: Any, make_page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the host rebuilds its search index after a very large backlog, a map search answers from
    the old index: the list beside the map says how many changes it has not seen, and stops saying so
    once the rebuild is in."""
    from playwright.sync_api import expect

    from resdb import changelog
    from resdb.web import create_app

    directory = _imizu_directory(
        make_directory,
        "map-pending",
        [
            {
                "name": f"ひまわり農園{n}",
                "kind": "work_trial",
                "lat": 36.72,
                "lon": 137.09 + n / 500,
            }
            for n in range(3)
        ],
    )
    monkeypatch.setattr(changelog, "RECENT_LIMIT", 5)
    monkeypatch.setattr(changelog, "BULK_REINDEX_THRESHOLD", 20)
    app = create_app(
        {
            "DIRECTORY": directory,
            "TILE_URL": TEST_TILE_URL,
            "RATE_LIMIT": None,
            "SECRET_KEY": "browser-pending",
        }
    )
    directory.serving = directory.batch_commits = True  # as under `resdb serve`
    server = start_server(app)
    page = make_page()
    status = page.locator("#list-status")
    rows = [
        (
            n,
            {
                "name": f"ひまわり農園{n}",
                "kind": "work_trial",
                "lat": 36.73,
                "lon": 137.09 + n / 500,
            },
        )
        for n in range(3, 33)
    ]
    with directory.index.rebuild_lock.hold(wait=0) as got:  # a rebuild runs on this host
        assert got
        assert not directory.import_records(rows, actor="t", source_name="bulk.csv").problems
        page.goto(server.url + "/?q=ひまわり農園")
        expect(status).to_contain_text("3 件あります", timeout=15_000)
        expect(status).to_contain_text("最近の変更 30 件がまだこの結果に反映されていません")
    assert directory.rebuild_in_background()
    directory.background.close(timeout=60)
    page.reload()
    expect(status).to_contain_text("33 件あります", timeout=15_000)
    expect(status).not_to_contain_text("反映されていません")
    assert page.console_errors == []
    server.shutdown()
