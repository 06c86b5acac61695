"""Gap report: for anonymous needs, how many places could take them, and where (and why) too few do.

A need is {goal, targets, district, mobility, lat/lon or home, count?, age?, max_minutes?,
available?, needs?, budget_yen?}. A place is counted for it only when it could take such a person:
it breaks no rule, its kind serves the goal (GOAL_KIND_FIT ≥ SERVES_GOAL: never a venue or a
programme), its schedule is known, it takes referrals and it is not full. Places' open capacity is
compared with the number of persons: a need is flagged 「該当なし」 (no place), 「1か所のみ」 (one place
for several persons) or 「定員不足」 (known open places fewer than persons, none unlimited/unknown).
Needs with fewer than ``min_places`` places are unmet; flagged needs are grouped by district.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any, TextIO

import numpy as np

from resdb.domain.vocab import GOALS, MOBILITY, TARGETS, target_id

from .batch import CoversHomeFor, as_pool
from .engine import feasible_mask
from .pool import CandidatePool
from .query import parse_person
from .rules import GENERIC_MESSAGES, RULES
from .scoring import GOAL_FIT, GOAL_IDS

SERVES_GOAL = 0.6
CSV_COLUMNS: tuple[str, ...] = (
    "地区",
    "目的",
    "対象",
    "移動手段",
    "件数",
    "利用可能な場",
    "空き定員",
    "不足",
    "主な理由",
)
FLAG_NONE, FLAG_ONLY_ONE, FLAG_SHORT = "該当なし", "1か所のみ", "定員不足"
NOT_TAKING = "開催日時が不明か、紹介を受け入れていない場です"
NO_PLACE_FOR_GOAL = "目的に合う種類の場が移動できる範囲にありません"


def _need_person(need: Mapping[str, Any]) -> dict[str, Any]:
    home = dict(need.get("home") or {})
    for key in ("lat", "lon", "district"):
        if need.get(key) is not None:
            home.setdefault(key, need[key])
    goal = need.get("goal")
    goals = need.get("goals") or ([goal] if goal else [])
    person: dict[str, Any] = {
        "home": home,
        "goals": goals,
        "targets": need.get("targets") or [],
        "mobility": need.get("mobility"),
    }
    for key in ("age", "max_minutes", "available", "needs", "budget_yen", "prefers"):
        if need.get(key) is not None:
            person[key] = need[key]
    return person


def _labels(
    values: Iterable[str], table: Mapping[str, str], lookup: Callable[[str], str | None]
) -> str:
    out = []
    for value in values:
        key = lookup(value) or value
        out.append(table.get(key, str(value)))
    return "・".join(out)


def gap_report(
    needs: Sequence[Mapping[str, Any]],
    listings: Iterable[Mapping[str, Any]] | CandidatePool,
    *,
    today: date,
    covers_home_for: CoversHomeFor | None = None,
    min_places: int = 1,
) -> dict[str, Any]:
    """{"needs": [... with "available" and "main_reason"], "unmet": [grouped by district]}."""
    pool = as_pool(listings)
    rows: list[dict[str, Any]] = []
    for i, need in enumerate(needs):
        try:
            q = parse_person(_need_person(need), today)
        except ValueError as exc:
            raise ValueError(f"needs[{i}].{exc}") from None
        covers = (lambda listing, i=i: covers_home_for(i, listing)) if covers_home_for else None
        ranking, ok = feasible_mask(q, pool, covers)
        kinds = pool.kind[ranking.view.idx]
        if q.goals:
            serves = (
                GOAL_FIT[[GOAL_IDS.index(g) for g in q.goals]][:, kinds].max(axis=0) >= SERVES_GOAL
            )
        else:
            serves = np.ones(len(ranking.view), dtype=bool)
        idx = ranking.view.idx
        taking = ranking.view.has_schedule & (pool.referrals[idx] == 1.0)
        could = ok & serves & taking
        available = int(could.sum())
        capacities = pool.capacity[idx[could]]
        open_capacity = None if np.isnan(capacities).any() else int(capacities.sum())
        count = need.get("count")
        persons = int(count) if count is not None else 1
        reason = ""
        if available < min_places:
            blocked = ranking.violated[:, serves]
            counts = Counter(
                {rule.id: int(blocked[r].sum()) for r, rule in enumerate(RULES) if blocked[r].any()}
            )
            if (ok & serves & ~taking).any():
                counts[NOT_TAKING] = int((ok & serves & ~taking).sum())
            if counts:
                top = counts.most_common(1)[0][0]
                reason = GENERIC_MESSAGES.get(top, top)
            else:
                reason = NO_PLACE_FOR_GOAL
        flags = []
        if available == 0:
            flags.append(FLAG_NONE)
        else:
            if available == 1 and persons > 1:
                flags.append(FLAG_ONLY_ONE)
            if open_capacity is not None and open_capacity < persons:
                flags.append(FLAG_SHORT)
        rows.append(
            {
                "need": i,
                "district": str(
                    need.get("district") or (need.get("home") or {}).get("district") or ""
                ),
                "goal": q.goals[0] if q.goals else "",
                "targets": [target_id(str(t)) or str(t) for t in (need.get("targets") or [])],
                "mobility": q.mobility,
                "count": persons,
                "available": available,
                "open_capacity": open_capacity,
                "flags": flags,
                "main_reason": reason,
            }
        )
    unmet: dict[str, dict[str, Any]] = {}
    reasons: dict[str, Counter[str]] = {}
    for row in rows:
        if row["available"] >= min_places:
            continue
        group = unmet.setdefault(
            row["district"], {"district": row["district"], "needs": 0, "persons": 0, "goals": []}
        )
        group["needs"] += 1
        group["persons"] += row["count"]
        if row["goal"] and row["goal"] not in group["goals"]:
            group["goals"].append(row["goal"])
        reasons.setdefault(row["district"], Counter())[row["main_reason"]] += row["count"]
    for district, group in unmet.items():
        group["main_reason"] = reasons[district].most_common(1)[0][0]
    ordered = sorted(unmet.values(), key=lambda g: (-g["persons"], g["district"]))
    return {"needs": rows, "unmet": ordered, "shortages": _shortages(rows)}


def _shortages(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flagged needs grouped by district: how many persons, the flags, and each flagged need in words."""
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not row["flags"]:
            continue
        group = grouped.setdefault(
            row["district"], {"district": row["district"], "persons": 0, "flags": [], "needs": []}
        )
        group["persons"] += row["count"]
        for flag in row["flags"]:
            if flag not in group["flags"]:
                group["flags"].append(flag)
        capacity = "不明" if row["open_capacity"] is None else f"{row['open_capacity']}人"
        group["needs"].append(
            {
                "need": row["need"],
                "goal": row["goal"],
                "targets": row["targets"],
                "mobility": row["mobility"],
                "count": row["count"],
                "available": row["available"],
                "open_capacity": row["open_capacity"],
                "flags": row["flags"],
                "text": (
                    f"{GOALS.get(row['goal'], row['goal'] or '目的なし')}・{_labels(row['targets'], TARGETS, target_id) or '対象なし'}"
                    f"・{MOBILITY.get(row['mobility'], row['mobility'])}・{row['count']}人: 受け入れ可能な場 {row['available']}か所"
                    f"（空き定員 {capacity}）— {'・'.join(row['flags'])}"
                ),
            }
        )
    return sorted(grouped.values(), key=lambda g: (-g["persons"], g["district"]))


def gap_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's need rows with the Japanese CSV headers and labels."""
    out = []
    for row in report["needs"]:
        out.append(
            {
                "地区": row["district"],
                "目的": GOALS.get(row["goal"], row["goal"]),
                "対象": _labels(row["targets"], TARGETS, target_id),
                "移動手段": MOBILITY.get(row["mobility"], row["mobility"]),
                "件数": row["count"],
                "利用可能な場": row["available"],
                "空き定員": "" if row.get("open_capacity") is None else row["open_capacity"],
                "不足": "・".join(row.get("flags") or []),
                "主な理由": row["main_reason"],
            }
        )
    return out


def write_gap_csv(report: Mapping[str, Any], fh: TextIO) -> None:
    """Write the report as CSV (Japanese headers, one row per need, sorted by 地区)."""
    writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    for row in sorted(gap_rows(report), key=lambda r: (r["地区"], r["目的"])):
        writer.writerow(row)


def gap_csv(report: Mapping[str, Any]) -> str:
    """The CSV text of write_gap_csv."""
    buffer = io.StringIO()
    write_gap_csv(report, buffer)
    return buffer.getvalue()
