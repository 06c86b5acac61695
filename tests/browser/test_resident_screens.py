"""A resident on the map and list (desktop and a 390 px phone): next dates in the list and popups, the
list-first phone view, popups by keyboard, hidden buttons that stay hidden, the correction form."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, run_axe

pytestmark = pytest.mark.browser

SIZES = [(1280, 900), (390, 844)]


def open_map(page: Any, server: LiveServer, path: str = "/") -> None:
    from playwright.sync_api import expect

    page.goto(server.url + path)
    expect(page.locator("#list-status")).to_contain_text("件あります", timeout=15_000)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_list_item_and_popup_show_next_date_and_cost(
    live_server: LiveServer, make_page: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=width, height=height, mobile=width < 400)
    open_map(page, live_server, "/?q=戸破ふれあいサロン")
    item = page.locator("#visible-list li", has_text="戸破ふれあいサロン").first
    when = item.locator(".visible-list__when")
    expect(when).to_contain_text(re.compile(r"次回 \d+月\d+日（.）\d\d:\d\d"))
    expect(when).to_contain_text("費用")
    item.get_by_role("button", name=re.compile("地図で表示")).click()
    popup = page.locator(".leaflet-popup-content")
    expect(popup.locator(".popup__when")).to_have_text(when.inner_text())
    # the popup is clear of the zoom control
    zoom = page.locator(".leaflet-control-zoom").bounding_box()
    box = page.locator(".leaflet-popup").bounding_box()
    overlap_x = min(zoom["x"] + zoom["width"], box["x"] + box["width"]) - max(zoom["x"], box["x"])
    overlap_y = min(zoom["y"] + zoom["height"], box["y"] + box["height"]) - max(zoom["y"], box["y"])
    assert overlap_x <= 0 or overlap_y <= 0, (zoom, box)


def test_phone_shows_the_list_first_and_a_map_toggle(
    live_server: LiveServer, make_page: Any
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=390, height=844, mobile=True)
    open_map(page, live_server)
    toggle = page.get_by_role("button", name="地図を表示")
    expect(toggle).to_be_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    list_top = page.locator("#visible-list").bounding_box()["y"]
    assert list_top < 844 * 1.6, "the list starts near the top, not a screen below the map"
    assert (
        not page.locator("#map").is_visible()
        or page.locator("#map-pane").bounding_box()["height"] < 5
    )
    first = page.locator("#visible-list li a").first
    expect(first).to_be_visible()
    toggle.click()
    expect(page.locator("#map")).to_be_visible()
    assert page.locator("#map").bounding_box()["height"] > 250
    expect(page.get_by_role("button", name="地図を閉じて一覧だけにする")).to_have_attribute(
        "aria-expanded", "true"
    )
    serious = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious
    # desktop has no toggle
    desk = make_page()
    open_map(desk, live_server)
    expect(desk.locator("#map-toggle")).to_be_hidden()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_popup_by_keyboard_focus_esc_and_tab(
    live_server: LiveServer, make_page: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=width, height=height, mobile=width < 400)
    open_map(page, live_server, "/?q=戸破ふれあいサロン")
    button = page.locator("#visible-list li button").first
    button.focus()
    page.keyboard.press("Enter")
    popup = page.locator(".leaflet-popup-content")
    expect(popup).to_be_visible()
    # focus moved into the popup, onto its link
    expect(popup.locator("a")).to_be_focused()
    page.keyboard.press("Escape")
    expect(popup).to_have_count(0)
    expect(button).to_be_focused()  # back where the resident was
    # a marker opened with Enter: focus goes into the popup; Tab reaches its link and the close button
    if width < 400:
        return
    marker = page.locator(".leaflet-marker-icon.pin").first
    marker.focus()
    page.keyboard.press("Enter")
    expect(popup.locator("a")).to_be_focused()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.closest('.leaflet-popup') !== null")
    assert focused
    page.keyboard.press("Escape")
    expect(popup).to_have_count(0)
    expect(marker).to_be_focused()


def test_hidden_buttons_stay_hidden(live_server: LiveServer, make_page: Any) -> None:
    from playwright.sync_api import expect

    page = make_page(javascript=False)
    page.goto(live_server.url + "/")
    expect(page.locator("#use-location")).to_be_hidden()  # no JavaScript: no location button
    page = make_page()
    open_map(page, live_server, "/?q=戸破ふれあいサロン")
    count = page.locator("#visible-list li").count()
    assert count < 20
    expect(page.get_by_role("button", name="さらに表示")).to_be_hidden()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_correction_form_focus_prefill_and_reference(
    live_server: LiveServer, make_page: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=width, height=height, mobile=width < 400)
    page.goto(live_server.url + "/resources/imizu-sample-hibari-salon/report")
    schedule = page.get_by_label("日時")
    assert schedule.input_value() != ""  # the current schedule, to be edited
    page.get_by_role("button", name="送る").click()  # nothing written: refused
    summary = page.locator("#form-problems")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("内容を書いてください")
    summary.get_by_role("link").first.click()
    expect(page.get_by_label("どこが違っていますか（必須）")).to_be_focused()
    serious = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious
    page.get_by_label("どこが違っていますか（必須）").fill("開始時間が変わりました")
    page.get_by_role("button", name="送る").click()
    expect(page.locator(".reference")).to_have_text(re.compile(r"^R-\d{6}$"))


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_areas_answers_whom_to_call_about_a_parent(
    live_server: LiveServer, make_page: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    page = make_page(width=width, height=height, mobile=width < 400)
    page.goto(live_server.url + "/areas")
    page.get_by_label("住所（市町村名から）").fill("富山県射水市戸破2475")
    page.get_by_role("button", name="調べる").click()
    first = page.locator(".first-contact")
    expect(first.get_by_role("heading", name="まずはここ")).to_be_visible()
    expect(first).to_contain_text("小杉・下地域包括支援センター")
    expect(first.locator("a[href^='tel:']").first).to_be_visible()
    page.get_by_role("navigation", name="困りごとの種類").get_by_role(
        "link", name="高齢・介護"
    ).click()
    elderly = page.locator("#topic-elderly")
    expect(elderly).to_contain_text("総合相談")
    expect(elderly).to_contain_text("受付時間")
    serious = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious
    # from the map page's わたしの地域, one link leads to the same grouped answer
    page.goto(live_server.url + "/")
    page.get_by_label("住所（市町村名から）").fill("射水市戸破")
    page.get_by_role("button", name="調べる").click()
    page.get_by_role("link", name=re.compile("困りごとの種類ごとに窓口を見る")).click()
    expect(page.locator(".first-contact")).to_contain_text("地域包括支援センター")
