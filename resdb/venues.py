"""Venues as locations: a listing names the building it meets in (`venue`), matched to a venue record (kind
`venue`, an HSDS location) of the same municipality by normalized name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from resdb.domain.textnorm import normalize

VENUE_KIND = "venue"


def venue_key(name: str | None, municipality_code: str | None) -> tuple[str, str] | None:
    key = normalize(name).replace(" ", "")
    return (municipality_code or "", key) if key else None


def venue_index(listings: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(municipality, normalized name) → venue record, for every venue among `listings`."""
    index: dict[tuple[str, str], Mapping[str, Any]] = {}
    for listing in listings:
        if listing.get("kind") == VENUE_KIND:
            key = venue_key(listing.get("name"), listing.get("municipality_code"))
            if key is not None:
                index.setdefault(key, listing)
    return index


def venue_of(
    listing: Mapping[str, Any], index: Mapping[tuple[str, str], Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The venue record a (non-venue) listing names, if any."""
    if listing.get("kind") == VENUE_KIND:
        return None
    key = venue_key(listing.get("venue"), listing.get("municipality_code"))
    return index.get(key) if key else None
