"""One read of the change-log head per request: every cache a request consults (search index, map columns,
matching pool) checks the same head, and a write inside the request makes the next check read again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from resdb.domain.shipped import PERSONS_DIR
from tests.web.conftest import EditSetup


@contextmanager
def head_reads(engine: Any) -> Iterator[list[str]]:
    """Statements reading the change-log head (max(seq)) in this thread while the block runs (the test
    client serves requests in the calling thread; background builders run in their own)."""
    seen: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() == me and "max(change_log.seq)" in statement.lower():
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_each_request_reads_the_head_once(edit: EditSetup) -> None:
    client, engine = edit.client, edit.directory.engine
    person = json.loads((PERSONS_DIR / "hikikomori_youth.json").read_text(encoding="utf-8"))
    coordinator = edit.tokens.header("coordinator")
    requests = {
        "search": lambda: client.get("/api/resources?q=サロン"),
        "map": lambda: client.get("/api/resources.geojson?zoom=12"),
        "page": lambda: client.get("/search?q=サロン"),
        "match": lambda: client.post("/api/match?limit=3", json=person, headers=coordinator),
    }
    for name, request in requests.items():
        request()  # caches built
        with head_reads(engine) as reads:
            assert request().status_code == 200, name
        assert len(reads) == 1, (name, len(reads))


def test_a_write_in_the_request_is_seen_by_the_next(edit: EditSetup) -> None:
    client, engine = edit.client, edit.directory.engine
    editor = edit.tokens.header("editor")
    client.get("/api/resources?q=サロン")
    with head_reads(engine) as reads:
        response = client.put(
            "/api/resources/t-salon", json={"name": "戸破いきいきサロン"}, headers=editor
        )
        assert response.status_code == 200
    assert len(reads) >= 1  # the commit made the index follow read the head again
    found = client.get("/api/resources?q=いきいき").get_json()
    assert [item["id"] for item in found["items"]] == ["t-salon"]
    head = edit.directory.head_seq()
    assert head == edit.directory._read_head_seq()  # outside a request: always read
