"""The map's answers, small at any zoom: rows of the map's columns (resdb.web.mapcolumns) selected by bbox,
municipality and kind with numpy (or by the index for words and other filters), sent as points at street zoom
and as counts per grid cell (Web Mercator binning with bincount) for wider views; the columns follow the
change log one change at a time."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from resdb.directory import ChangesPruned, Directory
from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS
from resdb.hostsnapshot import (
    BuilderThread,
    SnapshotStore,
    child_url,
    give_back_freed_memory,
    host_store,
    load_arrays,
    publish_in_child,
    reflects,
)
from resdb.search import SearchQuery
from resdb.web.mapcolumns import (
    CELL_PX,
    FINE_LEVEL,
    FINE_SCALE,
    KIND_CODE,
    KIND_IDS,
    Columns,
    MapRow,
    Snapshot,
    compact_feature,
    encode_rows,
    fine_cell,
    lat_of,
    map_row,
    mercator,
    next_session_text,
    public_rows,
)
from resdb.web.mapgrid import FIXED, Grid, fixed, in_box

__all__ = [
    "POINTS_UP_TO",
    "STREET_ZOOM",
    "FeatureCache",
    "MapAnswer",
    "MapNotReady",
    "compact_feature",
    "map_row",
    "mercator",
]

STREET_ZOOM = 15  # from this zoom on, the map gets individual points
POINTS_UP_TO = 500  # a view holding this many listings or fewer gets points at any zoom
STREET_POINTS_MAX = 1500  # more than this at street zoom still comes as (fine) cells (≤ ~300 KB)
MAX_GRID_CELLS = 1600  # a grid with more cells over the view is cut a zoom level coarser
MAX_CELLS_SENT = 800  # …and so is one with more occupied cells (a cell is ≤ ~330 bytes: ≤ ~270 KB)

MAP_SNAPSHOT_FORMAT = "map-2"  # bump when what the map's snapshot holds changes
BACKLOG_LIMIT = 2000  # more changed listings than this (and a quarter of the rows): a whole build
REPUBLISH_ROWS = 5000  # a worker holding more appended rows (and 2% of the base) publishes anew
DEFAULT_WAIT_SECONDS = 10.0
NEXT_CACHE_ROWS = 200_000  # next-session texts (one per distinct schedule) kept per day
log = logging.getLogger(__name__)

_HIDDEN_CODES = [KIND_CODE[k] for k in HIDDEN_IN_SEARCH_KINDS if k in KIND_CODE]
_NO_NEXT = b',"next":null}}'


_GRID_COLUMNS = ("px", "py", "lon", "lat", "code", "died")


def _fine_box(box: tuple[float, ...]) -> tuple[int, int, int, int]:
    """A bbox's corners on the finest cell grid: x0, x1, y0, y1 (y grows southwards)."""
    corner_x, corner_y = mercator(np.array([box[0], box[2]]), np.array([box[1], box[3]]))
    fx0, fx1 = (int(v) for v in fine_cell(corner_x))
    fy1, fy0 = (int(v) for v in fine_cell(corner_y))
    return fx0, fx1, fy0, fy1


def _grid(level: int, fx0: int, fx1: int, fy0: int, fy1: int) -> Grid | None:
    """The empty grid of `level`'s cells over the fine cells fx0…fx1 × fy0…fy1; None when it would have
    more than MAX_GRID_CELLS (and a coarser level exists)."""
    shift = FINE_LEVEL - level
    x0, y0 = fx0 >> shift, fy0 >> shift
    width, height = (fx1 >> shift) - x0 + 1, (fy1 >> shift) - y0 + 1
    if width * height > MAX_GRID_CELLS and level > 0:
        return None
    return Grid(level, x0, y0, width, height, 2 * len(KIND_IDS))


def _every_visible(query: SearchQuery) -> bool:
    """Whether a snapshot-only query asks for every visible listing in a bbox (what the cell index holds)."""
    return (
        query.bbox is not None
        and not query.municipality_code
        and not query.kinds
        and not query.include_venues
    )


def _head(total: int, pending: int) -> list[bytes]:
    head = [b'{"type":"FeatureCollection","total":', str(total).encode()]
    if pending:  # only while the host rebuilds its search index after a very large backlog
        head += [b',"pending_changes":', str(pending).encode()]
    return head


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


class MapNotReady(RuntimeError):
    """The map's columns are still being built or loaded (「準備中」); ask again in a few seconds."""

    message = "地図の準備中です（掲載情報の一覧を読み込んでいます）。数秒〜1分ほどしてからもう一度お試しください"


def map_wait_setting() -> float:
    """RESDB_MAP_WAIT: seconds a map request waits for columns being built before it answers 準備中."""
    from resdb.config import setting

    try:
        return max(0.0, float(setting("RESDB_MAP_WAIT") or DEFAULT_WAIT_SECONDS))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


def map_store(directory: Directory) -> SnapshotStore:
    """Where the host's map snapshots live (in the instance folder)."""
    return host_store(directory.instance_dir, "map", MAP_SNAPSHOT_FORMAT)


def _publish_snapshot(url: str, instance_dir: str) -> None:
    """In a build process (see publish_in_child): build the map's columns and publish them."""
    directory = Directory.open(url, Path(instance_dir), ready=False)
    try:
        cache = FeatureCache(directory, store=map_store(directory))
        seq, arrays, meta = cache._from_database()
        cache._publish(arrays, meta, seq)
    finally:
        directory.engine.dispose()


class FeatureCache:
    """The columns of one app, moved forward when `directory.revision()` moves (checked on every use); a
    change of the districts' version rebuilds them (private hosts' public points depend on the districts).

    With a `store` the columns start from the host's newest usable snapshot (memory-mapped, shared by
    every worker); the first worker to find none builds one under the store's lock while the others wait
    and then map it. With `background`, whole builds run in a thread (`start()`, at app start) and a
    request waits up to `wait` seconds for it, then gets `MapNotReady` (503 with Retry-After) instead of
    paying minutes of build; edits are always applied in the request (a few rows each)."""

    def __init__(
        self,
        directory: Directory,
        today: Callable[[], date] | None = None,
        points_up_to: int = POINTS_UP_TO,
        *,
        store: SnapshotStore | None = None,
        background: bool = False,
        wait: float = 0.0,
    ) -> None:
        self.directory = directory
        self.today = today
        self.points_up_to = points_up_to
        self.store = store
        self.background = background
        self.wait = wait
        self._columns: Columns | None = None
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._next: dict[tuple[bytes, bool], bytes] = {}
        self._next_key: date | None = None
        self._next_lock = threading.Lock()
        self._gzipped: OrderedDict[str, bytes] = OrderedDict()
        self._gzip_lock = threading.Lock()
        self._builder = BuilderThread("resdb-map-columns", directory.background)
        self._ready = threading.Condition()
        self.republish_rows = REPUBLISH_ROWS  # (tests lower it)
        self.timings: dict[str, float] = {}  # seconds of the last build / load / publish

    # -- whole builds -------------------------------------------------------------------------------
    def _usable(self, head: int, districts: str) -> Callable[[dict[str, Any]], bool]:
        def usable(meta: dict[str, Any]) -> bool:
            if str(meta.get("districts")) != districts:  # the cheap test first
                return False
            if not reflects(meta, head, self.directory.change_stamp):
                return False
            # catching up would cost more than building:
            return head - int(meta["seq"]) <= max(BACKLOG_LIMIT, int(meta.get("count") or 0) // 4)

        return usable

    def _load(self, newer_than: int = -1) -> tuple[Columns, int] | None:
        """Columns mapped from the host's newest usable snapshot, and the change it reflects."""
        if self.store is None:
            return None
        started = time.perf_counter()
        head, districts = self.directory.head_seq(), self.directory.districts_version()
        usable = self._usable(head, str(districts))
        loaded = self.store.load_newest(
            lambda meta: int(meta.get("seq", -1)) > newer_than and usable(meta), copy_on_write=True
        )
        if loaded is None:
            return None
        meta, arrays = loaded
        try:
            columns = Columns(arrays, meta)
        except (KeyError, ValueError, TypeError):
            return None  # not what this version writes: build afresh
        self.timings["load"] = time.perf_counter() - started
        return columns, int(meta["seq"])

    def _publish(
        self, arrays: dict[str, np.ndarray], meta: dict[str, Any], seq: int
    ) -> tuple[Columns, int]:
        """Write columns as the host's snapshot and map what was written (this process's own columns
        when it cannot be read back)."""
        assert self.store is not None
        started = time.perf_counter()
        stamp = self.directory.change_stamp(seq)
        districts = meta.get("districts") or self.directory.districts_version()
        folder = self.store.publish(seq, arrays, {**meta, "stamp": stamp, "districts": districts})
        self.timings["publish"] = time.perf_counter() - started
        started = time.perf_counter()
        loaded = load_arrays(folder, copy_on_write=True)
        if loaded is None:
            return Columns(arrays, meta), seq
        self.timings["load"] = time.perf_counter() - started
        return Columns(loaded[1], loaded[0]), seq

    def _fresh(self) -> tuple[Columns, int]:
        """Whole columns as of some change at or before the head: mapped from the host's snapshot when
        there is a usable one, else built from the database (and published for the other workers)."""
        if self.store is not None:
            found = self._load()
            if found is not None:
                return found
            with self.store.exclusive():
                found = self._load()  # another worker may have published it meanwhile
                if found is not None:
                    return found
                url = child_url(self.directory.engine) if self.background else None
                started = time.perf_counter()
                if url is not None and publish_in_child(  # a web worker: built in its own process
                    _publish_snapshot, url, self.directory.instance_dir
                ):
                    built_s = time.perf_counter() - started  # build and publish, in that process
                    found = self._load()
                    if found is not None:
                        self.timings["build"] = built_s
                        return found
                seq, arrays, meta = self._from_database()
                published = self._publish(arrays, meta, seq)
                del arrays
                give_back_freed_memory()  # the listing dicts and rows of the build
                return published
        seq, arrays, meta = self._from_database()
        return Columns(arrays, meta), seq

    def _from_database(self) -> tuple[int, dict[str, np.ndarray], dict[str, Any]]:
        started = time.perf_counter()
        seq = self.directory.head_seq()  # read before the rows: later changes are applied after
        districts = self.directory.districts_version()  # what the rows' places were read under
        arrays, meta = encode_rows(public_rows(self.directory.iter_published(public=True)))
        self.timings["build"] = time.perf_counter() - started
        return seq, arrays, {**meta, "districts": districts}

    def _republished(self, snap: Snapshot) -> tuple[Columns, int]:
        """Compact columns for `snap`'s live rows: a newer snapshot another worker published, or this
        one's rows written as the host's new snapshot (no database pass) and mapped."""
        if self.store is None:
            return Columns(*snap.export()), snap.seq
        with self.store.exclusive():
            found = self._load(newer_than=snap.seq - 1)
            if found is not None:
                return found
            return self._publish(*snap.export(), snap.seq)

    def _install(self, columns: Columns, seq: int) -> bool:
        """Bring fresh columns to the head of the change log and swap them in (False when they cannot
        catch up, e.g. the log was pruned meanwhile)."""
        with self._lock:
            revision = self.directory.revision()
            snap = self._catch_up(columns, None, seq, revision)
            if snap is None:
                return False
            self._columns, self._snapshot = columns, snap
        with self._ready:
            self._ready.notify_all()
        return True

    def start(self, compact: Snapshot | None = None) -> bool:
        """Build (or, given `compact`, compact) the columns in a background thread unless one runs; True
        if started. Requests keep answering from the current columns meanwhile when they are current."""

        def run() -> None:
            try:
                source = compact
                for _attempt in range(2):
                    fresh = self._fresh() if source is None else self._republished(source)
                    if self._install(*fresh):
                        return
                    source = None  # a second try starts from a whole build
            except Exception:
                log.warning("map columns build failed; the next request tries again", exc_info=True)
            finally:
                with self._ready:
                    self._ready.notify_all()

        return self._builder.start(run)

    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    # -- keeping up with the change log ------------------------------------------------------------
    def _catch_up(
        self, columns: Columns, old: Snapshot | None, seq: int, revision: str
    ) -> Snapshot | None:
        """`columns` (as of change `seq`) moved forward to `revision`; None when only a whole build can
        (the districts changed, the log was pruned, or more changed than is worth applying)."""
        head_text, _, districts = revision.partition("/")
        head = int(head_text)
        if (old.revision.partition("/")[2] if old is not None else columns.districts) != districts:
            return None  # built under other districts: the rows' places may have moved
        retired: list[int] = []
        if head > seq:
            try:
                changed = list(
                    dict.fromkeys(listing_id for _, listing_id in self.directory.changes_since(seq))
                )
            except ChangesPruned:
                return None
            if len(changed) > max(BACKLOG_LIMIT, columns.count // 4):
                return None
            public = [
                self.directory.public_view(x)
                for x in self.directory.changed_published(sorted(changed))
            ]
            retired = columns.advance(changed, public_rows(public), head)
        snap = columns.snapshot(revision, max(head, seq))
        if old is not None:
            snap.inherit(old, retired)
        return snap

    def _compact_due(self, columns: Columns) -> bool:
        live = columns.count - columns.dead
        if self.store is None:
            return columns.dead > max(10_000, live)
        # shared columns: this worker's private rows stay few (a new shared snapshot takes them in)
        return columns.tail_rows > max(
            self.republish_rows, columns.base // 50
        ) or columns.dead > max(10_000, live)

    def snapshot(self) -> Snapshot:
        """The columns as of the last committed change (one revision query per call)."""
        revision = self.directory.revision()
        current = self._snapshot
        if current is not None and current.revision == revision:
            return current
        for _attempt in range(3):
            with self._lock:
                current = self._snapshot
                if current is not None and current.revision == revision:
                    return current
                generation = None if self._columns is None else self._columns.generation
                if current is not None and self._columns is not None:
                    snap = self._catch_up(self._columns, current, current.seq, revision)
                    if snap is not None:
                        self._snapshot = snap
                        if self._compact_due(self._columns):
                            if self.background:
                                self.start(compact=snap)
                            else:
                                columns, seq = self._republished(snap)
                                fresh = self._catch_up(columns, None, seq, revision)
                                if fresh is not None:
                                    self._columns, self._snapshot = columns, fresh
                        return self._snapshot
                if not self.background:
                    for _build in range(2):
                        columns, seq = self._fresh()
                        snap = self._catch_up(columns, None, seq, self.directory.revision())
                        if snap is not None:
                            self._columns, self._snapshot = columns, snap
                            return snap
                    raise MapNotReady(MapNotReady.message)
            self._await(generation)
            revision = self.directory.revision()
        raise MapNotReady(MapNotReady.message)

    def _await(self, generation: int | None) -> None:
        """Wait up to `wait` seconds for the background build to install other columns than
        `generation`."""
        self.start()
        deadline = time.monotonic() + self.wait
        with self._ready:
            while True:
                columns = self._columns
                if columns is not None and columns.generation != generation:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MapNotReady(MapNotReady.message)
                if not self._builder.alive:
                    self.start()
                self._ready.wait(min(left, 0.25))

    def install(self, rows: list[MapRow], revision: str, *, publish: bool = False) -> None:
        """Start from rows made elsewhere (benchmarks filling a large corpus without the database); with
        `publish`, written as the host's snapshot and mapped from it, as a worker would."""
        with self._lock:
            seq = int(revision.partition("/")[0])
            arrays, meta = encode_rows(rows)
            meta["districts"] = revision.partition("/")[2]
            if publish and self.store is not None:
                with self.store.exclusive():
                    self._columns = self._publish(arrays, meta, seq)[0]
            else:
                self._columns = Columns(arrays, meta)
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
                mask = mask & in_box(snap.col("lon"), snap.col("lat"), query.bbox)
        else:
            mask = snap.mask(base)
        if query.municipality_code:
            code = snap.municipality_codes.get(query.municipality_code, -1)
            mask = mask & (snap.col("municipality") == code)
        if query.kinds:
            mask = mask & np.isin(snap.col("kind"), [KIND_CODE.get(k, -1) for k in query.kinds])
        return mask

    def _found(self, query: SearchQuery, snap: Snapshot) -> tuple[np.ndarray, int]:
        """Rows of the index's answer, in its order, and the committed changes it has not seen (see
        `ListingReads.search_ids`)."""
        result = self.directory.search_ids(replace(query, limit=None, offset=0))
        found = snap.position.rows_of(result.ids)
        found = found[(found >= 0) & (found < snap.count)]
        alive: np.ndarray = found[snap.alive[found]]
        return alive, result.pending_changes

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
        """`,"next":…}}` per row: computed once per schedule and day (listings sharing a schedule share
        the text, so the cache stays as small as the number of distinct schedules)."""
        today = self.today() if self.today else None
        if today is None:
            return [_NO_NEXT] * len(rows)
        with self._next_lock:
            if self._next_key != today or len(self._next) > NEXT_CACHE_ROWS:
                self._next, self._next_key = {}, today
            cache = self._next
        out = []
        closed = snap.col("closed")[rows].tolist()
        for raw, shut in zip(snap.timing.schedules.many(rows), closed, strict=True):
            if not raw:
                out.append(_NO_NEXT)
                continue
            part = cache.get((raw, shut))
            if part is None:
                listing = {"schedule": json.loads(raw), "holidays_closed": shut}
                text = next_session_text(listing, today)
                part = b',"next":' + json.dumps(text, ensure_ascii=False).encode() + b"}}"
                cache[(raw, shut)] = part
            out.append(part)
        return out

    def _points(self, snap: Snapshot, rows: np.ndarray) -> list[bytes]:
        nexts = self._next_parts(snap, rows)
        return [
            encoded + part for encoded, part in zip(snap.encoded.many(rows), nexts, strict=True)
        ]

    def _cells(
        self,
        snap: Snapshot,
        zoom: int,
        bbox: tuple[float, ...] | None,
        rows: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> Grid | None:
        """The sums per grid cell of the listings `rows`, or the rows with a point in `mask`: binned over
        whole columns (no gathering) when they are many. The zoom's grid, coarser while it has too many
        cells or too many are occupied; None when no listing has a point."""
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
            return None
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
            fx0, fx1, fy0, fy1 = _fine_box(box)
        else:
            fx0, fx1, fy0, fy1 = int(px.min()), int(px.max()), int(py.min()), int(py.max())
        level = min(max(0, zoom), FINE_LEVEL)
        codes = 2 * len(KIND_IDS)
        while True:  # the zoom's grid, coarser while it has too many cells or too many are occupied
            shift = FINE_LEVEL - level
            grid = _grid(level, fx0, fx1, fy0, fy1)
            if grid is None:
                level -= 1
                continue
            cells = grid.width * grid.height
            ix = px >> shift
            ix -= grid.x0
            key = py >> shift
            key -= grid.y0
            key *= grid.width
            key += ix
            if valid is not None:
                key = np.where(valid, key, cells)  # the spare cell
            np.clip(key, 0, cells, out=key)  # in range already (same formulas): belt and braces
            grid.by_code = np.bincount(key * codes + code, minlength=(cells + 1) * codes).reshape(
                cells + 1, codes
            )[:cells]
            if len(np.flatnonzero(grid.by_code.any(axis=1))) <= MAX_CELLS_SENT or level == 0:
                break
            level -= 1
        grid.lon = np.bincount(key, weights=fixed(lon), minlength=cells + 1)[:cells]
        grid.lat = np.bincount(key, weights=fixed(lat), minlength=cells + 1)[:cells]
        index = rows.astype(np.float64) if rows is not None else snap.row_numbers()
        grid.row = np.bincount(key, weights=index, minlength=cells + 1)[:cells]
        return grid

    def _view_cells(self, snap: Snapshot, zoom: int, bbox: tuple[float, ...]) -> Grid | None:
        """The sums per grid cell of every visible listing in `bbox`, from the cell index: whole cells
        from the level's sums, the view's edge cells row by row, and the rows changed since the base
        added or taken away (see resdb.web.mapgrid). None when the index cannot answer."""
        if snap.cells is None or len(bbox) != 4:
            return None
        box = (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
        fx0, fx1, fy0, fy1 = _fine_box(box)
        if fx0 > fx1 or fy0 > fy1 or min(fx0, fy0) < 0 or max(fx1, fy1) > FINE_SCALE:
            return None  # an empty box, or one past the world's edge (cell codes hold cells on it)
        columns = {name: snap.columns[name] for name in _GRID_COLUMNS}
        hidden, has_point = snap.columns["hidden"], snap.columns["has_point"]
        retired = snap.retired_base
        retired = retired[has_point[retired] & ~hidden[retired]]
        tail = np.arange(snap.base, snap.count, dtype=np.int64)
        tail = tail[
            has_point[tail]
            & ~hidden[tail]
            & (columns["died"][tail] > snap.seq)
            & in_box(columns["lon"][tail], columns["lat"][tail], box)
        ]
        level = min(max(0, zoom), FINE_LEVEL)
        while True:
            grid = _grid(level, fx0, fx1, fy0, fy1)
            if grid is None:
                level -= 1
                continue
            shift = FINE_LEVEL - level
            snap.cells.view(grid, shift, columns, box, snap.seq, retired)
            grid.add(shift, columns, tail)
            if len(np.flatnonzero(grid.by_code.any(axis=1))) <= MAX_CELLS_SENT or level == 0:
                return grid
            level -= 1

    def _encode_cells(self, snap: Snapshot, grid: Grid) -> list[bytes]:
        """One feature per occupied cell (count, samples, kinds, the cell's bbox, at the mean position of
        its listings); a cell of one listing is that listing's point."""
        kinds_count = len(KIND_IDS)
        by_code = grid.by_code
        by_kind = by_code[:, :kinds_count] + by_code[:, kinds_count:]
        counts = by_kind.sum(axis=1)
        occupied = np.flatnonzero(counts)
        per_world = 2.0**grid.level * 256 / CELL_PX
        by_kind, n = by_kind[occupied], counts[occupied]
        samples = by_code[occupied, kinds_count:].sum(axis=1)
        lon_mean = grid.lon[occupied] / n / FIXED
        lat_mean = grid.lat[occupied] / n / FIXED
        singles = n == 1
        single_rows = np.rint(grid.row[occupied[singles]]).astype(np.int64)
        cx, cy = occupied % grid.width + grid.x0, occupied // grid.width + grid.y0
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
                    f'{{"type":"Feature","id":"c{grid.level}-{int(cx[i])}-{int(cy[i])}",'
                    f'"geometry":{{"type":"Point","coordinates":[{lon_mean[i]:.5f},'
                    f'{lat_mean[i]:.5f}]}},"properties":{{"cluster":true,"count":{count},'
                    f'"samples":{int(samples[i])},"kinds":{{{kinds}}},'
                    f'"bbox":[{west[i]:.5f},{south[i]:.5f},{east[i]:.5f},{north[i]:.5f}]}}}}'
                ).encode()
            )
        return out

    def answer(
        self, query: SearchQuery, zoom: int | None = None, snap: Snapshot | None = None
    ) -> MapAnswer:
        """The FeatureCollection for `query`: every point (in pages by limit/offset) without `zoom`; with
        `zoom`, points at street zoom or for a view of few listings, else one feature per grid cell."""
        snap = snap or self.snapshot()
        rows: np.ndarray | None = None
        mask: np.ndarray | None = None
        ranked = not _snapshot_only(query)
        if zoom is not None and zoom < STREET_ZOOM and not ranked and _every_visible(query):
            assert query.bbox is not None
            grid = self._view_cells(snap, zoom, query.bbox)  # no pass over every row
            total = int(grid.by_code.sum()) if grid is not None else 0
            if grid is not None and total > self.points_up_to:
                return self._cell_answer(snap, grid, zoom, total, 0)
        pending = 0
        if ranked:
            rows, pending = self._found(query, snap)
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
        if zoom is not None and (
            (zoom < STREET_ZOOM and with_point > self.points_up_to)
            or with_point > STREET_POINTS_MAX
        ):
            grid = self._cells(snap, zoom, query.bbox, rows=rows, mask=mask)
            return self._cell_answer(snap, grid, zoom, total, pending)
        if rows is None:
            assert mask is not None  # an unranked query has its mask
            rows = np.flatnonzero(mask)
        start = query.offset or 0
        stop = None if query.limit is None else start + query.limit
        parts = self._points(snap, self._ordered(snap, rows, ranked, start, stop))
        head = _head(total, pending)
        if zoom is not None:
            head.append(b',"clustered":false')
        body = b"".join((*head, b',"features":[', b",".join(parts), b"]}"))
        return MapAnswer(body, total, False, len(parts), snap)

    def _cell_answer(
        self, snap: Snapshot, grid: Grid | None, zoom: int, total: int, pending: int
    ) -> MapAnswer:
        parts = self._encode_cells(snap, grid) if grid is not None else []
        level = grid.level if grid is not None else zoom
        head = [*_head(total, pending), b',"clustered":true,"level":', str(level).encode()]
        body = b"".join((*head, b',"features":[', b",".join(parts), b"]}"))
        return MapAnswer(body, total, True, len(parts), snap)

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
