"""Staff sign-in: server-side sessions rotated at sign-in, logout really ends them, lockout, CSRF, no open redirect."""

from __future__ import annotations

from resdb.web.staff import LOGIN_FAILED
from tests.web.conftest import PASSWORD, StaffSetup, csrf_of


def test_login_rotates_and_logout_ends_the_session(staff: StaffSetup) -> None:
    client = staff.client()
    csrf_of(client)
    before = client.get_cookie("resdb_session")
    client.post(
        "/login",
        data={"email": "imizu@example.jp", "password": PASSWORD, "csrf_token": csrf_of(client)},
    )
    after = client.get_cookie("resdb_session")
    assert before is not None and after is not None and before.value != after.value
    assert after.http_only and after.same_site == "Lax"
    assert client.get("/editor/").status_code == 200
    stolen = after.value
    client.post("/logout", data={"csrf_token": csrf_of(client, "/editor/")})
    assert client.get("/editor/").status_code == 302
    replay = staff.client()
    replay.set_cookie("resdb_session", stolen)
    assert replay.get("/editor/").status_code == 302  # the old cookie no longer opens anything


def test_wrong_password_and_lockout(staff: StaffSetup) -> None:
    client = staff.client()
    for _ in range(5):
        response = client.post(
            "/login",
            data={"email": "imizu@example.jp", "password": "nope", "csrf_token": csrf_of(client)},
        )
        assert response.status_code == 401
    locked = client.post(
        "/login",
        data={"email": "imizu@example.jp", "password": PASSWORD, "csrf_token": csrf_of(client)},
    )
    unknown = client.post(
        "/login",
        data={"email": "nobody@example.jp", "password": PASSWORD, "csrf_token": csrf_of(client)},
    )
    # a locked account answers exactly like an unknown one (no account enumeration)
    assert locked.status_code == unknown.status_code == 401
    assert LOGIN_FAILED in locked.get_data(as_text=True) and LOGIN_FAILED in unknown.get_data(
        as_text=True
    )
    assert (
        client.get("/editor/").status_code == 302
    )  # the right password did not get in while locked


def test_login_without_csrf_is_refused(staff: StaffSetup) -> None:
    client = staff.client()
    response = client.post("/login", data={"email": "imizu@example.jp", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get_cookie("resdb_session") is None or client.get("/editor/").status_code == 302


def test_next_never_leaves_the_site(staff: StaffSetup) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        client = staff.client()
        response = client.post(
            "/login",
            data={
                "email": "coord@example.jp",
                "password": PASSWORD,
                "next": target,
                "csrf_token": csrf_of(client),
            },
        )
        assert response.status_code == 302 and response.headers["Location"].startswith("/"), target
        assert not response.headers["Location"].startswith("//")


def test_roles_reach_their_workspace_only(staff: StaffSetup) -> None:
    assert staff.login("coord@example.jp").get("/editor/").status_code == 403
    assert staff.login("imizu@example.jp").get("/coordinator/").status_code == 403
    assert staff.login("admin@example.jp").get("/coordinator/").status_code == 200
