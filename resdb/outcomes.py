"""How referrals to each place went, from saved cases' placement stages: aggregates only, and only for places with
at least MIN_CASES referred cases (a smaller count could point at one person), with a shrunk continuing rate."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from resdb.db import read_session, request_fact
from resdb.models import Placement, PlacementEvent

MIN_CASES = 5  # fewer referred cases than this: nothing is shown or used (privacy)
PRIOR_CASES = 5  # shrinkage: the rate is pulled toward the overall rate as if 5 more cases had the overall rate
CONTINUING = frozenset({"participating", "settled"})  # 参加中・定着
REFERRED = frozenset({"visited", "trial", "participating", "settled", "stopped"})  # beyond 提案


@dataclass(frozen=True)
class Outcome:
    """One place's referrals in aggregate."""

    referred: int  # distinct cases referred (見学 or later)
    continuing: int  # of those, now 参加中 or 定着
    median_days_to_join: int | None  # from the placement to its first 参加中, over those who joined
    rate: float  # continuing / referred, shrunk toward the overall rate

    @property
    def text(self) -> str:
        """「紹介8人中6人が続いています（参加まで中央値14日）」."""
        days = (
            f"（参加まで中央値{self.median_days_to_join}日）"
            if self.median_days_to_join is not None
            else ""
        )
        return f"紹介{self.referred}人中{self.continuing}人が続いています{days}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "referred": self.referred,
            "continuing": self.continuing,
            "median_days_to_join": self.median_days_to_join,
            "rate": round(self.rate, 3),
            "text": self.text,
        }


def outcomes_revision(engine: Engine) -> tuple[int, int]:
    """Changes whenever a placement or a stage is recorded (for caches); read once per web request."""
    return request_fact(engine, "outcomes", lambda: _read_outcomes_revision(engine))


def _read_outcomes_revision(engine: Engine) -> tuple[int, int]:
    with read_session(engine) as session:
        placements = session.exec(
            select(func.count(), func.max(Placement.id)).select_from(Placement)
        ).one()
        events = session.exec(
            select(func.count(), func.max(PlacementEvent.id)).select_from(PlacementEvent)
        ).one()
    return (
        int(placements[0] or 0) * 1_000_003 + int(placements[1] or 0),
        int(events[0] or 0) * 1_000_003 + int(events[1] or 0),
    )


def placement_outcomes(
    engine: Engine, *, min_cases: int = MIN_CASES, prior_cases: int = PRIOR_CASES
) -> dict[str, Outcome]:
    """listing id → Outcome, only for places with at least `min_cases` referred cases."""
    with read_session(engine) as session:
        placements = session.exec(select(Placement).where(col(Placement.stage).in_(REFERRED))).all()
        joined = session.exec(
            select(col(PlacementEvent.placement_id), func.min(PlacementEvent.at))
            .where(PlacementEvent.kind == "stage", col(PlacementEvent.to_stage) == "participating")
            .group_by(col(PlacementEvent.placement_id))
        ).all()
    joined_at = dict(joined)
    per_place: dict[str, dict[int, tuple[str, int | None]]] = {}
    for placement in placements:
        assert placement.id is not None  # a stored row
        days: int | None = None
        joined_on = joined_at.get(placement.id)
        if joined_on is not None and placement.created_at is not None:
            start = placement.created_at.replace(tzinfo=None)
            days = max(0, (joined_on.replace(tzinfo=None) - start).days)
        cases = per_place.setdefault(placement.listing_id, {})
        previous = cases.get(placement.case_id)
        stage = placement.stage
        if previous is None or (stage in CONTINUING and previous[0] not in CONTINUING):
            cases[placement.case_id] = (
                stage,
                days,
            )  # one case counts once per place: its best stage
    total = sum(len(c) for c in per_place.values())
    overall = (
        (
            sum(1 for c in per_place.values() for stage, _ in c.values() if stage in CONTINUING)
            / total
        )
        if total
        else 0.5
    )
    out: dict[str, Outcome] = {}
    for listing_id, cases in per_place.items():
        referred = len(cases)
        if referred < min_cases:
            continue
        continuing = sum(1 for stage, _ in cases.values() if stage in CONTINUING)
        join_days = [d for _, d in cases.values() if d is not None]
        out[listing_id] = Outcome(
            referred=referred,
            continuing=continuing,
            median_days_to_join=(
                int(statistics.median(join_days)) if len(join_days) >= min_cases else None
            ),
            rate=(continuing + prior_cases * overall) / (referred + prior_cases),
        )
    return out
