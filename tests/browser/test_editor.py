"""Browser: an editor signs in, changes a schedule row with the UI (add a row with JavaScript) and saves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import TEST_TILE_URL, LiveServer, start_server

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


@pytest.fixture
def editor_server(make_directory: Any) -> Iterator[tuple[LiveServer, Any]]:
    from resdb import accounts
    from resdb.web import create_app

    directory = make_directory("sqlite", "browser-editor")
    directory.create(
        {
            "id": "b-salon",
            "name": "戸破ふれあいサロン",
            "kind": "kayoi",
            "lat": 36.7236,
            "lon": 137.0991,
            "municipality_code": "162116",
            "schedule": [{"weekday": "wed", "weeks": [1, 3], "start": "13:30", "end": "15:30"}],
        },
        actor="fixture",
    )
    accounts.add_user(
        directory.engine, "imizu@example.jp", "editor", PASSWORD, municipality_code="162116"
    )
    app = create_app(
        {
            "DIRECTORY": directory,
            "TILE_URL": TEST_TILE_URL,
            "RATE_LIMIT": None,
            "SECRET_KEY": "browser-editor",
            "SESSION_COOKIE_SECURE": False,
        }
    )
    server = start_server(app)
    yield server, directory
    server.shutdown()


def test_edit_schedule_in_the_browser(
    editor_server: tuple[LiveServer, Any], make_page: Any
) -> None:
    server, directory = editor_server
    page = make_page()
    page.goto(f"{server.url}/editor/listings/b-salon")
    assert "/login" in page.url
    page.fill("input[name=email]", "imizu@example.jp")
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url("**/editor/listings/b-salon")
    # change the first row: Thursday, every week, 14:00–16:00
    page.select_option("#f-schedule-0-weekday", "thu")
    page.uncheck("input[name=schedule-0-weeks][value='1']")
    page.uncheck("input[name=schedule-0-weeks][value='3']")
    page.fill("#f-schedule-0-start", "14:00")
    page.fill("#f-schedule-0-end", "16:00")
    # add a row with the button (JavaScript), fill it, remove one blank row
    rows_before = page.locator("[data-schedule-row]").count()
    page.click("#schedule-add")
    assert page.locator("[data-schedule-row]").count() == rows_before + 1
    new_row = page.locator("[data-schedule-row]").last
    new_row.locator("select").select_option("sat")
    new_row.locator("input[type=checkbox][value='2']").check()
    new_row.locator("input[type=time]").first.fill("10:00")
    new_row.locator("input[type=time]").last.fill("12:00")
    page.locator("[data-schedule-row]").nth(1).locator("[data-remove-row]").click()
    # the map places the point: clicking it fills lat/lon
    assert page.locator("#edit-map.leaflet-container").count() == 1
    page.click("#save-button")
    page.wait_for_url("**/editor/listings/b-salon?saved=1")
    assert page.locator("text=保存しました").count() == 1
    listing = directory.get("b-salon")
    assert listing["schedule"] == [
        {"weekday": "thu", "start": "14:00", "end": "16:00"},
        {"weekday": "sat", "weeks": [2], "start": "10:00", "end": "12:00"},
    ]
    assert listing["version"] == 2
    assert not page.console_errors, page.console_errors
