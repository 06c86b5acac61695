"""An editor clears the oldest unverified listings of one town page by page (desktop and 390 px): search
first, the queue filtered and paged, verify on the listing's page with the confirmation, back to the queue,
a correction taken field by field, history in Japanese and JST, restore with its 確認日 warning; axe-core."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import TEST_TILE_URL, LiveServer, run_axe, start_server

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


@pytest.fixture
def queue_server(make_directory: Any) -> Iterator[tuple[LiveServer, Any]]:
    from resdb import accounts
    from resdb.demo import load_districts
    from resdb.web import create_app

    directory = make_directory("sqlite", "editor-flow")
    load_districts(directory, ("16211",))
    for n in range(30):
        directory.create(
            {
                "id": f"q-{n:02d}",
                "name": f"確認待ちの通いの場{n:02d}",
                "kind": "kayoi",
                "lat": 36.72 + n / 1000,
                "lon": 137.1,
                "municipality_code": "162116",
                "verified_at": f"2025-{1 + n % 12:02d}-{1 + n // 12:02d}",
                "cost_yen": 100,
                **({"phone": "0766-00-0000"} if n % 3 else {}),
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
            "SECRET_KEY": "editor-flow",
            "SESSION_COOKIE_SECURE": False,
        }
    )
    server = start_server(app)
    yield server, directory
    server.shutdown()


def axe_clean(page: Any) -> None:
    serious = [v for v in run_axe(page) if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_editor_clears_the_oldest_page_by_page(
    queue_server: tuple[LiveServer, Any], make_page: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    server, directory = queue_server
    page = make_page(width=width, height=height, mobile=width < 400)
    page.goto(f"{server.url}/editor/")
    page.fill("input[name=email]", "imizu@example.jp")
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url("**/editor/")
    # search first: the search box is above the queue summary, and the page is short
    search_top = page.get_by_label("名称・住所・IDで探す").bounding_box()["y"]
    assert (
        search_top
        < page.get_by_role("link", name=re.compile("確認が必要な掲載")).bounding_box()["y"]
    )
    assert page.evaluate("document.documentElement.scrollHeight") < 6000
    axe_clean(page)

    page.get_by_role("link", name=re.compile("確認が必要な掲載")).first.click()
    page.get_by_label("種別").select_option("kayoi")
    page.get_by_label(re.compile("連絡先なし")).check()
    page.get_by_role("button", name="絞り込む").click()
    expect(page.locator("#queue-status")).to_contain_text("10件")
    page.get_by_label(re.compile("指定しない")).check()
    page.get_by_role("button", name="絞り込む").click()
    expect(page.locator("#queue-status")).to_contain_text("30件（1 / 2ページ）")
    axe_clean(page)
    oldest = page.locator("table.queue tbody tr").first.locator("a")
    name = oldest.inner_text()
    oldest.click()
    # verify on the listing's page: the box must be ticked (the browser says so before anything is sent)
    expect(page.get_by_role("heading", name="内容の確認")).to_be_visible()
    page.get_by_role("button", name="確認しました").click()
    assert "verified=1" not in page.url
    page.get_by_label("上の内容が今も正しいことを確かめました").check()
    page.get_by_role("button", name="確認しました").click()
    expect(page.locator("#verified-notice")).to_contain_text("確認日を")
    axe_clean(page)
    page.get_by_role("link", name="確認が必要な掲載の一覧に戻る").click()
    expect(page.locator("#queue-status")).to_contain_text("29件")
    assert name not in page.locator("table.queue").inner_text()
    page.get_by_role("link", name="次のページ").click()
    expect(page.locator("#queue-status")).to_contain_text("（2 / 2ページ）")
    assert page.locator("table.queue tbody tr").count() == 4
    assert directory.get("q-00")["verified_at"] != "2025-01-01"


def test_history_restore_warns_and_keeps_the_check_date(
    queue_server: tuple[LiveServer, Any], make_page: Any
) -> None:
    from playwright.sync_api import expect

    server, directory = queue_server
    directory.update(
        "q-05", {"cost_yen": 500, "group_size": "large"}, "imizu@example.jp", expected_version=None
    )
    directory.verify("q-05", "imizu@example.jp")
    checked = directory.get("q-05")["verified_at"]
    page = make_page(width=390, height=844, mobile=True)
    page.goto(f"{server.url}/editor/listings/q-05/history")
    page.fill("input[name=email]", "imizu@example.jp")
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url("**/history")
    main = page.locator("main")
    expect(main).to_contain_text("大人数")
    assert "large" not in main.inner_text() and "+00:00" not in main.inner_text()
    warning = page.locator("#restore-warning-1")
    expect(warning).to_contain_text("確認日も")
    axe_clean(page)
    page.locator(
        "form.restore-form", has=page.locator("input[name=to_version][value='1']")
    ).get_by_role("button", name=re.compile("この版に戻す")).click()
    expect(page.locator("#restored-notice")).to_contain_text("元に戻しました")
    listing = directory.get("q-05")
    assert listing["cost_yen"] == 100 and listing["verified_at"] == checked
