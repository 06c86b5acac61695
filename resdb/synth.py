"""Synthetic regions for benchmarks: deterministic, realistic-looking listings, all marked synthetic."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resdb.domain.shipped import GEO_DIR
from resdb.exchange import CSV_FIELDS, to_csv

# A 富山県-sized region around 射水市 so that 300k listings have realistic density.
REGION = (36.45, 136.75, 36.95, 137.55)  # min_lat, min_lon, max_lat, max_lon

_PLACE_WORDS = [
    "ふれあい",
    "いきいき",
    "にこにこ",
    "ひだまり",
    "わいわい",
    "のんびり",
    "ほっと",
    "さくら",
    "みどり",
    "なかよし",
    "ゆうゆう",
    "すまいる",
]
_KIND_NAMES: dict[str, list[tuple[str, list[str], list[str]]]] = {
    "kayoi": [
        ("サロン", ["交流", "お茶会"], ["elderly"]),
        ("100歳体操", ["体操", "介護予防"], ["elderly"]),
        ("健康クラブ", ["体操", "散歩"], ["elderly"]),
    ],
    "ibasho": [
        ("カフェ", ["カフェ", "交流"], ["all"]),
        ("居場所", ["交流", "ゲーム"], ["hikikomori", "youth"]),
        ("フリースペース", ["読書", "ゲーム"], ["youth"]),
    ],
    "shokudo": [
        ("子ども食堂", ["食事", "料理"], ["children", "parents"]),
        ("地域食堂", ["食事", "交流"], ["all"]),
    ],
    "kosodate": [
        ("子育てひろば", ["親子遊び", "相談"], ["parents"]),
        ("つどいの広場", ["親子遊び"], ["parents"]),
    ],
    "work_trial": [
        ("農園", ["農作業", "軽作業"], ["disability", "hikikomori", "youth"]),
        ("作業所体験", ["軽作業", "清掃"], ["disability", "poverty"]),
    ],
    "volunteer": [
        ("ボランティア", ["清掃", "見守り"], ["all"]),
        ("花壇づくり", ["園芸", "清掃"], ["all"]),
    ],
    "learning": [
        ("学習支援", ["学習支援", "勉強"], ["children", "poverty"]),
        ("公民館講座", ["手芸", "書道"], ["all"]),
        ("日本語教室", ["日本語", "交流"], ["foreign"]),
    ],
    "chikatsu": [("創作活動", ["手芸", "ものづくり"], ["disability"])],
    "center": [("相談室", ["相談"], ["all"])],
}
_KIND_WEIGHTS = {
    "kayoi": 30,
    "ibasho": 14,
    "shokudo": 8,
    "kosodate": 8,
    "work_trial": 8,
    "volunteer": 12,
    "learning": 14,
    "chikatsu": 3,
    "center": 3,
}
_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _town_names() -> list[str]:
    names = []
    path = GEO_DIR / "16211" / "town_points_geolonia.csv"
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            names = sorted({row["base_name"] for row in csv.DictReader(fh) if row.get("base_name")})
    return names or ["中央", "北町", "南町", "東町", "西町"]


Box = tuple[float, float, float, float]
REGIONS_ACROSS = 8  # region boxes per row of the grid (rows go south)


def regions_for(count: int, per_region: int | None = None) -> list[Box]:
    """The boxes `count` listings are spread over: REGION alone, or (with `per_region`) a grid of
    REGION-sized boxes, REGIONS_ACROSS to a row, holding about `per_region` listings each: a national
    directory's density instead of a million listings inside one prefecture."""
    if not per_region or count <= per_region:
        return [REGION]
    height, width = REGION[2] - REGION[0], REGION[3] - REGION[1]
    boxes = []
    for k in range(-(-count // per_region)):
        row, column = divmod(k, REGIONS_ACROSS)
        south, east = row * height, column * width
        boxes.append((REGION[0] - south, REGION[1] + east, REGION[2] - south, REGION[3] + east))
    return boxes


def synthetic_listings(
    count: int, seed: int = 1, per_region: int | None = None
) -> Iterator[dict[str, Any]]:
    """`count` listings; with `per_region`, listing n lies in box n mod len(regions_for(...)) at the place it
    would have in REGION (so any first part of the stream is spread over every box too)."""
    rng = random.Random(seed)
    boxes = regions_for(count, per_region)
    towns = _town_names()
    kinds = list(_KIND_WEIGHTS)
    weights = [_KIND_WEIGHTS[k] for k in kinds]
    for n in range(count):
        kind = rng.choices(kinds, weights)[0]
        suffix, activities, targets = rng.choice(_KIND_NAMES[kind])
        town = rng.choice(towns)
        start_hour = rng.choice([9, 10, 13, 14, 18])
        entry: dict[str, Any] = {
            "weekday": rng.choice(_WEEKDAYS),
            "start": f"{start_hour:02d}:{rng.choice(['00', '30'])}",
            "end": f"{start_hour + rng.choice([1, 2, 3]):02d}:00",
        }
        if rng.random() < 0.5:
            entry["weeks"] = sorted(rng.sample([1, 2, 3, 4], rng.choice([1, 2])))
        box = boxes[n % len(boxes)]
        lat = rng.uniform(REGION[0], REGION[2]) - REGION[0] + box[0]
        lon = rng.uniform(REGION[1], REGION[3]) - REGION[1] + box[1]
        yield {
            "id": f"syn-{seed}-{n:06d}",
            "name": f"（合成）{town}{rng.choice(_PLACE_WORDS)}{suffix}{n % 97 if rng.random() < 0.3 else ''}",
            "kind": kind,
            "description": f"{town}地区の{suffix}。{'、'.join(activities)}をしています（合成データ）",
            "municipality_code": "162116",
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "district": town,
            "operator": f"{town}自治会" if rng.random() < 0.6 else "（合成）地域福祉ネットワーク",
            "targets": targets,
            "activities": activities,
            "schedule": [entry],
            "cost_yen": rng.choice([0, 0, 0, 100, 200, 300, 500]),
            "capacity": rng.choice([None, None, 0, 1, 2, 3, 5, 10]),
            "accepts_referrals": rng.random() < 0.85,
            "group_size": rng.choice(["small", "medium", "large"]),
            "barrier_free": rng.random() < 0.5,
            "pickup": rng.random() < 0.15,
            "eligibility": {"min_age": 65} if kind == "kayoi" and rng.random() < 0.5 else {},
            "verified_at": f"{rng.choice([2023, 2024, 2025, 2026])}-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}",
            "source": "synthetic",
            "is_sample": True,
        }


def write_synthetic(path: Path, count: int, seed: int = 1) -> None:
    listings = list(synthetic_listings(count, seed))
    if path.suffix.lower() == ".csv":
        path.write_text(to_csv(listings), encoding="utf-8")
    else:
        path.write_text(json.dumps(listings, ensure_ascii=False), encoding="utf-8")


__all__ = ["CSV_FIELDS", "synthetic_listings", "write_synthetic"]
