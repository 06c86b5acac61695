"""The directory core on SQLite and PostgreSQL: store, history, stale edits, import, index consistency."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from resdb.directory import Directory, NotFound, StaleEdit
from resdb.exchange import read_bytes
from resdb.search import SearchQuery
from resdb.validation import ValidationFailed

SALON = {
    "id": "t-salon",
    "name": "戸破ふれあいサロン",
    "kind": "kayoi",
    "lat": 36.7236,
    "lon": 137.0991,
    "targets": ["elderly"],
    "schedule": [{"weekday": "tue", "start": "10:00", "end": "12:00"}],
}


def names(directory: Directory, q: str, **filters: object) -> list[str]:
    return [item["id"] for item in directory.search(SearchQuery(q=q, limit=50, **filters))["items"]]  # type: ignore[arg-type]


def test_create_is_stored_indexed_and_in_history(directory: Directory) -> None:
    created = directory.create(SALON, actor="editor@example.jp")
    assert created["version"] == 1
    assert directory.get("t-salon")["name"] == "戸破ふれあいサロン"
    assert names(directory, "さろん") == ["t-salon"]
    history = directory.history("t-salon")
    assert [(h["action"], h["actor"]) for h in history] == [("create", "editor@example.jp")]
    assert history[0]["after"]["name"] == "戸破ふれあいサロン"


def test_address_is_placed_at_town_level(directory: Directory) -> None:
    created = directory.create(
        {"name": "住所だけの場", "kind": "ibasho", "address": "富山県射水市戸破2475番地"}, actor="t"
    )
    assert created["district"] == "戸破"
    assert created["location_precision"] == "town"
    assert abs(created["lat"] - 36.72) < 0.03 and abs(created["lon"] - 137.09) < 0.03
    assert created["municipality_code"] == "162116"


def test_unplaceable_address_is_refused(directory: Directory) -> None:
    with pytest.raises(ValidationFailed) as caught:
        directory.create(
            {"name": "x", "kind": "ibasho", "address": "どこにもない町1番地"}, actor="t"
        )
    assert caught.value.problems[0].field == "address"


def test_stale_edit_is_refused_and_nothing_changes(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    updated = directory.update("t-salon", {"capacity": 3}, actor="a", expected_version=1)
    assert updated["version"] == 2 and updated["capacity"] == 3
    with pytest.raises(StaleEdit) as caught:
        directory.update("t-salon", {"capacity": 9}, actor="b", expected_version=1)
    assert caught.value.current["capacity"] == 3
    assert directory.get("t-salon")["capacity"] == 3
    history = directory.history("t-salon")
    assert [h["action"] for h in history] == ["create", "update"]
    assert history[1]["before"]["capacity"] is None and history[1]["after"]["capacity"] == 3


def test_update_reindexes_and_moving_address_replaces_point(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    directory.update(
        "t-salon",
        {"name": "大島いきいき教室", "address": "富山県射水市小島700番地1", "district": None},
        actor="a",
        expected_version=1,
    )
    assert names(directory, "サロン") == []
    assert names(directory, "いきいき") == ["t-salon"]
    moved = directory.get("t-salon")
    assert moved["district"] == "小島"


def test_soft_delete_and_restore(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    directory.delete("t-salon", actor="a", expected_version=1)
    with pytest.raises(NotFound):
        directory.get("t-salon")
    assert names(directory, "サロン") == []
    directory.restore("t-salon", actor="a")
    assert names(directory, "サロン") == ["t-salon"]
    assert [h["action"] for h in directory.history("t-salon")] == ["create", "delete", "restore"]


def test_restore_an_earlier_version(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    directory.update("t-salon", {"name": "改名したサロン"}, actor="a", expected_version=1)
    directory.restore("t-salon", actor="a", to_version=1)
    assert directory.get("t-salon")["name"] == "戸破ふれあいサロン"


def test_concurrent_editors_never_lose_an_update(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    outcomes: list[str] = []

    def edit(value: int) -> None:
        try:
            directory.update("t-salon", {"capacity": value}, actor=f"e{value}", expected_version=1)
            outcomes.append("ok")
        except StaleEdit:
            outcomes.append("stale")

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] + ["stale"] * 5
    assert directory.get("t-salon")["version"] == 2


BAD_CSV = (
    "名称,種別,緯度,経度,費用\n"
    "よいサロン,通いの場,36.72,137.09,0\n"
    "わるい種別,カラオケ,36.72,137.09,0\n"
    "ロンドン,ibasho,51.5,137.0,0\n"
    "費用がおかしい,ibasho,36.72,137.09,たくさん\n"
)


def test_bad_rows_are_named_and_nothing_is_half_imported(directory: Directory) -> None:
    records, _ = read_bytes(BAD_CSV.encode(), "bad.csv")
    report = directory.import_records(records, actor="t", source_name="bad.csv")
    assert not report.written
    assert [(p.row, p.field) for p in report.problems] == [(3, "kind"), (4, "lat"), (5, "cost_yen")]
    assert directory.published_count() == 0
    assert names(directory, "サロン") == []


def test_dry_run_reports_and_writes_nothing(directory: Directory) -> None:
    records, _ = read_bytes("名称,種別,緯度,経度\nA,ibasho,36.72,137.09\n".encode(), "ok.csv")
    report = directory.import_records(records, actor="t", source_name="ok.csv", dry_run=True)
    assert report.problems == [] and report.created == 1 and not report.written
    assert directory.published_count() == 0


def test_import_updates_existing_and_keeps_history(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    report = directory.import_records(
        [(1, {**SALON, "capacity": 4}), (2, {**SALON, "id": "t-new", "name": "新しい体操"})],
        actor="t",
        source_name="f.json",
    )
    assert (report.created, report.updated) == (1, 1)
    assert directory.get("t-salon")["capacity"] == 4
    assert directory.history("t-salon")[-1]["action"] == "import"
    assert names(directory, "体操") == ["t-new"]


def test_likely_duplicates_are_reported(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    report = directory.import_records(
        [(2, {**SALON, "id": "t-dup", "name": "戸破ふれあいサロン。", "lat": 36.7237})],
        actor="t",
        source_name="d.json",
        dry_run=True,
    )
    assert report.duplicates and report.duplicates[0]["other"] == "t-salon"


def test_crash_mid_import_leaves_database_and_index_consistent(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory.create(SALON, actor="a")
    records = [
        (
            i,
            {
                **SALON,
                "id": f"bulk-{i}",
                "name": f"体操教室{i}",
                "service_area": {"districts": ["戸破"]},
            },
        )
        for i in range(1, 30)
    ]
    calls = {"n": 0}
    original = Directory._store_area

    def crashing_store_area(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 15:
            raise RuntimeError("power cut")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Directory, "_store_area", crashing_store_area)
    with pytest.raises(RuntimeError):
        directory.import_records(records, actor="t", source_name="bulk.json")
    monkeypatch.undo()
    assert directory.published_count() == 1
    assert names(directory, "体操") == []
    assert directory.ensure_ready() == "ok"


def test_crash_between_commit_and_index_is_caught_up_at_start(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_apply(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(directory.index, "apply", broken_apply)
    directory.create(SALON, actor="a")  # the database commits; the index update fails
    assert directory.get("t-salon")
    assert directory.index.search(SearchQuery(q="サロン")).ids == []  # not yet in the index
    monkeypatch.undo()
    restarted = Directory(directory.engine, directory.instance_dir)  # a new process starting up
    assert restarted.ensure_ready() == "caught_up"
    assert names(restarted, "サロン") == ["t-salon"]


def test_index_failure_is_retried_by_the_next_search(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        directory.index, "apply", lambda *a, **k: (_ for _ in ()).throw(OSError("busy"))
    )
    directory.create(SALON, actor="a")
    monkeypatch.undo()
    assert names(directory, "サロン") == ["t-salon"]


def test_damaged_index_is_rebuilt_never_served(directory: Directory) -> None:
    directory.create(SALON, actor="a")
    directory.index.close()
    live = (directory.index.current).resolve()
    for path in live.rglob("*"):  # whoosh's files and the segments' sidecars
        if path.is_file():
            path.write_bytes(b"\0" * 10)
    assert directory.ensure_ready() == "rebuilt"
    assert names(directory, "サロン") == ["t-salon"]


def test_service_area_resolves_and_lookup_names_center(directory: Directory) -> None:
    directory.create(
        {
            "id": "c1",
            "name": "大島地域包括支援センター",
            "kind": "center",
            "lat": 36.74,
            "lon": 137.07,
            "service_area": {"districts": ["大島地区"]},
        },
        actor="a",
    )
    directory.create(
        {
            "id": "c2",
            "name": "小杉・下地域包括支援センター",
            "kind": "center",
            "lat": 36.72,
            "lon": 137.09,
            "service_area": {"districts": ["三ヶ地区", "戸破地区", "大江地区", "下地区"]},
        },
        actor="a",
    )
    town = directory.gazetteer().town_at(36.721682, 137.110661)  # the 町字 point of 戸破
    assert town is not None and town.name == "戸破"
    assert [c["id"] for c in directory.areas_lookup(36.721682, 137.110661)] == ["c2"]
    assert [c["id"] for c in directory.areas_lookup(36.7600, 137.0700)] in (["c1"], [])


def test_reindex_matches_database(directory: Directory, tmp_path: Path) -> None:
    for i in range(5):
        directory.create({**SALON, "id": f"s{i}"}, actor="a")
    assert directory.reindex() == 5
    directory.index.check(5)
