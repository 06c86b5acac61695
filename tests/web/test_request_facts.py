"""One read of the change-log head per request: every cache a request consults (search index, map columns,
matching pool) checks the same head, and a write inside the request makes the next check read again."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import event

from resdb.domain.shipped import PERSONS_DIR
from tests.web.conftest import EditSetup


@contextmanager
def statements(engine: Any, label: Callable[[str], str | None]) -> Iterator[list[str]]:
    """The labels of this thread's statements while the block runs (`label` gives None for those not
    counted; the test client serves requests in the calling thread, background builders in their own)."""
    seen: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        found = label(statement.lower()) if threading.get_ident() == me else None
        if found is not None:
            seen.append(found)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def head_reads(engine: Any) -> AbstractContextManager[list[str]]:
    """Statements reading the change-log head (max(seq))."""
    return statements(engine, lambda sql: sql if "max(change_log.seq)" in sql else None)


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


def _change_or_row(sql: str) -> str | None:
    if "max(change_log.seq)" in sql:
        return None
    if "from change_log" in sql:
        return "change_log"
    return "listing" if "from listing" in sql and " in (" in sql else None


def change_reads(engine: Any) -> AbstractContextManager[list[str]]:
    """Statements reading change-log entries or listing rows by id."""
    return statements(engine, _change_or_row)


def test_another_hosts_edit_is_read_once_by_the_caches_of_a_request(edit: EditSetup) -> None:
    """A map view ranked by the index catches up both the search (from memory, as `resdb serve` runs)
    and the map's columns on the same change: the entry and the row are read once, not once each."""
    from resdb.directory import Directory

    client, directory = edit.client, edit.directory
    directory.batch_commits = True
    view = "/api/resources.geojson?q=サロン&zoom=12"
    assert client.get(view).status_code == 200  # caches built
    other_host = Directory(directory.engine, directory.instance_dir.parent / "other-host")
    version = other_host.get("t-salon")["version"]
    other_host.update(
        "t-salon", {"name": "戸破ふれあいサロン本館"}, actor="b", expected_version=version
    )
    with change_reads(directory.engine) as reads:
        answer = client.get(view)
    assert answer.status_code == 200
    names = [f["properties"]["name"] for f in answer.get_json()["features"]]
    assert "戸破ふれあいサロン本館" in names
    assert sorted(reads) == ["change_log", "listing"], reads
