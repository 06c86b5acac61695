"""AreaIndex: which service areas hold a point (STRtree over prepared geometries)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


class AreaIndex:
    """Which service areas hold a point: STRtree over prepared geometries (answers in microseconds)."""

    def __init__(self, areas: Iterable[tuple[str, BaseGeometry | None]]) -> None:
        ids: list[str] = []
        geometries: list[BaseGeometry] = []
        for area_id, geometry in areas:
            if geometry is None or geometry.is_empty:
                continue
            ids.append(area_id)
            geometries.append(geometry)
        self._ids = ids
        self._geometries = np.array(geometries, dtype=object)
        shapely.prepare(self._geometries)
        self._tree = shapely.STRtree(self._geometries)

    def __len__(self) -> int:
        return len(self._ids)

    def lookup(self, lat: float, lon: float) -> list[str]:
        """Ids of the areas covering the point, in the order they were given."""
        if not self._ids:
            return []
        point = shapely.Point(lon, lat)
        candidates = self._tree.query(point)
        if len(candidates) == 0:
            return []
        candidates = np.sort(candidates)
        hits = candidates[shapely.intersects(self._geometries[candidates], point)]
        return [self._ids[int(position)] for position in hits]
