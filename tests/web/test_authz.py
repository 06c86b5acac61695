"""Authorization matrix over every route × role, CSRF on every form POST, escaping on the editor pages,
and two editors racing on one listing."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from resdb import accounts
from resdb.models import AuditEntry, ListingHistory
from tests.web.conftest import PASSWORD, csrf_of

ROLES = (
    "anonymous",
    "supporter",
    "host",
    "window",
    "coordinator",
    "editor_out",
    "editor_in",
    "admin",
)  # refused roles first: the allowed ones change state
LOGINS = {
    "coordinator": "coord@example.jp",
    "editor_in": "imizu@example.jp",
    "editor_out": "inagi@example.jp",
    "admin": "admin@example.jp",
    "host": "host@example.jp",
    "supporter": "supporter@example.jp",
    "window": "window@example.jp",
}
# Pages of one role only (an administrator is refused too: they hold no organisation and no window).
OWN_ROLE = {"host": {"host"}, "supporter": {"supporter"}, "window": {"window"}}
# Endpoints anyone may use (public pages, the read API, the matcher API, sign-in, residents' reports).
PUBLIC = {
    "public.index",
    "public.search",
    "public.resource",
    "public.areas",
    "corrections.report",
    "api.list_resources",
    "api.resources_geojson",
    "api.get_resource",
    "api.areas_lookup",
    "api.openapi",
    "match_api.match",
    "match_api.match_batch",
    "match_api.gaps",
    "staff.login",
    "staff.login_post",
    "staff.logout",
    "basemap.municipality",
}
API_WRITES = {"api.create_resource", "api.update_resource", "api.delete_resource"}
API_TOKEN = API_WRITES | {"api.resource_history"}  # who changed what: token holders only
# editor.* routes about one listing: the scope (municipality) decides.
SCOPED = {
    "editor.edit_listing",
    "editor.save_listing",
    "editor.verify_listing",
    "editor.confirm_delete",
    "editor.delete_listing",
    "editor.restore_listing",
    "editor.history",
    "editor.review_correction",
}
ADMIN_ONLY = {"editor.audit_log"}
ARGS = {
    "listing_id": "t-salon",
    "request_id": 1,
    "case_id": 1,
    "placement_id": 1,
    "referral_id": 1,
    "sheet_id": 1,
}


def routes(app: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every rule but static files."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        url = rule.rule
        for name in rule.arguments:
            url = re.sub(rf"<(?:[^:<>]+:)?{name}>", str(ARGS.get(name, "x")), url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, url))
    return out


def family(endpoint: str) -> str:
    if endpoint in PUBLIC:
        return "public"
    if endpoint in API_TOKEN:
        return "api_write"
    prefix = endpoint.split(".")[0]
    if prefix in {"editor", "coordinator", "host", "supporter", "window"}:
        return prefix
    return "unclassified"


@pytest.fixture
def matrix(staff: Any) -> dict[str, Any]:
    from resdb.workspace import Workspace

    Workspace(staff.directory).submit_correction(
        "t-salon", "電話番号が違います", proposed={"phone": "0766-00-0000"}
    )
    engine = staff.directory.engine
    accounts.add_user(engine, "host@example.jp", "host", PASSWORD, operator="戸破地区社協")
    accounts.add_user(
        engine, "supporter@example.jp", "supporter", PASSWORD, municipality_code="132250"
    )
    accounts.add_user(engine, "window@example.jp", "coordinator", PASSWORD, window="t-inagi")
    clients = {"anonymous": staff.client()}
    for role, email in LOGINS.items():
        clients[role] = staff.login(email)
    tokens = {
        role: csrf_of(client, "/resources/t-salon/report") for role, client in clients.items()
    }
    return {"clients": clients, "tokens": tokens}


def call(
    client: Any, method: str, url: str, token: str | None, extra: dict[str, Any] | None = None
) -> Any:
    data = dict(extra or {})
    if token is not None:
        data["csrf_token"] = token
    if method == "GET":
        return client.get(url)
    if url.startswith("/api/"):
        return client.open(url, method=method, json={})
    return client.open(url, method=method, data=data)


def test_every_route_is_classified(staff: Any) -> None:
    unclassified = [r for r in routes(staff.app) if family(r[0]) == "unclassified"]
    assert not unclassified, f"add these routes to the authorization matrix: {unclassified}"


def test_authorization_matrix(staff: Any, matrix: dict[str, Any]) -> None:
    failures: list[str] = []
    crashed: list[str] = []
    for endpoint, method, url in routes(staff.app):
        kind = family(endpoint)
        for role in ROLES:
            client, token = matrix["clients"][role], matrix["tokens"][role]
            extra = {"decision": "reject"} if endpoint == "editor.review_correction" else None
            try:
                response = call(client, method, url, token, extra)
            except (
                Exception
            ) as error:  # the view itself failed: a crash fails the matrix, whoever asked
                crashed.append(f"{role} {method} {url}: {error!r}"[:200])
                status, location = 500, ""
            else:
                status, location = response.status_code, response.headers.get("Location", "")
                if status >= 500:  # an error page instead of a raised exception is a crash too
                    crashed.append(f"{role} {method} {url}: {status}")
            to_login = status in {302, 303} and "/login" in location
            where = f"{role} {method} {url} ({endpoint}) → {status} {location}"
            if kind == "public":
                if to_login or status == 403 or (status == 401 and endpoint != "staff.login_post"):
                    failures.append("public route refused: " + where)
            elif kind == "api_write":
                if status != 401:  # a session cookie is not an API credential
                    failures.append("API call without a token must be 401: " + where)
            elif role == "anonymous":
                if not to_login:
                    failures.append("anonymous must be sent to /login: " + where)
            elif kind == "editor":
                allowed = role == "admin" or (
                    role.startswith("editor")
                    and endpoint not in ADMIN_ONLY
                    and not (role == "editor_out" and endpoint in SCOPED)
                )
                if allowed and (status == 403 or to_login):
                    failures.append("allowed role refused: " + where)
                if not allowed and status != 403:
                    failures.append("must be 403: " + where)
            elif kind in OWN_ROLE:
                allowed = role in OWN_ROLE[kind]
                if allowed and (status == 403 or to_login):
                    failures.append("allowed role refused: " + where)
                if not allowed and status != 403:
                    failures.append("must be 403: " + where)
            elif kind == "coordinator":
                allowed = role in {"coordinator", "window", "admin"}
                if allowed and (status == 403 or to_login):
                    failures.append("allowed role refused: " + where)
                if not allowed and status != 403:
                    failures.append("must be 403: " + where)
    assert not crashed, "views that crashed on a route the role may use:\n" + "\n".join(crashed)
    assert not failures, "\n".join(failures)


def test_api_writes_need_a_writer_token(staff: Any) -> None:
    client = staff.client()
    coordinator = accounts.create_token(staff.directory.engine, "coord@example.jp")
    inagi = accounts.create_token(staff.directory.engine, "inagi@example.jp")
    for endpoint, method, url in routes(staff.app):
        if endpoint not in API_WRITES:
            continue
        assert client.open(url, method=method, json={"name": "x"}).status_code == 401
        assert (
            client.open(
                url,
                method=method,
                json={"name": "x"},
                headers={"Authorization": f"Bearer {coordinator}"},
            ).status_code
            == 403
        )
        if "<" not in url and "t-salon" in url:
            assert (
                client.open(
                    url,
                    method=method,
                    json={"name": "x"},
                    headers={"Authorization": f"Bearer {inagi}"},
                ).status_code
                == 403
            )


def _state(directory: Any) -> tuple[Any, ...]:
    from sqlmodel import Session, func, select

    with Session(directory.engine) as session:
        history = session.exec(select(func.count()).select_from(ListingHistory)).one()
        audit = session.exec(select(func.count()).select_from(AuditEntry)).one()
    listings = tuple(
        (x["id"], x["version"], x["status"])
        for x in directory.all_listings(include_unpublished=True)
    )
    return history, audit, listings


def test_csrf_refused_on_every_form_post(staff: Any, matrix: dict[str, Any]) -> None:
    admin = matrix["clients"]["admin"]
    posts = [(e, m, u) for e, m, u in routes(staff.app) if m != "GET" and not u.startswith("/api/")]
    assert posts, "no form POST routes found"
    before = _state(staff.directory)
    for endpoint, method, url in posts:
        data = {
            "decision": "accept",
            "confirm": "yes",
            "version": "1",
            "message": "x",
            "name": "x",
            "kind": "kayoi",
            "lat": "36.7",
            "lon": "137.1",
            "to_version": "1",
        }
        for token in (None, "forged-token"):
            if token:
                data["csrf_token"] = token
            response = admin.open(url, method=method, data=data)
            assert response.status_code == 400, (
                f"{method} {url} ({endpoint}) without a valid token → {response.status_code}"
            )
        anonymous = staff.client()
        assert anonymous.open(url, method=method, data=data).status_code == 400, url
    assert _state(staff.directory) == before
    assert (
        admin.get("/editor/").status_code == 200
    )  # still signed in: nothing was logged out either


XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
TEXT_INPUTS = (
    "name",
    "name_kana",
    "description",
    "address",
    "venue",
    "operator",
    "phone",
    "email",
    "notes",
    "source",
    "activities",
    "district",
)


def test_xss_escaped_on_editor_pages(staff: Any) -> None:
    from tests.web.test_editor import form_of

    client = staff.login("admin@example.jp")
    for payload in XSS:
        data = form_of(client, "/editor/listings/t-salon")
        for key in TEXT_INPUTS:
            data[key] = payload if key not in {"email"} else payload
        data["url"] = "https://example.jp/" + payload
        response = client.post("/editor/listings/t-salon", data=data)
        pages = [response]  # saved (303) or refused (422) with the typed values shown back
        listing = staff.directory.get("t-salon")
        pages += [
            client.get(p)
            for p in (
                "/editor/listings/t-salon",
                "/editor/listings/t-salon/history",
                "/editor/",
                "/editor/?q=" + payload,
                "/editor/audit",
                "/resources/t-salon/report",
            )
        ]
        for page in pages:
            html = page.get_data(as_text=True)
            assert "<script>alert" not in html and "<img src=x" not in html, page.request.path
        assert listing["version"] >= 1
    # a resident's report with markup shows escaped in the queue
    public = staff.client()
    token = csrf_of(public, "/resources/t-salon/report")
    public.post(
        "/resources/t-salon/report",
        data={"csrf_token": token, "message": XSS[1], "contact": XSS[0], "address": XSS[0]},
    )
    html = client.get("/editor/corrections").get_data(as_text=True)
    assert (
        "<img src=x" not in html
        and "<script>alert" not in html
        and "&lt;img src=x onerror=alert(1)&gt;" in html
    )
    # an import file with markup: the dry-run report escapes it
    csv_text = f'id,name,kind,lat,lon\nx1,"{XSS[1]}",{XSS[0]},36.7,137.1\n'
    token = csrf_of(client, "/editor/import")
    report = client.post(
        "/editor/import",
        data={"csrf_token": token, "file": (io.BytesIO(csv_text.encode()), "x.csv")},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert "<img src=x" not in report and "<script>alert" not in report


def test_two_editors_racing(staff: Any) -> None:
    from tests.web.test_editor import form_of

    first, second = staff.login("imizu@example.jp"), staff.login("admin@example.jp")
    mine, theirs = (
        form_of(first, "/editor/listings/t-cafe"),
        form_of(second, "/editor/listings/t-cafe"),
    )
    mine["description"] = "一人目の説明"
    theirs["description"] = "二人目の説明"
    theirs["capacity"] = "7"
    assert first.post("/editor/listings/t-cafe", data=mine).status_code == 303
    response = second.post("/editor/listings/t-cafe", data=theirs)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "一人目の説明" in html and "二人目の説明" in html  # both versions side by side
    assert re.search(r'class="theirs">一人目の説明<', html) and re.search(
        r'class="yours">二人目の説明<', html
    )
    assert ">7<" in html or 'value="7"' in html  # nothing the second editor typed is lost
    listing = staff.directory.get("t-cafe")
    assert (
        listing["description"] == "一人目の説明"
        and listing["capacity"] is None
        and listing["version"] == 2
    )
    # the second editor re-saves deliberately from the conflict page (it carries the current version)
    again = dict(theirs, version="2")
    assert second.post("/editor/listings/t-cafe", data=again).status_code == 303
    assert staff.directory.get("t-cafe")["capacity"] == 7


def test_referral_and_sheet_policy() -> None:
    """The one policy function: who reads and moves referrals and 相談依頼シート (no other door decides)."""
    from resdb.accounts import Account
    from resdb.policy import Forbidden, authorize

    host = Account(1, "h@x", "host", operator="戸破地区社協")
    other_host = Account(2, "o@x", "host", operator="射水市社会福祉協議会")
    coordinator, other_coordinator = (
        Account(3, "c@x", "coordinator"),
        Account(4, "d@x", "coordinator"),
    )
    supporter, window = (
        Account(5, "s@x", "supporter"),
        Account(6, "w@x", "coordinator", window="t-hirao"),
    )
    admin = Account(7, "a@x", "admin")
    referral = {"host": "戸破地区社協", "coordinator_id": 3}
    sheet = {"window": "t-hirao", "supporter_id": 5}
    allowed: list[tuple[str, Any, set[Account]]] = [
        ("referral.read", referral, {host, coordinator, admin}),
        ("referral.answer", referral, {host}),
        ("referral.update", referral, {host, coordinator, admin}),
        ("referral.send", {"coordinator_id": 3}, {coordinator, admin}),
        ("sheet.submit", None, {supporter}),
        ("sheet.own", sheet, {supporter}),
        ("sheet.read", sheet, {window}),
        ("sheet.update", sheet, {window}),
        ("listing.capacity", {"operator": "戸破地区社協"}, {host, admin}),
        ("listing.delete", {"operator": "戸破地区社協"}, {admin}),
    ]
    everyone = (host, other_host, coordinator, other_coordinator, supporter, window, admin)
    for action, target, who in allowed:
        for actor in everyone:
            if actor in who:
                authorize(actor, action, target)
            else:
                with pytest.raises(Forbidden):
                    authorize(actor, action, target)


def test_restore_and_import_obey_scope(staff: Any) -> None:
    """Restoring an old version or importing a file cannot move a listing into or out of an editor's scope."""
    from resdb.services import Services

    admin = accounts.account_by_email(staff.directory.engine, "admin@example.jp")
    assert admin is not None
    # t-cafe (射水市) is moved to 稲城市 by an admin: its version 1 lies in the 射水市 editor's scope, version 2 does not
    Services(staff.directory).update(
        admin, "t-cafe", {"municipality_code": "132250"}, expected_version=1
    )
    cases = [("imizu@example.jp", 403), ("inagi@example.jp", 403), ("admin@example.jp", 303)]
    for email, expected in cases:
        client = staff.login(email)
        token = csrf_of(client, "/editor/import")
        response = client.post(
            "/editor/listings/t-cafe/restore", data={"csrf_token": token, "to_version": "1"}
        )
        assert response.status_code == expected, (email, response.status_code)
        if expected == 403:
            assert staff.directory.get("t-cafe")["municipality_code"] == "132250"
    assert staff.directory.get("t-cafe")["municipality_code"] == "162116"  # the admin's restore
    csv_text = "id,name,kind,lat,lon,municipality_code\nt-salon,戸破ふれあいサロン,kayoi,35.638,139.5046,132250\n"
    for email, expected in (
        ("imizu@example.jp", 422),
        ("inagi@example.jp", 422),
        ("admin@example.jp", 200),
    ):
        client = staff.login(email)
        token = csrf_of(client, "/editor/import")
        page = client.post(
            "/editor/import",
            data={"csrf_token": token, "file": (io.BytesIO(csv_text.encode()), "m.csv")},
            content_type="multipart/form-data",
        )
        assert page.status_code == expected, (email, page.status_code)
        if expected == 422:
            assert "担当範囲" in page.get_data(as_text=True)
    assert (
        staff.directory.get("t-salon")["municipality_code"] == "162116"
    )  # a dry run changes nothing
