"""The shipped data: every file imports cleanly, plan facts carry their source, samples are labelled,
and the 射水市 demo answers the questions the issue names."""

from __future__ import annotations

import json
import re

import pytest

from resdb.demo import listing_files
from resdb.directory import Directory
from resdb.exchange import read_file
from resdb.search import SearchQuery

PLAN_FILES = {
    "000_58df7db5238c0035.txt",
    "001_35703290ad656668.txt",
    "002_c485c2aed9bec652.txt",
    "003_0dc0c3202cb85c38.txt",
    "004_574d9fa843edc779.txt",
}

# 射水市 plan (004), ①地域包括支援センターの運営: a member town's 町字 point in each 担当地区.
IMIZU_CENTERS = {
    "新湊西地域包括支援センター": ["庄西町一丁目", "港町", "三日曽根", "善光寺"],
    "新湊東地域包括支援センター": ["立町", "海老江", "堀岡", "七美"],
    "小杉・下地域包括支援センター": ["戸破", "三ケ", "大江"],
    "小杉南地域包括支援センター": ["太閤山一丁目", "黒河", "池多", "南太閤山一丁目"],
    "大門地域包括支援センター": ["大門", "水戸田", "二口", "串田"],
    "大島地域包括支援センター": ["小島", "大島北野"],
}


SHIPPED_KINDS = {"samples", "leads", "venues", "imizu", "inagi", "ashiya", "iwaki", "wadomari"}


def test_the_shipped_listing_files_are_there() -> None:
    """The loops below check every shipped file: they must have files to check."""
    files = listing_files()
    assert len(files) >= 15, [path.name for path in files]
    assert {path.stem.split("_", 1)[1] for path in files} == SHIPPED_KINDS
    assert {path.stem.split("_")[0] for path in files if path.stem.endswith("_venues")} == {
        "16211",
        "13225",
        "28206",
        "07204",
        "46533",
    }


def test_every_shipped_file_imports_without_problems(demo_directory: Directory) -> None:
    checked = 0
    for path in listing_files():
        checked += 1
        records = json.loads(path.read_text(encoding="utf-8"))
        report = demo_directory.import_records(
            list(enumerate(records, 1)), actor="t", source_name=path.name, dry_run=True
        )
        assert report.problems == [], (path.name, [str(p) for p in report.problems])
    assert checked == len(listing_files()) > 0


def test_plan_facts_cite_the_plan_and_samples_are_labelled() -> None:
    samples = plan_facts = 0
    for path in listing_files():
        for listing in json.loads(path.read_text(encoding="utf-8")):
            if path.stem.endswith("_samples"):
                assert listing["is_sample"] is True and listing["source"] == "sample"
                assert listing["name"].startswith("（サンプル）")
                samples += 1
            elif path.stem.endswith("_leads"):
                continue  # public sources other than the plans (next test)
            elif not path.stem.endswith("_venues"):
                assert listing["source"] in PLAN_FILES and not listing.get("is_sample")
                plan_facts += 1
    assert samples > 0 and plan_facts > 0


MOBILE = re.compile(r"0[789]0-?\d{4}-?\d{4}")


def test_public_source_listings_name_their_source_and_wait_for_an_editor() -> None:
    leads = [
        (path, x)
        for path in listing_files()
        if path.stem.endswith("_leads")
        for x in json.loads(path.read_text(encoding="utf-8"))
    ]
    assert {path.stem.split("_")[0] for path, _ in leads} >= {"16211", "13225", "28206", "07204"}
    for path, listing in leads:
        where = (path.name, listing["id"])
        assert listing["source"] and not re.search(r"\.(txt|csv|json|xlsx)$", listing["source"]), (
            where
        )
        assert "source_url" in listing and (
            listing["source_url"] is None or listing["source_url"].startswith("https://")
        ), where
        assert (
            listing["source_read_at"]
            and listing["verified_at"] is None
            and not listing.get("is_sample")
        ), where
        assert not MOBILE.search(json.dumps(listing, ensure_ascii=False)), (
            where
        )  # no private phone numbers
        if listing.get("location_private"):
            assert not listing.get("address") and listing.get("lat") is None, where


def test_private_home_is_shipped_private_and_shown_at_municipality_level(
    demo_directory: Directory,
) -> None:
    home = demo_directory.get("ashiya-tsudoiba-yu-mi")
    assert home["location_private"] is True
    shown = demo_directory.public_view(home)
    assert shown["address"] == "芦屋市" and shown["location_precision"] == "municipality"


def test_every_municipality_file_loads_and_none_reads_as_a_failure(
    demo_directory: Directory,
) -> None:
    codes = {
        x["municipality_code"]
        for x in demo_directory.all_listings()
        if not x["id"].endswith("-venue")
    }
    assert {"162116", "132250", "282065", "072044", "465330"} <= codes
    read = [path for path in listing_files() if path.stem.endswith(("_leads", "_iwaki"))]
    assert len(read) == 5  # four municipalities' leads and いわき市's plan file
    for path in read:
        records, _ = read_file(path)
        assert records, path.name


def test_search_saron_finds_the_salons_first(demo_directory: Directory) -> None:
    salons = {x["id"] for x in demo_directory.all_listings() if "サロン" in x["name"]}
    items = demo_directory.search(SearchQuery(q="さろん", limit=100))["items"]
    found = [item["id"] for item in items]
    assert len(salons) >= 5
    assert set(found[: len(salons)]) == salons  # name hits first; synonyms (通いの場) after


@pytest.mark.parametrize(("center", "towns"), IMIZU_CENTERS.items())
def test_areas_names_the_right_center_in_each_tanto_chiku(
    demo_directory: Directory, center: str, towns: list[str]
) -> None:
    gazetteer = demo_directory.gazetteer()
    for town in towns:
        record = next(
            r
            for r in gazetteer.records
            if r.level == "town" and r.name == town and r.municipality_code == "162116"
        )
        found = [
            c["name"]
            for c in demo_directory.areas_lookup(record.lat, record.lon)
            if c["name"].endswith("地域包括支援センター")
        ]
        assert found == [center], town
