"""The service layer: one policy for every action, refusals mapped in one table to HTTP and exit codes."""

from __future__ import annotations

from typing import Any

import pytest

from resdb import accounts
from resdb.directory import Conflict, NotFound, StaleEdit
from resdb.policy import Forbidden
from resdb.services import OUTCOMES, Services, message, outcome, system_actor
from resdb.validation import ValidationFailed


def test_actions_refused_and_mapped(directory: Any) -> None:
    engine = directory.engine
    editor = accounts.add_user(engine, "e@example.jp", "editor", None, municipality_code="162116")
    coordinator = accounts.add_user(engine, "c@example.jp", "coordinator", None)
    services = Services(directory)
    created = services.create(
        editor, {"name": "射水のサロン", "kind": "kayoi", "lat": 36.72, "lon": 137.1}
    )
    assert created["municipality_code"] == "162116"  # an editor's own scope is the default
    refusals: list[tuple[type[BaseException], Any]] = [
        (
            Forbidden,
            lambda: services.create(
                coordinator, {"name": "x", "kind": "kayoi", "lat": 36.72, "lon": 137.1}
            ),
        ),
        (
            Forbidden,
            lambda: services.create(
                editor,
                {
                    "name": "x",
                    "kind": "kayoi",
                    "lat": 35.638,
                    "lon": 139.5046,
                    "municipality_code": "132250",
                },
            ),
        ),
        (
            Forbidden,
            lambda: services.update(
                editor, created["id"], {"municipality_code": "132250"}, expected_version=1
            ),
        ),
        (
            ValidationFailed,
            lambda: services.update(editor, created["id"], {"capacity": 2**63}, expected_version=1),
        ),
        (
            StaleEdit,
            lambda: services.update(editor, created["id"], {"capacity": 2}, expected_version=7),
        ),
        (NotFound, lambda: services.delete(editor, "no-such-id", expected_version=None)),
        (
            Conflict,
            lambda: services.create(
                system_actor("cli:test"),
                {"id": created["id"], "name": "x", "kind": "kayoi", "lat": 36.72, "lon": 137.1},
            ),
        ),
        (
            Forbidden,
            lambda: services.save_case(editor, pseudonym="A", legal_basis="consent", person={}),
        ),
    ]
    for kind, call in refusals:
        with pytest.raises(kind) as raised:
            call()
        result = outcome(raised.value)
        assert result is not None and result == dict(OUTCOMES)[kind]
        assert any("\u3040" <= ch <= "\u9fff" for ch in message(raised.value))
    assert directory.get(created["id"])["version"] == 1  # none of the refusals changed anything
    statuses = {result.status for _, result in OUTCOMES}
    exit_codes = [result.exit_code for _, result in OUTCOMES]
    assert statuses == {422, 404, 403, 412, 409, 429} and len(set(exit_codes)) == len(exit_codes)
