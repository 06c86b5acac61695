"""The coordinator desk in headless Chromium: sign in, fill the matching form, see proposals on a list and
a map, open the print sheet (a new tab, from the same POSTed form: nothing in the URL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import TEST_TILE_URL, LiveServer, run_axe, screenshot, start_server

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"


@pytest.fixture
def desk_server(make_directory: Any) -> Iterator[LiveServer]:
    """A small 射水市 directory (the web-test listings) with a coordinator account, served over HTTP."""
    from resdb import accounts
    from resdb.demo import load_districts
    from resdb.web import create_app
    from tests.web.conftest import FIXED_TODAY, LISTINGS

    directory = make_directory("sqlite", "desk")
    load_districts(directory, ("16211",))
    for raw in LISTINGS:
        directory.create(dict(raw), actor="fixture")
    accounts.add_user(directory.engine, "coord@example.jp", "coordinator", PASSWORD)
    app = create_app(
        {
            "DIRECTORY": directory,
            "TILE_URL": TEST_TILE_URL,
            "RATE_LIMIT": None,
            "SECRET_KEY": "desk",
            "SESSION_COOKIE_SECURE": False,
            "TODAY": lambda: FIXED_TODAY,
        }
    )
    server = start_server(app)
    yield server
    server.shutdown()


def test_coordinator_matches_and_prints(desk_server: LiveServer, make_page: Any) -> None:
    from playwright.sync_api import expect

    page = make_page()
    page.goto(desk_server.url + "/coordinator/match")
    page.fill("#email", "coord@example.jp")
    page.fill("#password", PASSWORD)
    page.locator(
        "form[action='/login'] button[type=submit], form[action^='/login'] button[type=submit]"
    ).first.click()
    expect(page.locator("h1")).to_contain_text("場所を探す")

    page.get_by_label("健康・介護予防").check()
    page.get_by_label("仲間・交流").check()
    page.fill("#interests", "体操、手芸")
    page.get_by_text("時間を細かく指定する").click()  # exact times, below the week grid
    page.select_option("#avail_weekday_0", "wed")
    page.fill("#avail_start_0", "13:00")
    page.fill("#avail_end_0", "16:00")
    page.select_option("#mobility", "walk")
    page.fill("#max_minutes", "20")
    page.fill("#home_district", "戸破")
    page.fill("#age", "82")
    page.get_by_label("高齢者").check()
    page.fill("#budget_yen", "300")
    page.get_by_role("button", name="提案を見る").click()

    expect(page.locator("h1")).to_contain_text("提案")
    assert "?" not in page.url and re.search(
        r"/coordinator/r/[A-Za-z0-9_-]{43}$", page.url
    )  # PRG: a stored result
    first = page.locator(".proposal").first
    expect(first).to_contain_text("戸破ふれあいサロン")
    expect(first).to_contain_text("次回 12月2日")
    expect(first).to_contain_text("徒歩で約")
    page.wait_for_selector("#desk-map .desk-pin")
    assert page.locator("#desk-map .desk-pin").count() >= 1
    violations = [v for v in run_axe(page) if v["impact"] in ("serious", "critical")]
    assert not violations, violations
    screenshot(page, "desk-proposals")

    first.get_by_label("この場所を選ぶ（比べる・シート・保存）").check()
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="印刷用の提案シート").click()
    sheet = opened.value
    sheet.wait_for_load_state()
    expect(sheet.locator("h1")).to_contain_text("あなたに合いそうな場所のご案内")
    expect(sheet.locator(".sheet__place")).to_have_count(1)
    expect(sheet.locator(".sheet__place")).to_contain_text("毎月第1・第3水曜")
    expect(sheet.locator(".sheet__place")).to_contain_text("12月2日（水）13:30")
    assert "?" not in sheet.url and "体操" not in sheet.url
    assert not page.console_errors, page.console_errors
    screenshot(sheet, "desk-sheet")
