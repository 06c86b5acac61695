"""Proposal honesty on the demo personas (resdb/data/demo/persons) plus the issue's withdrawn man who likes 農作業:
share of top-5 proposals known to fit, share of reasons that are really cautions (goal 0), venues and programmes
proposed (goal 0), whether a farm is offered to the man; and the gap report's shortages on demo needs.

"Known to fit" is judged here from the listing itself, the same way for any tree: schedule known and overlapping
the person's times, cost known and within budget, verified within 365 days, taking referrals.

    .venv/bin/python bench/bench_proposals.py
    PYTHONPATH=/tmp/old .venv/bin/python bench/bench_proposals.py --code /tmp/old
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 12, 2)
UNSURE = ("要確認", "不明", "分かりません", "以上前", "要相談", "ありません", "可能性")
WITHDRAWN_MAN = {
    "home": {"lat": 36.7236, "lon": 137.0991},
    "age": 52,
    "mobility": "bicycle",
    "max_minutes": 23,
    "available": [
        {"weekday": "tue", "start": "09:00", "end": "12:00"},
        {"weekday": "thu", "start": "13:00", "end": "17:00"},
    ],
    "goals": ["first_step"],
    "interests": ["農作業"],
    "targets": ["hikikomori"],
    "budget_yen": 500,
}
DEMO_NEEDS = [
    {"district": "新湊", "goal": "work", "targets": ["disability"], "mobility": "bus", "count": 4},
    {
        "district": "大島",
        "goal": "first_step",
        "targets": ["hikikomori"],
        "mobility": "bicycle",
        "count": 2,
    },
    {"district": "戸破", "goal": "friends", "targets": ["elderly"], "mobility": "walk", "count": 3},
    {
        "district": "太閤山",
        "goal": "childcare_peers",
        "targets": ["parents"],
        "mobility": "car",
        "count": 2,
    },
    {"district": "大門", "goal": "health", "targets": ["elderly"], "mobility": "walk", "count": 5},
    {
        "district": "太閤山",
        "goal": "learn",
        "targets": ["foreign"],
        "mobility": "bicycle",
        "count": 3,
    },
]


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def known_to_fit(listing: dict[str, Any], person: dict[str, Any]) -> bool:
    schedule = listing.get("schedule") or []
    if not schedule:
        return False
    slots = person.get("available") or []
    if slots and not any(
        e.get("weekday") == s["weekday"]
        and _minutes(e["start"]) < _minutes(s["end"])
        and _minutes(s["start"]) < _minutes(e["end"])
        for e in schedule
        for s in slots
    ):
        return False
    cost = listing.get("cost_yen")
    if cost is None or (person.get("budget_yen") is not None and cost > person["budget_yen"]):
        return False
    verified = listing.get("verified_at")
    if not verified or (TODAY - date.fromisoformat(str(verified)[:10])).days > 365:
        return False
    return listing.get("accepts_referrals") is True


def is_building_or_programme(listing: dict[str, Any]) -> bool:
    return (
        listing.get("kind") in ("venue", "program")
        or "地域活動の会場" in (listing.get("activities") or [])
        or "共生社会構築事業" in (listing.get("name") or "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code))
    from resdb.demo import load_demo
    from resdb.directory import Directory
    from resdb.matching import Matching

    # The personas ship inside the package (resdb/data) since the package-data move; older trees kept
    # them at the repository root.
    persons_dir = next(
        d
        for d in (
            args.code / "resdb" / "data" / "demo" / "persons",
            ROOT / "data" / "demo" / "persons",
        )
        if d.is_dir()
    )
    persons = {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(persons_dir.glob("*.json"))
        if p.stem != "caseload"
    }
    persons["withdrawn_man_farm"] = WITHDRAWN_MAN
    with tempfile.TemporaryDirectory() as tmp:
        directory = Directory.open(f"sqlite:///{Path(tmp) / 'resdb.sqlite3'}", Path(tmp))
        load_demo(directory)
        matching = Matching(directory)
        listings = {x["id"]: x for x in directory.all_listings()}
        top5 = known5 = reasons = unsure_reasons = buildings = 0
        per_person = {}
        for name, person in persons.items():
            answer = matching.match(person, limit=10, today=TODAY)
            shown = answer["proposals"][:5]
            fits = sum(known_to_fit(listings[p["resource_id"]], person) for p in shown)
            texts = [r["text"] for p in answer["proposals"] for r in p["reasons"]]
            unsure = [t for t in texts if any(word in t for word in UNSURE)]
            built = [
                p["name"]
                for p in answer["proposals"]
                if is_building_or_programme(listings[p["resource_id"]])
            ]
            farm = [
                p["name"]
                for p in [*answer["proposals"], *answer.get("near_misses", [])]
                if "農作業" in (listings[p["resource_id"]].get("activities") or [])
            ]
            top5, known5, reasons, unsure_reasons, buildings = (
                top5 + len(shown),
                known5 + fits,
                reasons + len(texts),
                unsure_reasons + len(unsure),
                buildings + len(built),
            )
            per_person[name] = {
                "top5_known": f"{fits}/{len(shown)}",
                "caution_reasons": unsure[:3],
                "buildings_or_programmes": built,
                "farm_offered": farm[:2],
            }
        needs = [{**n, "municipality_code": "162116"} for n in DEMO_NEEDS]
        report = matching.gaps(needs, today=TODAY)
        directory.index.close()
        directory.engine.dispose()
    flagged = [
        (r["district"], r.get("flags") or ([] if r["available"] else ["該当なし"]), r["available"])
        for r in report["needs"]
    ]
    summary = {
        "code": str(args.code),
        "top5_known_to_fit_share": round(known5 / top5, 3) if top5 else None,
        "reasons_that_are_cautions_share": round(unsure_reasons / reasons, 3) if reasons else None,
        "buildings_or_programmes_proposed": buildings,
        "gap_needs_flagged": [f for f in flagged if f[1]],
        "gap_rows": flagged,
        "per_person": per_person,
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return 0
    print(f"code: {args.code}")
    for name, row in per_person.items():
        print(
            f"  {name:<20} top-5 known {row['top5_known']:<5} cautions-as-reasons {len(row['caution_reasons'])}  "
            f"buildings {len(row['buildings_or_programmes'])}  farm {row['farm_offered'][:1]}"
        )
    print(f"top-5 proposals known to fit: {summary['top5_known_to_fit_share']}")
    print(f"reasons that are cautions: {summary['reasons_that_are_cautions_share']} (goal 0)")
    print(f"venues/programmes proposed: {buildings} (goal 0)")
    print("gap report rows (district, flags, places counted):", flagged)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
