"""The bulk index build and the sidecar files: whoosh reads a bulk-built index exactly as one its own
writer made; sidecars are shared by processes through memory mapping, rebuilt when damaged, and kept
in step with edits and merges."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from whoosh import index as whoosh_index
from whoosh.reading import MultiReader

from resdb.search import SearchIndex, SearchQuery, _check_fields, listing_fields
from resdb.search.bulk import build_segment
from resdb.search.schema import _schema
from resdb.synth import synthetic_listings
from tests.resdb.test_search import LISTINGS

ODD = [
    {"id": "empty", "name": "", "kind": "other"},  # no text at all
    {"id": "repeat", "name": "ささささ", "description": "あああああ いいい ああ", "kind": "kayoi"},
    {"id": "astral", "name": "𠮷野家サロン🍵", "description": "ＡＢＣ abc", "kind": "ibasho"},
    {"id": "long", "name": "長い説明", "description": "交流" * 3000, "kind": "kayoi"},
    {"id": "unknown-cost", "name": "費用不明", "cost_yen": None, "lat": None, "lon": None},
]


def _docs(count: int = 1500) -> list[dict[str, Any]]:
    return [*LISTINGS, *ODD, *synthetic_listings(count, seed=5)]


def _normal_index(path: Path, docs: list[dict[str, Any]]) -> Any:
    path.mkdir()
    ix = whoosh_index.create_in(str(path), _schema())
    writer = ix.writer()
    for doc in docs:
        writer.add_document(**listing_fields(doc))
    writer.commit()
    return ix


def _bulk_index(path: Path, docs: list[dict[str, Any]]) -> Any:
    from whoosh.filedb.filestore import FileStorage
    from whoosh.index import TOC

    path.mkdir()
    whoosh_index.create_in(str(path), _schema()).close()
    segment = build_segment(str(path), [listing_fields(doc) for doc in docs])
    TOC(_schema(), [segment], 1).write(FileStorage(str(path)), "MAIN")
    return whoosh_index.open_dir(str(path))


def _term_table(reader: Any) -> dict[tuple[str, bytes], Any]:
    table = {}
    for field_name in reader.indexed_field_names():
        for term in reader.lexicon(field_name):
            info = reader.term_info(field_name, term)
            matcher = reader.postings(field_name, term)
            items = []
            while matcher.is_active():
                items.append((matcher.id(), matcher.weight(), matcher.value()))
                matcher.next()
            table[field_name, term] = (
                items,
                info.doc_frequency(),
                info.weight(),
                info.min_length(),
                info.max_length(),
                info.max_weight(),
                info.min_id(),
                info.max_id(),
            )
    return table


def test_bulk_build_reads_like_the_normal_writer(tmp_path: Path) -> None:
    docs = _docs()
    assert all(_check_fields(listing_fields(doc)) is None for doc in docs)
    normal = _normal_index(tmp_path / "normal", docs).reader()
    bulk = _bulk_index(tmp_path / "bulk", docs).reader()
    assert bulk.doc_count_all() == normal.doc_count_all() == len(docs)
    assert _term_table(bulk) == _term_table(normal)
    for field_name in ("id", "name_norm", "cost", "lat", "lon"):
        assert list(bulk.column_reader(field_name)) == list(normal.column_reader(field_name))
    for field_name in ("name", "place", "act", "body"):
        assert bulk.field_length(field_name) == normal.field_length(field_name)
        for docnum in range(len(docs)):
            assert bulk.doc_field_length(docnum, field_name) == normal.doc_field_length(
                docnum, field_name
            )
    assert [bulk.stored_fields(d) for d in range(len(docs))] == [
        normal.stored_fields(d) for d in range(len(docs))
    ]
    # whoosh's own searcher ranks the same way over both
    from whoosh.query import And, Term

    for query in (Term("name", "さろ"), And([Term("body", "交流"), Term("kind", "kayoi")])):
        with bulk.searcher() if False else _searcher(tmp_path / "bulk") as a:
            with _searcher(tmp_path / "normal") as b:
                hits_a = [(h.docnum, round(h.score, 6)) for h in a.search(query, limit=None)]
                hits_b = [(h.docnum, round(h.score, 6)) for h in b.search(query, limit=None)]
                assert hits_a == hits_b and hits_a


def _searcher(path: Path) -> Any:
    return whoosh_index.open_dir(str(path)).searcher()


QUERIES = [
    SearchQuery(q="サロン", limit=None),
    SearchQuery(q="体操", kinds=["kayoi"], max_cost=100, limit=50),
    SearchQuery(q="交流 カフェ", barrier_free=True, limit=None),
    SearchQuery(q="", near=(36.7, 137.1), radius_km=5.0, limit=30),
    SearchQuery(q="食堂", weekdays=["tue"], near=(36.7, 137.1), limit=20),
    SearchQuery(q="すてっびカフェ", limit=None),  # typo: fuzzy names
    SearchQuery(q="すてっびカフェ", kinds=["ibasho"], limit=None),  # typo among few candidates
]


def test_search_answers_the_same_over_a_bulk_and_a_normal_index(tmp_path: Path) -> None:
    docs = _docs(3000)
    bulk = SearchIndex(tmp_path / "a")
    bulk.rebuild(docs)
    normal = SearchIndex(tmp_path / "b")
    normal.rebuild([])  # an empty index, then every document through the normal writer
    normal.apply(docs, [])
    assert len(normal.snapshot().segments) == 1
    for query in QUERIES:
        a, b = bulk.search(query), normal.search(query)
        assert a.total == b.total and a.total > 0
        assert [(h.id, round(h.score, 5), h.distance_km) for h in a.hits] == [
            (h.id, round(h.score, 5), h.distance_km) for h in b.hits
        ]


def test_several_bulk_segments_built_in_parallel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb.search import bulk

    monkeypatch.setattr(bulk, "SEGMENT_DOCS", 700)
    docs = _docs(3000)
    index = SearchIndex(tmp_path / "a")
    index.rebuild(docs)
    assert len(index.snapshot().segments) >= 4
    single = SearchIndex(tmp_path / "b")
    monkeypatch.setattr(bulk, "SEGMENT_DOCS", 1 << 17)
    single.rebuild(docs)
    for query in QUERIES:
        assert index.search(query).ids == single.search(query).ids


def test_an_edit_after_a_bulk_build_shows_at_once_and_the_old_text_never(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    docs = _docs(500)
    index.rebuild(docs)
    target = next(d for d in docs if d["id"].startswith("syn-"))
    assert target["id"] in index.search(SearchQuery(q=target["name"], limit=None)).ids
    index.apply([{**target, "name": "まったく新しい名前の集い"}], [])
    assert index.search(SearchQuery(q="新しい名前の集い")).ids == [target["id"]]
    for _ in range(12):  # enough edits for whoosh to merge the small segments
        index.apply([{**target, "name": "まったく新しい名前の集い"}], [])
        found = index.search(SearchQuery(q=target["id"][-6:] + " ", ids=[target["id"]], limit=None))
        assert found.ids.count(target["id"]) <= 1
    everything = index.search(SearchQuery(q="", include_venues=True, limit=None)).ids
    assert len(everything) == len(set(everything)) == len(docs)
    old_words = index.search(SearchQuery(q=target["name"], limit=None)).ids
    assert target["id"] not in old_words


def _sidecars(index: SearchIndex) -> list[Path]:
    return sorted((index.root / "current").glob("side-*"))


def test_merged_segments_get_sidecars_that_agree_with_whoosh(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    docs = _docs(300)
    index.rebuild(docs)
    for n in range(12):  # whoosh merges the small segments on the way
        index.apply([{**docs[n + 20], "name": f"合併テスト{n}"}], [docs[n + 40]["id"]])
    snap = index.snapshot()
    live_segments = {seg._segment.segment_id() for seg in snap.segments}
    assert {p.name for p in _sidecars(index)} == {f"side-{s}" for s in live_segments}
    reader = MultiReader([seg.reader for seg in snap.segments])
    live = np.concatenate(snap.lives)  # whoosh's reader leaves out the deletions it knows of
    for field_name in ("name", "body", "kind", "days", "id"):
        for term in list(reader.lexicon(field_name))[:200]:
            text = term.decode("utf-8")
            ours, whooshs = snap.postings(field_name, text), snap.decoded_postings(field_name, text)
            assert sorted(ours[live[ours]].tolist()) == sorted(whooshs[live[whooshs]].tolist())
    for seg in snap.segments:
        assert seg.ids == list(seg.reader.column_reader("id"))
        assert [seg.name_at(d) for d in range(seg.size)] == list(
            seg.reader.column_reader("name_norm")
        )


@pytest.mark.parametrize(
    "docs", [300, 3000]
)  # a small sidecar is one packed file, a larger one .npy files
@pytest.mark.parametrize("damage", ["truncate", "remove", "manifest"])
def test_a_damaged_sidecar_is_rebuilt_never_trusted(tmp_path: Path, damage: str, docs: int) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(_docs(docs))
    before = index.search(SearchQuery(q="サロン", limit=None)).ids
    (side,) = _sidecars(index)
    manifest = json.loads((side / "manifest.json").read_text())
    largest = max(manifest["files"], key=manifest["files"].get)
    if damage == "truncate":
        path = side / largest
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "remove":
        (side / largest).unlink()
    else:
        manifest["size"] += 1
        (side / "manifest.json").write_text(json.dumps(manifest))
    fresh = SearchIndex(tmp_path)  # another process opening the index
    assert fresh.search(SearchQuery(q="サロン", limit=None)).ids == before
    (rebuilt,) = _sidecars(fresh)
    manifest = json.loads((rebuilt / "manifest.json").read_text())
    assert manifest["files"] and all(
        (rebuilt / name).stat().st_size == size for name, size in manifest["files"].items()
    )
    assert ("packed.bin" in manifest["files"]) == (docs == 300)


_READER = """
import json, sys
from pathlib import Path
from resdb.search import SearchIndex, SearchQuery
index = SearchIndex(Path(sys.argv[1]))
ids = index.search(SearchQuery(q="サロン", limit=None)).ids
maps = [line.split()[-1] for line in open("/proc/self/maps") if "side-" in line]
print(json.dumps({"ids": ids, "maps": sorted(set(maps))}))
"""


def test_a_second_process_maps_the_same_sidecar_files(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.rebuild(_docs(3000))
    expected = index.search(SearchQuery(q="サロン", limit=None)).ids
    before = {p: p.stat().st_mtime_ns for side in _sidecars(index) for p in side.iterdir()}
    out = subprocess.run(
        [sys.executable, "-c", _READER, str(tmp_path)], capture_output=True, text=True, check=True
    )
    answer = json.loads(out.stdout)
    assert answer["ids"] == expected
    mapped = {Path(p).name for p in answer["maps"]}
    assert {"body.docs.npy", "lat.npy", "tiebreak.npy"} <= mapped  # mapped, not read into memory
    assert {p: p.stat().st_mtime_ns for side in _sidecars(index) for p in side.iterdir()} == before
    own = np.load(_sidecars(index)[0] / "lat.npy", mmap_mode="r")
    assert isinstance(own, np.memmap)


def test_an_index_fed_in_batches_with_its_tail_split_answers_like_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb.search import bulk

    monkeypatch.setattr(bulk, "SEGMENT_DOCS", 1000)
    monkeypatch.setattr(bulk, "TAIL_PART_DOCS", 100)
    docs = _docs(2486)  # 2,500 with the odd ones
    rebuilt = SearchIndex(tmp_path / "b")
    held = rebuilt.rebuild(docs)
    fed = SearchIndex(tmp_path / "a")
    build = fed.start_build()
    for start in range(0, len(docs), 300):  # as an import feeds its committed batches
        build.feed(docs[start : start + 300])
    assert build.finish(cursor=7) == held
    assert fed.cursor() == 7 and fed.problems() == rebuilt.problems()
    assert len(fed.snapshot().segments) == 4  # 1000 + 1000, then the last 500 as two parts
    for query in QUERIES:
        assert fed.search(query).ids == rebuilt.search(query).ids
    dropped = SearchIndex(tmp_path / "c")
    dropped.rebuild(docs[:10], cursor=3)
    build = dropped.start_build()
    build.feed(docs)
    build.abort()
    assert dropped.cursor() == 3 and dropped.doc_count() == 10
    assert [p.name for p in dropped.root.glob("build-*")] == [dropped._target()]
