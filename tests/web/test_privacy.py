"""要配慮個人情報: what a coordinator types into the (unsaved) matching form never leaves the response.

A canary typed into interests, the memo and the address must not reach the database (every table, both
backends), the search-index files, logs (application logs at DEBUG and the access log), cookies or the
session, or any URL (Location headers, links in the pages)."""

from __future__ import annotations

import html as html_mod
import http.cookiejar
import logging
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from tests.web.conftest import PASSWORD, StaffSetup, csrf_of

CANARY = "カナリアZQ7x9"
CANARY_BYTES = [
    CANARY.encode("utf-8"),
    b"ZQ7x9",
    CANARY.encode("utf-16-le"),
    urllib.parse.quote(CANARY).encode(),
]
_URL_ATTR = re.compile(r'(?:href|src|action|formaction)="([^"]*)"')


def canary_form() -> dict[str, Any]:
    return {
        "goals": ["health", "friends"],
        "targets": ["elderly"],
        "interests": f"体操、{CANARY}",
        "memo": f"家族の事情 {CANARY}",
        "home_address": f"富山県射水市戸破 {CANARY}",
        "home_lat": "36.7236",
        "home_lon": "137.0991",
        "age": "82",
        "mobility": "walk",
        "max_minutes": "20",
        "avail_weekday_0": "wed",
        "avail_start_0": "13:00",
        "avail_end_0": "16:00",
        "budget_yen": "300",
    }


def database_text(engine: Any) -> str:
    """Every row of every table as text (the whole database, whatever the schema)."""
    chunks = []
    names = inspect(engine).get_table_names()
    assert {"case", "placement", "placement_event", "audit_log"} <= set(
        names
    )  # the scan covers them
    with engine.connect() as conn:
        for name in names:
            quoted = engine.dialect.identifier_preparer.quote(name)
            for row in conn.execute(text(f"SELECT * FROM {quoted}")):
                chunks.append(" ".join(str(v) for v in row))
    return "\n".join(chunks)


def files_bytes(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in folder.rglob("*") if p.is_file()]


def assert_no_canary_in_files(folder: Path, *, skip_sqlite: bool = False) -> None:
    for path, data in files_bytes(folder):
        if skip_sqlite and path.suffix.startswith(".sqlite"):
            continue
        for needle in CANARY_BYTES:
            assert needle not in data, f"canary in {path}"


def session_of(app: Any, cookie_value: str) -> dict[str, Any]:
    serializer = app.session_interface.get_signing_serializer(app)
    return dict(serializer.loads(cookie_value))


def check_response(app: Any, response: Any) -> None:
    """No canary in headers that persist or travel (cookies, Location), nor in any URL of the page."""
    for name, value in response.headers.items():
        if name.lower() in {"set-cookie", "location", "content-location", "link", "refresh"}:
            assert (
                CANARY not in value
                and "ZQ7x9" not in value
                and urllib.parse.quote(CANARY) not in value
            ), name
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name == app.config["SESSION_COOKIE_NAME"]:
            value = rest.split(";", 1)[0]
            if value:
                assert "ZQ7x9" not in str(session_of(app, value))
    body = response.get_data(as_text=True)
    for url in _URL_ATTR.findall(body):
        url = html_mod.unescape(url)
        assert "ZQ7x9" not in url and "ZQ7x9" not in urllib.parse.unquote(url), url
    if response.status_code != 303:
        assert "no-store" in response.headers.get("Cache-Control", "")


def test_canary_never_leaves_the_unsaved_form(
    staff: StaffSetup, caplog: pytest.LogCaptureFixture
) -> None:
    app = staff.app
    client = staff.login("coord@example.jp")
    caplog.set_level(logging.DEBUG)
    form = canary_form()
    responses = []
    for path, extra in (
        ("/coordinator/match", {}),
        ("/coordinator/match/sheet", {"pick": ["t-salon"]}),
        ("/coordinator/match/compare", {"pick": ["t-salon", "t-cafe"]}),
    ):
        posted = client.post(
            path, data={**form, **extra, "csrf_token": csrf_of(client, "/coordinator/match")}
        )
        assert posted.status_code == 303, path  # Post/Redirect/Get to a stored, expiring result
        check_response(app, posted)
        assert re.fullmatch(r"/coordinator/r/[A-Za-z0-9_-]{43}", posted.headers["Location"])
        response = client.get(posted.headers["Location"])
        assert response.status_code == 200, path
        assert response.request.query_string == b"" and "ZQ7x9" not in response.request.url
        responses.append(response)
    # a refused form (bad time) and a refused save (no legal basis) store nothing either
    refused = client.post(
        "/coordinator/match",
        data={**form, "avail_end_0": "10:00", "csrf_token": csrf_of(client, "/coordinator/match")},
    )
    assert refused.status_code == 422
    not_saved = client.post(
        "/coordinator/match/save",
        data={
            **form,
            "pseudonym": "X",
            "notes": CANARY,
            "csrf_token": csrf_of(client, "/coordinator/match"),
        },
    )
    assert not_saved.status_code == 422
    responses += [refused, not_saved]

    html = responses[0].get_data(as_text=True)
    assert "戸破ふれあいサロン" in html  # the form really matched
    assert CANARY in html  # carried back in hidden fields (the page itself), nowhere else
    for response in responses:
        check_response(app, response)
    # the test client's cookie jar and the session
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None and "ZQ7x9" not in str(session_of(app, cookie.value))
    # the database, every table (this backend)
    assert "ZQ7x9" not in database_text(staff.directory.engine)
    # the instance folder: search index files (and the SQLite file when that is the backend)
    instance = Path(staff.directory.instance_dir)
    assert (instance / "index").exists()
    assert_no_canary_in_files(instance)
    # logs at DEBUG
    assert "ZQ7x9" not in caplog.text
    for record in caplog.records:
        assert "ZQ7x9" not in str(record.args or "") and "ZQ7x9" not in record.getMessage()


def test_saved_case_is_where_the_data_goes(staff: StaffSetup) -> None:
    """The scanner works: once the coordinator saves (with a legal basis), the chosen data is in the database."""
    client = staff.login("coord@example.jp")
    response = client.post(
        "/coordinator/match/save",
        data={
            **canary_form(),
            "pseudonym": "Pさん",
            "legal_basis": "consent",
            "notes": "保存メモ",
            "pick": ["t-salon"],
            "csrf_token": csrf_of(client, "/coordinator/match"),
        },
    )
    assert response.status_code == 303
    assert "ZQ7x9" not in response.headers["Location"]
    stored = database_text(staff.directory.engine)
    assert "Pさん" in stored and "ZQ7x9" in stored  # the person was saved on purpose
    assert "case.create" in stored and "legal_basis=consent" in stored


def test_access_log_and_cookies_over_http(
    staff: StaffSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """A real server (werkzeug, the same request line gunicorn logs as %(r)s): the path has no query."""
    from tests.browser.conftest import start_server

    server = start_server(staff.app)
    try:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

        def csrf(path: str) -> str:
            page = opener.open(server.url + path).read().decode()
            return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

        login = urllib.parse.urlencode(
            {"email": "coord@example.jp", "password": PASSWORD, "csrf_token": csrf("/login")}
        ).encode()
        opener.open(server.url + "/login", data=login)
        caplog.set_level(logging.DEBUG)
        body = urllib.parse.urlencode(
            {**canary_form(), "csrf_token": csrf("/coordinator/match")}, doseq=True
        ).encode()
        request = urllib.request.Request(
            server.url + "/coordinator/match",
            data=body,
            headers={"Referer": server.url + "/coordinator/match"},
        )
        with opener.open(request) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            assert all("ZQ7x9" not in v for v in response.headers.get_all("Set-Cookie") or [])
            page = response.read().decode()
        assert "戸破ふれあいサロン" in page
    finally:
        server.shutdown()
    access = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("POST /coordinator/match HTTP/1.1" in line and '" 303' in line for line in access), (
        access
    )
    assert any(
        re.search(r'"GET /coordinator/r/[A-Za-z0-9_-]{43} HTTP/1.1" 200', line) for line in access
    ), access
    assert "ZQ7x9" not in caplog.text and urllib.parse.quote(CANARY) not in caplog.text
    for cookie in jar:
        assert "ZQ7x9" not in cookie.value
        if cookie.name == staff.app.config["SESSION_COOKIE_NAME"]:
            assert "ZQ7x9" not in str(session_of(staff.app, cookie.value))


def test_referral_and_sheet_text_stay_out_of_logs_urls_and_the_index(
    staff: StaffSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """What a coordinator sends a host and what a supporter writes on a 相談依頼シート is stored on purpose (in
    its own table, for its reader only) and nowhere else: not the audit log, logs, URLs, cookies or the index."""
    from resdb import accounts
    from tests.web.test_hosts import INAGI_CENTERS, placement_of, save_case

    engine = staff.directory.engine
    accounts.add_user(engine, "salon@example.jp", "host", PASSWORD, operator="戸破地区社協")
    accounts.add_user(
        engine, "minsei@example.jp", "supporter", PASSWORD, municipality_code="132250"
    )
    accounts.add_user(engine, "hirao@example.jp", "coordinator", PASSWORD, window="t-hirao")
    for raw in INAGI_CENTERS:
        staff.directory.create(dict(raw), actor="fixture")
    caplog.set_level(logging.DEBUG)
    coordinator = staff.login("coord@example.jp")
    case_id = save_case(coordinator, "Bさん")
    placement_id = placement_of(staff, case_id)
    responses = [
        coordinator.post(
            f"/coordinator/cases/{case_id}/placements/{placement_id}/referral",
            data={
                "pseudonym": "Bさん",
                "proposed_dates": f"水曜 {CANARY}",
                "helps": f"配慮 {CANARY}",
                "contact_route": f"電話 {CANARY}",
                "confirm": "yes",
                "csrf_token": csrf_of(coordinator, f"/coordinator/cases/{case_id}"),
            },
        )
    ]
    assert responses[0].status_code == 303
    responses.append(coordinator.get(f"/coordinator/cases/{case_id}"))
    host = staff.login("salon@example.jp")
    home = host.get("/host/")
    referral_id = int(re.search(r"/host/referrals/(\d+)", home.get_data(as_text=True)).group(1))
    page = host.get(f"/host/referrals/{referral_id}")
    assert CANARY in page.get_data(as_text=True)  # the host reads what was sent
    token = csrf_of(host, f"/host/referrals/{referral_id}")
    responses += [
        home,
        page,
        host.post(
            f"/host/referrals/{referral_id}/answer", data={"answer": "accept", "csrf_token": token}
        ),
    ]
    supporter = staff.login("minsei@example.jp")
    responses.append(
        supporter.post(
            "/supporter/sheets",
            data={
                "area": "平尾",
                "observed": f"見守りで {CANARY}",
                "consent": "agreed",
                "supporter_contact": f"電話 {CANARY}",
                "csrf_token": csrf_of(supporter, "/supporter/"),
            },
        )
    )
    assert responses[-1].status_code == 303
    responses.append(supporter.get("/supporter/"))
    assert CANARY not in responses[-1].get_data(
        as_text=True
    )  # the supporter sees only received / closed
    window = staff.login("hirao@example.jp")
    queue = window.get("/window/")
    sheet_id = int(re.search(r"/window/sheets/(\d+)", queue.get_data(as_text=True)).group(1))
    sheet = window.get(f"/window/sheets/{sheet_id}")
    assert CANARY in sheet.get_data(as_text=True)
    responses += [
        queue,
        sheet,
        window.post(
            f"/window/sheets/{sheet_id}",
            data={
                "status": "referred",
                "referred_to": "生活支援コーディネーター",
                "csrf_token": csrf_of(window, f"/window/sheets/{sheet_id}"),
            },
        ),
    ]
    for response in responses:
        if response.status_code == 303:
            assert "ZQ7x9" not in response.headers["Location"]
            continue
        check_response(staff.app, response)
    for client in (coordinator, host, supporter, window):
        cookie = client.get_cookie(staff.app.config["SESSION_COOKIE_NAME"])
        assert cookie is not None and "ZQ7x9" not in str(session_of(staff.app, cookie.value))
    # stored only where it belongs: the referral and the sheet, not the audit log or any other table
    with engine.connect() as conn:
        for table in ("audit_log", "placement_event", "referral_event", "case", "listing_history"):
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).fetchall()
            assert all("ZQ7x9" not in " ".join(map(str, row)) for row in rows), table
        assert "ZQ7x9" in " ".join(
            map(str, conn.execute(text("SELECT * FROM referral")).fetchall())
        )
        assert "ZQ7x9" in " ".join(
            map(str, conn.execute(text("SELECT * FROM consult_sheet")).fetchall())
        )
    assert_no_canary_in_files(Path(staff.directory.instance_dir) / "index")
    assert "ZQ7x9" not in caplog.text
    for record in caplog.records:
        assert "ZQ7x9" not in str(record.args or "") and "ZQ7x9" not in record.getMessage()


def _no_canary_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert "ZQ7x9" not in caplog.text
    for record in caplog.records:
        assert "ZQ7x9" not in record.getMessage() and "ZQ7x9" not in str(record.args or "")
        if record.exc_info:
            import traceback

            assert "ZQ7x9" not in "".join(traceback.format_exception(*record.exc_info))


def _production_app(staff: StaffSetup) -> Any:
    """The app as deployed (errors answered with 500 and logged, not raised into the test)."""
    from resdb.web import create_app
    from tests.web.conftest import FIXED_TODAY

    return create_app(
        {
            "DIRECTORY": staff.directory,
            "TESTING": False,
            "PROPAGATE_EXCEPTIONS": False,
            "RATE_LIMIT": None,
            "SECRET_KEY": "web-tests",
            "TODAY": lambda: FIXED_TODAY,
            "SESSION_COOKIE_SECURE": False,
        }
    )


def test_invalid_person_inputs_never_reach_the_log(
    staff: StaffSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """Matching inputs are validated before any use: text coordinates or unknown words answer 400 (no 500),
    and neither the answer's log nor an exception carries what was typed."""
    client = _production_app(staff).test_client()
    caplog.set_level(logging.DEBUG)
    bad_people = [
        {"home": {"lat": CANARY, "lon": "137.1"}},
        {"home": {"lat": 36.7, "lon": 137.1}, "mobility": CANARY},
        {"home": {"lat": 36.7, "lon": 137.1}, "age": CANARY},
        {"home": {"district": CANARY, "municipality_code": "162116"}},
        {"home": {"lat": [CANARY], "lon": {"x": CANARY}}},
        {"home": {"lat": 36.7, "lon": 137.1}, "interests": [{"x": CANARY}]},
    ]
    for person in bad_people:
        for url, body in (
            ("/api/match", person),
            ("/api/match/batch", {"persons": [person]}),
            ("/api/gaps", {"needs": [person]}),
        ):
            response = client.post(url, json=body)
            allowed = (
                {400} if url != "/api/gaps" else {200, 400}
            )  # an anonymous need ignores some keys
            assert response.status_code in allowed, (url, person, response.status_code)
            if response.status_code == 400:
                assert "ZQ7x9" not in response.get_json()["error"]["message"]
    _no_canary_logged(caplog)


def test_database_errors_are_logged_without_values(
    staff: StaffSetup, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed case save (a real unique violation in the database, on each backend) answers 500 and logs
    neither the pseudonym, the notes nor the person: SQLAlchemy errors carry no parameters."""
    from sqlalchemy.exc import IntegrityError

    from resdb.models import Case
    from resdb.workspace import Workspace

    monkeypatch.setattr(
        Workspace, "_case_code", staticmethod(lambda case_id: "C-SAME")
    )  # the old race, forced
    app = _production_app(staff)
    client = app.test_client()
    client.post(
        "/login",
        data={"email": "coord@example.jp", "password": PASSWORD, "csrf_token": csrf_of(client)},
    )
    caplog.set_level(logging.DEBUG)
    statuses = []
    for pseudonym in ("一人目", f"二人目{CANARY}"):
        response = client.post(
            "/coordinator/match/save",
            data={
                **canary_form(),
                "pseudonym": pseudonym,
                "legal_basis": "consent",
                "notes": f"メモ {CANARY}",
                "pick": ["t-salon"],
                "csrf_token": csrf_of(client, "/coordinator/match"),
            },
        )
        statuses.append(response.status_code)
        assert "ZQ7x9" not in response.get_data(as_text=True)
    assert statuses == [303, 500]
    assert any(
        "IntegrityError" in r.getMessage() for r in caplog.records
    )  # the failure itself is logged
    _no_canary_logged(caplog)
    # and the exception itself (what any logger would print) holds no values either
    from sqlmodel import Session

    with Session(staff.directory.engine) as session, pytest.raises(IntegrityError) as raised:
        session.add(
            Case(
                code="C-SAME",
                pseudonym=CANARY,
                legal_basis="consent",
                person={"memo": CANARY},
                coordinator_id=1,
            )
        )
        session.commit()
    assert "ZQ7x9" not in str(raised.value) and "hidden" in str(raised.value).lower()


def _result_url(client: Any, form: dict[str, Any]) -> str:
    posted = client.post(
        "/coordinator/match", data={**form, "csrf_token": csrf_of(client, "/coordinator/match")}
    )
    assert posted.status_code == 303
    return str(posted.headers["Location"])


def test_stored_result_is_ciphertext_for_this_session_only(staff: StaffSetup) -> None:
    """The result behind the redirect: an encrypted file (no canary, not in the database), readable by the
    session that made it, by the Back button again and again, and by no one else."""
    client = staff.login("coord@example.jp")
    url = _result_url(client, canary_form())
    folder = Path(staff.directory.instance_dir) / "results"
    stored = list(folder.glob("*.bin"))
    assert len(stored) == 1 and stored[0].stat().st_mode & 0o077 == 0  # one file, owner-only
    assert url.rsplit("/", 1)[1] not in stored[0].name  # the file name is not the token
    assert_no_canary_in_files(folder)
    assert "ZQ7x9" not in database_text(staff.directory.engine)
    for _ in range(2):  # Back, Back: the same answer each time
        again = client.get(url)
        assert again.status_code == 200 and CANARY in again.get_data(as_text=True)
        assert again.headers["Cache-Control"] == "no-store"
    # another coordinator (another session) with the same URL gets nothing
    other = staff.login("coord@example.jp")
    refused = other.get(url)
    assert refused.status_code == 410 and CANARY not in refused.get_data(as_text=True)
    # a guessed or altered token gets nothing either
    altered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    assert client.get(altered).status_code == 410
    assert client.get("/coordinator/r/short").status_code == 410
    # signing out ends the session the key depends on
    client.post("/logout", data={"csrf_token": csrf_of(client, "/coordinator/")})
    assert staff.login("coord@example.jp").get(url).status_code == 410


def test_stored_result_expires_and_is_deleted(staff: StaffSetup) -> None:
    from resdb.web.results import ResultStore

    now = [1_800_000_000.0]
    folder = Path(staff.directory.instance_dir) / "results-clock"
    staff.app.extensions["resdb.results"] = ResultStore(
        folder, ttl_seconds=600, clock=lambda: now[0]
    )
    client = staff.login("coord@example.jp")
    url = _result_url(client, canary_form())
    assert client.get(url).status_code == 200
    now[0] += 599
    assert client.get(url).status_code == 200
    now[0] += 2
    gone = client.get(url)
    assert gone.status_code == 410 and "表示期限" in gone.get_data(as_text=True)
    assert list(folder.glob("*.bin")) == []  # deleted when found expired
    # an abandoned result is swept by the next one
    _result_url(client, canary_form())
    now[0] += 601
    _result_url(client, canary_form())
    assert len(list(folder.glob("*.bin"))) == 1


def test_stored_result_opens_in_another_worker(staff: StaffSetup) -> None:
    """gunicorn runs several workers: a second app over the same instance folder reads the same result."""
    from resdb.web import create_app

    second = create_app(
        {
            "DIRECTORY": staff.directory,
            "TESTING": True,
            "RATE_LIMIT": None,
            "SECRET_KEY": staff.app.config["SECRET_KEY"],
            "SESSION_COOKIE_SECURE": False,
            "TODAY": staff.app.config["TODAY"],
        }
    )
    client = staff.login("coord@example.jp")
    url = _result_url(client, canary_form())
    cookie = client.get_cookie(staff.app.config["SESSION_COOKIE_NAME"])
    other_worker = second.test_client()
    other_worker.set_cookie(staff.app.config["SESSION_COOKIE_NAME"], cookie.value)
    page = other_worker.get(url)
    assert page.status_code == 200 and "戸破ふれあいサロン" in page.get_data(as_text=True)
