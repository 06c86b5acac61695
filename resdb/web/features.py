"""Map markers fast: every published listing's compact GeoJSON feature serialized once per store revision,
selected by bbox with numpy (or by the index for text/filter queries) and joined without re-encoding."""

from __future__ import annotations

import gzip
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np

from resdb.directory import Directory
from resdb.search import SearchQuery
from resdb.vocab import KINDS
from resdb.web.labels import session_ja, upcoming, yen

_KIND_ORDER = {kind: n for n, kind in enumerate(KINDS)}


@dataclass
class Snapshot:
    """Serialized features of one store revision, with coordinate arrays for bbox selection."""

    revision: str
    ids: list[str]
    encoded: list[bytes]
    lon: np.ndarray
    lat: np.ndarray
    has_point: np.ndarray
    municipality: np.ndarray
    position: dict[str, int]
    bounds_by_municipality: dict[str, tuple[float, float, float, float]]


def _when(listing: dict[str, Any], today: date | None) -> str | None:
    """「次回 12月3日（水）13:30」, or None (no schedule, or no session in the next six weeks)."""
    if today is None or not listing.get("schedule"):
        return None
    sessions = upcoming(listing, today, count=1)
    return f"次回 {session_ja(sessions[0])}" if sessions else None


def compact_feature(listing: dict[str, Any], today: date | None = None) -> dict[str, Any]:
    """The map's feature: a point and id, name, kind, kind_label, is_sample; with `today`, also the next
    session (`next`) and the cost in words (`cost`, None when unknown)."""
    geometry = None
    if listing.get("lat") is not None and listing.get("lon") is not None:
        geometry = {"type": "Point", "coordinates": [listing["lon"], listing["lat"]]}
    kind = listing.get("kind") or "other"
    return {
        "type": "Feature",
        "id": listing["id"],
        "geometry": geometry,
        "properties": {
            "id": listing["id"], "name": listing.get("name") or "", "kind": kind,
            "kind_label": KINDS.get(kind, KINDS["other"]), "is_sample": bool(listing.get("is_sample")),
            "next": _when(listing, today),
            "cost": None if listing.get("cost_yen") is None else yen(listing.get("cost_yen")),
        },
    }


def _sort_key(listing: dict[str, Any]) -> tuple[Any, ...]:
    # Real listings before invented samples, then by kind and reading.
    return (bool(listing.get("is_sample")), _KIND_ORDER.get(listing.get("kind") or "other", 99),
            listing.get("name_kana") or listing.get("name") or "", listing["id"])


def build_snapshot(directory: Directory, revision: str, today: date | None = None) -> Snapshot:
    listings = sorted(directory.iter_published(), key=_sort_key)
    count = len(listings)
    lon = np.zeros(count, dtype=np.float64)
    lat = np.zeros(count, dtype=np.float64)
    has_point = np.zeros(count, dtype=bool)
    municipality = np.empty(count, dtype=object)
    ids: list[str] = []
    encoded: list[bytes] = []
    for n, listing in enumerate(listings):
        ids.append(listing["id"])
        encoded.append(json.dumps(compact_feature(listing, today), ensure_ascii=False, separators=(",", ":")).encode())
        if listing.get("lat") is not None and listing.get("lon") is not None:
            lon[n], lat[n], has_point[n] = listing["lon"], listing["lat"], True
        municipality[n] = listing.get("municipality_code") or ""
    bounds: dict[str, tuple[float, float, float, float]] = {}
    for code in {m for m in municipality if m}:
        mask = (municipality == code) & has_point
        if mask.any():
            bounds[code] = (float(lon[mask].min()), float(lat[mask].min()), float(lon[mask].max()), float(lat[mask].max()))
    if has_point.any():
        bounds[""] = (float(lon[has_point].min()), float(lat[has_point].min()),
                      float(lon[has_point].max()), float(lat[has_point].max()))
    return Snapshot(revision, ids, encoded, lon, lat, has_point, municipality,
                    {listing_id: n for n, listing_id in enumerate(ids)}, bounds)


def _bbox_only(query: SearchQuery) -> bool:
    """Whether the query filters by nothing but bbox / municipality (answerable from the snapshot alone)."""
    return not (query.q or query.kinds or query.targets or query.weekdays or query.open_on
                or query.max_cost is not None or query.barrier_free or query.pickup or query.near or query.ids is not None)


class FeatureCache:
    """One snapshot per app, rebuilt when `directory.revision()` moves or the day changes (next dates)."""

    def __init__(self, directory: Directory, today: Callable[[], date] | None = None) -> None:
        self.directory = directory
        self.today = today
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._gzipped: OrderedDict[str, bytes] = OrderedDict()
        self._gzip_lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        today = self.today() if self.today else None
        revision = f"{self.directory.revision()}@{today.isoformat() if today else ''}"
        current = self._snapshot
        if current is not None and current.revision == revision:
            return current
        with self._lock:
            if self._snapshot is None or self._snapshot.revision != revision:
                self._snapshot = build_snapshot(self.directory, revision, today)
            return self._snapshot

    def bounds(self, municipality_code: str | None = None) -> tuple[float, float, float, float] | None:
        """The box around a municipality's listings (or all of them)."""
        found = self.snapshot().bounds_by_municipality
        return found.get(municipality_code or "") or found.get("")

    def select(self, query: SearchQuery) -> tuple[list[int], int, Snapshot]:
        """Positions in the snapshot answering `query` (ranked when it has words), the total, the snapshot."""
        snap = self.snapshot()
        if _bbox_only(query):
            mask = np.ones(len(snap.ids), dtype=bool)
            if query.bbox is not None:
                min_lon, min_lat, max_lon, max_lat = query.bbox
                mask &= snap.has_point & (snap.lon >= min_lon) & (snap.lon <= max_lon) & (snap.lat >= min_lat) & (snap.lat <= max_lat)
            if query.municipality_code:
                mask &= snap.municipality == query.municipality_code
            positions = np.flatnonzero(mask).tolist()
        else:
            result = self.directory.search_ids(replace(query, limit=None, offset=0))
            positions = [snap.position[i] for i in result.ids if i in snap.position]
        total = len(positions)
        start = query.offset or 0
        end = None if query.limit is None else start + query.limit
        return positions[start:end], total, snap

    def geojson(self, query: SearchQuery) -> tuple[bytes, int, int, Snapshot]:
        """The FeatureCollection bytes, the number of features in it, the total, and the snapshot used."""
        positions, total, snap = self.select(query)
        encoded = snap.encoded
        body = b"".join((
            b'{"type":"FeatureCollection","total":', str(total).encode(), b',"features":[',
            b",".join([encoded[p] for p in positions]), b"]}",
        ))
        return body, len(positions), total, snap

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
