"""Learning from placements: per place, how referrals went (only with ≥ 5 cases), a shrunk continuing rate as a
ranking factor with its own reason line, and nothing that could point at one person (synthetic cases)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from resdb.accounts import add_user
from resdb.directory import Directory
from resdb.matching import Matching
from resdb.outcomes import MIN_CASES, placement_outcomes
from resdb.workspace import Workspace

TODAY = date(2026, 12, 2)
HOME = (36.7236, 137.0991)


def _place(listing_id: str, lat: float) -> dict[str, Any]:
    return {
        "id": listing_id,
        "name": f"居場所 {listing_id}",
        "kind": "ibasho",
        "lat": lat,
        "lon": HOME[1],
        "municipality_code": "162116",
        "targets": ["all"],
        "activities": ["交流"],
        "cost_yen": 0,
        "schedule": [{"weekday": "wed", "start": "13:00", "end": "15:00"}],
        "verified_at": "2026-10-01",
        "accepts_referrals": True,
        "capacity": 10,
    }


def _cases(ws: Workspace, coordinator: Any, listing_id: str, stages: list[list[str]]) -> None:
    for n, path in enumerate(stages):
        case = ws.save_case(
            coordinator,
            pseudonym=f"{listing_id}-{n}",
            legal_basis="consent",
            person={"goals": ["friends"]},
            proposals=[{"resource_id": listing_id, "score": 0.5}],
        )
        for stage in path:
            ws.record(case["placements"][0]["id"], coordinator, kind="stage", to_stage=stage)


JOINED = ["visited", "participating"]
STOPPED = ["visited", "stopped"]


def test_outcomes_shown_only_from_five_cases_and_used_for_ranking(directory: Directory) -> None:
    directory.create(_place("good", HOME[0] + 0.004), actor="t")
    directory.create(_place("unknown", HOME[0] + 0.004), actor="t")
    directory.create(_place("few", HOME[0] + 0.004), actor="t")
    ws = Workspace(directory)
    coordinator = add_user(ws.engine, "co@example.jp", "coordinator", "long enough pw")
    _cases(ws, coordinator, "good", [JOINED] * 6 + [STOPPED] * 2)
    _cases(
        ws, coordinator, "few", [JOINED] * 4
    )  # four cases: never shown (could point at a person)
    _cases(ws, coordinator, "unknown", [[]] * 6)  # only 「提案」: not referred yet

    outcomes = placement_outcomes(ws.engine)
    assert set(outcomes) == {"good"}
    good = outcomes["good"]
    assert (good.referred, good.continuing) == (8, 6)
    assert good.text.startswith("紹介8人中6人が続いています")
    overall = (
        10 / 12
    )  # every referred case (the 4 of 「few」 count toward the overall rate, not toward a place)
    assert math.isclose(good.rate, (6 + 5 * overall) / (8 + 5))  # shrunk toward the overall rate
    assert MIN_CASES == 5

    person = {
        "home": {"lat": HOME[0], "lon": HOME[1]},
        "goals": ["friends"],
        "mobility": "walk",
        "max_minutes": 30,
        "available": [{"weekday": "wed", "start": "13:00", "end": "16:00"}],
    }
    answer = Matching(directory).match(person, today=TODAY)
    order = [p["resource_id"] for p in answer["proposals"]]
    assert order[0] == "good"
    by_id = {p["resource_id"]: p for p in answer["proposals"]}
    lines = [r["text"] for r in by_id["good"]["reasons"] if r["factor"] == "outcome"]
    assert lines and lines[0].startswith("紹介8人中6人が続いています")
    for other in ("few", "unknown"):
        assert not [r for r in by_id[other]["reasons"] if r["factor"] == "outcome"]
    text = str(answer)
    assert (
        "few-" not in text and "good-" not in text
    )  # no pseudonym or case detail ever reaches an answer


def test_outcomes_follow_new_stages(directory: Directory) -> None:
    directory.create(_place("later", HOME[0] + 0.004), actor="t")
    ws = Workspace(directory)
    coordinator = add_user(ws.engine, "co@example.jp", "coordinator", "long enough pw")
    matching = Matching(directory)
    person = {"home": {"lat": HOME[0], "lon": HOME[1]}, "goals": ["friends"], "mobility": "walk"}
    assert not [
        r
        for p in matching.match(person, today=TODAY)["proposals"]
        for r in p["reasons"]
        if r["factor"] == "outcome"
    ]
    _cases(ws, coordinator, "later", [JOINED] * 5)
    lines = [
        r["text"]
        for p in matching.match(person, today=TODAY)["proposals"]
        for r in p["reasons"]
        if r["factor"] == "outcome"
    ]
    assert lines and lines[0].startswith("紹介5人中5人が続いています")
