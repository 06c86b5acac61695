"""Browser-test fixtures: a real server in a thread over the demo, headless Chromium with the network cut off."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_JS = Path(__file__).parent / "vendor" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "bench" / "out" / "screenshots"
# A 1×1 transparent PNG served for every outside tile request.
EMPTY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
AXE_PATH = (
    "/__tests__/axe.min.js"  # served by the browser context itself (same origin: CSP allows it)
)
TEST_TILE_URL = "https://tiles.invalid/{z}/{x}/{y}.png"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason="/usr/bin/chromium is not installed (run scripts/install-browser)"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@dataclass
class LiveServer:
    url: str
    app: Any
    shutdown: Callable[[], None]


def start_server(app: Any) -> LiveServer:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()

    def shutdown() -> None:
        server.shutdown()
        thread.join(timeout=5)

    return LiveServer(f"http://127.0.0.1:{server.server_port}", app, shutdown)


@pytest.fixture(scope="session")
def live_server(demo_directory: Any) -> Iterator[LiveServer]:
    """The demo served over HTTP on a free port (rate limit off: the tests load pages quickly)."""
    from resdb.web import create_app

    app = create_app(
        {
            "DIRECTORY": demo_directory,
            "TILE_URL": TEST_TILE_URL,
            "RATE_LIMIT": None,
            "SECRET_KEY": "browser-tests",
        }
    )
    server = start_server(app)
    yield server
    server.shutdown()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (run scripts/install-browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _route_outside(route: Any) -> None:
    """Only the live server is reachable: outside images get an empty PNG, anything else is refused."""
    request = route.request
    parts = urlsplit(request.url)
    host = parts.hostname
    if parts.path == AXE_PATH:
        route.fulfill(status=200, content_type="text/javascript", body=AXE_JS.read_bytes())
    elif host in {"127.0.0.1", "localhost"} or request.url.startswith(("data:", "blob:")):
        route.continue_()
    elif request.resource_type == "image":
        route.fulfill(status=200, content_type="image/png", body=EMPTY_PNG)
    else:
        route.abort()


@pytest.fixture
def make_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Factory for pages in fresh contexts (viewport, JavaScript on/off); console errors are collected."""
    contexts: list[Any] = []

    def factory(
        *, width: int = 1280, height: int = 900, javascript: bool = True, mobile: bool = False
    ) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            java_script_enabled=javascript,
            locale="ja-JP",
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=2 if mobile else 1,
        )
        context.route("**/*", _route_outside)
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []  # type: ignore[attr-defined]
        page.on(
            "console",
            lambda message: (
                page.console_errors.append(message.text) if message.type == "error" else None
            ),
        )  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))  # type: ignore[attr-defined]
        return page

    yield factory
    for context in contexts:
        context.close()


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the current page (WCAG 2.x A/AA rules)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    page.add_script_tag(url=origin + AXE_PATH)
    return page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
        }"""
    )


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
