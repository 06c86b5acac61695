"""Races: concurrent case saves never share a code (8 threads × 5), parallel wrong passwords get at most
MAX_FAILED_LOGINS password checks before the lockout; on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from resdb import accounts
from resdb.audit import audit_entries
from resdb.services import Services
from tests.web.conftest import StaffSetup

THREADS, SAVES = 8, 5


def test_concurrent_case_saves(staff: StaffSetup) -> None:
    coordinator = accounts.account_by_email(staff.directory.engine, "coord@example.jp")
    assert coordinator is not None
    services = Services(staff.directory)

    def save(worker: int) -> list[str]:
        codes = []
        for i in range(SAVES):
            case = services.save_case(
                coordinator,
                pseudonym=f"W{worker}-{i}",
                legal_basis="consent",
                person={"home": {"lat": 36.72, "lon": 137.1}},
                notes="メモ",
                proposals=[{"resource_id": "t-salon", "score": 0.5}],
            )
            codes.append(case["code"])
        return codes

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(save, range(THREADS)))  # any failure raises here
    codes = [code for worker in results for code in worker]
    assert len(codes) == len(set(codes)) == THREADS * SAVES
    assert len(services.workspace.cases(coordinator)) == THREADS * SAVES


def test_parallel_wrong_passwords_stop_at_the_lockout(staff: StaffSetup) -> None:
    engine = staff.directory.engine

    def attempt(_: Any) -> Any:
        return accounts.authenticate(engine, "imizu@example.jp", "wrong password!")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(40)))
    assert answers == [None] * 40
    failed = audit_entries(engine, action="login.failed", limit=100)
    checked = [e for e in failed if e["detail"] == "wrong password"]
    assert len(failed) == 40
    assert len(checked) == accounts.MAX_FAILED_LOGINS  # the rest were refused before argon2 ran
    assert len(audit_entries(engine, action="login.locked")) == 1
