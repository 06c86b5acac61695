"""The map's data, small at any zoom: every published listing's point, kind and encoded feature held as numpy
columns that move forward along the change log (an edit retires the changed rows and appends their new
versions: work per change, never a whole-corpus rebuild), answered as points at street zoom and as counts per
grid cell (Web Mercator binning with bincount) for wider views."""

from __future__ import annotations

import bisect
import gzip
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np

from resdb.directory import ChangesPruned, Directory
from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS, KINDS
from resdb.exchange import feature
from resdb.search import SearchQuery
from resdb.web.labels import session_ja, upcoming, yen

STREET_ZOOM = 15  # from this zoom on, the map gets individual points
POINTS_UP_TO = 500  # a view holding this many listings or fewer gets points at any zoom
STREET_POINTS_MAX = 3000  # more than this at street zoom still comes as (fine) cells
CELL_PX = 80  # a cluster cell is about this many screen pixels wide
MAX_GRID_CELLS = (
    1600  # a wider grid is coarsened a zoom level at a time (keeps a response ≤ ~300 KB)
)

_KIND_IDS = list(KINDS)
_KIND_CODE = {kind: n for n, kind in enumerate(_KIND_IDS)}
_HIDDEN_CODES = [_KIND_CODE[k] for k in HIDDEN_IN_SEARCH_KINDS if k in _KIND_CODE]
_ALIVE = np.iinfo(np.int64).max
_NO_NEXT = b',"next":null}}'
_MAX_LAT = 85.05112878


def _when(listing: dict[str, Any], today: date | None) -> str | None:
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
            "next": _when(listing, today),
        },
    )


def _sort_key(listing: dict[str, Any]) -> tuple[Any, ...]:
    # Real listings before invented samples, then by kind and reading; the id last (unique).
    return (
        bool(listing.get("is_sample")),
        _KIND_CODE.get(listing.get("kind") or "other", 99),
        listing.get("name_kana") or listing.get("name") or "",
        listing["id"],
    )


def mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator x, y in [0, 1] (the whole world as one tile, y down)."""
    x = (lon + 180.0) / 360.0
    phi = np.radians(np.clip(lat, -_MAX_LAT, _MAX_LAT))
    y = 0.5 - np.log(np.tan(np.pi / 4 + phi / 2)) / (2 * np.pi)
    return x, y


def _lat_of(y: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * y))))


@dataclass(frozen=True)
class _Row:
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


def _row(listing: dict[str, Any]) -> _Row:
    has_point = listing.get("lat") is not None and listing.get("lon") is not None
    kind = listing.get("kind") or "other"
    static = dict(compact_feature(listing))
    static["properties"] = {k: v for k, v in static["properties"].items() if k != "next"}
    encoded = json.dumps(static, ensure_ascii=False, separators=(",", ":")).encode()
    return _Row(
        id=listing["id"],
        key=_sort_key(listing),
        encoded=encoded[:-2],
        lon=float(listing["lon"]) if has_point else 0.0,
        lat=float(listing["lat"]) if has_point else 0.0,
        has_point=has_point,
        kind=_KIND_CODE.get(kind, _KIND_CODE["other"]),
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
    "kind": np.int16,
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
    _alive: np.ndarray | None = field(default=None, repr=False)
    _bounds: dict[str, tuple[float, float, float, float] | None] = field(
        default_factory=dict, repr=False
    )

    def col(self, name: str) -> np.ndarray:
        return self.columns[name][: self.count]

    @property
    def alive(self) -> np.ndarray:
        if self._alive is None:
            self._alive = self.col("died") > self.seq
        return self._alive

    @property
    def live_count(self) -> int:
        return int(np.count_nonzero(self.alive))

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


class _Columns:
    """The writer's side: arrays with spare capacity, rows appended in change order and never rewritten
    (only retired through `died`), the sort order kept as a float rank (bisect into the sorted keys)."""

    def __init__(self, rows: list[_Row], seq: int, generation: int) -> None:
        rows.sort(key=lambda r: r.key)
        self.generation = generation
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

    def _append(self, rows: Sequence[_Row], ranks: np.ndarray) -> None:
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
        c["kind"][start:end] = [r.kind for r in rows]
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
        if low is None and high is None:
            return 0.0
        if low is None:
            return float(high) - 1.0  # type: ignore[arg-type]
        if high is None:
            return float(low) + 1.0
        middle = (float(low) + float(high)) / 2
        return middle if low < middle < high else None

    def advance(self, changed: Iterable[str], rows: list[_Row], seq: int) -> None:
        """Retire the changed listings' rows (at `seq`) and append the new versions of those still published."""
        died = self.columns["died"]
        for listing_id in changed:
            old = self.position.pop(listing_id, None)
            if old is None:
                continue
            died[old] = seq
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

    def compacted(self, seq: int) -> _Columns | None:
        """A copy without retired rows once they outnumber the live ones (None while not worth it)."""
        if self.dead <= max(10_000, (self.count - self.dead)):
            return None
        alive = np.flatnonzero(self.columns["died"][: self.count] > seq)
        names = {code: name for name, code in self.municipality_codes.items()}
        rows = [
            _Row(
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
        return _Columns(rows, seq, self.generation + 1)

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


def _public_rows(listings: Iterable[dict[str, Any]]) -> list[_Row]:
    return [_row(listing) for listing in listings]


def _snapshot_only(query: SearchQuery) -> bool:
    """Whether the query filters by nothing but bbox / municipality / kind (answerable from the columns)."""
    return not (
        query.q
        or query.targets
        or query.weekdays
        or query.open_on
        or query.max_cost is not None
        or query.barrier_free
        or query.pickup
        or query.near
        or query.ids is not None
    )


@dataclass
class MapAnswer:
    """A map response: the FeatureCollection bytes, how many listings answer, and whether it holds cells."""

    body: bytes
    total: int
    clustered: bool
    features: int
    snapshot: Snapshot


class FeatureCache:
    """The columns of one app, moved forward when `directory.revision()` moves (checked on every use); a
    change of the districts' version rebuilds them (private hosts' public points depend on the districts)."""

    def __init__(
        self,
        directory: Directory,
        today: Callable[[], date] | None = None,
        points_up_to: int = POINTS_UP_TO,
    ) -> None:
        self.directory = directory
        self.today = today
        self.points_up_to = points_up_to
        self._columns: _Columns | None = None
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._next: dict[int, bytes] = {}
        self._next_key: tuple[int, date | None] = (-1, None)
        self._next_lock = threading.Lock()
        self._gzipped: OrderedDict[str, bytes] = OrderedDict()
        self._gzip_lock = threading.Lock()

    # -- keeping up with the change log ------------------------------------------------------------
    def _build(self, revision: str, seq: int, generation: int) -> None:
        rows = _public_rows(self.directory.iter_published(public=True))
        self._columns = _Columns(rows, seq, generation)
        self._snapshot = self._columns.snapshot(revision, seq)

    def _advance(self, revision: str) -> None:
        old = self._snapshot
        seq = int(revision.partition("/")[0])
        generation = self._columns.generation + 1 if self._columns else 0
        if old is None or self._columns is None:
            self._build(revision, seq, generation)
            return
        if revision.partition("/")[2] != old.revision.partition("/")[2]:
            self._build(revision, seq, generation)
            return
        try:
            changed = list(
                dict.fromkeys(listing_id for _, listing_id in self.directory.changes_since(old.seq))
            )
        except ChangesPruned:
            self._build(revision, seq, generation)
            return
        if len(changed) > max(2000, old.count // 4):
            self._build(revision, seq, generation)
            return
        public = [self.directory.public_view(x) for x in self.directory.get_many(sorted(changed))]
        self._columns.advance(changed, _public_rows(public), seq)
        compacted = self._columns.compacted(seq)
        if compacted is not None:
            self._columns = compacted
        self._snapshot = self._columns.snapshot(revision, seq)

    def snapshot(self) -> Snapshot:
        """The columns as of the last committed change (one revision query per call)."""
        revision = self.directory.revision()
        current = self._snapshot
        if current is not None and current.revision == revision:
            return current
        with self._lock:
            if self._snapshot is None or self._snapshot.revision != revision:
                self._advance(revision)
            assert self._snapshot is not None
            return self._snapshot

    def install(self, rows: list[_Row], revision: str) -> None:
        """Start from rows made elsewhere (benchmarks filling a large corpus without the database)."""
        with self._lock:
            seq = int(revision.partition("/")[0])
            self._columns = _Columns(rows, seq, 0)
            self._snapshot = self._columns.snapshot(revision, seq)

    def bounds(
        self, municipality_code: str | None = None
    ) -> tuple[float, float, float, float] | None:
        """The box around a municipality's listings (or all of them)."""
        snap = self.snapshot()
        return snap.bounds(municipality_code or "") or snap.bounds("")

    # -- selecting ----------------------------------------------------------------------------------
    def select(
        self, query: SearchQuery, snap: Snapshot | None = None
    ) -> tuple[np.ndarray, Snapshot]:
        """Rows answering `query` in the map's order (ranked when it has words), ignoring limit/offset;
        from `snap` when the caller just took it, else from a fresh snapshot."""
        snap = snap or self.snapshot()
        if _snapshot_only(query):
            mask = snap.alive.copy()
            if query.bbox is not None:
                min_lon, min_lat, max_lon, max_lat = query.bbox
                lon, lat = snap.col("lon"), snap.col("lat")
                mask &= snap.col("has_point")
                mask &= (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)
            if query.municipality_code:
                code = snap.municipality_codes.get(query.municipality_code, -1)
                mask &= snap.col("municipality") == code
            kinds = snap.col("kind")
            if query.kinds:
                mask &= np.isin(kinds, [_KIND_CODE.get(k, -1) for k in query.kinds])
            hidden = [c for c in _HIDDEN_CODES if _KIND_IDS[c] not in query.kinds]
            if hidden and not query.include_venues:
                mask &= ~np.isin(kinds, hidden)
            rows = np.flatnonzero(mask)
            return rows, snap
        result = self.directory.search_ids(replace(query, limit=None, offset=0))
        position = snap.position
        found = np.fromiter(
            (position.get(i, -1) for i in result.ids), dtype=np.int64, count=len(result.ids)
        )
        found = found[(found >= 0) & (found < snap.count)]
        return found[snap.alive[found]], snap

    @staticmethod
    def _ordered(
        snap: Snapshot, rows: np.ndarray, ranked: bool, start: int, stop: int | None
    ) -> np.ndarray:
        """rows[start:stop] in the map's order (already in order when ranked by the index)."""
        if ranked:
            return rows[start:stop]
        ranks = snap.col("rank")[rows]
        if stop is not None and stop < len(rows):
            top = np.argpartition(ranks, stop - 1)[:stop]
            rows, ranks = rows[top], ranks[top]
        return rows[np.argsort(ranks, kind="stable")][start:stop]

    # -- encoding -----------------------------------------------------------------------------------
    def _next_parts(self, snap: Snapshot, rows: np.ndarray) -> list[bytes]:
        """`,"next":…}}` per row: computed once per row and day (a row never changes; a changed listing
        gets a new row)."""
        today = self.today() if self.today else None
        with self._next_lock:
            if self._next_key != (snap.generation, today):
                self._next, self._next_key = {}, (snap.generation, today)
            cache = self._next
        timing = snap.timing
        out = []
        for row in rows.tolist():
            found = timing.get(row)
            if found is None or today is None:
                out.append(_NO_NEXT)
                continue
            part = cache.get(row)
            if part is None:
                schedule, closed = found
                text = _when({"schedule": schedule, "holidays_closed": closed}, today)
                part = b',"next":' + json.dumps(text, ensure_ascii=False).encode() + b"}}"
                cache[row] = part
            out.append(part)
        return out

    def _points(self, snap: Snapshot, rows: np.ndarray) -> list[bytes]:
        encoded = snap.encoded
        nexts = self._next_parts(snap, rows)
        return [encoded[row] + part for row, part in zip(rows.tolist(), nexts, strict=True)]

    def _cells(
        self, snap: Snapshot, rows: np.ndarray, zoom: int, bbox: tuple[float, ...] | None
    ) -> tuple[list[bytes], int]:
        """One feature per grid cell holding listings (count, samples, kinds, the cell's bbox, at the mean
        position of its listings); a cell of one listing is that listing's point. Returns (features, level)."""
        rows = rows[snap.col("has_point")[rows]]
        if not len(rows):
            return [], zoom
        x, y = snap.col("x")[rows], snap.col("y")[rows]
        if bbox is not None:
            corner_x, corner_y = mercator(
                np.array([bbox[0], bbox[2]]), np.array([bbox[1], bbox[3]])
            )
            bx0, bx1 = float(corner_x[0]), float(corner_x[1])
            by1, by0 = float(corner_y[0]), float(corner_y[1])  # y grows southwards
        else:
            bx0, bx1, by0, by1 = float(x.min()), float(x.max()), float(y.min()), float(y.max())
        level = max(0, zoom)
        while True:
            per_world = 2.0**level * 256 / CELL_PX
            ix0, iy0 = math.floor(bx0 * per_world), math.floor(by0 * per_world)
            width = math.floor(bx1 * per_world) - ix0 + 1
            height = math.floor(by1 * per_world) - iy0 + 1
            if width * height <= MAX_GRID_CELLS or level == 0:
                break
            level -= 1
        ix = np.clip(np.floor(x * per_world).astype(np.int64) - ix0, 0, width - 1)
        iy = np.clip(np.floor(y * per_world).astype(np.int64) - iy0, 0, height - 1)
        key = iy * width + ix
        cells = width * height
        counts = np.bincount(key, minlength=cells)
        occupied = np.flatnonzero(counts)
        lon_sum = np.bincount(key, weights=snap.col("lon")[rows], minlength=cells)[occupied]
        lat_sum = np.bincount(key, weights=snap.col("lat")[rows], minlength=cells)[occupied]
        samples = np.bincount(key, weights=snap.col("sample")[rows], minlength=cells)[occupied]
        kinds_count = len(_KIND_IDS)
        by_kind = np.bincount(
            key * kinds_count + snap.col("kind")[rows], minlength=cells * kinds_count
        ).reshape(cells, kinds_count)[occupied]
        first = np.bincount(key, weights=np.arange(len(rows), dtype=np.float64), minlength=cells)
        n = counts[occupied]
        cx, cy = occupied % width + ix0, occupied // width + iy0
        west = cx / per_world * 360.0 - 180.0
        east = (cx + 1) / per_world * 360.0 - 180.0
        north = _lat_of(cy / per_world)
        south = _lat_of((cy + 1) / per_world)
        singles = n == 1
        single_rows = rows[first[occupied][singles].astype(np.int64)]
        out = self._points(snap, single_rows)
        for i in np.flatnonzero(~singles).tolist():
            count = int(n[i])
            kinds = ",".join(
                f'"{_KIND_IDS[k]}":{int(by_kind[i, k])}' for k in np.flatnonzero(by_kind[i])
            )
            out.append(
                (
                    f'{{"type":"Feature","id":"c{level}-{int(cx[i])}-{int(cy[i])}",'
                    f'"geometry":{{"type":"Point","coordinates":[{lon_sum[i] / count:.5f},'
                    f'{lat_sum[i] / count:.5f}]}},"properties":{{"cluster":true,"count":{count},'
                    f'"samples":{int(samples[i])},"kinds":{{{kinds}}},'
                    f'"bbox":[{west[i]:.5f},{south[i]:.5f},{east[i]:.5f},{north[i]:.5f}]}}}}'
                ).encode()
            )
        return out, level

    def answer(
        self, query: SearchQuery, zoom: int | None = None, snap: Snapshot | None = None
    ) -> MapAnswer:
        """The FeatureCollection for `query`: every point (in pages by limit/offset) without `zoom`; with
        `zoom`, points at street zoom or for a view of few listings, else one feature per grid cell."""
        rows, snap = self.select(query, snap)
        ranked = not _snapshot_only(query)
        total = int(len(rows))
        with_point = int(np.count_nonzero(snap.col("has_point")[rows])) if total else 0
        clustered = zoom is not None and (
            (zoom < STREET_ZOOM and with_point > self.points_up_to)
            or with_point > STREET_POINTS_MAX
        )
        head = [b'{"type":"FeatureCollection","total":', str(total).encode()]
        if clustered:
            assert zoom is not None
            parts, level = self._cells(snap, rows, zoom, query.bbox)
            head += [b',"clustered":true,"level":', str(level).encode()]
        else:
            start = query.offset or 0
            stop = None if query.limit is None else start + query.limit
            parts = self._points(snap, self._ordered(snap, rows, ranked, start, stop))
            if zoom is not None:
                head.append(b',"clustered":false')
        body = b"".join((*head, b',"features":[', b",".join(parts), b"]}"))
        return MapAnswer(body, total, clustered, len(parts), snap)

    def geojson(self, query: SearchQuery) -> tuple[bytes, int, int, Snapshot]:
        """Every point answering `query`: the bytes, the number of features, the total, the snapshot."""
        answer = self.answer(query)
        return answer.body, answer.features, answer.total, answer.snapshot

    def gzipped(self, key: str, body: bytes, keep: int = 16) -> bytes:
        """`body` gzip-compressed, remembered for the last `keep` keys (the same view asked again is free)."""
        with self._gzip_lock:
            found = self._gzipped.get(key)
            if found is not None:
                self._gzipped.move_to_end(key)
                return found
        packed = gzip.compress(body, compresslevel=1 if len(body) > 1_000_000 else 5)
        with self._gzip_lock:
            self._gzipped[key] = packed
            while len(self._gzipped) > keep:
                self._gzipped.popitem(last=False)
        return packed
