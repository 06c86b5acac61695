"""Host and supporter pages on a phone (390 px, headless Chromium): a host reports open places, accepts a
referral and records two visits; a 民生委員 sends a 相談依頼シート that lands in the serving center's queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import TEST_TILE_URL, LiveServer, run_axe, screenshot, start_server

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844, "mobile": True}


@pytest.fixture
def phone_server(make_directory: Any) -> Iterator[LiveServer]:
    """射水市 and 稲城市 listings, a saved case with a referral to 戸破地区社協, and the accounts."""
    from resdb import accounts
    from resdb.demo import load_districts
    from resdb.services import Services
    from resdb.web import create_app
    from tests.web.conftest import FIXED_TODAY, LISTINGS
    from tests.web.test_hosts import INAGI_CENTERS

    directory = make_directory("sqlite", "phone")
    load_districts(directory, ("16211", "13225"))
    for raw in LISTINGS + INAGI_CENTERS:
        directory.create(dict(raw), actor="fixture")
    engine = directory.engine
    coordinator = accounts.add_user(engine, "coord@example.jp", "coordinator", PASSWORD)
    accounts.add_user(engine, "salon@example.jp", "host", PASSWORD, operator="戸破地区社協")
    accounts.add_user(
        engine, "minsei@example.jp", "supporter", PASSWORD, municipality_code="132250"
    )
    accounts.add_user(engine, "hirao@example.jp", "coordinator", PASSWORD, window="t-hirao")
    services = Services(directory)
    case = services.save_case(
        coordinator,
        pseudonym="Aさん",
        legal_basis="consent",
        person={"home": {"lat": 36.7236, "lon": 137.0991}},
        proposals=[{"resource_id": "t-salon", "score": 0.9}],
    )
    services.send_referral(
        coordinator,
        case["id"],
        case["placements"][0]["id"],
        pseudonym="Aさん",
        proposed_dates="12月9日（水）13:30",
        helps="耳が遠いので正面から話してください",
        contact_route="コーディネーターの電話へ",
        confirmed=True,
    )
    app = create_app(
        {
            "DIRECTORY": directory,
            "TILE_URL": TEST_TILE_URL,
            "RATE_LIMIT": None,
            "SECRET_KEY": "phone",
            "SESSION_COOKIE_SECURE": False,
            "TODAY": lambda: FIXED_TODAY,
        }
    )
    server = start_server(app)
    server.case_id = case["id"]  # type: ignore[attr-defined]
    yield server
    server.shutdown()


def sign_in(page: Any, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form[action^='/login'] button[type=submit]").first.click()
    page.wait_for_load_state()


def fits_the_phone(page: Any) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"{page.url} scrolls sideways ({width}px)"


def no_serious_axe(page: Any) -> None:
    violations = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert not violations, violations


def test_host_on_a_phone(phone_server: LiveServer, make_page: Any) -> None:
    page = make_page(**PHONE)
    sign_in(page, phone_server, "salon@example.jp")
    assert page.url.endswith("/host/")
    fits_the_phone(page)
    no_serious_axe(page)
    page.fill("#open-t-salon", "2")
    page.locator("#listing-t-salon button[type=submit]").click()
    page.wait_for_load_state()
    assert "受け入れ可能な人数を報告しました" in page.inner_text("main")
    assert "今月の受け入れ可能: 2人" in page.inner_text("#listing-t-salon")
    assert "受け入れ先が報告（" in page.inner_text(
        "#listing-t-salon"
    )  # the date it was reported, and its age
    page.locator("#referrals a").first.click()
    page.wait_for_load_state()
    assert "耳が遠いので正面から話してください" in page.inner_text("main")
    fits_the_phone(page)
    no_serious_axe(page)
    page.check("input[name=answer][value=accept]")
    page.locator("form[action$='/answer'] button[type=submit]").click()
    page.wait_for_load_state()
    assert page.inner_text("#referral-answer").startswith("受け入れ可")
    for _ in range(2):
        page.locator("form[action$='/attended'] button[type=submit]").click()
        page.wait_for_load_state()
    assert page.inner_text("#attended") == "2 回"
    assert page.inner_text("#referral-status") == "見学"
    screenshot(page, "host-referral-390")
    assert not page.console_errors  # type: ignore[attr-defined]
    # the coordinator sees it on the case
    desk = make_page()
    sign_in(desk, phone_server, "coord@example.jp")
    desk.goto(f"{phone_server.url}/coordinator/cases/{phone_server.case_id}")  # type: ignore[attr-defined]
    text = desk.inner_text("main")
    assert "受け入れ可" in text and "今月の受け入れ可能: 2人" in text
    assert desk.inner_text(".referral-attended") == "2"


def test_supporter_sheet_on_a_phone(phone_server: LiveServer, make_page: Any) -> None:
    page = make_page(**PHONE)
    sign_in(page, phone_server, "minsei@example.jp")
    assert page.url.endswith("/supporter/")
    fits_the_phone(page)
    no_serious_axe(page)
    page.fill("#area", "稲城市平尾一丁目")
    page.fill("#observed", "郵便物がたまっていて、夜も明かりがつかない")
    page.check("input[name=consent][value=not_yet]")
    page.fill("#supporter_contact", "090-0000-0000")
    page.locator("#sheet-form button[type=submit]").click()
    page.wait_for_load_state()
    assert "?" not in page.url.split("/supporter/")[1] or "郵便" not in page.url
    assert "シートを送りました" in page.inner_text("#sent-notice")
    assert "地域包括支援センターひらお" in page.inner_text(
        "main"
    ) and "受け付けました" in page.inner_text("main")
    assert "郵便物" not in page.inner_text("main")
    screenshot(page, "supporter-sheet-390")
    # the serving center's queue, on a phone too
    window = make_page(**PHONE)
    sign_in(window, phone_server, "hirao@example.jp")
    window.goto(phone_server.url + "/window/")
    window.locator("#queue a").first.click()
    window.wait_for_load_state()
    assert "郵便物がたまっていて" in window.inner_text("main")
    fits_the_phone(window)
    no_serious_axe(window)
