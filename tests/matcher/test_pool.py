"""CandidatePool: spatial prefilter, text index, purity of the package and speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from matcher import CandidatePool, match, parse_person
from matcher.pool import haversine_many
from resdb.domain.textnorm import expand_terms
from resdb.domain.travel import haversine_km, max_distance_km

from .data import TODAY, TOIDE, make_listing, make_person

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ("matcher", "resdb.domain")


def test_pure_packages_import_no_web_db_or_index_packages() -> None:
    """Every module of matcher/ and resdb/domain/, imported in a fresh process, pulls in no web framework,
    database layer or search index (and no other resdb module than the domain package)."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"packages = {PURE_PACKAGES!r}\n"
        "names = []\n"
        "for name in packages:\n"
        "    package = importlib.import_module(name)\n"
        "    names += [m.name for m in pkgutil.iter_modules(package.__path__, name + '.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy', 'sqlmodel', 'whoosh')\n"
        "       or (m.startswith('resdb.') and not m.startswith('resdb.domain'))]\n"
        "print(json.dumps({'imported': names, 'bad': bad}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    seen = json.loads(out.stdout)
    assert "matcher.pool" in seen["imported"] and "resdb.domain.schedule" in seen["imported"]
    assert seen["bad"] == []


def test_every_pure_module_opens_with_a_docstring() -> None:
    paths = sorted((ROOT / "matcher").glob("*.py")) + sorted(
        (ROOT / "resdb" / "domain").glob("*.py")
    )
    assert len(paths) > 10
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.startswith('"""'), path.name
        first = text.splitlines()[0]
        assert len(first) > 10, path.name


def test_vectorized_haversine_matches_scalar() -> None:
    lats = np.array([36.7, 35.68, 43.06, 26.21])
    lons = np.array([137.2, 139.77, 141.35, 127.68])
    got = haversine_many(TOIDE[0], TOIDE[1], lats, lons)
    want = [haversine_km(TOIDE[0], TOIDE[1], a, b) for a, b in zip(lats, lons, strict=True)]
    assert np.allclose(got, want, rtol=1e-12, atol=1e-9)


def test_nearby_and_view_keep_reachable_and_near_miss_listings_only() -> None:
    items = [make_listing(f"p{i}", lat=TOIDE[0] + 0.01 * i, lon=TOIDE[1]) for i in range(30)]
    items.append(make_listing("nowhere", lat=None, lon=None))
    pool = CandidatePool(items)
    q = parse_person(make_person(mobility="bicycle", max_minutes=20), TODAY)
    view = pool.view(q)
    reach = max_distance_km(20, "bicycle")
    dist = [haversine_km(TOIDE[0], TOIDE[1], TOIDE[0] + 0.01 * i, TOIDE[1]) for i in range(30)]
    expected = {i for i, d in enumerate(dist) if d <= 1.5 * reach + 0.05}
    assert {int(pool.ids[j][1:]) for j in view.idx if pool.ids[j] != "nowhere"} == expected
    assert {i for i, d in enumerate(dist) if d <= reach} < expected  # near misses are kept too
    assert "nowhere" not in [pool.ids[i] for i in view.idx]


def test_rows_are_stored_by_latitude_and_ties_follow_the_callers_order() -> None:
    items = [
        make_listing(name, lat=lat)
        for name, lat in (("n", 36.9), ("s", 36.5), ("x", None), ("m", 36.7))
    ]
    pool = CandidatePool(items)
    assert pool.ids == ["s", "m", "n", "x"]
    assert pool.position.tolist() == [1, 3, 0, 2]
    same = [make_listing(f"t{i}") for i in range(5)]
    answer = match(make_person(), same, today=TODAY)
    assert [p["resource_id"] for p in answer["proposals"]][:2] == ["t0", "t1"]


def test_listing_without_home_coordinates_is_matched_without_travel() -> None:
    pool = CandidatePool([make_listing("a"), make_listing("b", lat=35.0, lon=135.0)])
    q = parse_person(make_person(home={"address": "射水市のどこか"}), TODAY)
    assert len(pool.view(q)) == 2


def test_text_index_uses_shared_synonyms_and_normalization() -> None:
    pool = CandidatePool(
        [
            make_listing("a", activities=["農作業"]),
            make_listing("b", description="ﾎﾞｰﾄﾞｹﾞｰﾑで遊ぶ会"),
            make_listing("c", name="子供食堂"),
            make_listing("d", activities=["カラオケ"]),
        ]
    )
    idx = np.array([pool.index_of[x] for x in "abcd"])
    assert pool.contains_any(frozenset(expand_terms(["畑"])), idx).tolist() == [
        True,
        False,
        False,
        False,
    ]
    assert pool.contains_any(frozenset(expand_terms(["ゲーム"])), idx).tolist() == [
        False,
        True,
        False,
        False,
    ]
    assert pool.contains_any(frozenset(expand_terms(["子ども食堂"])), idx).tolist() == [
        False,
        False,
        True,
        False,
    ]
    lazy = CandidatePool(pool.listings, prepare_text=False)
    assert lazy.text(lazy.index_of["c"]) == pool.text(pool.index_of["c"])


def test_schedule_strings_in_odd_forms_are_understood() -> None:
    listing = make_listing(
        "x", schedule=[{"weekday": "火", "start": "9:30", "end": "11:00", "weeks": ["2"]}, "junk"]
    )
    person = make_person(available=[{"weekday": "tue", "start": "09:00", "end": "10:00"}])
    proposal = match(person, [listing], today=TODAY)["proposals"][0]
    assert proposal["next_sessions"] == ["2026-12-08T09:30+09:00"]
