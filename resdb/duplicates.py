"""Likely duplicates: the same place under a slightly different name near the same point, within an
import and against the store."""

from __future__ import annotations

from typing import Any

from rapidfuzz import fuzz
from sqlalchemy.engine import Engine
from sqlmodel import select

from resdb.db import read_session
from resdb.domain.textnorm import normalize
from resdb.domain.travel import haversine_km
from resdb.models import (
    Listing,
)

DUPLICATE_NAME_SCORE = 85.0
DUPLICATE_DISTANCE_KM = 0.2
DUPLICATE_CHECK_ROWS = 100_000  # rows of one import compared for likely duplicates
MAX_REPORTED_DUPLICATES = 1_000
DUPLICATE_CELL_LIMIT = 200  # rows kept per ~300 m grid cell for the duplicate check


def likely_duplicates(
    engine: Engine, cleaned: list[tuple[int, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Same place under a slightly different name near the same point (within the file and the store)."""
    cell = 0.003
    grid: dict[tuple[int, int], list[tuple[str, str, float, float, str]]] = {}

    def key(lat: float, lon: float) -> tuple[int, int]:
        return int(lat / cell), int(lon / cell)

    incoming_ids = {c.get("id") for _, c in cleaned if c.get("id")}
    with read_session(engine) as session:
        stored = session.exec(
            select(Listing.id, Listing.name, Listing.lat, Listing.lon).where(
                Listing.status == "published"
            )
        ).all()
    for listing_id, name, lat, lon in stored:
        if lat is None or lon is None or listing_id in incoming_ids:
            continue
        grid.setdefault(key(lat, lon), []).append((listing_id, normalize(name), lat, lon, "既存"))
    found = []
    for row_no, clean in cleaned:
        if clean.get("lat") is None or not clean.get("name"):
            continue
        name, lat, lon = normalize(clean["name"]), clean["lat"], clean["lon"]
        k = key(lat, lon)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                for other_id, other_name, olat, olon, origin in grid.get(
                    (k[0] + dy, k[1] + dx), []
                ):
                    if haversine_km(lat, lon, olat, olon) > DUPLICATE_DISTANCE_KM:
                        continue
                    score = fuzz.ratio(name, other_name)
                    if score >= DUPLICATE_NAME_SCORE:
                        found.append(
                            {
                                "row": row_no,
                                "id": clean.get("id"),
                                "name": clean["name"],
                                "other": other_id,
                                "other_origin": origin,
                                "similarity": round(score, 1),
                                "message": f"{row_no}行目「{clean['name']}」は{origin}の {other_id} と同じ場所の可能性があります",
                            }
                        )
        if len(found) >= MAX_REPORTED_DUPLICATES:
            break
        here = grid.setdefault(k, [])
        if (
            len(here) < DUPLICATE_CELL_LIMIT
        ):  # thousands of rows on one point must not cost n² comparisons
            here.append((clean.get("id") or f"row-{row_no}", name, lat, lon, f"{row_no}行目"))
    return found
