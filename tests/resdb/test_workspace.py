"""Workspace core: corrections reach editors and go through history, verification queue, saved cases
with stages and follow-ups, audit of every write and case view, yearly indicators."""

from __future__ import annotations

from datetime import date

import pytest

from resdb.accounts import add_user
from resdb.directory import Directory
from resdb.validation import ValidationFailed
from resdb.workspace import Forbidden, RateLimited, Workspace, audit_entries

SALON = {
    "id": "w-salon",
    "name": "戸破ふれあいサロン",
    "kind": "kayoi",
    "lat": 36.7217,
    "lon": 137.1107,
    "operator": "戸破自治会",
    "municipality_code": "162116",
    "verified_at": "2024-01-10",
}


@pytest.fixture
def ws(directory: Directory) -> Workspace:
    directory.create(SALON, actor="seed")
    return Workspace(directory)


def test_correction_reaches_editor_queue_and_goes_through_history(ws: Workspace) -> None:
    editor = add_user(
        ws.engine, "ed@example.jp", "editor", "long enough pw", municipality_code="162116"
    )
    request_id = ws.submit_correction(
        "w-salon",
        "開催日が変わりました",
        proposed={"schedule": "毎週木曜 10:00〜12:00"},
        client="c1",
    )
    queue = ws.corrections("open", editor)
    assert [r["id"] for r in queue] == [request_id] and queue[0][
        "listing_name"
    ] == "戸破ふれあいサロン"
    ws.review_correction(request_id, editor, accept=True)
    assert ws.directory.get("w-salon")["schedule"][0]["weekday"] == "thu"
    assert ws.directory.history("w-salon")[-1]["action"] == "correction"
    assert ws.corrections("open", editor) == []


def test_correction_validation_and_spam_limit(ws: Workspace) -> None:
    with pytest.raises(ValidationFailed):
        ws.submit_correction("w-salon", "", client="c2")
    with pytest.raises(ValidationFailed):
        ws.submit_correction("w-salon", "x", proposed={"lat": "999"}, client="c2")
    for _ in range(5):
        ws.submit_correction("w-salon", "間違いがあります", client="spam")
    with pytest.raises(RateLimited):
        ws.submit_correction("w-salon", "まだあります", client="spam")


def test_editor_outside_scope_cannot_review(ws: Workspace) -> None:
    other = add_user(
        ws.engine, "inagi@example.jp", "editor", "long enough pw", municipality_code="132250"
    )
    request_id = ws.submit_correction("w-salon", "電話番号が違います", client="c3")
    assert ws.corrections("open", other) == []
    with pytest.raises(Forbidden):
        ws.review_correction(request_id, other, accept=False)


def test_verification_queue_lists_stale_listings(ws: Workspace) -> None:
    assert [x["id"] for x in ws.verification_queue(today=date(2026, 11, 30))] == ["w-salon"]
    ws.directory.verify("w-salon", actor="ed", on=date(2026, 11, 1))
    assert ws.verification_queue(today=date(2026, 11, 30)) == []


def test_case_lifecycle_audit_and_indicators(ws: Workspace) -> None:
    coordinator = add_user(ws.engine, "co@example.jp", "coordinator", "long enough pw")
    someone_else = add_user(ws.engine, "co2@example.jp", "coordinator", "long enough pw")
    case = ws.save_case(
        coordinator,
        pseudonym="Aさん",
        legal_basis="consent",
        person={"goals": ["friends"]},
        proposals=[{"resource_id": "w-salon", "score": 0.8}],
    )
    placement_id = case["placements"][0]["id"]
    ws.record(
        placement_id,
        coordinator,
        kind="stage",
        to_stage="visited",
        note="見学した",
        next_follow_up=date(2026, 12, 10),
    )
    ws.record(placement_id, coordinator, kind="stage", to_stage="participating")
    ws.record(placement_id, coordinator, kind="host_support", note="受け入れ先に声かけ")
    viewed = ws.case(case["id"], coordinator)
    assert viewed["placements"][0]["stage_label"] == "参加中"
    assert [e["to_stage"] for e in viewed["placements"][0]["events"]] == [
        "visited",
        "participating",
        None,
    ]
    assert ws.cases(coordinator)[0]["next_follow_up"] == date(2026, 12, 10)
    with pytest.raises(Forbidden):
        ws.case(case["id"], someone_else)
    actions = [e["action"] for e in audit_entries(ws.engine, target_type="case")]
    assert "case.view" in actions and "case.create" in actions and "placement.stage" in actions
    assert all("Aさん" not in (e["detail"] or "") for e in audit_entries(ws.engine))
    year = date.today().year if date.today().month >= 4 else date.today().year - 1
    numbers = ws.indicators(year)
    assert (numbers["plans"], numbers["joined_persons"], numbers["host_organizations"]) == (1, 1, 1)
    assert Workspace.indicators_csv([numbers]).splitlines()[1].startswith(f"{year}年度,1,1,1")


def test_case_needs_legal_basis_and_coordinator(ws: Workspace) -> None:
    coordinator = add_user(ws.engine, "co@example.jp", "coordinator", "long enough pw")
    editor = add_user(ws.engine, "ed2@example.jp", "editor", "long enough pw")
    with pytest.raises(ValidationFailed):
        ws.save_case(coordinator, pseudonym="B", legal_basis="because", person={})
    with pytest.raises(Forbidden):
        ws.save_case(editor, pseudonym="B", legal_basis="consent", person={})
