"""The map's columns: every published listing's public point, kind, sort rank and encoded feature as numpy
arrays that only grow (a change retires a listing's row at its change-log number and appends the new
version), so a request reads a consistent `Snapshot` while the cache moves on, and an edit costs work per
change, not a rebuild."""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS, KINDS
from resdb.exchange import feature
from resdb.web.labels import session_ja, upcoming, yen

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
    "x": np.float64,
    "y": np.float64,
    "px": np.int32,  # x, y on the finest cell grid (FINE_LEVEL): a cell at zoom L is px >> (FINE_LEVEL - L)
    "py": np.int32,
    "kind": np.int16,
    "code": np.int16,  # kind + len(KIND_IDS) × sample: one bincount gives kinds and samples per cell
    "municipality": np.int32,
    "has_point": np.bool_,
    "hidden": np.bool_,
    "sample": np.bool_,
    "died": np.int64,
    "rank": np.float64,
}


@dataclass
class Snapshot:
    """What one request reads: the columns' first `count` rows as of change-log `seq` (a row is alive here
    while its `died` is above `seq`). Later changes only append rows and retire rows at a higher seq, so a
    snapshot stays consistent while the cache moves on."""

    revision: str
    seq: int
    count: int
    columns: dict[str, np.ndarray]
    ids: list[str]
    encoded: list[bytes]
    timing: dict[int, tuple[Any, bool]]
    position: dict[str, int]
    municipality_codes: dict[str, int]
    generation: int
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
        for name, found in old._masks.items():
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


class Columns:
    """The writer's side: arrays with spare capacity, rows appended in change order and never rewritten
    (only retired through `died`), the sort order kept as a float rank (bisect into the sorted keys)."""

    def __init__(self, rows: list[MapRow], seq: int) -> None:
        rows.sort(key=lambda r: r.key)
        self.generation = next(_GENERATIONS)  # unique per Columns: keys the caches of its rows
        self.capacity = max(1024, len(rows) + len(rows) // 8)
        self.columns = {name: np.zeros(self.capacity, dtype=t) for name, t in _COLUMNS.items()}
        self.count = 0
        self.ids: list[str] = []
        self.encoded: list[bytes] = []
        self.keys: list[tuple[Any, ...]] = []
        self.timing: dict[int, tuple[Any, bool]] = {}
        self.position: dict[str, int] = {}
        self.municipality_codes: dict[str, int] = {}
        self.sorted_keys: list[tuple[Any, ...]] = [r.key for r in rows]
        self.dead = 0
        self._append(rows, ranks=np.arange(len(rows), dtype=np.float64))

    def _code(self, municipality: str) -> int:
        if not municipality:
            return 0
        return self.municipality_codes.setdefault(municipality, len(self.municipality_codes) + 1)

    def _append(self, rows: Sequence[MapRow], ranks: np.ndarray) -> None:
        need = self.count + len(rows)
        if need > self.capacity:  # grow: readers keep the arrays they hold
            self.capacity = max(need, self.capacity * 2)
            grown = {}
            for name, old in self.columns.items():
                new = np.zeros(self.capacity, dtype=old.dtype)
                new[: self.count] = old[: self.count]
                grown[name] = new
            self.columns = grown
        start, end = self.count, need
        c = self.columns
        c["lon"][start:end] = [r.lon for r in rows]
        c["lat"][start:end] = [r.lat for r in rows]
        x, y = mercator(c["lon"][start:end], c["lat"][start:end])
        c["x"][start:end], c["y"][start:end] = x, y
        c["px"][start:end], c["py"][start:end] = fine_cell(x), fine_cell(y)
        c["kind"][start:end] = [r.kind for r in rows]
        c["code"][start:end] = [r.kind + len(KIND_IDS) * r.sample for r in rows]
        c["municipality"][start:end] = [self._code(r.municipality) for r in rows]
        c["has_point"][start:end] = [r.has_point for r in rows]
        c["hidden"][start:end] = [r.hidden for r in rows]
        c["sample"][start:end] = [r.sample for r in rows]
        c["died"][start:end] = _ALIVE
        c["rank"][start:end] = ranks
        for n, r in enumerate(rows, start=start):
            self.ids.append(r.id)
            self.encoded.append(r.encoded)
            self.keys.append(r.key)
            self.position[r.id] = n
            if r.timing is not None:
                self.timing[n] = r.timing
        self.count = end

    def _rank_between(self, at: int) -> float | None:
        """A rank between the sorted neighbours of slot `at`, or None when floats ran out there."""
        rank = self.columns["rank"]
        low = rank[self.position[self.sorted_keys[at - 1][-1]]] if at > 0 else None
        high = rank[self.position[self.sorted_keys[at][-1]]] if at < len(self.sorted_keys) else None
        if high is None:
            return 0.0 if low is None else float(low) + 1.0
        if low is None:
            return float(high) - 1.0
        middle = (float(low) + float(high)) / 2
        return middle if low < middle < high else None

    def advance(self, changed: Iterable[str], rows: list[MapRow], seq: int) -> list[int]:
        """Retire the changed listings' rows (at `seq`) and append the new versions of those still
        published; the rows retired."""
        died = self.columns["died"]
        retired = []
        for listing_id in changed:
            old = self.position.pop(listing_id, None)
            if old is None:
                continue
            died[old] = seq
            retired.append(old)
            self.dead += 1
            key = self.keys[old]
            at = bisect.bisect_left(self.sorted_keys, key)
            if at < len(self.sorted_keys) and self.sorted_keys[at] == key:
                del self.sorted_keys[at]
        renumber = False
        for r in rows:
            at = bisect.bisect_left(self.sorted_keys, r.key)
            rank = self._rank_between(at)
            if rank is None:
                renumber, rank = True, 0.0
            self.sorted_keys.insert(at, r.key)
            self._append([r], ranks=np.array([rank]))
        if renumber:  # a fresh rank array (readers keep theirs)
            rank_column = self.columns["rank"].copy()
            for n, key in enumerate(self.sorted_keys):
                rank_column[self.position[key[-1]]] = n
            self.columns["rank"] = rank_column
        return retired

    def compacted(self, seq: int, at_least: int = 10_000) -> Columns | None:
        """A copy without retired rows once they outnumber the live ones and `at_least` (None before)."""
        if self.dead <= max(at_least, (self.count - self.dead)):
            return None
        alive = np.flatnonzero(self.columns["died"][: self.count] > seq)
        names = {code: name for name, code in self.municipality_codes.items()}
        rows = [
            MapRow(
                id=self.ids[n],
                key=self.keys[n],
                encoded=self.encoded[n],
                lon=float(self.columns["lon"][n]),
                lat=float(self.columns["lat"][n]),
                has_point=bool(self.columns["has_point"][n]),
                kind=int(self.columns["kind"][n]),
                municipality=names.get(int(self.columns["municipality"][n]), ""),
                hidden=bool(self.columns["hidden"][n]),
                sample=bool(self.columns["sample"][n]),
                timing=self.timing.get(int(n)),
            )
            for n in alive
        ]
        return Columns(rows, seq)

    def snapshot(self, revision: str, seq: int) -> Snapshot:
        return Snapshot(
            revision=revision,
            seq=seq,
            count=self.count,
            columns=dict(self.columns),
            ids=self.ids,
            encoded=self.encoded,
            timing=self.timing,
            position=self.position,
            municipality_codes=self.municipality_codes,
            generation=self.generation,
        )


def public_rows(listings: Iterable[dict[str, Any]]) -> list[MapRow]:
    return [map_row(listing) for listing in listings]
