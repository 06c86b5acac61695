"""The command line for hosts and referrers: host and supporter accounts, HSDS 3.1 `service_capacity` with the
date open places were reported, and deleting closed 相談依頼シート past retention."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result
from sqlalchemy import text

from tests.conftest import CliRun


def run(directory: Any, *args: str, input: str | None = None) -> Result:
    return CliRun()(*args, directory=directory, input=input)


def test_accounts_capacity_export_and_sheet_retention(make_directory: Any, tmp_path: Path) -> None:
    from resdb import accounts
    from resdb.demo import load_districts
    from resdb.models import utcnow
    from resdb.services import Services

    directory = make_directory("sqlite")
    load_districts(directory, ("13225",))
    directory.create(
        {
            "id": "c-hirao",
            "name": "地域包括支援センターひらお",
            "kind": "center",
            "municipality_code": "132250",
            "lat": 35.6226,
            "lon": 139.4917,
            "service_area": {"districts": ["坂浜", "平尾"]},
        },
        actor="t",
    )
    directory.create(
        {
            "id": "h-farm",
            "name": "農園での就労準備体験",
            "kind": "work_trial",
            "municipality_code": "132250",
            "lat": 35.63,
            "lon": 139.50,
            "operator": "いなぎ農園",
        },
        actor="t",
    )
    refused = run(
        directory,
        "user",
        "add",
        "farm@example.jp",
        "--role",
        "host",
        input="long enough password\n",
    )
    assert refused.exit_code != 0 and "団体名" in refused.output
    for args in (
        ("farm@example.jp", "--role", "host", "--operator", "いなぎ農園"),
        ("minsei@example.jp", "--role", "supporter", "--municipality", "13225"),
        ("hirao@example.jp", "--role", "coordinator", "--window", "c-hirao"),
    ):
        result = run(directory, "user", "add", *args, input="long enough password\n")
        assert result.exit_code == 0, result.output
    engine = directory.engine
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM organization WHERE name = 'いなぎ農園'")
            ).scalar()
            == 1
        )
    host = accounts.account_by_email(engine, "farm@example.jp")
    supporter = accounts.account_by_email(engine, "minsei@example.jp")
    window = accounts.account_by_email(engine, "hirao@example.jp")
    assert (
        host.operator == "いなぎ農園"
        and supporter.municipality_code == "132250"
        and window.window == "c-hirao"
    )

    services = Services(directory)
    services.report_capacity(host, "h-farm", 2, today=date.today())
    out = tmp_path / "hsds.json"
    assert run(directory, "export", "--format", "hsds", "-o", str(out)).exit_code == 0
    hsds = json.loads(out.read_text(encoding="utf-8"))
    assert hsds["hsds_version"] == "3.1"
    farm = next(s for s in hsds["services"] if s["id"] == "h-farm")
    assert farm["capacities"][0]["available"] == 2 and farm["capacities"][0]["unit"]["name"] == "人"
    assert farm["capacities"][0]["updated"][:10] == utcnow().date().isoformat()
    assert next(s for s in hsds["services"] if s["id"] == "c-hirao")["capacities"] == []

    sheet = services.submit_sheet(
        supporter,
        area="坂浜",
        observed="見守りで気づいた",
        consent="agreed",
        supporter_contact="電話",
        municipality_code="132250",
    )
    assert sheet["window"] == "c-hirao"
    services.update_sheet(window, sheet["id"], status="closed")
    kept = json.loads(run(directory, "sheets", "purge", "--json").output)
    assert kept == {"deleted": 0, "retention_days": 365}
    with engine.begin() as conn:  # closed 400 days ago
        conn.execute(
            text("UPDATE consult_sheet SET closed_at = :at"), {"at": utcnow() - timedelta(days=400)}
        )
    assert json.loads(run(directory, "sheets", "purge", "--json").output)["deleted"] == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM consult_sheet")).scalar() == 0
