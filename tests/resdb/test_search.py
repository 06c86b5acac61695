"""The whoosh index on its own: Japanese folding, compounds, readings, variants, synonyms, typos, filters."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import whoosh.writing

from resdb.search import IndexUnhealthy, SearchIndex, SearchQuery

LISTINGS = [
    {
        "id": "salon-a",
        "name": "戸破ふれあいサロン",
        "name_kana": "ほばらふれあいさろん",
        "kind": "kayoi",
        "description": "お茶を飲みながら交流",
        "activities": ["交流"],
        "targets": ["elderly"],
        "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
        "cost_yen": 100,
        "lat": 36.7236,
        "lon": 137.0991,
        "barrier_free": True,
    },
    {
        "id": "taiso",
        "name": "きららか射水100歳体操 大島",
        "kind": "kayoi",
        "description": "いすに座ってできる体操",
        "activities": ["体操"],
        "targets": ["elderly"],
        "cost_yen": 0,
        "lat": 36.74,
        "lon": 137.07,
        "schedule": [{"weekday": "wed", "weeks": [2, 4], "start": "13:30", "end": "15:00"}],
    },
    {
        "id": "steppi",
        "name": "すてっぴカフェ",
        "name_kana": "すてっぴかふぇ",
        "kind": "ibasho",
        "description": "ひきこもりなど生きづらさを抱える人の居場所",
        "targets": ["hikikomori"],
        "activities": ["カフェ"],
        "lat": 36.72,
        "lon": 137.10,
        "cost_yen": 0,
    },
    {
        "id": "kodomo",
        "name": "みんなの子供食堂",
        "kind": "shokudo",
        "description": "地域の子どもと親の食堂",
        "targets": ["children"],
        "lat": 36.75,
        "lon": 137.12,
        "cost_yen": 300,
    },
    {
        "id": "farm",
        "name": "ひだまり農園",
        "kind": "work_trial",
        "description": "野菜の収穫や袋詰め",
        "activities": ["農作業"],
        "targets": ["disability"],
        "lat": 36.70,
        "lon": 137.05,
        "pickup": True,
    },
    {
        "id": "desc-only",
        "name": "公民館のつどい",
        "kind": "kayoi",
        "description": "第2月曜はサロンも開きます",
        "targets": ["all"],
        "lat": 36.73,
        "lon": 137.09,
    },
    {
        "id": "hikiko",
        "name": "引きこもりの若者の居場所",
        "kind": "ibasho",
        "targets": ["youth"],
        "lat": 36.73,
        "lon": 137.09,
    },
    {
        "id": "misato",
        "name": "三日曾根三ヶ集会",
        "kind": "other",
        "targets": ["all"],
        "lat": 36.77,
        "lon": 137.08,
    },
    {
        "id": "far",
        "name": "遠くのサロン",
        "kind": "kayoi",
        "targets": ["all"],
        "lat": 37.5,
        "lon": 138.5,
    },
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> SearchIndex:
    built = SearchIndex(tmp_path_factory.mktemp("ix"))
    built.rebuild(LISTINGS)
    return built


def ids(index: SearchIndex, q: str = "", **filters: object) -> list[str]:
    return index.search(SearchQuery(q=q, limit=50, **filters)).ids  # type: ignore[arg-type]


@pytest.mark.parametrize("q", ["さろん", "サロン", "ｻﾛﾝ", "　サロン　"])
def test_kana_and_width_variants_find_salons(index: SearchIndex, q: str) -> None:
    found = ids(index, q)
    assert "salon-a" in found and "far" in found


def test_name_hits_rank_above_description_hits(index: SearchIndex) -> None:
    found = ids(index, "サロン")
    assert found.index("salon-a") < found.index("desc-only")
    assert found.index("far") < found.index("desc-only")


def test_word_inside_compound_and_numeral_variant(index: SearchIndex) -> None:
    assert "taiso" in ids(index, "体操")
    assert "taiso" in ids(index, "百歳体操")
    assert "taiso" in ids(index, "１００歳")


def test_reading_finds_kanji_name(index: SearchIndex) -> None:
    assert ids(index, "ほばら")[0] == "salon-a"


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("子ども食堂", "kodomo"),
        ("ひきこもり", "hikiko"),
        ("三日曽根", "misato"),
        ("三ケ", "misato"),
    ],
)
def test_spelling_variants(index: SearchIndex, q: str, expected: str) -> None:
    assert expected in ids(index, q)


def test_synonyms_from_data_file(index: SearchIndex) -> None:
    assert "farm" in ids(index, "畑")
    assert "farm" in ids(index, "農業")


def test_typo_in_name_found_by_fuzzy_match(index: SearchIndex) -> None:
    result = index.search(SearchQuery(q="すてっびカフェ"))
    assert result.ids[:1] == ["steppi"]
    assert result.fuzzy_used


@pytest.mark.parametrize(
    "q",
    [
        '"サロン',
        "(サロン",
        "サロン AND",
        "サロン*",
        "OR NOT",
        ")(",
        "*",
        "\\",
        "title:サロン",
        "~~",
    ],
)
def test_query_syntax_never_raises(index: SearchIndex, q: str) -> None:
    index.search(SearchQuery(q=q))


def test_nothing_matches_gives_empty(index: SearchIndex) -> None:
    assert ids(index, "ゾウアザラシ") == []


def test_filters(index: SearchIndex) -> None:
    assert set(ids(index, "", kinds=["kayoi"])) == {"salon-a", "taiso", "desc-only", "far"}
    assert ids(index, "", targets=["hikikomori"]) == ["steppi"]
    assert ids(index, "", weekdays=["wed"]) == ["taiso"]
    assert "kodomo" not in ids(index, "", max_cost=0)
    assert "steppi" in ids(index, "", max_cost=0)
    assert ids(index, "", pickup=True) == ["farm"]
    assert ids(index, "", barrier_free=True) == ["salon-a"]
    assert "far" not in ids(index, "サロン", bbox=(136.9, 36.6, 137.3, 36.9))


def test_open_on_day_honours_nth_week(index: SearchIndex) -> None:
    second_wed = date(2026, 12, 9)  # 第2水曜
    first_wed = date(2026, 12, 2)
    assert "taiso" in ids(index, "", open_on=[second_wed])
    assert "taiso" not in ids(index, "", open_on=[first_wed])
    assert "salon-a" in ids(index, "", open_on=[date(2026, 12, 1)])  # a Tuesday


def test_distance_sorting_and_radius(index: SearchIndex) -> None:
    result = index.search(SearchQuery(near=(36.7236, 137.0991), radius_km=5, limit=50))
    assert result.ids[0] == "salon-a"
    assert "far" not in result.ids
    distances = [hit.distance_km for hit in result.hits]
    assert distances == sorted(distances)


def test_apply_keeps_index_in_step(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(LISTINGS[:2])
    index.apply([{**LISTINGS[0], "name": "戸破いきいき教室"}], ["taiso"])
    assert ids(index, "いきいき") == ["salon-a"]
    assert ids(index, "体操") == []
    index.check(1)


def test_a_search_answers_from_the_committed_index_while_this_process_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker that applies a batch keeps serving searches meanwhile (the old generation until the
    commit lands) instead of queueing them behind whoosh's write."""
    index = SearchIndex(tmp_path)
    index.rebuild(LISTINGS[:2])
    index.search(SearchQuery(q="さろん"))
    writing, release = threading.Event(), threading.Event()
    commit = whoosh.writing.SegmentWriter.commit

    def paused_commit(writer: Any, *args: Any, **kwargs: Any) -> Any:
        writing.set()
        assert release.wait(30)
        return commit(writer, *args, **kwargs)

    monkeypatch.setattr(whoosh.writing.SegmentWriter, "commit", paused_commit)
    applier = threading.Thread(
        target=index.apply, args=([{**LISTINGS[0], "name": "戸破いきいき教室"}], [])
    )
    applier.start()
    try:
        assert writing.wait(30)
        answers: list[list[str]] = []
        reader = threading.Thread(target=lambda: answers.append(ids(index, "いきいき")))
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "the search waited for the write"
        assert answers == [[]]  # not committed yet
    finally:
        release.set()
        applier.join(30)
    assert ids(index, "いきいき") == ["salon-a"]


def test_half_written_index_is_detected(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(LISTINGS)
    index.close()
    for segment in (tmp_path / "current").glob("*.seg"):
        segment.write_bytes(segment.read_bytes()[:100])
    for toc in (tmp_path / "current").glob("*.toc"):
        toc.write_bytes(toc.read_bytes()[:50])
    with pytest.raises(IndexUnhealthy):
        index.check(len(LISTINGS))


def test_missing_index_is_unhealthy(tmp_path: Path) -> None:
    with pytest.raises(IndexUnhealthy):
        SearchIndex(tmp_path).check(0)


def test_count_mismatch_is_unhealthy(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(LISTINGS)
    with pytest.raises(IndexUnhealthy):
        index.check(len(LISTINGS) + 1)


def test_block_decoding_matches_whoosh_across_segments_and_deletions(tmp_path: Path) -> None:
    import numpy as np

    index = SearchIndex(tmp_path)
    many = [{**LISTINGS[0], "id": f"s{i}", "name": f"サロン{i}"} for i in range(700)]
    index.rebuild(many)
    index.apply(
        [{**LISTINGS[0], "id": "extra", "name": "追加のサロン"}], ["s3", "s500"]
    )  # a second segment + deletions
    snap = index.snapshot()
    assert len(snap.leaves) == 2
    reader = snap.reader
    for field_name, term in (("name", "さろ"), ("name", "ん"), ("name", "無い"), ("kind", "kayoi")):
        expected = (
            np.fromiter(reader.postings(field_name, term).all_ids(), dtype=np.int64)
            if reader.frequency(field_name, term)
            else np.empty(0)
        )
        got = snap.postings(field_name, term)
        live = np.concatenate(snap.lives)  # whoosh's reader leaves out the deletions it knows of
        expected = expected.astype(np.int64)
        assert sorted(got[live[got]].tolist()) == sorted(expected[live[expected]].tolist()), term
    found = index.search(SearchQuery(q="サロン", limit=None)).ids
    assert "s3" not in found and "s500" not in found and "extra" in found and len(found) == 699


def _many(count: int) -> list[dict]:
    """Listings that tie on every score (same words, same name length): only the total order separates them."""
    return [
        {
            "id": f"tie-{n:05d}",
            "name": f"サロン{n % 10}",
            "kind": "kayoi",
            "targets": ["all"],
            "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
            "lat": 36.7,
            "lon": 137.1,
        }
        for n in range(count)
    ]


@pytest.mark.parametrize("page_size", [7, 100])
def test_paging_returns_every_hit_once_whatever_the_page_size(
    tmp_path: Path, page_size: int
) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(_many(1200))
    index.apply(
        [{**_many(1)[0], "id": "tie-extra"}], ["tie-00003"]
    )  # a second segment and a deletion
    whole = index.search(SearchQuery(q="サロン", limit=None))
    assert whole.total == 1200 and len(set(whole.ids)) == 1200
    seen: list[str] = []
    for offset in range(0, whole.total, page_size):
        page = index.search(SearchQuery(q="サロン", limit=page_size, offset=offset))
        assert page.total == whole.total
        seen.extend(page.ids)
    assert (
        seen == whole.ids
    )  # the same order in pages as in one piece: nothing repeated, nothing dropped


def test_deep_pages_are_exact(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(_many(600))
    whole = index.search(SearchQuery(limit=None)).ids
    assert index.search(SearchQuery(limit=5, offset=590)).ids == whole[590:595]
    assert index.search(SearchQuery(limit=5, offset=598)).ids == whole[598:]


def test_fuzzy_hits_are_counted_whatever_the_page_size(index: SearchIndex) -> None:
    small = index.search(SearchQuery(q="すてっびかふぇー", limit=1))
    large = index.search(SearchQuery(q="すてっびかふぇー", limit=100))
    assert small.fuzzy_used and small.total == large.total == len(large.ids)
    assert small.ids == large.ids[:1]


def test_edits_never_show_a_listing_twice_or_with_its_old_weekday(tmp_path: Path) -> None:
    """The regression behind duplicated salons: a reader reused across generations kept stale deletions."""
    index = SearchIndex(tmp_path)
    index.rebuild(LISTINGS)
    salon = LISTINGS[0]
    assert index.search(SearchQuery(q="さろん", weekdays=["tue"])).ids.count("salon-a") == 1
    for n, day in enumerate(["fri", "sat", "fri", "mon"]):
        index.apply(
            [
                {
                    **salon,
                    "name": f"戸破ふれあいサロン{n}",
                    "schedule": [{"weekday": day, "start": "10:00", "end": "12:00"}],
                }
            ],
            [],
        )
        ids = index.search(SearchQuery(q="さろん", limit=None)).ids
        assert ids.count("salon-a") == 1
        assert len(ids) == len(set(ids))
        assert index.search(SearchQuery(q="さろん", weekdays=[day])).ids.count("salon-a") == 1
        old_days = {"tue", "fri", "sat", "mon"} - {day}
        assert "salon-a" not in index.search(SearchQuery(weekdays=sorted(old_days), limit=None)).ids
    assert index.doc_count() == len(LISTINGS)


def test_a_value_the_index_cannot_hold_is_reported_and_skipped(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(LISTINGS)
    poison = {**LISTINGS[1], "cost_yen": 4294967295}
    renamed = {**LISTINGS[2], "name": "ひだまりカフェ", "name_kana": None}
    problems = index.apply([poison, renamed], [], cursor=7)
    assert set(problems) == {"taiso"} and "cost" in problems["taiso"]
    assert index.cursor() == 7  # the batch went through: nothing stays queued behind the bad value
    assert index.search(SearchQuery(q="ひだまりかふぇ")).ids == ["steppi"]
    assert index.search(SearchQuery(q="すてっぴ")).ids != ["steppi"]
    assert (
        "taiso" not in index.search(SearchQuery(q="体操", limit=None)).ids
    )  # no stale copy either
    assert index.problems() == {"taiso": problems["taiso"]}
    index.check(len(LISTINGS))  # counted as known-excluded, so start-up does not loop on rebuilds
    index.apply([{**LISTINGS[1], "cost_yen": 100}], [])
    assert index.problems() == {} and "taiso" in index.search(SearchQuery(q="体操")).ids


def test_negative_coordinates_fit_the_index(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild([{**LISTINGS[0], "id": "south", "lat": -33.9, "lon": -70.6}])
    assert index.problems() == {}
    assert index.search(SearchQuery(near=(-33.9, -70.6), radius_km=1)).ids == ["south"]


def test_every_word_of_a_query_must_match_across_segments(tmp_path: Path) -> None:
    """Two words find exactly the listings each word finds on its own (fuzzy hits aside), with filters
    and over several segments with deletions."""
    from resdb.synth import synthetic_listings

    listings = list(synthetic_listings(900, seed=5))
    index = SearchIndex(tmp_path)
    index.rebuild(listings[:600])
    index.apply(listings[600:], [x["id"] for x in listings[:40]])  # a second segment + deletions
    words = ["サロン", "体操", "子ども", "カフェ", "食堂", "高齢者", "交流", "相談"]
    checked = 0
    for first in words:
        for second in words:
            for kinds in ([], ["kayoi"]):

                def found(q: str, kinds: list[str] = kinds) -> set[str]:
                    result = index.search(SearchQuery(q=q, kinds=kinds, limit=None))
                    return {h.id for h in result.hits if not h.fuzzy}

                both = found(f"{first} {second}")
                assert both == found(first) & found(second), (first, second, kinds)
                checked += bool(both)
    assert checked > 10  # the pairs are not all empty
