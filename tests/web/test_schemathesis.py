"""Property-based API testing with schemathesis over /api/openapi.json, with an editor's and an admin's
token, on SQLite and PostgreSQL: valid and invalid inputs for every operation, never a server error."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
# Imported at collection, while no other thread runs, not lazily inside the test: pytest rewrites the
# plugin's modules with ast.parse, and in Python 3.11 that races with another thread formatting a
# traceback (traceback.py parses source lines too; gh-106905, "AST constructor recursion depth mismatch").
pytest.importorskip("schemathesis.specs.openapi.schemas")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from tests.web.conftest import FIXED_TODAY, EditSetup  # noqa: E402

# Examples per operation, generation mode and token: modest, so the whole run stays well under a minute.
EXAMPLES = int(os.environ.get("RESDB_SCHEMATHESIS_EXAMPLES", "6"))


def _exercise(
    strategy: Any,
    examples: int,
    who: str,
    auth: dict[str, str],
    statuses: Counter[str],
    errors: list[str],
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def exercise(case: Any) -> None:
        try:
            status = case.call(headers=auth).status_code
        except Exception as error:  # the transport itself failed: counted as a server error
            status = 599
            errors.append(f"{who} {case.method} {case.formatted_path}: {type(error).__name__}")
        statuses[f"{status // 100}xx"] += 1
        if 500 <= status < 599:
            errors.append(
                f"{who} {case.method} {case.formatted_path} → {status}: {case.body!r}"[:300]
            )

    try:
        exercise()
    except Unsatisfiable:  # e.g. no invalid request exists for an operation without parameters
        statuses["not generatable"] += 1


def run_schemathesis(setup: EditSetup, examples: int = EXAMPLES) -> tuple[Counter[str], list[str]]:
    """Every operation × (positive, negative) × (editor, admin): (status counts, server errors)."""
    from resdb.web import create_app

    app = create_app(
        {
            "DIRECTORY": setup.directory,
            "TESTING": False,
            "PROPAGATE_EXCEPTIONS": False,
            "RATE_LIMIT": None,
            "SECRET_KEY": "schemathesis",
            "TODAY": lambda: FIXED_TODAY,
        }
    )
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    for who in ("editor", "admin"):
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _exercise(
                    operation.as_strategy(generation_mode=mode),
                    examples,
                    who,
                    setup.tokens.header(who),
                    statuses,
                    errors,
                )
    return statuses, errors


def test_no_server_errors(edit: EditSetup, backend: str) -> None:
    statuses, errors = run_schemathesis(edit)
    total = sum(n for k, n in statuses.items() if k.endswith("xx"))
    print(f"\nschemathesis {backend}: {total} cases, {dict(statuses)}, 5xx: {len(errors)}")
    assert total >= 100
    assert not errors, "\n".join(errors[:20])
