"""A large import builds the search index beside its writes: the index it swaps in holds what a rebuild
from the database holds (earlier listings, drafts, unchanged and updated rows, private hosts), a crash
leaves no row in the index that the database lacks, and another writer during the import makes the index
follow the change log instead."""

from __future__ import annotations

from typing import Any

import pytest

from resdb import importing
from resdb.directory import Directory
from resdb.search import IndexBuild, SearchQuery
from resdb.synth import synthetic_listings


def rows(count: int, seed: int = 7) -> list[tuple[int, dict[str, Any]]]:
    return [(n + 2, row) for n, row in enumerate(synthetic_listings(count, seed=seed))]


def indexed(directory: Directory) -> dict[str, Any]:
    """What the live index holds: every document's id with its columns, and a few searches' answers."""
    snap = directory.index.snapshot()
    documents = {}
    for segment, live, _offset in snap.parts:
        for docnum in range(segment.size):
            if live[docnum]:
                documents[segment.id_at(docnum)] = (
                    segment.name_at(docnum),
                    int(segment.lat[docnum]),
                    int(segment.lon[docnum]),
                    int(segment.cost[docnum]),
                )
    answers = [
        directory.search_ids(SearchQuery(q=q, limit=50)).ids for q in ("合成", "体操", "射水")
    ]
    return {"documents": documents, "answers": answers, "problems": directory.index.problems()}


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports over 30 rows build beside their writes, 20 rows a transaction."""
    monkeypatch.setattr(importing, "BULK_REINDEX_THRESHOLD", 30)
    monkeypatch.setattr(importing, "IMPORT_BATCH", 20)


def rebuilds(directory: Directory, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the index's rebuilds from the database (the path the import's own build replaces)."""
    calls: list[int] = []
    rebuild = directory.index.rebuild

    def counted(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        return rebuild(*args, **kwargs)

    monkeypatch.setattr(directory.index, "rebuild", counted)
    return calls


def test_the_index_built_beside_an_import_is_what_a_rebuild_builds(
    directory: Directory, small_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb.demo import load_districts

    load_districts(directory, ("16211",))
    earlier = rows(60, seed=3)
    earlier[0][1]["status"] = "draft"
    earlier[1][1]["location_private"] = True
    assert directory.import_records(earlier, actor="t", source_name="a.json").written
    head_before = directory.head_seq()
    later = rows(50)
    later[2][1]["location_private"] = True
    later[3][1]["status"] = "draft"
    renamed = [(n, {**row, "name": row["name"] + "（改）"}) for n, row in earlier[2:12]]
    drafted = [(n, {**row, "status": "draft"}) for n, row in earlier[12:14]]
    same = earlier[20:30]
    rebuilt = rebuilds(directory, monkeypatch)
    report = directory.import_records(
        [*later, *renamed, *drafted, *same], actor="t", source_name="b.json"
    )
    assert (report.created, report.updated, report.unchanged) == (50, 12, 10)
    assert directory.index.cursor() == directory.head_seq() == head_before + 62
    built = indexed(directory)
    assert not rebuilt  # built beside the writes, not read back from the database
    assert len(built["documents"]) == 60 - 1 - 2 + 50 - 1
    directory.reindex()
    assert indexed(directory) == built
    assert directory.ensure_ready() == "ok"
    assert not list(directory.index.root.glob("build-*"))[1:]  # only the live folder


def test_a_crash_during_the_import_leaves_no_row_in_the_index_the_database_lacks(
    directory: Directory, small_threshold: None
) -> None:
    seen = {"n": 0}

    def power_cut(_session: Any, _before: Any, _after: Any) -> None:
        seen["n"] += 1
        if seen["n"] == 45:  # inside the third batch
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        directory.import_records(rows(60), actor="t", source_name="cut.json", hook=power_cut)
    assert directory.published_count() == 40
    assert len(indexed(directory)["documents"]) == 40  # the follower caught up, nothing more
    assert directory.ensure_ready() == "ok"
    assert len(list(directory.index.root.glob("build-*"))) == 1  # the aborted build is gone


def test_another_writer_during_the_import_makes_the_index_follow_the_log(
    directory: Directory, small_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = directory.import_records(rows(40, seed=3), actor="t", source_name="a.json")
    assert first.written
    other = directory.get(rows(1, seed=3)[0][1]["id"])
    assert other is not None
    write_batch = importing.Importing._write_import_batch
    calls = {"n": 0}

    def and_an_edit(self: Directory, *args: Any, **kwargs: Any) -> Any:
        result = write_batch(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:  # an editor renames a listing between two batches
            self.update(other["id"], {"name": "割り込み編集"}, "editor", expected_version=None)
        return result

    monkeypatch.setattr(importing.Importing, "_write_import_batch", and_an_edit)
    swapped: list[int] = []
    finish = IndexBuild.finish
    monkeypatch.setattr(
        IndexBuild, "finish", lambda build, cursor: swapped.append(cursor) or finish(build, cursor)
    )
    report = directory.import_records(rows(50), actor="t", source_name="b.json")
    assert report.created == 50 and calls["n"] == 3
    assert not swapped  # the build was dropped: the index followed the change log
    assert directory.index.cursor() == directory.head_seq()
    assert len(indexed(directory)["documents"]) == 90
    assert directory.search_ids(SearchQuery(q="割り込み編集", limit=5)).ids == [other["id"]]
    assert directory.ensure_ready() == "ok"
