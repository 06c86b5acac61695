"""One door for every change: the editor pages, the JSON API and the CLI each write exactly one audit entry
per change (who, when, what), in the change's own transaction; scope holds for restores and imports by
every door; failed sign-ins are audited without the password."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from resdb import accounts
from resdb.audit import audit_count, audit_entries
from resdb.services import Services
from tests.web.conftest import PASSWORD, StaffSetup, csrf_of


def _cli(staff: StaffSetup, monkeypatch: Any, *args: str) -> Any:
    from resdb.cli import main

    monkeypatch.setenv(
        "RESDB_DATABASE_URL", staff.directory.engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("RESDB_INSTANCE", str(staff.directory.instance_dir))
    return CliRunner().invoke(main, list(args))


def _form(client: Any, path: str) -> dict[str, Any]:
    from tests.web.test_editor import form_of

    return form_of(client, path)


def test_every_door_audits_each_write_once(
    staff: StaffSetup, tmp_path: Any, monkeypatch: Any
) -> None:
    engine = staff.directory.engine
    steps: list[tuple[str, str]] = []

    def step(name: str, action: str, do: Any) -> None:
        before = audit_count(engine)
        do()
        assert audit_count(engine) == before + 1, name
        newest = audit_entries(engine, limit=1)[0]
        assert newest["action"] == action and newest["at"] is not None, (name, newest)
        steps.append((name, newest["actor"]))

    editor = staff.login("imizu@example.jp")
    data = _form(editor, "/editor/listings/t-cafe")
    data["description"] = "編集画面からの説明"
    step(
        "editor update", "listing.update", lambda: editor.post("/editor/listings/t-cafe", data=data)
    )
    new = _form(editor, "/editor/listings/new")
    new.update(name="画面から作ったサロン", kind="kayoi", lat="36.73", lon="137.09")
    step("editor create", "listing.create", lambda: editor.post("/editor/listings/new", data=new))

    token = {"Authorization": f"Bearer {accounts.create_token(engine, 'imizu@example.jp')}"}
    client = staff.client()
    created: dict[str, Any] = {}

    def api_create() -> None:
        response = client.post(
            "/api/resources",
            json={"name": "APIのサロン", "kind": "kayoi", "lat": 36.72, "lon": 137.1},
            headers=token,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        created.update(response.get_json())

    step("api create", "listing.create", api_create)
    step(
        "api update",
        "listing.update",
        lambda: client.patch(
            f"/api/resources/{created['id']}", json={"capacity": 3}, headers=token
        ),
    )
    step(
        "api delete",
        "listing.delete",
        lambda: client.delete(f"/api/resources/{created['id']}", headers=token),
    )

    path = tmp_path / "one.csv"
    path.write_text(
        "id,名称,種別,緯度,経度\ncli-1,CLIのサロン,kayoi,36.72,137.10\n", encoding="utf-8"
    )
    step(
        "cli import",
        "import",
        lambda: _cli(staff, monkeypatch, "import", str(path), "--actor", "tester"),
    )
    assert dict(steps)["cli import"] == "cli:tester"
    assert dict(steps)["api create"] == dict(steps)["editor update"] == "imizu@example.jp"
    # a refused write adds nothing (and the dry run is not a write)
    before = audit_count(engine)
    assert (
        client.patch("/api/resources/t-salon", json={"cost_yen": 2**31}, headers=token).status_code
        == 422
    )
    assert _cli(staff, monkeypatch, "import", str(path), "--dry-run").exit_code == 0
    assert audit_count(engine) == before


def test_restore_cannot_move_a_listing_out_of_scope(staff: StaffSetup, monkeypatch: Any) -> None:
    admin = accounts.account_by_email(staff.directory.engine, "admin@example.jp")
    imizu = accounts.account_by_email(staff.directory.engine, "imizu@example.jp")
    assert admin and imizu
    services = Services(staff.directory)
    # an Inagi listing an admin moved into Imizu (version 2): its version 1 lies outside the Imizu editor's scope
    services.update(admin, "t-inagi", {"municipality_code": "162116"}, expected_version=1)
    editor = staff.login("imizu@example.jp")
    token = csrf_of(editor, "/editor/listings/t-inagi/history")
    response = editor.post(
        "/editor/listings/t-inagi/restore", data={"csrf_token": token, "to_version": "1"}
    )
    assert response.status_code == 403
    listing = staff.directory.get("t-inagi")
    assert listing["municipality_code"] == "162116" and listing["version"] == 2
    # the same through the CLI acting as that editor: an import that would move t-inagi back is refused
    path = staff.directory.instance_dir / "move.csv"
    path.write_text(
        "id,名称,種別,緯度,経度,地方公共団体コード\nt-inagi,稲城の体操クラブ,kayoi,35.638,139.5046,132250\n"
        "t-new,射水の新しい場,kayoi,36.72,137.1,162116\n",
        encoding="utf-8",
    )
    result = _cli(staff, monkeypatch, "import", str(path), "--as", "imizu@example.jp", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert [(p["row"], p["field"]) for p in report["problems"]] == [(2, "municipality_code")]
    assert "担当範囲" in report["problems"][0]["message"] and not report["written"]
    assert staff.directory.get("t-inagi")["municipality_code"] == "162116"
    # an admin may (and it is audited as a restore)
    services.restore(admin, "t-inagi", to_version=1)
    assert staff.directory.get("t-inagi")["municipality_code"] == "132250"
    assert audit_entries(staff.directory.engine, limit=1)[0]["action"] == "listing.restore"


def test_correction_acceptance_is_one_transaction(staff: StaffSetup) -> None:
    from resdb.workspace import Workspace

    workspace = Workspace(staff.directory)
    inside = workspace.submit_correction(
        "t-salon", "電話番号が違います", proposed={"phone": "0766-11-2222"}
    )
    outside = workspace.submit_correction(
        "t-inagi", "電話番号が違います", proposed={"phone": "042-000-0000"}
    )
    editor = staff.login("imizu@example.jp")
    token = csrf_of(editor, "/editor/corrections")
    refused = editor.post(
        f"/editor/corrections/{outside}", data={"csrf_token": token, "decision": "accept"}
    )
    assert refused.status_code == 403
    assert staff.directory.get("t-inagi")["phone"] is None  # neither the listing changed …
    assert [c["id"] for c in workspace.corrections("open")] == [
        outside,
        inside,
    ]  # … nor the request
    before = audit_count(staff.directory.engine)
    assert (
        editor.post(
            f"/editor/corrections/{inside}", data={"csrf_token": token, "decision": "accept"}
        ).status_code
        == 303
    )
    assert staff.directory.get("t-salon")["phone"] == "0766-11-2222"
    assert (
        audit_count(staff.directory.engine) == before + 2
    )  # the listing's change and the decision
    assert (
        editor.post(
            f"/editor/corrections/{inside}", data={"csrf_token": token, "decision": "accept"}
        ).status_code
        == 404
    )


def test_failed_sign_in_is_audited_without_the_password(staff: StaffSetup) -> None:
    from tests.web.test_privacy import database_text

    client = staff.client()
    secret = "WrongPasswordZQ9"
    for email in (
        "imizu@example.jp",
        "nobody@example.jp",
        secret,
    ):  # a password typed into the email box too
        client.post(
            "/login", data={"email": email, "password": secret, "csrf_token": csrf_of(client)}
        )
    failed = audit_entries(staff.directory.engine, action="login.failed")
    assert [(e["actor"], e["detail"]) for e in reversed(failed)] == [
        ("imizu@example.jp", "wrong password"),
        ("(unknown)", "unknown account"),
        ("(unknown)", "unknown account"),
    ]
    assert secret not in database_text(staff.directory.engine)
    assert staff.login("imizu@example.jp", PASSWORD)  # one failure does not lock
