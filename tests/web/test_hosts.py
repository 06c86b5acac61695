"""Hosts and referrers end to end: a host reports open places and answers a referral, the coordinator sees it
on the case and the desk, a supporter's 相談依頼シート reaches the window that serves the address, and the
indicators count both (each backend)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from resdb import accounts
from resdb.models import utcnow
from tests.web.conftest import FIXED_TODAY, PASSWORD, StaffSetup, csrf_of

INAGI_CENTERS = [
    {
        "id": "t-hirao",
        "name": "地域包括支援センターひらお",
        "kind": "center",
        "municipality_code": "132250",
        "lat": 35.6226,
        "lon": 139.4917,
        "service_area": {"districts": ["坂浜", "平尾"]},
    },
    {
        "id": "t-yanokuchi",
        "name": "地域包括支援センターやのくち",
        "kind": "center",
        "municipality_code": "132250",
        "lat": 35.6430,
        "lon": 139.5160,
        "service_area": {"districts": ["押立", "矢野口"]},
    },
]
PERSON = {
    "goals": ["health", "friends"],
    "targets": ["elderly"],
    "interests": "体操",
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


@pytest.fixture
def hosts(staff: StaffSetup) -> StaffSetup:
    engine = staff.directory.engine
    accounts.add_user(engine, "salon@example.jp", "host", PASSWORD, operator="戸破地区社協")
    accounts.add_user(
        engine, "shakyo@example.jp", "host", PASSWORD, operator="射水市社会福祉協議会"
    )
    accounts.add_user(
        engine, "minsei@example.jp", "supporter", PASSWORD, municipality_code="132250"
    )
    accounts.add_user(engine, "hirao@example.jp", "coordinator", PASSWORD, window="t-hirao")
    accounts.add_user(engine, "yanokuchi@example.jp", "coordinator", PASSWORD, window="t-yanokuchi")
    for raw in INAGI_CENTERS:
        staff.directory.create(dict(raw), actor="fixture")
    return staff


def save_case(client: Any, pseudonym: str = "Aさん", pick: str = "t-salon") -> int:
    response = client.post(
        "/coordinator/match/save",
        data={
            **PERSON,
            "pseudonym": pseudonym,
            "legal_basis": "consent",
            "pick": [pick],
            "csrf_token": csrf_of(client, "/coordinator/match"),
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return int(re.search(r"/cases/(\d+)", response.headers["Location"]).group(1))


def placement_of(staff: StaffSetup, case_id: int) -> int:
    from resdb.workspace import Workspace

    owner = accounts.account_by_email(staff.directory.engine, "coord@example.jp")
    return Workspace(staff.directory).case(case_id, owner, audit_view=False)["placements"][0]["id"]


def send(client: Any, case_id: int, placement_id: int, **extra: str) -> Any:
    data = {
        "pseudonym": "Aさん",
        "proposed_dates": "12月9日（水）13:30",
        "helps": "耳が遠いので正面から話す",
        "contact_route": "コーディネーターの電話 0766-00-0000",
        "confirm": "yes",
        "csrf_token": csrf_of(client, f"/coordinator/cases/{case_id}"),
        **extra,
    }
    return client.post(
        f"/coordinator/cases/{case_id}/placements/{placement_id}/referral", data=data
    )


def test_host_updates_places_and_answers_a_referral(hosts: StaffSetup) -> None:
    coordinator = hosts.login("coord@example.jp")
    host = hosts.login("salon@example.jp")
    assert host.get("/host/").status_code == 200
    # open places, with the date they were reported, wherever capacity is shown
    response = host.post(
        "/host/listings/t-salon/capacity",
        data={"open_places": "2", "csrf_token": csrf_of(host, "/host/")},
    )
    assert response.status_code == 303
    detail = hosts.client().get("/resources/t-salon").get_data(as_text=True)
    assert "今月の受け入れ可能: 2人" in detail and "受け入れ先が報告" in detail
    assert hosts.directory.get("t-salon")["capacity"] == 2
    bad = host.post(
        "/host/listings/t-salon/capacity",
        data={"open_places": "たくさん", "csrf_token": csrf_of(host, "/host/")},
    )
    assert bad.status_code == 422 and "0〜999" in bad.get_data(as_text=True)
    # another organisation's listing is not the host's to touch
    assert (
        host.post(
            "/host/listings/t-cafe/capacity",
            data={"open_places": "5", "csrf_token": csrf_of(host, "/host/")},
        ).status_code
        == 404
    )
    assert hosts.directory.get("t-cafe")["capacity"] is None

    proposals = coordinator.post(
        "/coordinator/match",
        data={**PERSON, "csrf_token": csrf_of(coordinator, "/coordinator/match")},
        follow_redirects=True,
    )
    assert re.search(
        r"今月の受け入れ可能: 2人（\d+月\d+日に受け入れ先が報告（", proposals.get_data(as_text=True)
    )
    case_id = save_case(coordinator)
    placement_id = placement_of(hosts, case_id)
    # no consent confirmation: nothing is sent
    refused = send(coordinator, case_id, placement_id, confirm="")
    assert refused.status_code == 422 and "確認してください" in refused.get_data(as_text=True)
    assert send(coordinator, case_id, placement_id).status_code == 303
    assert (
        send(coordinator, case_id, placement_id).status_code == 409
    )  # one open referral per place

    home = host.get("/host/").get_data(as_text=True)
    assert "Aさん" in home
    referral_id = int(re.search(r"/host/referrals/(\d+)", home).group(1))
    page = host.get(f"/host/referrals/{referral_id}").get_data(as_text=True)
    assert "耳が遠いので正面から話す" in page and "本人同意" in page
    assert "体操" not in page and "82" not in page  # nothing of the case beyond what was sent
    from resdb.referrals import Referrals

    seen = Referrals(hosts.directory).get(
        accounts.account_by_email(hosts.directory.engine, "salon@example.jp"), referral_id
    )
    assert not {"case_id", "placement_id", "coordinator_id"} & set(
        seen
    )  # not even the ids leading to the case
    token = csrf_of(host, f"/host/referrals/{referral_id}")
    assert (
        host.post(
            f"/host/referrals/{referral_id}/answer", data={"answer": "decline", "csrf_token": token}
        ).status_code
        == 422
    )
    assert (
        host.post(
            f"/host/referrals/{referral_id}/answer", data={"answer": "accept", "csrf_token": token}
        ).status_code
        == 303
    )
    for day in (FIXED_TODAY - timedelta(days=7), FIXED_TODAY):
        assert (
            host.post(
                f"/host/referrals/{referral_id}/attended",
                data={"on": day.isoformat(), "csrf_token": token},
            ).status_code
            == 303
        )
    future = host.post(
        f"/host/referrals/{referral_id}/attended",
        data={"on": (FIXED_TODAY + timedelta(days=1)).isoformat(), "csrf_token": token},
    )
    assert future.status_code == 422

    # the other host sees neither the referral nor its pseudonym
    other = hosts.login("shakyo@example.jp")
    assert other.get(f"/host/referrals/{referral_id}").status_code == 404
    assert (
        other.post(
            f"/host/referrals/{referral_id}/answer",
            data={"answer": "decline", "reason": "full", "csrf_token": csrf_of(other, "/host/")},
        ).status_code
        == 404
    )
    assert "Aさん" not in other.get("/host/").get_data(as_text=True)

    # the coordinator sees the shared status on the case, and the placement stage moved with it
    case_page = coordinator.get(f"/coordinator/cases/{case_id}").get_data(as_text=True)
    assert "受け入れ可" in case_page and re.search(r'class="referral-attended">2<', case_page)
    assert re.search(r'class="stage referral-status">見学<', case_page)
    assert re.search(r'class="stage stage--visited">見学<', case_page)
    assert "戸破地区社協: 見学" in coordinator.get("/coordinator/").get_data(
        as_text=True
    )  # the caseload too
    # the coordinator moves it on; the host sees the same status
    moved = coordinator.post(
        f"/coordinator/referrals/{referral_id}/status",
        data={
            "status": "participating",
            "csrf_token": csrf_of(coordinator, f"/coordinator/cases/{case_id}"),
        },
    )
    assert moved.status_code == 303
    assert re.search(
        r'id="referral-status">参加中<',
        host.get(f"/host/referrals/{referral_id}").get_data(as_text=True),
    )
    # every view and change is in the audit log
    from resdb.audit import audit_entries

    actions = [
        e["action"]
        for e in audit_entries(
            hosts.directory.engine, limit=500, target_type="referral", target_id=str(referral_id)
        )
    ]
    for action in (
        "referral.send",
        "referral.view",
        "referral.answer",
        "referral.attended",
        "referral.status",
    ):
        assert action in actions, action


def test_answer_time_shown_from_five_referrals(hosts: StaffSetup) -> None:
    from sqlmodel import Session

    from resdb.models import Referral
    from resdb.services import Services

    services = Services(hosts.directory)
    engine = hosts.directory.engine
    coordinator = hosts.login("coord@example.jp")
    me = accounts.account_by_email(engine, "coord@example.jp")
    host = accounts.account_by_email(engine, "salon@example.jp")
    ids = []
    for n in range(5):
        case_id = save_case(coordinator, f"P{n}")
        ids.append(
            services.send_referral(
                me,
                case_id,
                placement_of(hosts, case_id),
                pseudonym=f"P{n}",
                proposed_dates="",
                helps="",
                contact_route="電話",
                confirmed=True,
            )["id"]
        )
        html = coordinator.post(
            "/coordinator/match",
            data={**PERSON, "csrf_token": csrf_of(coordinator, "/coordinator/match")},
            follow_redirects=True,
        ).get_data(as_text=True)
        assert "回答まで中央値" not in html
    for n, referral_id in enumerate(ids[:4]):
        services.answer_referral(
            host, referral_id, answer="accept" if n < 3 else "decline", reason="full"
        )
        with Session(engine) as session:  # answered 1, 2, 3 and 4 days after sending
            row = session.get(Referral, referral_id)
            row.sent_at = utcnow() - timedelta(days=n + 1)
            session.add(row)
            session.commit()
    html = coordinator.post(
        "/coordinator/match",
        data={**PERSON, "csrf_token": csrf_of(coordinator, "/coordinator/match")},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "回答まで中央値 2.5日・受け入れ 75%（紹介 5 件）" in html


def test_supporter_sheet_reaches_the_window_that_serves_the_address(hosts: StaffSetup) -> None:
    supporter = hosts.login("minsei@example.jp")
    token = csrf_of(supporter, "/supporter/")
    sheet = {
        "area": "稲城市平尾一丁目",
        "observed": "郵便物がたまっていて、夜も明かりがつかない",
        "consent": "not_yet",
        "supporter_contact": "090-0000-0000",
        "csrf_token": token,
    }
    empty = supporter.post("/supporter/sheets", data={**sheet, "observed": ""})
    assert empty.status_code == 422 and "気づいたこと" in empty.get_data(as_text=True)
    sent = supporter.post("/supporter/sheets", data=sheet)
    assert sent.status_code == 303 and "郵便" not in sent.headers["Location"]
    mine = supporter.get("/supporter/").get_data(as_text=True)
    assert (
        "受け付けました" in mine and "地域包括支援センターひらお" in mine and "郵便物" not in mine
    )
    # the serving window sees it; the other window and the coordinator desk do not
    hirao = hosts.login("hirao@example.jp")
    queue = hirao.get("/window/").get_data(as_text=True)
    sheet_id = int(re.search(r"/window/sheets/(\d+)", queue).group(1))
    assert "郵便物がたまって" in hirao.get(f"/window/sheets/{sheet_id}").get_data(as_text=True)
    yanokuchi = hosts.login("yanokuchi@example.jp")
    assert f"/window/sheets/{sheet_id}" not in yanokuchi.get("/window/").get_data(as_text=True)
    assert yanokuchi.get(f"/window/sheets/{sheet_id}").status_code == 404
    assert hosts.login("admin@example.jp").get(f"/window/sheets/{sheet_id}").status_code == 403
    # statuses 受付 → 対応中 → つないだ先 → 終了; the supporter sees only received / closed
    token = csrf_of(hirao, f"/window/sheets/{sheet_id}")
    assert (
        hirao.post(
            f"/window/sheets/{sheet_id}", data={"status": "referred", "csrf_token": token}
        ).status_code
        == 422
    )
    for status, extra in (
        ("in_progress", {}),
        ("referred", {"referred_to": "生活支援コーディネーター"}),
        ("closed", {}),
    ):
        assert (
            hirao.post(
                f"/window/sheets/{sheet_id}", data={"status": status, "csrf_token": token, **extra}
            ).status_code
            == 303
        )
    assert "終了しました" in supporter.get("/supporter/").get_data(as_text=True)
    # a 町字 with no center of its own goes to the 総合窓口
    supporter.post("/supporter/sheets", data={**sheet, "area": "向陽台"})
    from resdb.sheets import Sheets

    counts = {
        x["window"]: x["count"]
        for x in Sheets(hosts.directory).counts_by_window(
            utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)
        )
    }
    assert counts == {"t-hirao": 1, "general:132250": 1}


def test_closed_sheets_are_deleted_after_retention(hosts: StaffSetup) -> None:
    from sqlalchemy import text

    from resdb.services import Services

    services = Services(hosts.directory)
    engine = hosts.directory.engine
    supporter = accounts.account_by_email(engine, "minsei@example.jp")
    window = accounts.account_by_email(engine, "hirao@example.jp")
    sheet = services.submit_sheet(
        supporter,
        area="平尾",
        observed="見守りで気づいた",
        consent="agreed",
        supporter_contact="電話",
        municipality_code="132250",
    )
    services.update_sheet(window, sheet["id"], status="closed")
    assert services.sheets.purge(days=30) == 0
    assert services.sheets.purge(days=30, now=utcnow() + timedelta(days=31)) == 1
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM consult_sheet")).scalar() == 0
        )  # deleted, not hidden
    # still counted for the indicators
    assert (
        services.sheets.counts_by_window(
            utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)
        )[0]["count"]
        == 1
    )


def test_indicators_count_partners_and_sheets(hosts: StaffSetup) -> None:
    from resdb.services import Services

    services = Services(hosts.directory)
    engine = hosts.directory.engine
    coordinator = hosts.login("coord@example.jp")
    me = accounts.account_by_email(engine, "coord@example.jp")
    case_id = save_case(coordinator)
    referral = services.send_referral(
        me,
        case_id,
        placement_of(hosts, case_id),
        pseudonym="A",
        proposed_dates="",
        helps="",
        contact_route="電話",
        confirmed=True,
    )
    host = accounts.account_by_email(engine, "salon@example.jp")
    services.answer_referral(host, referral["id"], answer="accept")
    services.referral_status(host, referral["id"], "participating")
    services.submit_sheet(
        accounts.account_by_email(engine, "minsei@example.jp"),
        area="矢野口",
        observed="気になる",
        consent="agreed",
        supporter_contact="電話",
        municipality_code="132250",
    )
    year = utcnow().year if utcnow().month >= 4 else utcnow().year - 1
    html = coordinator.get(f"/coordinator/indicators?year={year}").get_data(as_text=True)
    assert re.search(r'<td class="partners">1</td><td class="sheets">1</td>', html)
    assert "地域包括支援センターやのくち" in html and "戸破地区社協" in html
    row = re.search(r"<tr><th scope=\"row\">\d+年度</th><td>(\d+)</td><td>(\d+)</td>", html)
    assert row and row.group(2) == "1"  # 活動参加の場への利用につながった人数


def test_host_keeps_its_listing_directly_or_through_review(hosts: StaffSetup) -> None:
    host = hosts.login("salon@example.jp")
    form = {
        "description": "毎月第1・第3水曜の午後に集まっています",
        "phone": "0766-11-2222",
        "email": "",
        "url": "",
        "cost_yen": "100",
        "group_size": "",
        "accepts_referrals": "1",
        "version": "1",
        "csrf_token": csrf_of(host, "/host/listings/t-salon"),
    }
    assert host.post("/host/listings/t-salon", data=form).status_code == 303
    listing = hosts.directory.get("t-salon")
    assert listing["phone"] == "0766-11-2222" and listing["operator"] == "戸破地区社協"
    assert hosts.directory.history("t-salon")[-1]["actor"] == "salon@example.jp"
    bad = host.post("/host/listings/t-salon", data={**form, "version": "2", "cost_yen": "-5"})
    assert bad.status_code == 422 and 'value="-5"' in bad.get_data(
        as_text=True
    )  # nothing typed is lost
    assert host.get("/host/listings/t-cafe").status_code == 404  # another organisation's listing
    # where the city wants it, a host's edit waits for an editor
    hosts.app.config["HOST_EDITS_REVIEWED"] = True
    held = host.post(
        "/host/listings/t-salon", data={**form, "version": "2", "phone": "0766-99-9999"}
    )
    assert held.status_code == 303 and "proposed" in held.headers["Location"]
    assert hosts.directory.get("t-salon")["phone"] == "0766-11-2222"
    editor = hosts.login("imizu@example.jp")
    queue = editor.get("/editor/corrections").get_data(as_text=True)
    assert "受け入れ先「戸破地区社協」からの変更の提案" in queue
    request_id = int(re.search(r"/editor/corrections/(\d+)", queue).group(1))
    accepted = editor.post(
        f"/editor/corrections/{request_id}",
        data={"decision": "accept", "csrf_token": csrf_of(editor, "/editor/corrections")},
    )
    assert accepted.status_code in {302, 303}
    assert hosts.directory.get("t-salon")["phone"] == "0766-99-9999"


def test_capacity_age_follows_who_set_it(hosts: StaffSetup) -> None:
    """An editor's edit of capacity is dated too; a number that came another way says 「報告日不明」."""
    from resdb import capacity
    from resdb.services import Services

    services = Services(hosts.directory)
    editor = accounts.account_by_email(hosts.directory.engine, "imizu@example.jp")
    services.update(editor, "t-cafe", {"capacity": 3}, expected_version=None, today=FIXED_TODAY)
    info = capacity.describe_many(
        hosts.directory.engine, [hosts.directory.get("t-cafe")], FIXED_TODAY
    )["t-cafe"]
    assert info["text"] == "今月の受け入れ可能: 3人" and "編集者が報告" in info["age"]
    hosts.directory.update(
        "t-cafe", {"capacity": 4}, actor="import", expected_version=None
    )  # not through a report
    info = capacity.describe_many(
        hosts.directory.engine, [hosts.directory.get("t-cafe")], FIXED_TODAY
    )["t-cafe"]
    assert info["age"] == "報告日不明" and info["stale"]
    later = FIXED_TODAY + timedelta(
        days=40
    )  # last month's report is labelled with its month and marked old
    services.update(editor, "t-cafe", {"capacity": 2}, expected_version=None, today=FIXED_TODAY)
    info = capacity.describe_many(hosts.directory.engine, [hosts.directory.get("t-cafe")], later)[
        "t-cafe"
    ]
    assert info["text"] == "12月の受け入れ可能: 2人" and info["stale"]
