"""The map's columns: every published listing's public point, kind, sort rank and encoded feature as numpy
arrays that only grow (a change retires a listing's row at its change-log number and appends the new
version), so a request reads a consistent `Snapshot` while the cache moves on, and an edit costs work per
change, not a rebuild. The base rows are plain arrays (numbers, and strings as blobs: no Python object
per row), so a host can keep them in one memory-mapped snapshot that every worker shares; only the rows
appended since live in a worker's own memory. The string blobs are read from the snapshot's files with
pread, never through the mapping (see RowStrings)."""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from resdb.domain.blobs import BlobColumn, FileBlob, utf8_blob
from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS, KINDS
from resdb.exchange import feature
from resdb.web.labels import session_ja, upcoming, yen
from resdb.web.mapgrid import CellIndex, z_order

KIND_IDS = list(KINDS)
KIND_CODE = {kind: n for n, kind in enumerate(KIND_IDS)}
CELL_PX = 80  # a map cell is about this many screen pixels wide
FINE_LEVEL = 22  # the finest zoom cells are cut at
FINE_SCALE = 2.0**FINE_LEVEL * 256 / CELL_PX  # cells across the world at FINE_LEVEL
_GENERATIONS = itertools.count()
_ALIVE = np.iinfo(np.int64).max
_MAX_LAT = 85.05112878


def next_session_text(listing: dict[str, Any], today: date | None) -> str | None:
    """「次回 12月3日（水）13:30」, or None (no schedule, or no session in the next six weeks)."""
    if today is None or not listing.get("schedule"):
        return None
    sessions = upcoming(listing, today, count=1)
    return f"次回 {session_ja(sessions[0])}" if sessions else None


def compact_feature(listing: dict[str, Any], today: date | None = None) -> dict[str, Any]:
    """The map's feature: a point and id, name, kind, kind_label, is_sample, cost (in words, None when
    unknown) and, with `today`, the next session (`next`)."""
    kind = listing.get("kind") or "other"
    return feature(
        listing,
        properties=("id", "name"),
        extra={
            "name": listing.get("name") or "",
            "kind": kind,
            "kind_label": KINDS.get(kind, KINDS["other"]),
            "is_sample": bool(listing.get("is_sample")),
            "cost": None if listing.get("cost_yen") is None else yen(listing.get("cost_yen")),
            "next": next_session_text(listing, today),
        },
    )


def _sort_key(listing: dict[str, Any]) -> tuple[Any, ...]:
    # Real listings before invented samples, then by kind and reading; the id last (unique).
    return (
        bool(listing.get("is_sample")),
        KIND_CODE.get(listing.get("kind") or "other", 99),
        listing.get("name_kana") or listing.get("name") or "",
        listing["id"],
    )


def mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator x, y in [0, 1] (the whole world as one tile, y down)."""
    x = (lon + 180.0) / 360.0
    phi = np.radians(np.clip(lat, -_MAX_LAT, _MAX_LAT))
    y = 0.5 - np.log(np.tan(np.pi / 4 + phi / 2)) / (2 * np.pi)
    return x, y


def fine_cell(v: np.ndarray) -> np.ndarray:
    """Web Mercator x or y (0..1) → its cell on the FINE_LEVEL grid (floor division by 2**k keeps it the
    cell at any coarser zoom)."""
    return np.floor(np.asarray(v) * FINE_SCALE).astype(np.int32)


def lat_of(y: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * y))))


@dataclass(frozen=True)
class MapRow:
    """One listing as the map keeps it (built from its public view)."""

    id: str
    key: tuple[Any, ...]
    encoded: bytes  # the feature's JSON without `next` and the closing braces
    lon: float
    lat: float
    has_point: bool
    kind: int
    municipality: str
    hidden: bool
    sample: bool
    timing: tuple[Any, bool] | None  # (schedule, holidays_closed) when the listing has a schedule


def map_row(listing: dict[str, Any]) -> MapRow:
    has_point = listing.get("lat") is not None and listing.get("lon") is not None
    kind = listing.get("kind") or "other"
    static = dict(compact_feature(listing))
    static["properties"] = {k: v for k, v in static["properties"].items() if k != "next"}
    encoded = json.dumps(static, ensure_ascii=False, separators=(",", ":")).encode()
    return MapRow(
        id=listing["id"],
        key=_sort_key(listing),
        encoded=encoded[:-2],
        lon=float(listing["lon"]) if has_point else 0.0,
        lat=float(listing["lat"]) if has_point else 0.0,
        has_point=has_point,
        kind=KIND_CODE.get(kind, KIND_CODE["other"]),
        municipality=listing.get("municipality_code") or "",
        hidden=kind in HIDDEN_IN_SEARCH_KINDS,
        sample=bool(listing.get("is_sample")),
        timing=(listing["schedule"], listing.get("holidays_closed") is not False)
        if listing.get("schedule")
        else None,
    )


_COLUMNS: dict[str, Any] = {
    "lon": np.float64,
    "lat": np.float64,
    "px": np.int32,  # x, y on the finest cell grid (FINE_LEVEL): a cell at zoom L is px >> (FINE_LEVEL - L)
    "py": np.int32,
    "kind": np.int16,
    "code": np.int16,  # kind + len(KIND_IDS) × sample: one bincount gives kinds and samples per cell
    "order": np.int16,  # the kind's place in the map's order (the sort key's second part)
    "municipality": np.int32,
    "has_point": np.bool_,
    "hidden": np.bool_,
    "sample": np.bool_,
    "closed": np.bool_,  # closed on public holidays (rows with a schedule)
    "died": np.int64,
    "rank": np.float64,
}
_STRINGS = ("encoded", "kana", "schedule")  # per base row: a blob and its offsets ("<name>_at")
SPAN_BYTES = 256 * 1024  # rows' strings within this many bytes of a mapped blob: read in one pread
TAKE_BATCH = 65536  # rows read at a time when a compaction copies the strings


def _spare(count: int) -> int:
    """Rows allotted for `count` base rows: room to append edits without copying a column."""
    return max(1024, count + count // 8)


class RowStrings:
    """Byte strings per row: the base rows' from a (memory-mapped) blob, appended rows' in a list. A
    mapped blob is read from its file with pread (one read for rows close together): requests pick rows
    all over it, and through the mapping every page around one would stay in each worker's RSS/PSS."""

    def __init__(self, base: BlobColumn) -> None:
        self.base = base
        self.file = FileBlob.of(base.blob)
        self.n = len(base)
        self.tail: list[bytes] = []

    def __len__(self) -> int:
        return self.n + len(self.tail)

    def __getitem__(self, row: int) -> bytes:
        if row >= self.n:
            return self.tail[row - self.n]
        if self.file is not None:
            at = self.base.offsets
            return self.file.read(int(at[row]), int(at[row + 1]))
        return self.base[row]

    def _base_many(self, rows: np.ndarray) -> list[bytes]:
        """The strings of base rows (in that order)."""
        if not len(rows):
            return []
        at = self.base.offsets
        starts, ends = at[rows].tolist(), at[rows + 1].tolist()
        if self.file is None:
            view = self._view()
            return [view[s:e].tobytes() for s, e in zip(starts, ends, strict=True)]
        lo, hi = min(starts), max(ends)
        wanted = sum(ends) - sum(starts)
        if hi - lo <= max(SPAN_BYTES, 8 * wanted):  # close together: one read of the whole span
            span = self.file.read(lo, hi)
            return [span[s - lo : e - lo] for s, e in zip(starts, ends, strict=True)]
        read = self.file.read
        return [read(s, e) for s, e in zip(starts, ends, strict=True)]

    def many(self, rows: np.ndarray) -> list[bytes]:
        """The strings of `rows` (in that order): one slice of the blob each, no per-row lookups."""
        if not len(rows):
            return []
        if int(rows.max()) < self.n:
            return self._base_many(rows)
        out: list[bytes] = [b""] * len(rows)
        in_base = rows < self.n
        picked = np.flatnonzero(in_base)
        for k, value in zip(picked.tolist(), self._base_many(rows[picked]), strict=True):
            out[k] = value
        for k in np.flatnonzero(~in_base).tolist():
            out[k] = self.tail[int(rows[k]) - self.n]
        return out

    def _view(self) -> memoryview:
        return np.ascontiguousarray(self.base.blob).data.cast("B")

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blob and offsets of `rows` (in that order)."""
        pieces: list[bytes] = []
        for first in range(0, len(rows), TAKE_BATCH):
            pieces.extend(self.many(rows[first : first + TAKE_BATCH]))
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)), out=offsets[1:])
        return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


def _id_table(ids: np.ndarray) -> dict[str, np.ndarray]:
    """Fixed-width ids (one per row) as a table sorted by id: `id_sorted`, `id_row` (the row of each) and
    `row_id` (each row's place in it)."""
    id_row = np.argsort(ids, kind="stable").astype(np.int32)
    row_id = np.empty(len(ids), dtype=np.int32)
    row_id[id_row] = np.arange(len(ids), dtype=np.int32)
    return {"id_sorted": ids[id_row], "id_row": id_row, "row_id": row_id}


class RowIds:
    """Each row's listing id: the base rows' through the sorted id table, appended rows' in a list."""

    def __init__(self, id_sorted: np.ndarray, row_id: np.ndarray) -> None:
        self.id_sorted = id_sorted
        self.row_id = row_id
        self.n = len(row_id)
        self.tail: list[str] = []

    def __len__(self) -> int:
        return self.n + len(self.tail)

    def __getitem__(self, row: int) -> str:
        if row < self.n:
            return bytes(self.id_sorted[int(self.row_id[row])]).decode("utf-8")
        return self.tail[row - self.n]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The ids of `rows` as fixed-width bytes."""
        in_base = rows < self.n
        base = self.id_sorted[self.row_id[rows[in_base]]]
        tail = np.array(
            [self.tail[r - self.n].encode() for r in rows[~in_base].tolist()], dtype=bytes
        )
        width = max(1, base.dtype.itemsize, tail.dtype.itemsize if len(tail) else 0)
        out = np.empty(len(rows), dtype=f"S{width}")
        out[in_base] = base
        out[~in_base] = tail
        return out


class Position:
    """Listing id → its live row: the base rows through the sorted id table, rows retired or appended
    since in a small overlay (-1: no live row)."""

    def __init__(self, id_sorted: np.ndarray, id_row: np.ndarray) -> None:
        self.id_sorted = id_sorted
        self.id_row = id_row
        self.width = id_sorted.dtype.itemsize
        self.overlay: dict[str, int] = {}

    def _base(self, listing_id: str) -> int:
        key = listing_id.encode()
        if not len(self.id_sorted) or len(key) > self.width:
            return -1
        at = int(np.searchsorted(self.id_sorted, key))
        if at < len(self.id_sorted) and self.id_sorted[at] == key:
            return int(self.id_row[at])
        return -1

    def get(self, listing_id: str, default: int | None = None) -> int | None:
        found = self.overlay.get(listing_id)
        if found is None:
            found = self._base(listing_id)
        return found if found >= 0 else default

    def pop(self, listing_id: str) -> int | None:
        found = self.get(listing_id)
        if found is not None:
            self.overlay[listing_id] = -1
        return found

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """The live row of each id (-1 for none), looked up in one pass."""
        overlay = self.overlay
        out = np.fromiter((overlay.get(i, -2) for i in ids), dtype=np.int64, count=len(ids))
        todo = np.flatnonzero(out == -2)
        if not len(todo):
            return out
        out[todo] = -1
        if not len(self.id_sorted):
            return out
        keys = [ids[k].encode() for k in todo.tolist()]
        fits = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)) <= self.width
        wanted = np.array(
            keys, dtype=self.id_sorted.dtype
        )  # (longer ids: cut here, refused by `fits`)
        at = np.minimum(np.searchsorted(self.id_sorted, wanted), len(self.id_sorted) - 1)
        hit = fits & (self.id_sorted[at] == wanted)
        out[todo[hit]] = self.id_row[at[hit]]
        return out


class RowTiming:
    """(schedule, holidays_closed) of a row with a schedule, else None (schedules stored as JSON)."""

    def __init__(self, schedules: RowStrings, columns: dict[str, np.ndarray]) -> None:
        self.schedules = schedules
        self.columns = columns

    def get(self, row: int) -> tuple[Any, bool] | None:
        raw = self.schedules[row]
        if not raw:
            return None
        return json.loads(raw), bool(self.columns["closed"][row])


class RowKeys:
    """Each row's sort key (sample, kind order, reading, id), read from the columns when asked."""

    def __init__(self, columns: dict[str, np.ndarray], kana: RowStrings, ids: RowIds) -> None:
        self.columns = columns
        self.kana = kana
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, row: int) -> tuple[Any, ...]:
        c = self.columns
        return (
            bool(c["sample"][row]),
            int(c["order"][row]),
            self.kana[row].decode("utf-8"),
            self.ids[row],
        )


def _fill(columns: dict[str, np.ndarray], start: int, rows: Sequence[MapRow]) -> None:
    end = start + len(rows)
    c = columns
    c["lon"][start:end] = [r.lon for r in rows]
    c["lat"][start:end] = [r.lat for r in rows]
    x, y = mercator(c["lon"][start:end], c["lat"][start:end])
    c["px"][start:end], c["py"][start:end] = fine_cell(x), fine_cell(y)
    c["kind"][start:end] = [r.kind for r in rows]
    c["code"][start:end] = [r.kind + len(KIND_IDS) * r.sample for r in rows]
    c["order"][start:end] = [r.key[1] for r in rows]
    c["has_point"][start:end] = [r.has_point for r in rows]
    c["hidden"][start:end] = [r.hidden for r in rows]
    c["sample"][start:end] = [r.sample for r in rows]
    c["closed"][start:end] = [r.timing is not None and r.timing[1] for r in rows]
    c["died"][start:end] = _ALIVE


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _schedule_json(row: MapRow) -> bytes:
    return b"" if row.timing is None else _JSON(row.timing[0]).encode()


def encode_rows(rows: Sequence[MapRow]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and facts of columns holding `rows` (in the map's order, with spare room): what a
    host snapshot stores and `Columns` starts from."""
    rows = sorted(rows, key=lambda r: r.key)
    count = len(rows)
    capacity = _spare(count)
    arrays = {name: np.zeros(capacity, dtype=t) for name, t in _COLUMNS.items()}
    _fill(arrays, 0, rows)
    codes: dict[str, int] = {}
    arrays["municipality"][:count] = [
        codes.setdefault(r.municipality, len(codes) + 1) if r.municipality else 0 for r in rows
    ]
    arrays["rank"][:count] = np.arange(count, dtype=np.float64)
    for name, values in (
        ("encoded", [r.encoded for r in rows]),
        ("kana", [r.key[2] for r in rows]),
        ("schedule", [_schedule_json(r) for r in rows]),
    ):
        arrays[name], arrays[f"{name}_at"] = utf8_blob(values)
    ids = np.array([r.id.encode() for r in rows], dtype=bytes) if rows else np.zeros(0, "S1")
    arrays.update(_id_table(ids))
    arrays.update(_z_arrays(arrays, count))
    return arrays, {"count": count, "municipality_codes": codes}


def _z_arrays(arrays: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """The cell index's order of the base rows that can show on the map (see resdb.web.mapgrid)."""
    shown = arrays["has_point"][:count] & ~arrays["hidden"][:count]
    return z_order(arrays["px"][:count], arrays["py"][:count], shown)


@dataclass
class Snapshot:
    """What one request reads: the columns' first `count` rows as of change-log `seq` (a row is alive here
    while its `died` is above `seq`). Later changes only append rows and retire rows at a higher seq, so a
    snapshot stays consistent while the cache moves on."""

    revision: str
    seq: int
    count: int
    columns: dict[str, np.ndarray]
    ids: RowIds
    encoded: RowStrings
    kana: RowStrings
    timing: RowTiming
    position: Position
    municipality_codes: dict[str, int]
    generation: int
    base: int = 0  # rows below this are the base rows (in `cells`); the rest were appended since
    cells: CellIndex | None = None
    retired_base: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # ↑ base rows retired at or before `seq` (the map's cell sums still count them)
    _masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _bounds: dict[str, tuple[float, float, float, float] | None] = field(
        default_factory=dict, repr=False
    )

    def col(self, name: str) -> np.ndarray:
        return self.columns[name][: self.count]

    @property
    def alive(self) -> np.ndarray:
        return self.mask("alive")

    def row_numbers(self) -> np.ndarray:
        """0 … count-1 as floats (bincount weights that name a cell's row)."""
        found = self._masks.get("row_numbers")
        if found is None:
            found = self._masks["row_numbers"] = np.arange(self.count, dtype=np.float64)
        return found

    def mask(self, name: str) -> np.ndarray:
        """A cached row mask (read-only by convention): alive, visible (alive, no hidden kinds), and either
        with `_points` (only rows with a point)."""
        found = self._masks.get(name)
        if found is None:
            found = self._masks[name] = self._compute(name, slice(0, self.count))
        return found

    def _compute(self, name: str, rows: slice) -> np.ndarray:
        mask: np.ndarray
        if name == "alive":
            mask = self.columns["died"][rows] > self.seq
            return mask
        if name == "visible":
            mask = self._compute("alive", rows) & ~self.columns["hidden"][rows]
            return mask
        if name.endswith("_points"):
            mask = (
                self._compute(name.removesuffix("_points"), rows) & self.columns["has_point"][rows]
            )
            return mask
        raise KeyError(name)

    def inherit(self, old: Snapshot, retired: Sequence[int]) -> None:
        """Take over `old`'s masks and bounds, moved forward by the rows retired and appended since (a copy
        and the changed rows instead of a pass per mask over every row)."""
        if old.generation != self.generation:
            return  # other columns (rebuilt or compacted): start afresh
        start, end = old.count, self.count
        # A copy: request threads still reading `old` may add a mask to it meanwhile.
        for name, found in dict(old._masks).items():
            if name == "row_numbers":
                continue
            mask = np.empty(end, dtype=bool)
            mask[:start] = found
            mask[list(retired)] = False
            mask[start:end] = self._compute(name, slice(start, end))
            self._masks[name] = mask
        box = old._bounds.get("")
        if box is None:
            return
        lon, lat, has_point = self.columns["lon"], self.columns["lat"], self.columns["has_point"]
        for row in retired:  # a retired point on the edge may shrink the box: measure again later
            if has_point[row] and (lon[row] in (box[0], box[2]) or lat[row] in (box[1], box[3])):
                return
        new = slice(start, end)
        points = has_point[new]
        if points.any():
            box = (
                min(box[0], float(lon[new][points].min())),
                min(box[1], float(lat[new][points].min())),
                max(box[2], float(lon[new][points].max())),
                max(box[3], float(lat[new][points].max())),
            )
        self._bounds[""] = box

    def bounds(self, municipality_code: str = "") -> tuple[float, float, float, float] | None:
        if municipality_code not in self._bounds:
            mask = self.alive & self.col("has_point")
            if municipality_code:
                code = self.municipality_codes.get(municipality_code)
                mask = mask & (self.col("municipality") == code) if code else mask & False
            box = None
            if mask.any():
                lon, lat = self.col("lon")[mask], self.col("lat")[mask]
                box = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
            self._bounds[municipality_code] = box
        return self._bounds[municipality_code]

    def export(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The live rows as fresh arrays in the map's order (what `encode_rows` would give for them):
        compaction and republishing, read from this snapshot only (consistent while the cache moves on)."""
        c = self.columns
        live = np.flatnonzero(c["died"][: self.count] > self.seq)
        order = live[np.argsort(c["rank"][live], kind="stable")]
        count = len(order)
        capacity = _spare(count)
        arrays: dict[str, np.ndarray] = {}
        for name, t in _COLUMNS.items():
            column = np.zeros(capacity, dtype=t)
            column[:count] = c[name][order]
            arrays[name] = column
        arrays["died"][:count] = _ALIVE
        arrays["rank"][:count] = np.arange(count, dtype=np.float64)
        for name, strings in (
            ("encoded", self.encoded),
            ("kana", self.kana),
            ("schedule", self.timing.schedules),
        ):
            arrays[name], arrays[f"{name}_at"] = strings.take(order)
        arrays.update(_id_table(self.ids.take(order)))
        arrays.update(_z_arrays(arrays, count))
        return arrays, {
            "count": count,
            "municipality_codes": dict(self.municipality_codes),
            "districts": self.revision.partition("/")[2],  # the places are as of this revision's
        }


class Columns:
    """The writer's side: base rows from arrays (made here, or mapped copy-on-write from the host's
    snapshot, so edits touch private copies of a few pages only), rows appended in change order and never
    rewritten (only retired through `died`), the sort order kept as a float rank (the new row's place found
    by bisecting the base rows, which are in the map's order, and the few appended ones)."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.generation = next(_GENERATIONS)  # unique per Columns: keys the caches of its rows
        self.base = int(meta["count"])
        self.columns = {name: arrays[name] for name in _COLUMNS}
        self.capacity = len(self.columns["died"])
        self.count = self.base
        self.municipality_codes: dict[str, int] = dict(meta["municipality_codes"])
        # The districts' version the rows were placed under (None: made from rows given directly).
        self.districts: str | None = meta.get("districts")
        strings = {
            name: RowStrings(BlobColumn(arrays[name], arrays[f"{name}_at"])) for name in _STRINGS
        }
        self.ids = RowIds(arrays["id_sorted"], arrays["row_id"])
        self.encoded = strings["encoded"]
        self.kana = strings["kana"]
        self.timing = RowTiming(strings["schedule"], self.columns)
        self.keys = RowKeys(self.columns, self.kana, self.ids)
        self.position = Position(arrays["id_sorted"], arrays["id_row"])
        self._tail_sorted: list[tuple[tuple[Any, ...], int]] = []  # live appended rows by key
        self.cells = CellIndex(arrays["z_key"], arrays["z_rows"])
        # Base rows retired so far, in the order retired (a snapshot reads the ones before it).
        self.retired_base: list[int] = np.flatnonzero(
            self.columns["died"][: self.base] != _ALIVE
        ).tolist()
        self.dead = len(self.retired_base)
        if len(self.ids) != self.base or self.capacity < self.base:
            raise ValueError("map columns of unequal length")

    @classmethod
    def from_rows(cls, rows: Sequence[MapRow]) -> Columns:
        return cls(*encode_rows(rows))

    @property
    def tail_rows(self) -> int:
        """Rows appended since the base (held in this process's memory)."""
        return self.count - self.base

    def _code(self, municipality: str) -> int:
        if not municipality:
            return 0
        return self.municipality_codes.setdefault(municipality, len(self.municipality_codes) + 1)

    def _append(self, row: MapRow, rank: float) -> int:
        if self.count + 1 > self.capacity:  # grow: readers keep the arrays they hold
            self.capacity = max(self.count + 1, self.capacity * 2)
            for name, old in list(self.columns.items()):
                new = np.zeros(self.capacity, dtype=old.dtype)
                new[: self.count] = old[: self.count]
                self.columns[name] = new
        at = self.count
        _fill(self.columns, at, [row])
        self.columns["municipality"][at] = self._code(row.municipality)
        self.columns["rank"][at] = rank
        self.ids.tail.append(row.id)
        self.encoded.tail.append(row.encoded)
        self.kana.tail.append(row.key[2].encode("utf-8"))
        self.timing.schedules.tail.append(_schedule_json(row))
        self.position.overlay[row.id] = at
        self.count = at + 1
        return at

    def _live_base(self, row: int, step: int) -> int | None:
        """The nearest live base row from `row` on (step -1: downwards, 1: upwards)."""
        died = self.columns["died"]
        if step < 0:
            while row >= 0:
                low = max(0, row - 255)
                live = np.flatnonzero(died[low : row + 1] == _ALIVE)
                if len(live):
                    return low + int(live[-1])
                row = low - 1
        else:
            while row < self.base:
                high = min(self.base, row + 256)
                live = np.flatnonzero(died[row:high] == _ALIVE)
                if len(live):
                    return row + int(live[0])
                row = high
        return None

    def _rank_for(self, key: tuple[Any, ...]) -> float | None:
        """A rank between the live rows around `key` in the map's order, or None when floats ran out."""
        at = bisect.bisect_left(self.keys, key, 0, self.base)
        low_row, high_row = self._live_base(at - 1, -1), self._live_base(at, 1)
        t = bisect.bisect_left(self._tail_sorted, (key,))
        if t > 0:
            found_key, found = self._tail_sorted[t - 1]
            if low_row is None or found_key > self.keys[low_row]:
                low_row = found
        if t < len(self._tail_sorted):
            found_key, found = self._tail_sorted[t]
            if high_row is None or found_key < self.keys[high_row]:
                high_row = found
        rank = self.columns["rank"]
        low = float(rank[low_row]) if low_row is not None else None
        high = float(rank[high_row]) if high_row is not None else None
        if high is None:
            return 0.0 if low is None else low + 1.0
        if low is None:
            return high - 1.0
        middle = (low + high) / 2
        return middle if low < middle < high else None

    def _renumber(self) -> None:
        """Ranks 0, 1, 2 … for the live rows in their order (a fresh array: readers keep theirs)."""
        rank = np.array(self.columns["rank"])
        live = np.flatnonzero(self.columns["died"][: self.count] == _ALIVE)
        order = live[np.argsort(rank[live], kind="stable")]
        rank[order] = np.arange(len(order), dtype=np.float64)
        self.columns["rank"] = rank

    def advance(self, changed: Iterable[str], rows: list[MapRow], seq: int) -> list[int]:
        """Retire the changed listings' rows (at `seq`) and append the new versions of those still
        published; the rows retired."""
        died = self.columns["died"]
        retired = []
        for listing_id in changed:
            old = self.position.pop(listing_id)
            if old is None:
                continue
            died[old] = seq
            retired.append(old)
            if old < self.base:
                self.retired_base.append(old)
            self.dead += 1
            if old >= self.base:
                entry = (self.keys[old], old)
                at = bisect.bisect_left(self._tail_sorted, entry)
                if at < len(self._tail_sorted) and self._tail_sorted[at] == entry:
                    del self._tail_sorted[at]
        for r in rows:
            rank = self._rank_for(r.key)
            if rank is None:
                self._renumber()
                rank = self._rank_for(r.key)
                assert rank is not None  # whole numbers apart now
            row = self._append(r, rank)
            bisect.insort(self._tail_sorted, (r.key, row))
        return retired

    def compacted(self, seq: int, at_least: int = 10_000) -> Columns | None:
        """A copy without retired rows once they outnumber the live ones and `at_least` (None before)."""
        if self.dead <= max(at_least, (self.count - self.dead)):
            return None
        return Columns(*self.snapshot("", seq).export())

    def snapshot(self, revision: str, seq: int) -> Snapshot:
        return Snapshot(
            revision=revision,
            seq=seq,
            count=self.count,
            columns=dict(self.columns),
            ids=self.ids,
            encoded=self.encoded,
            kana=self.kana,
            timing=self.timing,
            position=self.position,
            municipality_codes=self.municipality_codes,
            generation=self.generation,
            base=self.base,
            cells=self.cells,
            retired_base=np.array(self.retired_base, dtype=np.int64),
        )


def public_rows(listings: Iterable[dict[str, Any]]) -> list[MapRow]:
    return [map_row(listing) for listing in listings]
