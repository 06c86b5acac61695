"""The map's cell index: the base rows that can show on the map (a point, not a hidden kind) in Morton (Z)
order of their fine cell, so that every grid cell at every zoom is one run of that order, and per coarse
zoom level the sums of the occupied cells. A wide view is then summed from whole cells plus the exact rows
of the cells on its edge, and the rows changed since the base are added or taken away one by one: no pass
over every row per request."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

TABLE_LEVEL = 12  # zoom levels up to this one keep per-cell sums (~4 MB at 1,000,000 rows)
FIXED = (
    1e7  # positions are summed as whole 1e-7 degrees: exact in float64 and the same in any order
)
_MASKS = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)


def _spread(v: np.ndarray) -> np.ndarray:
    """The bits of 32-bit values moved to the even bit places of 64-bit ones."""
    out = np.asarray(v).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in _MASKS:
        out = (out | (out << np.uint64(shift))) & np.uint64(mask)
    return out


def morton(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Interleaved bits of cell x and y: a cell `k` levels coarser is the code shifted right by 2k."""
    code: np.ndarray = (_spread(x) | (_spread(y) << np.uint64(1))).astype(np.int64)
    return code


def fixed(degrees: np.ndarray) -> np.ndarray:
    """Degrees as whole 1e-7 degrees in float64 (bincount weights whose sums are exact)."""
    return np.rint(np.asarray(degrees) * FIXED)


def in_box(lon: np.ndarray, lat: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """Which positions lie in `box` (min lon, min lat, max lon, max lat; edges included)."""
    inside: np.ndarray = (lon >= box[0]) & (lon <= box[2]) & (lat >= box[1]) & (lat <= box[3])
    return inside


def z_order(px: np.ndarray, py: np.ndarray, shown: np.ndarray) -> dict[str, np.ndarray]:
    """The rows where `shown` holds, sorted by the Morton code of their fine cell, and the sorted codes:
    the arrays a map snapshot carries (`z_key`, `z_rows`)."""
    rows = np.flatnonzero(shown).astype(np.int32)
    key = morton(px[rows], py[rows])
    order = np.argsort(key, kind="stable")
    return {"z_key": key[order], "z_rows": rows[order]}


@dataclass(frozen=True)
class LevelCells:
    """The occupied cells of one zoom level, in Morton order: their codes, their run in the index's order
    and the sums of their base rows (counts per kind code, positions in FIXED units, row numbers)."""

    key: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    by_code: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    row: np.ndarray


@dataclass
class Grid:
    """The sums of one view's cells at one level, `width` × `height` cells from (x0, y0): what becomes
    the map's cell features."""

    level: int
    x0: int
    y0: int
    width: int
    height: int
    codes: int
    by_code: np.ndarray = field(init=False)  # cells × codes: listings per kind code
    lon: np.ndarray = field(init=False)  # sums of positions in FIXED units
    lat: np.ndarray = field(init=False)
    row: np.ndarray = field(init=False)  # sums of row numbers (a cell of one listing names its row)

    def __post_init__(self) -> None:
        cells = self.width * self.height
        self.by_code = np.zeros((cells, self.codes), dtype=np.int64)
        self.lon = np.zeros(cells)
        self.lat = np.zeros(cells)
        self.row = np.zeros(cells)

    def cells_of(
        self, shift: int, columns: dict[str, np.ndarray], rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's cell number in this grid, and whether the row lies on the grid at all."""
        x = (columns["px"][rows] >> shift).astype(np.int64) - self.x0
        y = (columns["py"][rows] >> shift).astype(np.int64) - self.y0
        on_grid = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        return y * self.width + x, on_grid

    def add(
        self, shift: int, columns: dict[str, np.ndarray], rows: np.ndarray, sign: int = 1
    ) -> None:
        """Count `rows` (inside the view) into their cells, or take them away with sign -1."""
        if not len(rows):
            return
        cells = self.width * self.height
        local = self.cells_of(shift, columns, rows)[0]
        codes = columns["code"][rows].astype(np.int64)
        self.by_code += sign * np.bincount(
            local * self.codes + codes, minlength=cells * self.codes
        ).reshape(cells, self.codes)
        self.lon += sign * np.bincount(local, weights=fixed(columns["lon"][rows]), minlength=cells)
        self.lat += sign * np.bincount(local, weights=fixed(columns["lat"][rows]), minlength=cells)
        self.row += sign * np.bincount(local, weights=rows.astype(np.float64), minlength=cells)


def _runs(z_rows: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """The rows of the runs [start, stop) of the index's order, concatenated."""
    lengths = stop - start
    keep = lengths > 0
    start, lengths = start[keep], lengths[keep]
    total = int(lengths.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    # position k of the result comes from start[run] + (k - offset[run])
    offsets = np.cumsum(lengths) - lengths
    at = np.repeat(start - offsets, lengths) + np.arange(total)
    return z_rows[at].astype(np.int64)


class CellIndex:
    """The Morton order of a snapshot's base rows (mapped from the host's snapshot: shared by its workers)
    and the per-level cell sums made from it on first use (per worker, a few MB)."""

    def __init__(self, z_key: np.ndarray, z_rows: np.ndarray) -> None:
        self.z_key = z_key
        self.z_rows = z_rows
        self._levels: dict[int, LevelCells] = {}
        self._lock = threading.Lock()

    def level(
        self, level: int, shift: int, columns: dict[str, np.ndarray], codes: int
    ) -> LevelCells:
        found = self._levels.get(level)
        if found is not None:
            return found
        with self._lock:
            found = self._levels.get(level)
            if found is None:
                found = self._levels[level] = self._sums(shift, columns, codes)
            return found

    def _sums(self, shift: int, columns: dict[str, np.ndarray], codes: int) -> LevelCells:
        cell = self.z_key >> (2 * shift)
        n = len(cell)
        start = np.flatnonzero(np.diff(cell, prepend=-1)) if n else np.empty(0, dtype=np.int64)
        stop = np.append(start[1:], n).astype(np.int64)
        count = len(start)
        which = np.repeat(np.arange(count, dtype=np.int64), stop - start)
        rows = self.z_rows
        by_code = np.bincount(
            which * codes + columns["code"][rows], minlength=count * codes
        ).reshape(count, codes)
        small = np.uint16 if count and int(by_code.max()) <= np.iinfo(np.uint16).max else np.int32
        return LevelCells(
            key=cell[start],
            start=start.astype(np.int32),
            stop=stop.astype(np.int32),
            by_code=by_code.astype(small),  # fine levels: few listings per cell and code
            lon=np.bincount(which, weights=fixed(columns["lon"][rows]), minlength=count),
            lat=np.bincount(which, weights=fixed(columns["lat"][rows]), minlength=count),
            row=np.bincount(which, weights=rows.astype(np.float64), minlength=count),
        )

    def view(
        self,
        grid: Grid,
        shift: int,
        columns: dict[str, np.ndarray],
        box: tuple[float, float, float, float],
        alive_after: int,
        retired: np.ndarray,
    ) -> None:
        """Sum the base rows of `grid`'s cells that lie in `box` and were alive after change
        `alive_after` into `grid`. The view's interior cells (wholly inside the box) come from the
        level's cell sums, which still count the base rows retired since: `retired` (shown base rows
        retired at or before `alive_after`) are taken away from those cells; the edge cells are read
        row by row."""
        local = np.arange(grid.width * grid.height, dtype=np.int64)
        x = local % grid.width + grid.x0
        y = local // grid.width + grid.y0
        codes = morton(x, y)
        last_x, last_y = grid.x0 + grid.width - 1, grid.y0 + grid.height - 1
        interior = (x > grid.x0) & (x < last_x) & (y > grid.y0) & (y < last_y)
        if grid.level <= TABLE_LEVEL:
            table = self.level(grid.level, shift, columns, grid.codes)
            at = np.searchsorted(table.key, codes)
            found = at < len(table.key)
            found[found] = table.key[at[found]] == codes[found]
            whole = interior & found
            cells, rows_at = local[whole], at[whole]
            grid.by_code[cells] += table.by_code[rows_at]
            grid.lon[cells] += table.lon[rows_at]
            grid.lat[cells] += table.lat[rows_at]
            grid.row[cells] += table.row[rows_at]
            edge = ~interior & found
            start, stop = table.start[at[edge]], table.stop[at[edge]]
        else:
            interior = np.zeros(len(local), dtype=bool)  # every cell's rows are read one by one
            step = 2 * shift
            start = np.searchsorted(self.z_key, codes << step)
            stop = np.searchsorted(self.z_key, (codes + 1) << step)
        rows = _runs(self.z_rows, start, stop)
        if len(rows):
            lon, lat = columns["lon"][rows], columns["lat"][rows]
            grid.add(
                shift, columns, rows[in_box(lon, lat, box) & (columns["died"][rows] > alive_after)]
            )
        if interior.any() and len(retired):
            cell, on_grid = grid.cells_of(shift, columns, retired)
            on_grid[on_grid] = interior[cell[on_grid]]
            grid.add(shift, columns, retired[on_grid], sign=-1)
