"""The public list defaults to the deployment's municipality (a city choice widens it); venues only when asked."""

from __future__ import annotations

import re
from typing import Any


def _ids(html: str) -> list[str]:
    return re.findall(r'href="/resources/([^"]+)"', html)


def test_empty_search_lists_the_deployments_own_places(client: Any) -> None:
    own = client.get("/search?q=")
    assert own.status_code == 200
    ids = _ids(own.get_data(as_text=True))
    assert ids and all(i.startswith("imizu-") for i in ids)
    every = client.get("/search?q=&municipality=all").get_data(as_text=True)
    assert 'value="all" selected' in every
    assert "件" in every


def test_city_choice_narrows_to_another_city(client: Any) -> None:
    html = client.get("/search?q=&municipality=132250").get_data(as_text=True)
    ids = _ids(html)
    assert ids and all(i.startswith("inagi-") for i in ids)


def test_venues_hidden_unless_asked(client: Any) -> None:
    plain = _ids(client.get("/search?q=コミュニティセンター").get_data(as_text=True))
    assert not [i for i in plain if "-venue-" in i]
    shown = client.get("/search?q=コミュニティセンター&venues=1").get_data(as_text=True)
    assert [i for i in _ids(shown) if "-venue-" in i]
    geo = client.get("/api/resources.geojson?kind=venue&municipality=162116").get_json()
    assert geo["features"] and {f["properties"]["kind"] for f in geo["features"]} == {"venue"}
    plain_geo = client.get("/api/resources.geojson?municipality=162116").get_json()
    assert all(f["properties"]["kind"] != "venue" for f in plain_geo["features"])


def test_listing_links_its_venue_and_the_venue_lists_what_happens_there(client: Any) -> None:
    salon = client.get("/resources/imizu-sample-hibari-salon").get_data(as_text=True)
    venue_ids = re.findall(r'href="/resources/(imizu-venue-\d+)"', salon)
    assert len(venue_ids) == 1
    venue = client.get(f"/resources/{venue_ids[0]}").get_data(as_text=True)
    assert (
        "この会場で行われている活動" in venue
        and "戸破ふれあいサロン" in venue
        and "戸破こども食堂" in venue
    )


def test_while_a_large_backlog_is_rebuilt_search_says_what_it_has_not_seen(
    edit: Any, monkeypatch: Any
) -> None:
    """In sequence, as in a web worker after a big import by another host: the backlog is too large to
    read into memory, so the index is rebuilt in the background; meanwhile the answers come from the
    index as it was and say so (API field and a notice on the page); once it is rebuilt, they are
    current and the notice is gone."""
    from resdb import changelog

    directory = edit.directory
    directory.serving = True
    directory.batch_commits = True  # as under `resdb serve`
    monkeypatch.setattr(changelog, "RECENT_LIMIT", 5)
    monkeypatch.setattr(changelog, "BULK_REINDEX_THRESHOLD", 20)
    rows = [
        (
            n,
            {
                "id": f"bulk-{n}",
                "name": f"ひまわり農園{n}",
                "kind": "work_trial",
                "lat": 36.72,
                "lon": 137.1,
            },
        )
        for n in range(1, 31)
    ]
    few = [(n, {**row, "id": f"few-{n}", "name": f"あさがお農園{n}"}) for n, row in rows[:10]]
    with directory.index.apply_lock.hold(wait=0) as got:  # another worker is applying changes
        assert got
        assert not directory.import_records(few, actor="a", source_name="few.csv").problems
        found = edit.client.get("/api/resources?q=あさがお農園").get_json()
        assert found["total"] == len(few) and found["pending_changes"] == 0  # read from memory
    with directory.index.rebuild_lock.hold(
        wait=0
    ) as got:  # another rebuild holds this host's index
        assert got
        assert not directory.import_records(rows, actor="a", source_name="bulk.csv").problems
        found = edit.client.get("/api/resources?q=ひまわり農園").get_json()
        # The 10 held in memory are not in the old index either: 40 changes unseen.
        assert found["total"] == 0 and found["pending_changes"] == len(few) + len(rows)
        page = edit.client.get("/search?q=ひまわり農園").get_data(as_text=True)
        assert 'id="search-pending"' in page and "40 件がまだこの結果に反映されていません" in page
    assert directory.rebuild_in_background()
    directory.background.close(timeout=60)  # the rebuild has finished
    found = edit.client.get("/api/resources?q=ひまわり農園&limit=50").get_json()
    assert found["total"] == len(rows) and found["pending_changes"] == 0
    assert edit.client.get("/api/resources?q=あさがお農園").get_json()["total"] == len(few)
    page = edit.client.get("/search?q=ひまわり農園").get_data(as_text=True)
    assert 'id="search-pending"' not in page
