"""The map's columns on their own: edits retire and append rows, every snapshot keeps its own view, the
order stays the map's order, and compaction keeps exactly the live rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from resdb.web.mapcolumns import Columns, map_row


def _listing(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"l{n:02d}",
        "name": f"名前{n:02d}",
        "name_kana": f"なまえ{n:02d}",
        "kind": ["kayoi", "ibasho", "venue"][n % 3],
        "lat": 36.0 + n / 100,
        "lon": 137.0 + n / 100,
        "municipality_code": "162116",
        "is_sample": n % 4 == 0,
        **changes,
    }


def _live_in_order(snap: Any) -> list[str]:
    rows = np.flatnonzero(snap.alive)
    rows = rows[np.argsort(snap.col("rank")[rows], kind="stable")]
    return [snap.ids[r] for r in rows]


def _expected(listings: dict[str, dict[str, Any]]) -> list[str]:
    return [r.id for r in sorted((map_row(x) for x in listings.values()), key=lambda r: r.key)]


def test_edits_append_and_retire_and_each_snapshot_keeps_its_view() -> None:
    listings = {f"l{n:02d}": _listing(n) for n in range(12)}
    columns = Columns.from_rows([map_row(x) for x in listings.values()])
    first = columns.snapshot("1/0", 1)
    assert _live_in_order(first) == _expected(listings)
    seq = 1
    for step in range(40):  # rename (moves in the order), move, delete and re-add
        seq += 1
        n = step % 12
        changed = f"l{n:02d}"
        if step % 5 == 4:
            listings.pop(changed, None)
            rows = []
        else:
            listings[changed] = _listing(n, name_kana=f"ん{step:02d}", lat=35.0 + step / 50)
            rows = [map_row(listings[changed])]
        retired = columns.advance([changed], rows, seq)
        snap = columns.snapshot(f"{seq}/0", seq)
        assert len(retired) <= 1
        assert _live_in_order(snap) == _expected(listings), step
        for name in ("alive", "visible_points"):
            assert snap.mask(name).sum() == snap._compute(name, slice(0, snap.count)).sum()
    # the first snapshot still answers as of its own change
    assert first.count == 12 and len(_live_in_order(first)) == 12
    compact = columns.compacted(seq, at_least=5)
    assert compact is not None and compact.count == len(listings) and compact.dead == 0
    snap = compact.snapshot(f"{seq}/0", seq)
    assert _live_in_order(snap) == _expected(listings)
    assert {snap.ids[r]: float(snap.col("lat")[r]) for r in range(snap.count)} == {
        i: x["lat"] for i, x in listings.items()
    }
    assert compact.generation != columns.generation


def test_strings_of_a_mapped_snapshot_are_read_from_its_files_as_in_memory(
    tmp_path: Any, monkeypatch: Any
) -> None:
    from resdb.hostsnapshot import load_arrays, write_arrays
    from resdb.web import mapcolumns

    listings = [_listing(n, name=f"名前{n:02d} " + "長" * (n * 7)) for n in range(200)]
    listings[5]["schedule"] = [{"weekday": "mon", "start": "09:00", "end": "11:00"}]
    memory = Columns.from_rows([map_row(x) for x in listings])
    arrays, meta = memory.snapshot("1/0", 1).export()
    assert write_arrays(tmp_path / "m", arrays, meta)
    loaded = load_arrays(tmp_path / "m", copy_on_write=True)
    assert loaded is not None
    mapped = Columns(loaded[1], loaded[0])
    assert mapped.encoded.file is not None  # read with pread, not through the mapping
    rows = np.array([199, 0, 5, 5, 120, 3], dtype=np.int64)
    for span in (0, 1 << 20):  # one read per row, and one read for the whole span
        monkeypatch.setattr(mapcolumns, "SPAN_BYTES", span)
        for want, got in (
            (memory.encoded, mapped.encoded),
            (memory.kana, mapped.kana),
            (memory.timing.schedules, mapped.timing.schedules),
        ):
            assert got.many(rows) == want.many(rows)
            assert [got[int(r)] for r in rows] == [want[int(r)] for r in rows]
            assert [a.tolist() for a in got.take(rows)] == [a.tolist() for a in want.take(rows)]
    assert mapped.timing.get(5) == memory.timing.get(5)


class _MasksGrowingMidway(dict[str, Any]):
    """An old snapshot's masks while a request thread still reading it computes one more: the thread
    adds it after the first entry has been read."""

    def __init__(self, snap: Any) -> None:
        super().__init__(snap._masks)
        self.snap = snap

    def items(self) -> Any:
        for n, item in enumerate(super().items()):
            if n == 1:
                self.snap._masks["visible_points"] = self.snap._compute(
                    "visible_points", slice(0, self.snap.count)
                )
            yield item


def test_a_new_snapshot_takes_over_masks_while_requests_add_to_the_old_one() -> None:
    listings = {f"l{n:02d}": _listing(n) for n in range(12)}
    columns = Columns.from_rows([map_row(x) for x in listings.values()])
    old = columns.snapshot("1/0", 1)
    old.mask("alive"), old.mask("visible")
    old._masks = _MasksGrowingMidway(old)
    listings["l03"] = _listing(3, name_kana="ん")
    retired = columns.advance(["l03"], [map_row(listings["l03"])], 2)
    new = columns.snapshot("2/0", 2)
    new.inherit(old, retired)
    assert _live_in_order(new) == _expected(listings)
    for name in ("alive", "visible"):
        assert new.mask(name).tolist() == new._compute(name, slice(0, new.count)).tolist()
