"""Web fixtures: the app over the shared demo (read-only), and over a fresh directory with accounts and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

# 2026-12-02 is the first Wednesday of December (no public holiday).
FIXED_TODAY = date(2026, 12, 2)


@pytest.fixture(scope="session")
def demo_app(demo_directory: Any) -> Any:
    from resdb.web import create_app

    app = create_app(
        {
            "DIRECTORY": demo_directory,
            "TESTING": True,
            "RATE_LIMIT": None,
            "SECRET_KEY": "web-tests",
            "TODAY": lambda: FIXED_TODAY,
        }
    )
    return app


@pytest.fixture
def client(demo_app: Any) -> Any:
    return demo_app.test_client()


@dataclass
class Tokens:
    admin: str
    editor: str
    editor_imizu: str
    editor_inagi: str
    editor_operator: str
    coordinator: str

    def header(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, who)}"}


LISTINGS: list[dict[str, Any]] = [
    {
        "id": "t-salon",
        "name": "戸破ふれあいサロン",
        "kind": "kayoi",
        "lat": 36.7236,
        "lon": 137.0991,
        "municipality_code": "162116",
        "targets": ["elderly"],
        "operator": "戸破地区社協",
        "schedule": [{"weekday": "wed", "weeks": [1, 3], "start": "13:30", "end": "15:30"}],
        "cost_yen": 100,
        "barrier_free": True,
        "pickup": False,
        "verified_at": "2026-06-01",
        "source": "004_574d9fa843edc779.txt",
    },
    {
        "id": "t-cafe",
        "name": "すてっぴカフェ",
        "kind": "ibasho",
        "lat": 36.7210,
        "lon": 137.0970,
        "municipality_code": "162116",
        "targets": ["hikikomori", "youth"],
        "operator": "射水市社会福祉協議会",
        "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
        "cost_yen": 0,
        "barrier_free": False,
        "pickup": True,
    },
    {
        "id": "t-shokudo",
        "name": "みんなの子ども食堂",
        "kind": "shokudo",
        "lat": 36.7600,
        "lon": 137.1200,
        "municipality_code": "162116",
        "targets": ["children", "parents"],
        "schedule": [{"weekday": "sat", "weeks": [2, 4], "start": "11:00", "end": "13:00"}],
        "cost_yen": 300,
        "is_sample": True,
        "source": "sample",
    },
    {
        "id": "t-inagi",
        "name": "稲城の体操クラブ",
        "kind": "kayoi",
        "lat": 35.6380,
        "lon": 139.5046,
        "municipality_code": "132250",
        "targets": ["elderly"],
        "cost_yen": 0,
        "schedule": [{"weekday": "wed", "start": "10:00", "end": "11:00"}],
    },
]


@dataclass
class EditSetup:
    app: Any
    client: Any
    directory: Any
    tokens: Tokens


@pytest.fixture
def edit(directory: Any) -> Iterator[EditSetup]:
    """A fresh directory (each backend) with four listings, an app over it and a token per role/scope."""
    from resdb import accounts
    from resdb.web import create_app

    for raw in LISTINGS:
        directory.create(dict(raw), actor="fixture")
    engine = directory.engine

    def token(email: str, role: str, **scope: Any) -> str:
        accounts.add_user(engine, email, role, None, **scope)
        return accounts.create_token(engine, email)

    tokens = Tokens(
        admin=token("admin@example.jp", "admin"),
        editor=token("editor@example.jp", "editor"),
        editor_imizu=token("imizu@example.jp", "editor", municipality_code="162116"),
        editor_inagi=token("inagi@example.jp", "editor", municipality_code="132250"),
        editor_operator=token("op@example.jp", "editor", operator="射水市社会福祉協議会"),
        coordinator=token("coord@example.jp", "coordinator"),
    )
    app = create_app(
        {
            "DIRECTORY": directory,
            "TESTING": True,
            "RATE_LIMIT": None,
            "SECRET_KEY": "web-tests",
            "TODAY": lambda: FIXED_TODAY,
        }
    )
    yield EditSetup(app, app.test_client(), directory, tokens)


PASSWORD = "correct horse battery staple"
_CSRF = __import__("re").compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: Any, path: str = "/login") -> str:
    """The CSRF token a page's form carries (read like a browser would)."""
    html = client.get(path).get_data(as_text=True)
    match = _CSRF.search(html)
    assert match, f"no csrf_token on {path}"
    return match.group(1)


@dataclass
class StaffSetup:
    app: Any
    directory: Any

    def client(self) -> Any:
        return self.app.test_client()

    def login(self, email: str, password: str = PASSWORD) -> Any:
        """A fresh browser-like client signed in as `email`."""
        client = self.app.test_client()
        response = client.post(
            "/login", data={"email": email, "password": password, "csrf_token": csrf_of(client)}
        )
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        return client


@pytest.fixture
def staff(directory: Any) -> StaffSetup:
    """A fresh directory with listings and password accounts: admin, editors (射水市 / 稲城市), coordinator."""
    from resdb import accounts
    from resdb.web import create_app

    for raw in LISTINGS:
        directory.create(dict(raw), actor="fixture")
    engine = directory.engine
    accounts.add_user(engine, "admin@example.jp", "admin", PASSWORD)
    accounts.add_user(engine, "imizu@example.jp", "editor", PASSWORD, municipality_code="162116")
    accounts.add_user(engine, "inagi@example.jp", "editor", PASSWORD, municipality_code="132250")
    accounts.add_user(engine, "coord@example.jp", "coordinator", PASSWORD)
    accounts.add_user(engine, "coord2@example.jp", "coordinator", PASSWORD)
    app = create_app(
        {
            "DIRECTORY": directory,
            "TESTING": True,
            "RATE_LIMIT": None,
            "SECRET_KEY": "web-tests",
            "TODAY": lambda: FIXED_TODAY,
            "SESSION_COOKIE_SECURE": False,
        }
    )
    return StaffSetup(app, directory)
