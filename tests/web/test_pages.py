"""HTML pages: the no-JS list, detail wording, Japanese error pages, sample labels, security headers, escaping."""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

import pytest

from resdb.web.labels import SAMPLE_LABEL, freshness, safe_url, source_label
from tests.web.conftest import EditSetup


class _Scripts(HTMLParser):
    """Collects <script> tags, inline event-handler attributes and style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "script":
            self.scripts.append(values)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if "style" in values:
            self.styles.append(tag)


def parse(html: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(html)
    return parser


PAGES = [
    "/",
    "/search",
    "/search?q=サロン",
    "/resources/imizu-steppi-cafe",
    "/resources/imizu-sample-hibari-salon",
    "/resources/imizu-steppi-cafe/report",
    "/areas?address=射水市戸破",
    "/login",
    "/no-such-page",
]


# -- security headers and no inline script ---------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    PAGES
    + [
        "/api/resources",
        "/api/resources.geojson",
        "/api/openapi.json",
        "/api/resources/nope",
        "/static/css/site.css",
        "/editor/",
    ],
)
def test_security_headers_on_every_response(client: Any, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split("; ")}
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["frame-ancestors"] == ["'none'"]
    assert "https://cyberjapandata.gsi.go.jp" in directives["img-src"]
    assert directives["object-src"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in {"same-origin", "strict-origin-when-cross-origin"}


def test_csp_follows_the_tile_setting(demo_directory: Any) -> None:
    from resdb.web import create_app

    app = create_app(
        {
            "DIRECTORY": demo_directory,
            "SECRET_KEY": "x",
            "TILE_URL": "https://{s}.tile.example.org/{z}/{x}/{y}.png",
        }
    )
    csp = app.test_client().get("/").headers["Content-Security-Policy"]
    assert "https://*.tile.example.org" in csp


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_or_style(client: Any, path: str) -> None:
    html = client.get(path).get_data(as_text=True)
    found = parse(html)
    for script in found.scripts:
        assert script.get("src") or script.get("type") == "application/json", script
    assert not found.handlers, found.handlers
    assert not found.styles, found.styles
    assert '<html lang="ja">' in html
    assert 'class="skip-link" href="#main"' in html


# -- pages ------------------------------------------------------------------------------------------
def test_map_page_passes_config_as_json(client: Any) -> None:
    html = client.get("/").get_data(as_text=True)
    block = re.search(r'<script type="application/json" id="map-config">(.*?)</script>', html, re.S)
    assert block is not None
    config = json.loads(block.group(1))
    assert config["tileUrl"].startswith("https://cyberjapandata.gsi.go.jp/")
    assert "国土地理院" in config["tileAttribution"]
    assert config["geojsonUrl"] == "/api/resources.geojson"
    (lat0, lon0), (lat1, lon1) = config["bounds"]
    assert 36.5 < lat0 < lat1 < 37.0 and 136.9 < lon0 < lon1 < 137.3  # 射水市 by default
    for label in (
        "種別",
        "対象",
        "曜日",
        "今日開催",
        "今週開催",
        "無料",
        "バリアフリー",
        "送迎あり",
        "わたしの地域",
    ):
        assert label in html


def test_search_page_works_without_javascript(client: Any) -> None:
    response = client.get("/search?q=サロン")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "「サロン」の検索結果" in html
    assert 'action="/search" method="get"' in html
    assert "/resources/imizu-sample-hibari-salon" in html
    assert SAMPLE_LABEL in html


def test_search_page_filters_and_paginates(client: Any) -> None:
    first = client.get("/search?municipality=162116").get_data(as_text=True)
    assert 'rel="next"' in first and "page=2" in first
    second = client.get("/search?municipality=162116&page=2")
    assert second.status_code == 200
    assert 'aria-current="page">2<' in second.get_data(as_text=True)
    filtered = client.get("/search?kind=center&municipality=162116").get_data(as_text=True)
    assert filtered.count('class="result"') >= 3
    assert "居場所</span>" not in filtered


def test_search_page_reports_bad_parameters_in_japanese(client: Any) -> None:
    response = client.get("/search?kind=karaoke&page=0")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "条件を確かめてください" in html and "kind（種別）" in html and "page（ページ）" in html


def test_detail_page_shows_schedule_dates_source_and_caution(client: Any) -> None:
    html = client.get("/resources/imizu-steppi-cafe").get_data(as_text=True)
    assert "すてっぴカフェ" in html
    assert "出典: 射水市 重層的支援体制整備事業実施計画" in html
    assert "004_574d9fa843edc779.txt" in html
    assert "最終確認日" in html
    assert "情報の誤りを報告" in html and "/resources/imizu-steppi-cafe/report" in html
    assert 'media="print"' in html
    assert "地理院地図で開く" in html  # the no-JS fallback for the small map


def test_detail_of_sample_is_labelled_with_next_dates(client: Any) -> None:
    html = client.get("/resources/imizu-sample-hibari-salon").get_data(as_text=True)
    assert SAMPLE_LABEL in html and "架空のサンプル" in html
    assert "毎月第1・第3水曜 13:30〜15:30" in html
    # from Wed 2 Dec 2026: the 1st and 3rd Wednesdays
    assert "12月2日（水）13:30" in html and "12月16日（水）13:30" in html
    assert "12月9日（水）" not in html


def test_unknown_resource_is_a_japanese_404(client: Any) -> None:
    response = client.get("/resources/does-not-exist")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "見つかりません" in html and '<html lang="ja">' in html
    assert client.get("/resources/does-not-exist/report").status_code == 404


def test_areas_page_without_javascript(client: Any) -> None:
    html = client.get("/areas", query_string={"address": "射水市戸破"}).get_data(as_text=True)
    assert "戸破" in html and "地域包括支援センター" in html
    unknown = client.get("/areas", query_string={"address": "どこでもない"})
    assert unknown.status_code == 422 and "特定できませんでした" in unknown.get_data(as_text=True)


def test_workspaces_require_sign_in(client: Any) -> None:
    for path in ("/editor/", "/coordinator/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


# -- escaping --------------------------------------------------------------------------------------
HOSTILE = '<script>alert("x")</script>"\'><img src=x onerror=alert(1)>'


def test_hostile_text_is_escaped_everywhere(edit: EditSetup) -> None:
    listing = edit.directory.create(
        {
            "id": "t-xss",
            "name": "サロン" + HOSTILE,
            "kind": "kayoi",
            "lat": 36.73,
            "lon": 137.1,
            "description": HOSTILE,
            "operator": HOSTILE,
            "url": 'https://example.jp/?q="><script>alert(3)</script>',
            "phone": "<b>0766</b>",
            "activities": [HOSTILE],
            "venue": HOSTILE,
            "notes": "</script><script>alert(2)</script>",
        },
        actor="test",
    )
    client = edit.client
    for path in ("/resources/t-xss", "/search?q=サロン", "/resources/t-xss/report"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;alert(" in html, path
        found = parse(html)
        assert not found.handlers and "img" not in found.tags, path
        for script in found.scripts:
            assert script.get("src") or script.get("type") == "application/json", path
    detail = client.get("/resources/t-xss").get_data(as_text=True)
    assert 'href="javascript:' not in detail
    block = re.search(
        r'<script type="application/json" id="map-config">(.*?)</script>', detail, re.S
    )
    assert block is not None and json.loads(block.group(1))["name"] == listing["name"]
    # the map's popups and list are built with textContent from JSON: the API keeps the text as data
    api = client.get("/api/resources/t-xss")
    assert api.mimetype == "application/json" and api.get_json()["name"] == listing["name"]
    geo = client.get("/api/resources.geojson").get_json(force=True)
    assert any(f["properties"]["name"] == listing["name"] for f in geo["features"])
    # the search box echoes the query as an attribute value, escaped
    echoed = client.get("/search", query_string={"q": '"><script>alert(3)</script>'}).get_data(
        as_text=True
    )
    assert "<script>alert(3)" not in echoed and "&#34;&gt;&lt;script&gt;" in echoed


# -- wording helpers --------------------------------------------------------------------------------
def test_freshness_cautions() -> None:
    today = date(2026, 12, 2)
    assert freshness(None, today, 365)["caution"]
    assert freshness("2025-01-01", today, 365)["caution"]
    fresh = freshness("2026-06-01", today, 365)
    assert fresh["caution"] is None and fresh["text"] == "2026年6月1日"


def test_source_labels() -> None:
    assert source_label("003_0dc0c3202cb85c38.txt") == {
        "label": "稲城市 重層的支援体制整備事業実施計画",
        "file": "003_0dc0c3202cb85c38.txt",
    }
    assert (
        source_label("import.csv")["label"] != "import.csv"
    )  # an uploaded file's name is never shown as 出典
    assert source_label(None)["file"] is None


def test_safe_url() -> None:
    assert safe_url("https://example.jp/a?b=1") == "https://example.jp/a?b=1"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url('https://x.jp/"onmouseover=') is None


def test_unexpected_errors_are_japanese_json_or_html(demo_directory: Any) -> None:
    from resdb.web import create_app

    app = create_app({"DIRECTORY": demo_directory, "SECRET_KEY": "x"})

    @app.get("/api/boom")
    def api_boom() -> Any:
        raise RuntimeError("boom")

    @app.get("/boom")
    def page_boom() -> Any:
        raise RuntimeError("boom")

    client = app.test_client()
    api = client.get("/api/boom")
    assert api.status_code == 500
    assert api.get_json()["error"] == {
        "code": "server_error",
        "message": "システムエラーが発生しました",
        "problems": [],
    }
    page = client.get("/boom")
    assert page.status_code == 500 and "システムエラーが発生しました" in page.get_data(as_text=True)
    assert "boom" not in page.get_data(as_text=True)
