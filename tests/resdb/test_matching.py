"""Matching over the real 射水市 demo: homes resolved, service areas honoured, nothing about the person kept."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from click.testing import Result

from resdb.directory import Directory
from resdb.domain.shipped import PERSONS_DIR
from resdb.matching import Matching, PersonError
from tests.conftest import CliRun

PERSONS = PERSONS_DIR
TODAY = date(2026, 11, 30)


@pytest.fixture(scope="module")
def matching(demo_directory: Directory) -> Matching:
    return Matching(demo_directory)


@pytest.mark.parametrize(
    "path", sorted(p for p in PERSONS.glob("*.json") if p.stem != "caseload"), ids=lambda p: p.stem
)
def test_each_persona_gets_a_coordinator_ready_list(matching: Matching, path: Path) -> None:
    person = json.loads(path.read_text(encoding="utf-8"))
    answer = matching.match(person, today=TODAY)
    assert answer["proposals"], path.stem
    listings = {x["id"]: x for x in matching.directory.all_listings()}
    for proposal in answer["proposals"]:
        assert proposal["reasons"] and all(r["text"] for r in proposal["reasons"])
        listing = listings[proposal["resource_id"]]
        assert listing["accepts_referrals"] is not False or proposal["cautions"]
        if listing["kind"] == "center" and listing.get("service_area"):
            covering = matching.directory.areas_lookup(person["home"]["lat"], person["home"]["lon"])
            assert listing["id"] in {c["id"] for c in covering}
        if listing.get("is_sample"):
            assert any("サンプル" in c for c in proposal["cautions"])


def test_home_by_address_and_by_district(matching: Matching) -> None:
    person = json.loads((PERSONS / "hikikomori_youth.json").read_text(encoding="utf-8"))
    by_address = {**person, "home": {"address": "富山県射水市戸破4200番地11"}}
    by_district = {**person, "home": {"district": "大島地区", "municipality_code": "16211"}}
    assert matching.match(by_address, today=TODAY)["proposals"]
    assert matching.match(by_district, today=TODAY)["proposals"]
    with pytest.raises(PersonError, match="home.address"):
        matching.match({**person, "home": {"address": "架空県どこか市1-1"}}, today=TODAY)


def test_center_outside_its_tanto_chiku_is_excluded(matching: Matching) -> None:
    person = {
        "home": {"address": "富山県射水市小島700番地1"},
        "goals": ["consult"],
        "age": 70,
        "mobility": "car",
        "max_minutes": 60,
    }
    answer = matching.match(person, today=TODAY, limit=30)
    proposed = {p["name"] for p in answer["proposals"]}
    assert "大島地域包括支援センター" in proposed
    assert "新湊西地域包括支援センター" not in proposed


def test_caseload_respects_capacity(matching: Matching) -> None:
    persons = json.loads((PERSONS / "caseload.json").read_text(encoding="utf-8"))
    persons = persons["persons"] if isinstance(persons, dict) else persons
    result = matching.match_batch(persons * 3, today=TODAY)
    capacity = {x["id"]: x.get("capacity") for x in matching.directory.all_listings()}
    for resource_id, count in Counter(a["resource_id"] for a in result["assignments"]).items():
        assert capacity[resource_id] is None or count <= capacity[resource_id]
    assert len(result["assignments"]) + len(result["unassigned"]) == len(persons) * 3


def test_matching_stores_and_logs_nothing_about_the_person(
    matching: Matching, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "カナリア太郎の秘密メモ"
    revision = matching.directory.revision()
    history_before = sum(
        len(matching.directory.history(x["id"])) for x in matching.directory.all_listings()[:50]
    )
    with caplog.at_level(logging.DEBUG):
        matching.match(
            {
                "home": {"address": "富山県射水市戸破1番地"},
                "goals": ["friends"],
                "interests": [canary],
                "note": canary,
            },
            today=TODAY,
        )
    assert canary not in caplog.text
    assert matching.directory.revision() == revision
    assert (
        sum(
            len(matching.directory.history(x["id"])) for x in matching.directory.all_listings()[:50]
        )
        == history_before
    )


def test_cli_match_and_gaps(demo_directory: Directory, tmp_path: Path, cli: CliRun) -> None:
    def resdb(*args: str) -> Result:
        return cli(*args, directory=demo_directory, catch_exceptions=True)

    single = resdb("match", str(PERSONS / "elder_no_car.json"), "--json", "--today", "2026-11-30")
    assert single.exit_code == 0, single.output
    assert json.loads(single.output)["proposals"]
    batch = resdb("match", str(PERSONS / "caseload.json"), "--json", "--today", "2026-11-30")
    assert set(json.loads(batch.output)) == {"assignments", "unassigned"}
    needs = tmp_path / "needs.json"
    needs.write_text(
        json.dumps(
            [
                {
                    "goal": "work",
                    "targets": ["hikikomori"],
                    "district": "大島地区",
                    "mobility": "walk",
                    "max_minutes": 10,
                }
            ]
        )
    )
    out_csv = tmp_path / "gaps.csv"
    gaps = resdb("gaps", str(needs), "--csv", str(out_csv), "--today", "2026-11-30")
    assert gaps.exit_code == 0 and "大島地区" in gaps.output
    assert out_csv.read_text(encoding="utf-8-sig").startswith("地区,目的")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"home": {"lat": 99, "lon": 0}}))
    assert resdb("match", str(bad)).exit_code == 1
