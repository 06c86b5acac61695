"""Synthetic (fictional) listings and persons for benchmarks and tests — never real places."""

from __future__ import annotations

import math
import random
from typing import Any

from resdb.domain.vocab import GOALS, PARTICIPATION_KINDS, TARGETS, WEEKDAY_IDS

IMIZU_CENTER = (36.7236, 137.0991)  # 射水市戸破 (小杉駅付近)
_ACTIVITIES = (
    "カフェ",
    "交流",
    "農作業",
    "体操",
    "100歳体操",
    "料理",
    "手芸",
    "ボードゲーム",
    "学習支援",
    "日本語教室",
    "子育て",
    "親子あそび",
    "清掃ボランティア",
    "軽作業",
    "園芸",
    "音楽",
    "書道",
    "相談",
)
_INTERESTS = ("畑", "料理", "手芸", "ゲーム", "音楽", "散歩", "書道", "体操", "パソコン", "読書")


def _point(
    rng: random.Random, center: tuple[float, float], radius_km: float
) -> tuple[float, float]:
    r = radius_km * math.sqrt(rng.random())
    theta = rng.random() * 2 * math.pi
    lat = center[0] + r * math.cos(theta) / 111.2
    lon = center[1] + r * math.sin(theta) / (111.2 * math.cos(math.radians(center[0])))
    return round(lat, 6), round(lon, 6)


def listing(
    i: int, rng: random.Random, center: tuple[float, float] = IMIZU_CENTER, radius_km: float = 15.0
) -> dict[str, Any]:
    """One random contract-shaped listing, marked is_sample."""
    lat, lon = _point(rng, center, radius_km)
    kind = rng.choice(PARTICIPATION_KINDS)
    schedule = []
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
        start = rng.choice((9, 10, 13, 14, 18)) * 60 + rng.choice((0, 30))
        entry: dict[str, Any] = {
            "weekday": rng.choice(WEEKDAY_IDS),
            "start": f"{start // 60:02d}:{start % 60:02d}",
            "end": f"{(start + rng.choice((60, 90, 120, 180))) // 60:02d}:{start % 60:02d}",
        }
        if rng.random() < 0.4:
            entry["weeks"] = sorted(rng.sample((1, 2, 3, 4, 5), rng.choice((1, 2))))
        schedule.append(entry)
    targets = ["all"] if rng.random() < 0.5 else rng.sample(tuple(TARGETS)[1:], rng.choice((1, 2)))
    return {
        "id": f"syn-{i:06d}",
        "name": f"架空の場{i}",
        "kind": kind,
        "description": "架空のデータ（ベンチマーク用）",
        "lat": lat,
        "lon": lon,
        "targets": targets,
        "activities": rng.sample(_ACTIVITIES, rng.choice((1, 2, 3))),
        "schedule": schedule,
        "cost_yen": rng.choice((0, 0, 0, 100, 300, 500, None)),
        "capacity": rng.choice((None, None, 0, 1, 2, 3, 5, 10)),
        "accepts_referrals": rng.choice((True, True, False, None)),
        "group_size": rng.choice(("small", "medium", "large", None)),
        "barrier_free": rng.choice((True, False, None)),
        "pickup": rng.random() < 0.2,
        "eligibility": {
            "min_age": rng.choice((None, None, None, 18, 65)),
            "max_age": rng.choice((None, None, None, 39, 64)),
            "residents_only": rng.random() < 0.1,
        },
        "service_area": {"districts": ["戸破"]} if kind == "center" else None,
        "verified_at": rng.choice((None, "2023-04-01", "2025-06-01", "2026-09-01")),
        "is_sample": True,
        "reservation_required": rng.random() < 0.3,
    }


def listings(
    n: int, seed: int = 0, center: tuple[float, float] = IMIZU_CENTER, radius_km: float = 15.0
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [listing(i, rng, center, radius_km) for i in range(n)]


def person(
    rng: random.Random, center: tuple[float, float] = IMIZU_CENTER, radius_km: float = 10.0
) -> dict[str, Any]:
    """One random contract Person."""
    lat, lon = _point(rng, center, radius_km)
    mobility = rng.choice(("walk", "bicycle", "bus", "car", "pickup_needed"))
    available = []
    for wd in rng.sample(WEEKDAY_IDS, rng.choice((0, 1, 2, 3))):
        start = rng.choice((9, 10, 13))
        available.append(
            {
                "weekday": wd,
                "start": f"{start:02d}:00",
                "end": f"{start + rng.choice((2, 3, 5)):02d}:00",
            }
        )
    return {
        "home": {"lat": lat, "lon": lon},
        "age": rng.randint(10, 90),
        "mobility": mobility,
        "max_minutes": rng.choice((15, 20, 30, 45, 60)),
        "available": available,
        "goals": rng.sample(tuple(GOALS), rng.choice((1, 2))),
        "interests": rng.sample(_INTERESTS, rng.choice((0, 1, 2))),
        "targets": rng.sample(tuple(TARGETS)[1:], rng.choice((0, 1))),
        "prefers": {"group_size": rng.choice(("small", "medium", "large", None))},
        "needs": {"barrier_free": rng.random() < 0.15, "pickup": False},
        "budget_yen": rng.choice((0, 300, 1000, None)),
        "exclude": [],
    }


def persons(
    n: int, seed: int = 1, center: tuple[float, float] = IMIZU_CENTER, radius_km: float = 10.0
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [person(rng, center, radius_km) for _ in range(n)]
