"""Rate limits that fit offices: staff behind one address are limited per account, anonymous clients per IP,
and X-Forwarded-For is believed only from configured proxies."""

from __future__ import annotations

from typing import Any

import pytest

from resdb import config
from resdb.web.security import client_ip, parse_proxies
from tests.web.conftest import FIXED_TODAY, PASSWORD

OFFICE = "203.0.113.7"


def _app(directory: Any, **settings: Any) -> Any:
    from resdb.web import create_app

    return create_app(
        {
            "DIRECTORY": directory,
            "TESTING": True,
            "SECRET_KEY": "t",
            "TODAY": lambda: FIXED_TODAY,
            "SESSION_COOKIE_SECURE": False,
            **settings,
        }
    )


def _search(client: Any, ip: str = OFFICE, **headers: str) -> int:
    return client.get(
        "/api/resources?q=サロン", environ_base={"REMOTE_ADDR": ip}, headers=headers
    ).status_code


def test_staff_behind_one_address_are_not_throttled_together(staff: Any) -> None:
    app = _app(staff.directory, RATE_LIMIT=(3, 0.001), STAFF_RATE_LIMIT=(5, 0.001))
    from resdb import accounts

    tokens = [
        accounts.create_token(staff.directory.engine, email)
        for email in ("imizu@example.jp", "inagi@example.jp", "coord@example.jp")
    ]
    client = app.test_client()
    # Anonymous residents at the same address share its small bucket …
    assert [_search(client) for _ in range(4)] == [200, 200, 200, 429]
    # … while each staff member (API token) has a bucket of their own, even from that address.
    for token in tokens:
        codes = [_search(client, Authorization=f"Bearer {token}") for _ in range(6)]
        assert codes == [200] * 5 + [429]


def test_signed_in_session_uses_the_account_bucket(staff: Any) -> None:
    app = _app(staff.directory, RATE_LIMIT=(1, 0.001), STAFF_RATE_LIMIT=(10, 0.001))
    client = app.test_client()
    assert [_search(client) for _ in range(2)] == [200, 429]
    from tests.web.conftest import csrf_of

    signed = app.test_client()
    response = signed.post(
        "/login",
        data={"email": "coord@example.jp", "password": PASSWORD, "csrf_token": csrf_of(signed)},
        environ_base={"REMOTE_ADDR": OFFICE},
    )
    assert response.status_code == 302
    assert [_search(signed) for _ in range(3)] == [200, 200, 200]


def test_forwarded_for_only_from_trusted_proxies(staff: Any) -> None:
    app = _app(staff.directory, RATE_LIMIT=(1, 0.001), TRUSTED_PROXIES="10.0.0.5")
    client = app.test_client()
    # Through the proxy, two residents are two clients.
    assert _search(client, "10.0.0.5", **{"X-Forwarded-For": "198.51.100.1"}) == 200
    assert _search(client, "10.0.0.5", **{"X-Forwarded-For": "198.51.100.2"}) == 200
    assert _search(client, "10.0.0.5", **{"X-Forwarded-For": "198.51.100.1"}) == 429
    # A client that is not the proxy cannot pick its own identity with the header.
    assert _search(client, OFFICE, **{"X-Forwarded-For": "198.51.100.9"}) == 200
    assert _search(client, OFFICE, **{"X-Forwarded-For": "198.51.100.10"}) == 429


@pytest.mark.parametrize(
    ("remote", "header", "expected"),
    [
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        (
            "10.0.0.5",
            "6.6.6.6, 198.51.100.1",
            "198.51.100.1",
        ),  # the leftmost part is whatever the client wrote
        ("10.0.0.5", "198.51.100.1, 10.0.0.6", "198.51.100.1"),  # a second trusted hop is skipped
        ("10.0.0.5", "not-an-ip", "10.0.0.5"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("10.0.0.5", None, "10.0.0.5"),
    ],
)
def test_client_ip(remote: str, header: str | None, expected: str) -> None:
    assert client_ip(remote, header, parse_proxies("10.0.0.5, 10.0.0.0/29")) == expected


def test_defaults_are_declared_and_documented() -> None:
    assert config.rate_limit({}) == (120, 2.0)
    assert config.rate_limit({}, name="RESDB_STAFF_RATE_LIMIT") == (600, 10.0)
    assert config.setting("RESDB_TRUSTED_PROXIES", {}) == ""
    readme = (config.Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for name in ("RESDB_RATE_LIMIT", "RESDB_STAFF_RATE_LIMIT", "RESDB_TRUSTED_PROXIES"):
        assert f"| `{name}` |" in readme
