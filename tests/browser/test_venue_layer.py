"""The map's optional venue layer in headless Chromium: buildings appear only when 「会場（建物）も表示」 is ticked."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_public_pages import wait_for_map

pytestmark = pytest.mark.browser


def test_venues_are_an_optional_map_layer(live_server: Any, make_page: Any) -> None:
    from playwright.sync_api import expect

    page = make_page()
    page.goto(live_server.url + "/")
    before = wait_for_map(page)
    assert "会場（建物）" not in " ".join(page.locator("#visible-list .tag").all_inner_texts())
    page.locator("#search-form summary").click()
    page.get_by_label("会場（建物）も表示").check()
    expect(page.locator("#list-status")).not_to_contain_text(
        f"に {before} 件あります", timeout=10_000
    )
    after = wait_for_map(page)
    assert after > before
    assert "venues=1" in page.url
    page.get_by_label("種別").select_option("venue")
    expect(page.locator("#list-status")).not_to_contain_text(
        f"に {after} 件あります", timeout=10_000
    )
    wait_for_map(page)
    tags = page.locator("#visible-list .tag").all_inner_texts()
    assert tags and set(tags) == {"会場（建物）"}
    assert page.console_errors == []
