"""Distances and travel-time estimates by mode of travel (pure; documented in README 'Travel time')."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class TravelMode:
    """How one mode turns straight-line distance into minutes."""

    id: str
    label: str
    speed_kmh: float  # average door-to-door speed along the road network
    detour: float  # road distance / straight-line distance
    overhead_min: float  # fixed minutes: waiting, parking, walking to the stop


# Figures: walking 4.8 km/h (不動産の表示 80 m/min), bicycle 15 km/h, car 30 km/h in town with
# 5 min parking, route bus 15 km/h average including stops plus 15 min walking and waiting.
# Road detour factor 1.3 (typical for Japanese towns). Estimates, not a route planner.
MODES: dict[str, TravelMode] = {
    "walk": TravelMode("walk", "徒歩", 4.8, 1.3, 0.0),
    "bicycle": TravelMode("bicycle", "自転車", 15.0, 1.3, 0.0),
    "bus": TravelMode("bus", "バス", 15.0, 1.3, 15.0),
    "car": TravelMode("car", "車", 30.0, 1.3, 5.0),
    "pickup_needed": TravelMode("pickup_needed", "送迎", 30.0, 1.3, 5.0),
}


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def travel_minutes(distance_km: float, mode: str) -> float:
    """Estimated door-to-door minutes for a straight-line distance and a mode id."""
    travel = MODES.get(mode, MODES["walk"])
    return travel.overhead_min + distance_km * travel.detour / travel.speed_kmh * 60.0


def max_distance_km(minutes: float, mode: str) -> float:
    """The straight-line distance reachable within `minutes` (inverse of travel_minutes)."""
    travel = MODES.get(mode, MODES["walk"])
    usable = max(0.0, minutes - travel.overhead_min)
    return usable / 60.0 * travel.speed_kmh / travel.detour


def bbox_around(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of a square holding the circle of radius_km."""
    dlat = radius_km / 111.32
    dlon = radius_km / (111.32 * max(0.01, math.cos(math.radians(lat))))
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat
