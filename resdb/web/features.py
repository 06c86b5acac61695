"""The map's answers, small at any zoom: rows of the map's columns (resdb.web.mapcolumns) selected by bbox,
municipality and kind with numpy (or by the index for words and other filters), sent as points at street zoom
and as counts per grid cell (Web Mercator binning with bincount) for wider views; the columns follow the
change log one change at a time."""

from __future__ import annotations

import gzip
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from resdb.directory import ChangesPruned, Directory
from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS
from resdb.search import SearchQuery
from resdb.web.mapcolumns import (
    CELL_PX,
    FINE_LEVEL,
    KIND_CODE,
    KIND_IDS,
    Columns,
    MapRow,
    Snapshot,
    compact_feature,
    fine_cell,
    lat_of,
    map_row,
    mercator,
    next_session_text,
    public_rows,
)

__all__ = [
    "POINTS_UP_TO",
    "STREET_ZOOM",
    "FeatureCache",
    "MapAnswer",
    "compact_feature",
    "map_row",
    "mercator",
]

STREET_ZOOM = 15  # from this zoom on, the map gets individual points
POINTS_UP_TO = 500  # a view holding this many listings or fewer gets points at any zoom
STREET_POINTS_MAX = 1500  # more than this at street zoom still comes as (fine) cells (≤ ~300 KB)
MAX_GRID_CELLS = 1600  # a grid with more cells over the view is cut a zoom level coarser
MAX_CELLS_SENT = 800  # …and so is one with more occupied cells (a cell is ≤ ~330 bytes: ≤ ~270 KB)

_HIDDEN_CODES = [KIND_CODE[k] for k in HIDDEN_IN_SEARCH_KINDS if k in KIND_CODE]
_NO_NEXT = b',"next":null}}'


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
        self._columns: Columns | None = None
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._next: dict[int, bytes] = {}
        self._next_key: tuple[int, date | None] = (-1, None)
        self._next_lock = threading.Lock()
        self._gzipped: OrderedDict[str, bytes] = OrderedDict()
        self._gzip_lock = threading.Lock()

    # -- keeping up with the change log ------------------------------------------------------------
    def _build(self, revision: str, seq: int) -> None:
        rows = public_rows(self.directory.iter_published(public=True))
        self._columns = Columns(rows, seq)
        self._snapshot = self._columns.snapshot(revision, seq)

    def _advance(self, revision: str) -> None:
        old = self._snapshot
        seq = int(revision.partition("/")[0])
        if old is None or self._columns is None:
            self._build(revision, seq)
            return
        if revision.partition("/")[2] != old.revision.partition("/")[2]:
            self._build(revision, seq)
            return
        try:
            changed = list(
                dict.fromkeys(listing_id for _, listing_id in self.directory.changes_since(old.seq))
            )
        except ChangesPruned:
            self._build(revision, seq)
            return
        if len(changed) > max(2000, old.count // 4):
            self._build(revision, seq)
            return
        public = [self.directory.public_view(x) for x in self.directory.get_many(sorted(changed))]
        retired = self._columns.advance(changed, public_rows(public), seq)
        compacted = self._columns.compacted(seq)
        if compacted is not None:
            self._columns = compacted
        self._snapshot = self._columns.snapshot(revision, seq)
        self._snapshot.inherit(old, retired)

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

    def install(self, rows: list[MapRow], revision: str) -> None:
        """Start from rows made elsewhere (benchmarks filling a large corpus without the database)."""
        with self._lock:
            seq = int(revision.partition("/")[0])
            self._columns = Columns(rows, seq)
            self._snapshot = self._columns.snapshot(revision, seq)

    def bounds(
        self, municipality_code: str | None = None
    ) -> tuple[float, float, float, float] | None:
        """The box around a municipality's listings (or all of them)."""
        snap = self.snapshot()
        return snap.bounds(municipality_code or "") or snap.bounds("")

    # -- selecting ----------------------------------------------------------------------------------
    def _mask(self, query: SearchQuery, snap: Snapshot) -> np.ndarray:
        """The rows answering a bbox / municipality / kind query (cached masks reused when they suffice)."""
        venues = query.include_venues or any(KIND_IDS[c] in query.kinds for c in _HIDDEN_CODES)
        base = "alive" if venues else "visible"
        if query.bbox is not None:
            mask = snap.mask(base + "_points")
            min_lon, min_lat, max_lon, max_lat = query.bbox
            box = snap.bounds("")
            covers = box is not None and (
                min_lon <= box[0] and min_lat <= box[1] and max_lon >= box[2] and max_lat >= box[3]
            )
            if not covers:
                lon, lat = snap.col("lon"), snap.col("lat")
                mask = (
                    mask & (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)
                )
        else:
            mask = snap.mask(base)
        if query.municipality_code:
            code = snap.municipality_codes.get(query.municipality_code, -1)
            mask = mask & (snap.col("municipality") == code)
        if query.kinds:
            mask = mask & np.isin(snap.col("kind"), [KIND_CODE.get(k, -1) for k in query.kinds])
        return mask

    def _found(self, query: SearchQuery, snap: Snapshot) -> np.ndarray:
        """Rows of the index's answer, in its order."""
        result = self.directory.search_ids(replace(query, limit=None, offset=0))
        position = snap.position
        found = np.fromiter(
            (position.get(i, -1) for i in result.ids), dtype=np.int64, count=len(result.ids)
        )
        found = found[(found >= 0) & (found < snap.count)]
        alive: np.ndarray = found[snap.alive[found]]
        return alive

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
                text = next_session_text({"schedule": schedule, "holidays_closed": closed}, today)
                part = b',"next":' + json.dumps(text, ensure_ascii=False).encode() + b"}}"
                cache[row] = part
            out.append(part)
        return out

    def _points(self, snap: Snapshot, rows: np.ndarray) -> list[bytes]:
        encoded = snap.encoded
        nexts = self._next_parts(snap, rows)
        return [encoded[row] + part for row, part in zip(rows.tolist(), nexts, strict=True)]

    def _cells(
        self,
        snap: Snapshot,
        zoom: int,
        bbox: tuple[float, ...] | None,
        rows: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> tuple[list[bytes], int]:
        """One feature per grid cell holding listings (count, samples, kinds, the cell's bbox, at the mean
        position of its listings); a cell of one listing is that listing's point. The listings are `rows`,
        or the rows with a point in `mask`: binned over whole columns (no gathering) when they are many.
        Returns (features, level)."""
        has_point = snap.col("has_point")
        if rows is None:
            assert mask is not None
            if bbox is None:
                mask = mask & has_point
            selected = int(np.count_nonzero(mask))
            if selected < snap.count // 8:
                rows = np.flatnonzero(mask)
        else:
            rows = rows[has_point[rows]]
            selected = len(rows)
        if not selected:
            return [], zoom
        if rows is not None:  # few: gather them
            px, py = snap.col("px")[rows], snap.col("py")[rows]
            lon, lat, code = snap.col("lon")[rows], snap.col("lat")[rows], snap.col("code")[rows]
            valid = None
        else:  # many: whole columns, the others binned into a spare cell
            px, py = snap.col("px"), snap.col("py")
            lon, lat, code = snap.col("lon"), snap.col("lat"), snap.col("code")
            valid = None if selected == snap.count else mask
        box = bbox if bbox is not None else snap.bounds("") if rows is None else None
        if box is not None:
            corner_x, corner_y = mercator(np.array([box[0], box[2]]), np.array([box[1], box[3]]))
            fx0, fx1 = (int(v) for v in fine_cell(corner_x))
            fy1, fy0 = (int(v) for v in fine_cell(corner_y))  # y grows southwards
        else:
            fx0, fx1, fy0, fy1 = int(px.min()), int(px.max()), int(py.min()), int(py.max())
        level = min(max(0, zoom), FINE_LEVEL)
        kinds_count = len(KIND_IDS)
        while True:  # the zoom's grid, coarser while it has too many cells or too many are occupied
            shift = FINE_LEVEL - level
            ix0, iy0 = fx0 >> shift, fy0 >> shift
            width, height = (fx1 >> shift) - ix0 + 1, (fy1 >> shift) - iy0 + 1
            if width * height > MAX_GRID_CELLS and level > 0:
                level -= 1
                continue
            cells = width * height
            ix = px >> shift
            ix -= ix0
            key = py >> shift
            key -= iy0
            key *= width
            key += ix
            if valid is not None:
                key = np.where(valid, key, cells)  # the spare cell
            np.clip(key, 0, cells, out=key)  # in range already (same formulas): belt and braces
            by_code = np.bincount(
                key * (2 * kinds_count) + code, minlength=(cells + 1) * 2 * kinds_count
            ).reshape(cells + 1, 2 * kinds_count)[:cells]
            by_kind = by_code[:, :kinds_count] + by_code[:, kinds_count:]
            counts = by_kind.sum(axis=1)
            occupied = np.flatnonzero(counts)
            if len(occupied) <= MAX_CELLS_SENT or level == 0:
                break
            level -= 1
        per_world = 2.0**level * 256 / CELL_PX
        by_kind, n = by_kind[occupied], counts[occupied]
        samples = by_code[occupied, kinds_count:].sum(axis=1)
        lon_sum = np.bincount(key, weights=lon, minlength=cells + 1)[occupied]
        lat_sum = np.bincount(key, weights=lat, minlength=cells + 1)[occupied]
        singles = n == 1
        single_cells = occupied[singles]
        if len(single_cells):
            index = rows.astype(np.float64) if rows is not None else snap.row_numbers()
            first = np.bincount(key, weights=index, minlength=cells + 1)
            single_rows = first[single_cells].astype(np.int64)
        else:
            single_rows = np.empty(0, dtype=np.int64)
        cx, cy = occupied % width + ix0, occupied // width + iy0
        west = cx / per_world * 360.0 - 180.0
        east = (cx + 1) / per_world * 360.0 - 180.0
        north = lat_of(cy / per_world)
        south = lat_of((cy + 1) / per_world)
        out = self._points(snap, single_rows)
        for i in np.flatnonzero(~singles).tolist():
            count = int(n[i])
            kinds = ",".join(
                f'"{KIND_IDS[k]}":{int(by_kind[i, k])}' for k in np.flatnonzero(by_kind[i])
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
        snap = snap or self.snapshot()
        rows: np.ndarray | None = None
        mask: np.ndarray | None = None
        ranked = not _snapshot_only(query)
        if ranked:
            rows = self._found(query, snap)
            total = len(rows)
            with_point = int(np.count_nonzero(snap.col("has_point")[rows])) if total else 0
        else:
            mask = self._mask(query, snap)
            total = int(np.count_nonzero(mask))
            with_point = (
                total
                if query.bbox is not None
                else int(np.count_nonzero(mask & snap.col("has_point")))
            )
        clustered = zoom is not None and (
            (zoom < STREET_ZOOM and with_point > self.points_up_to)
            or with_point > STREET_POINTS_MAX
        )
        head = [b'{"type":"FeatureCollection","total":', str(total).encode()]
        if clustered:
            assert zoom is not None
            parts, level = self._cells(snap, zoom, query.bbox, rows=rows, mask=mask)
            head += [b',"clustered":true,"level":', str(level).encode()]
        else:
            if rows is None:
                assert mask is not None  # an unranked query has its mask
                rows = np.flatnonzero(mask)
            start = query.offset or 0
            stop = None if query.limit is None else start + query.limit
            parts = self._points(snap, self._ordered(snap, rows, ranked, start, stop))
            if zoom is not None:
                head.append(b',"clustered":false')
        body = b"".join((*head, b',"features":[', b",".join(parts), b"]}"))
        return MapAnswer(body, total, clustered, len(parts), snap)

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
