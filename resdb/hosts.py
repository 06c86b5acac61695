"""Private hosts: a listing held in someone's home is shown to the public at its 町字 only.

Public outputs (map, list, detail page, GeoJSON, JSON API, search index, CSV/HSDS/municipal exports)
pass listings through `public_view`; staff pages and the matcher keep the real address and point.
"""

from __future__ import annotations

from typing import Any

from resdb import geo

PRIVATE_NOTE = (
    "個人宅で開かれているため、場所は町字までの表示です。詳しい場所は連絡先にお問い合わせください。"
)
# Fields that could say where the home is: replaced (address, point) or withheld (venue).
HIDDEN_FIELDS = ("venue",)


def town_of(listing: dict[str, Any], gazetteer: geo.Gazetteer) -> geo.DistrictRecord | None:
    """The 町字 a listing lies in: from its true point, else from its district name."""
    code = listing.get("municipality_code")
    # A point placed at a 地区 or 担当地区 (not at the home) says nothing about the home's 町字.
    point_is_home = listing.get("location_precision") not in {
        "district",
        "service_area",
        "municipality",
    }
    if point_is_home and listing.get("lat") is not None and listing.get("lon") is not None:
        town = gazetteer.town_at(float(listing["lat"]), float(listing["lon"]), code)
        if town is not None:
            return town
    if listing.get("district"):
        for record in gazetteer.match(str(listing["district"]), code):
            if record.level == "town":
                return record
    return None


def public_view(listing: dict[str, Any], gazetteer: geo.Gazetteer) -> dict[str, Any]:
    """The listing as the public may see it (unchanged unless `location_private`)."""
    if not listing.get("location_private"):
        return listing
    out = dict(listing)
    town = town_of(listing, gazetteer)
    code = (town.municipality_code if town else None) or listing.get("municipality_code")
    municipality = gazetteer.municipality(code) if code else None
    place = municipality.name if municipality else ""
    if town is not None:
        out["address"] = f"{place}{town.name}"
        out["district"] = town.name
        lat, lon = town.lat, town.lon
        if lat is None or lon is None:
            centre = town.geometry.representative_point()
            lat, lon = centre.y, centre.x
        out["lat"], out["lon"] = round(float(lat), 6), round(float(lon), 6)
        out["location_precision"] = "town"
    else:
        # No 町字 known: nothing finer than the municipality is shown.
        out["address"] = place or None
        out["district"] = None
        out["lat"] = out["lon"] = None
        if (
            municipality is not None
            and municipality.lat is not None
            and municipality.lon is not None
        ):
            out["lat"], out["lon"] = (
                round(float(municipality.lat), 6),
                round(float(municipality.lon), 6),
            )
        out["location_precision"] = "municipality"
    for key in HIDDEN_FIELDS:
        if key in out:
            out[key] = None
    out["location_private"] = True
    return out
