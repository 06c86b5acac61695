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
