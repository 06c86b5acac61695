"""Editor workspace end to end with the test client (each backend)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from resdb.workspace import audit_entries
from tests.web.conftest import csrf_of


def form_of(client: Any, path: str) -> dict[str, Any]:
    """The edit form's fields as a browser would send them (text inputs, selects, checked boxes)."""
    html = client.get(path).get_data(as_text=True)
    data: dict[str, Any] = {}
    for tag in re.finditer(r"<input\b[^>]*>", html):
        attrs = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', tag.group(0)))
        name = attrs.get("name")
        if not name or attrs.get("type") in {"submit", "file"}:
            continue
        if attrs.get("type") == "checkbox":
            if " checked" in tag.group(0):
                data.setdefault(name, []).append(attrs.get("value", "on"))
            continue
        data[name] = _unescape(attrs.get("value", ""))
    for select in re.finditer(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select.group(2))
        data[select.group(1)] = chosen.group(1) if chosen else ""
    for area in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        data[area.group(1)] = _unescape(area.group(2))
    return data


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_home_lists_scope_queue_and_corrections(staff: Any) -> None:
    client = staff.login("imizu@example.jp")
    html = client.get("/editor/").get_data(as_text=True)
    assert "戸破ふれあいサロン" in html and "稲城の体操クラブ" not in html
    assert html.index('id="editor-q"') < html.index("確認が必要な掲載")  # search first
    assert "未処理の訂正依頼" in html
    queue = client.get("/editor/queue").get_data(as_text=True)
    assert (
        "すてっぴカフェ" in queue and "/verify" not in queue
    )  # t-cafe was never verified; verify on its page


def test_fix_schedule_then_verify_appears_in_history(staff: Any) -> None:
    client = staff.login("imizu@example.jp")
    data = form_of(client, "/editor/listings/t-salon")
    assert data["version"] == "1" and data["schedule-0-weekday"] == "wed"
    data["schedule-0-weekday"] = "thu"
    data["schedule-0-weeks"] = ["2", "4"]
    data["schedule-1-weekday"], data["schedule-1-start"], data["schedule-1-end"] = (
        "sat",
        "10:00",
        "11:30",
    )
    response = client.post("/editor/listings/t-salon", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    listing = staff.directory.get("t-salon")
    assert listing["schedule"] == [
        {"weekday": "thu", "weeks": [2, 4], "start": "13:30", "end": "15:30"},
        {"weekday": "sat", "start": "10:00", "end": "11:30"},
    ]
    assert listing["name"] == "戸破ふれあいサロン" and listing["version"] == 2

    token = csrf_of(client, "/editor/")
    assert (
        client.post(
            "/editor/listings/t-cafe/verify", data={"csrf_token": token, "confirm": "yes"}
        ).status_code
        == 303
    )
    today = min(date(2026, 12, 2), date.today()).isoformat()
    assert staff.directory.get("t-cafe")["verified_at"] == today
    history = client.get("/editor/listings/t-cafe/history").get_data(as_text=True)
    day = date.fromisoformat(today)
    assert (
        "確認" in history
        and f"{day.year}年{day.month}月{day.day}日" in history
        and "imizu@example.jp" in history
    )
    history = client.get("/editor/listings/t-salon/history").get_data(as_text=True)
    assert "編集" in history and "木" in history  # the schedule diff shows the new weekday
    actions = {(e["action"], e["target_id"]) for e in audit_entries(staff.directory.engine)}
    assert ("listing.update", "t-salon") in actions and ("listing.verify", "t-cafe") in actions


def test_validation_problems_shown_in_japanese_and_input_kept(staff: Any) -> None:
    client = staff.login("imizu@example.jp")
    data = form_of(client, "/editor/listings/t-salon")
    data["schedule-0-start"] = "25:00"
    data["name"] = "新しい名前（まだ保存されない）"
    data["lat"] = "10.0"
    response = client.post("/editor/listings/t-salon", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "新しい名前（まだ保存されない）" in html and 'aria-invalid="true"' in html
    assert "保存できませんでした" in html
    assert staff.directory.get("t-salon")["version"] == 1


def test_create_draft_then_publish(staff: Any) -> None:
    client = staff.login("imizu@example.jp")
    data = form_of(client, "/editor/listings/new")
    data.update(
        {
            "name": "新しいサロン",
            "kind": "kayoi",
            "lat": "36.72",
            "lon": "137.10",
            "status": "draft",
            "schedule-0-weekday": "mon",
            "schedule-0-start": "10:00",
            "schedule-0-end": "11:00",
        }
    )
    response = client.post("/editor/listings/new", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    new_id = response.headers["Location"].split("/editor/listings/")[1].split("?")[0]
    listing = staff.directory.get(new_id, include_unpublished=True)
    assert listing["status"] == "draft" and listing["municipality_code"] == "162116"
    assert "新しいサロン" in client.get("/editor/").get_data(as_text=True)
    data = form_of(client, f"/editor/listings/{new_id}")
    data["status"] = "published"
    assert client.post(f"/editor/listings/{new_id}", data=data).status_code == 303
    assert staff.directory.get(new_id)["status"] == "published"


def test_out_of_scope_create_refused(staff: Any) -> None:
    client = staff.login("inagi@example.jp")
    data = form_of(client, "/editor/listings/new")
    data.update(
        {
            "name": "範囲外",
            "kind": "kayoi",
            "lat": "36.72",
            "lon": "137.10",
            "municipality_code": "162116",
        }
    )
    assert client.post("/editor/listings/new", data=data).status_code == 422


def test_stale_edit_409_shows_both_versions(staff: Any) -> None:
    first, second = staff.login("imizu@example.jp"), staff.login("admin@example.jp")
    a, b = form_of(first, "/editor/listings/t-salon"), form_of(second, "/editor/listings/t-salon")
    a["phone"] = "0766-11-1111"
    assert first.post("/editor/listings/t-salon", data=a).status_code == 303
    b["phone"] = "0766-22-2222"
    response = second.post("/editor/listings/t-salon", data=b)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "0766-11-1111" in html and "0766-22-2222" in html and "他の人が先に変更しました" in html
    assert 'name="version" value="2"' in html
    assert staff.directory.get("t-salon")["phone"] == "0766-11-1111"


def test_delete_and_restore(staff: Any) -> None:
    client = staff.login("imizu@example.jp")
    token = csrf_of(client, "/editor/listings/t-cafe/delete")
    refused = client.post(
        "/editor/listings/t-cafe/delete", data={"csrf_token": token, "version": "1"}
    )
    assert refused.status_code == 400  # the confirmation box was not ticked
    deleted = client.post(
        "/editor/listings/t-cafe/delete",
        data={"csrf_token": token, "version": "1", "confirm": "yes"},
    )
    assert deleted.status_code == 303
    page = client.get(deleted.headers["Location"]).get_data(as_text=True)
    assert (
        "すてっぴカフェ" in page and "「すてっぴカフェ」を削除しました" in page
    )  # a notice after the action
    assert client.get("/resources/t-cafe").status_code == 404
    assert (
        client.post("/editor/listings/t-cafe/restore", data={"csrf_token": token}).status_code
        == 303
    )
    assert staff.directory.get("t-cafe")["status"] == "published"
    actions = [e["action"] for e in audit_entries(staff.directory.engine, target_id="t-cafe")]
    assert "listing.delete" in actions and "listing.restore" in actions


def test_restore_a_version_from_history(staff: Any) -> None:
    client = staff.login("imizu@example.jp")
    data = form_of(client, "/editor/listings/t-salon")
    data["cost_yen"] = "500"
    assert client.post("/editor/listings/t-salon", data=data).status_code == 303
    assert staff.directory.get("t-salon")["cost_yen"] == 500
    html = client.get("/editor/listings/t-salon/history").get_data(as_text=True)
    assert "この版に戻す" in html and "500" in html
    token = csrf_of(client, "/editor/listings/t-salon/history")
    assert (
        client.post(
            "/editor/listings/t-salon/restore", data={"csrf_token": token, "to_version": "1"}
        ).status_code
        == 303
    )
    listing = staff.directory.get("t-salon")
    assert listing["cost_yen"] == 100 and listing["version"] == 3
    assert staff.directory.history("t-salon")[-1]["action"] == "restore"


def test_public_correction_to_queue_to_history(staff: Any) -> None:
    public = staff.client()
    page = public.get("/resources/t-salon/report")
    assert page.status_code == 200 and 'name="message"' in page.get_data(as_text=True)
    token = csrf_of(public, "/resources/t-salon/report")
    bad = public.post(
        "/resources/t-salon/report", data={"csrf_token": token, "message": "", "phone": "x"}
    )
    assert bad.status_code == 422 and "内容を書いてください" in bad.get_data(as_text=True)
    response = public.post(
        "/resources/t-salon/report",
        data={
            "csrf_token": token,
            "message": "電話番号が変わりました",
            "phone": "0766-99-9999",
            "contact": "",
        },
    )
    assert response.status_code == 200 and "ありがとうございました" in response.get_data(
        as_text=True
    )

    editor = staff.login("imizu@example.jp")
    html = editor.get("/editor/corrections").get_data(as_text=True)
    assert "電話番号が変わりました" in html and "0766-99-9999" in html
    request_id = re.search(r"/editor/corrections/(\d+)", html).group(1)
    token = csrf_of(editor, "/editor/corrections")
    assert (
        editor.post(
            f"/editor/corrections/{request_id}", data={"csrf_token": token, "decision": "accept"}
        ).status_code
        == 303
    )
    assert staff.directory.get("t-salon")["phone"] == "0766-99-9999"
    assert staff.directory.history("t-salon")[-1]["action"] == "correction"
    assert "訂正依頼の反映" in editor.get("/editor/listings/t-salon/history").get_data(as_text=True)
    # out of scope editors do not see it; rejecting works
    response = public.post(
        "/resources/t-cafe/report",
        data={"csrf_token": csrf_of(public, "/resources/t-cafe/report"), "message": "閉所しました"},
    )
    assert response.status_code == 200
    assert "閉所しました" not in staff.login("inagi@example.jp").get(
        "/editor/corrections"
    ).get_data(as_text=True)
    html = editor.get("/editor/corrections").get_data(as_text=True)
    request_id = re.search(r"/editor/corrections/(\d+)", html).group(1)
    assert (
        editor.post(
            f"/editor/corrections/{request_id}",
            data={"csrf_token": token, "decision": "reject", "note": "確認したが開所中"},
        ).status_code
        == 303
    )
    assert "確認したが開所中" in editor.get("/editor/corrections").get_data(as_text=True)


def test_public_correction_rate_limited(staff: Any) -> None:
    public = staff.client()
    token = csrf_of(public, "/resources/t-salon/report")
    codes = [
        public.post(
            "/resources/t-salon/report", data={"csrf_token": token, "message": f"報告 {n}"}
        ).status_code
        for n in range(7)
    ]
    assert codes[:5] == [200] * 5 and codes[-1] == 429


CSV_OK = (
    "id,name,kind,lat,lon,municipality_code,phone\n"
    "imp-1,新しい通いの場,kayoi,36.73,137.11,162116,0766-00-0001\n"
    "t-salon,戸破ふれあいサロン,kayoi,36.7236,137.0991,162116,0766-00-0002\n"
)
CSV_BAD = (
    "id,name,kind,lat,lon\n"
    "imp-1,よい行,kayoi,36.73,137.11\n"
    "imp-2,悪い行,unknownkind,36.73,137.11\n"
    "imp-3,外国,kayoi,10.0,137.11\n"
)


def _upload(client: Any, text: str, name: str = "data.csv") -> Any:
    import io

    token = csrf_of(client, "/editor/import")
    return client.post(
        "/editor/import",
        data={"csrf_token": token, "file": (io.BytesIO(text.encode()), name)},
        content_type="multipart/form-data",
    )


def test_import_dry_run_then_confirm(staff: Any) -> None:
    client = staff.login("imizu@example.jp")
    response = _upload(client, CSV_BAD)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "3" in html and "種別" in html and "緯度" in html
    assert (
        "問題のない 1件だけ取り込む" in html
    )  # the good row may be imported alone (never silently)
    response = _upload(client, CSV_OK, "../../evil name.csv")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:2000]
    assert "まだ何も書き込んでいません" in html and "この内容で取り込む" in html
    assert "imp-1" not in {x["id"] for x in staff.directory.all_listings()}
    stored = re.search(r'name="upload" value="([^"]+)"', html).group(1)
    assert ".." not in stored and "evil" not in stored
    assert (staff.directory.instance_dir / "uploads" / stored).exists()
    token = csrf_of(client, "/editor/import")
    done = client.post(
        "/editor/import/confirm",
        data={"csrf_token": token, "upload": stored, "original": "evil name.csv"},
    )
    assert done.status_code == 200 and "取り込みました" in done.get_data(as_text=True)
    new = staff.directory.get("imp-1", include_unpublished=True)
    assert (
        new["name"] == "新しい通いの場" and new["status"] == "draft"
    )  # new listings wait for review
    assert staff.directory.get("t-salon")["phone"] == "0766-00-0002"
    assert not (staff.directory.instance_dir / "uploads" / stored).exists()
    assert any(e["action"] == "import" for e in audit_entries(staff.directory.engine))
    again = client.post(
        "/editor/import/confirm", data={"csrf_token": token, "upload": "../../etc/passwd"}
    )
    assert again.status_code == 400


def test_import_refuses_rows_outside_scope(staff: Any) -> None:
    client = staff.login("inagi@example.jp")
    response = _upload(client, CSV_OK)
    html = response.get_data(as_text=True)
    assert (
        response.status_code == 422 and "担当範囲" in html and "/editor/import/confirm" not in html
    )
    assert "imp-1" not in {x["id"] for x in staff.directory.all_listings()}


def test_audit_page_admin_only(staff: Any) -> None:
    admin = staff.login("admin@example.jp")
    token = csrf_of(admin, "/editor/")
    admin.post("/editor/listings/t-salon/verify", data={"csrf_token": token, "confirm": "yes"})
    html = admin.get("/editor/audit").get_data(as_text=True)
    assert "listing.verify" in html and "admin@example.jp" in html
    assert staff.login("imizu@example.jp").get("/editor/audit").status_code == 403
