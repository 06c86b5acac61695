"""Map markers fast: every published listing's compact GeoJSON feature serialized once, kept in step with
the change log (an edit re-encodes only the listings it changed), selected by bbox with numpy (or by the
index for text/filter queries) and joined without re-encoding."""

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

from resdb.directory import ChangesPruned, Directory
from resdb.domain.vocab import HIDDEN_IN_SEARCH_KINDS, KINDS
from resdb.search import SearchQuery
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
    sort_keys: list[tuple[Any, ...]]
    hidden: np.ndarray  # venues: shown only as their own layer (include_venues or kind=venue)


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
            "id": listing["id"],
            "name": listing.get("name") or "",
            "kind": kind,
            "kind_label": KINDS.get(kind, KINDS["other"]),
            "is_sample": bool(listing.get("is_sample")),
            "next": _when(listing, today),
            "cost": None if listing.get("cost_yen") is None else yen(listing.get("cost_yen")),
        },
    }


def _sort_key(listing: dict[str, Any]) -> tuple[Any, ...]:
    # Real listings before invented samples, then by kind and reading.
    return (
        bool(listing.get("is_sample")),
        _KIND_ORDER.get(listing.get("kind") or "other", 99),
        listing.get("name_kana") or listing.get("name") or "",
        listing["id"],
    )


_Entry = tuple[tuple[Any, ...], str, bytes, float, float, bool, str, bool]


def _entry(listing: dict[str, Any], today: date | None) -> _Entry:
    has_point = listing.get("lat") is not None and listing.get("lon") is not None
    return (
        _sort_key(listing),
        listing["id"],
        json.dumps(
            compact_feature(listing, today), ensure_ascii=False, separators=(",", ":")
        ).encode(),
        float(listing["lon"]) if has_point else 0.0,
        float(listing["lat"]) if has_point else 0.0,
        has_point,
        listing.get("municipality_code") or "",
        listing.get("kind") in HIDDEN_IN_SEARCH_KINDS,
    )


def _assemble(revision: str, entries: list[_Entry]) -> Snapshot:
    entries.sort(key=lambda entry: entry[0])
    count = len(entries)
    ids = [entry[1] for entry in entries]
    lon = np.fromiter((entry[3] for entry in entries), dtype=np.float64, count=count)
    lat = np.fromiter((entry[4] for entry in entries), dtype=np.float64, count=count)
    has_point = np.fromiter((entry[5] for entry in entries), dtype=bool, count=count)
    municipality = np.empty(count, dtype=object)
    municipality[:] = [entry[6] for entry in entries]
    bounds: dict[str, tuple[float, float, float, float]] = {}
    for code in {m for m in municipality if m}:
        mask = (municipality == code) & has_point
        if mask.any():
            bounds[code] = (
                float(lon[mask].min()),
                float(lat[mask].min()),
                float(lon[mask].max()),
                float(lat[mask].max()),
            )
    if has_point.any():
        bounds[""] = (
            float(lon[has_point].min()),
            float(lat[has_point].min()),
            float(lon[has_point].max()),
            float(lat[has_point].max()),
        )
    hidden = np.fromiter((entry[7] for entry in entries), dtype=bool, count=count)
    return Snapshot(
        revision,
        ids,
        [entry[2] for entry in entries],
        lon,
        lat,
        has_point,
        municipality,
        {listing_id: n for n, listing_id in enumerate(ids)},
        bounds,
        [entry[0] for entry in entries],
        hidden,
    )


def build_snapshot(directory: Directory, revision: str, today: date | None = None) -> Snapshot:
    """`revision` is the directory's revision, then `@` and the day the next dates are counted from.
    Private hosts appear at their 町字 only (the public view)."""
    return _assemble(
        revision, [_entry(listing, today) for listing in directory.iter_published(public=True)]
    )


def update_snapshot(
    old: Snapshot, directory: Directory, revision: str, today: date | None = None
) -> Snapshot:
    """The snapshot moved forward along the change log: only changed listings are fetched and encoded
    again (a full build when the day or the districts changed, the log was pruned or the batch is large)."""
    old_seq, _, old_rest = old.revision.partition("/")
    if revision.partition("/")[2] != old_rest:
        return build_snapshot(directory, revision, today)
    try:
        changed = {listing_id for _, listing_id in directory.changes_since(int(old_seq))}
    except ChangesPruned:
        return build_snapshot(directory, revision, today)
    if len(changed) > max(2000, len(old.ids) // 4):
        return build_snapshot(directory, revision, today)
    entries = [
        (
            old.sort_keys[n],
            listing_id,
            old.encoded[n],
            float(old.lon[n]),
            float(old.lat[n]),
            bool(old.has_point[n]),
            str(old.municipality[n]),
            bool(old.hidden[n]),
        )
        for n, listing_id in enumerate(old.ids)
        if listing_id not in changed
    ]
    entries.extend(
        _entry(directory.public_view(listing), today)
        for listing in directory.get_many(sorted(changed))
    )
    return _assemble(revision, entries)


def _bbox_only(query: SearchQuery) -> bool:
    """Whether the query filters by nothing but bbox / municipality (answerable from the snapshot alone)."""
    return not (
        query.q
        or query.kinds
        or query.targets
        or query.weekdays
        or query.open_on
        or query.max_cost is not None
        or query.barrier_free
        or query.pickup
        or query.near
        or query.ids is not None
    )


class FeatureCache:
    """One snapshot per app, moved forward when `directory.revision()` moves (checked on every use), rebuilt
    when the day changes (next dates)."""

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
            if self._snapshot is None:
                self._snapshot = build_snapshot(self.directory, revision, today)
            elif self._snapshot.revision != revision:
                self._snapshot = update_snapshot(self._snapshot, self.directory, revision, today)
            return self._snapshot

    def bounds(
        self, municipality_code: str | None = None
    ) -> tuple[float, float, float, float] | None:
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
                mask &= (
                    snap.has_point
                    & (snap.lon >= min_lon)
                    & (snap.lon <= max_lon)
                    & (snap.lat >= min_lat)
                    & (snap.lat <= max_lat)
                )
            if query.municipality_code:
                mask &= snap.municipality == query.municipality_code
            if not query.include_venues:
                mask &= ~snap.hidden
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
        body = b"".join(
            (
                b'{"type":"FeatureCollection","total":',
                str(total).encode(),
                b',"features":[',
                b",".join([encoded[p] for p in positions]),
                b"]}",
            )
        )
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
