"""Places: districts (the gazetteer), service areas and placement of a listing from its address, district
or point, with caches keyed on the districts' version and the change-log head."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from sqlmodel import Session, col, select

from resdb import geo
from resdb.db import read_session, write_session
from resdb.directory_base import DirectoryBase
from resdb.models import (
    District,
    Listing,
    Meta,
    ServiceArea,
)
from resdb.validation import Problem


def towns_at(
    gazetteer: geo.Gazetteer, lons: np.ndarray, lats: np.ndarray
) -> list[geo.DistrictRecord | None]:
    """The 町字 holding each point, as `Gazetteer.town_at` answers one (the lowest-numbered of the
    overlapping areas), for many points in one STRtree query."""
    if not len(lons):
        return []
    points = shapely.points(lons, lats)
    found = gazetteer._town_tree.query(points, predicate="intersects")
    best = np.full(len(lons), -1, dtype=np.int64)
    if found.shape[1]:
        order = np.lexsort((found[1], found[0]))  # by point, then area number
        point_ids, area_ids = found[0][order], found[1][order]
        first = np.r_[True, point_ids[1:] != point_ids[:-1]]
        best[point_ids[first]] = area_ids[first]
    records = gazetteer._town_records
    return [records[int(i)] if i >= 0 else None for i in best]


class Places(DirectoryBase):
    """Districts, service areas and placement (mixed into `Directory`)."""

    def load_districts(
        self, records: Iterable[geo.DistrictRecord], *, replace_approximate: bool = True
    ) -> int:
        """Store district areas; real polygons replace approximations of the same name, never the reverse."""
        count = 0
        with write_session(self.engine) as session:
            for record in records:
                existing = session.exec(
                    select(District).where(
                        District.municipality_code == record.municipality_code,
                        District.level == record.level,
                        District.name == record.name,
                    )
                ).first()
                if existing is not None and record.approximate and not existing.approximate:
                    continue
                if existing is not None and not replace_approximate:
                    continue
                point = None if record.geometry.is_empty else record.geometry.representative_point()
                lat = record.lat if record.lat is not None else (point.y if point else None)
                lon = record.lon if record.lon is not None else (point.x if point else None)
                values: dict[str, Any] = {
                    "kana": record.kana,
                    "geometry": json.dumps(mapping(record.geometry)),
                    "approximate": record.approximate,
                    "method": record.method,
                    "source": record.source,
                    "members": list(record.members),
                    "lat": lat,
                    "lon": lon,
                }
                if existing is None:
                    session.add(
                        District(
                            municipality_code=record.municipality_code,
                            name=record.name,
                            level=record.level,
                            **values,
                        )
                    )
                else:
                    for key, value in values.items():
                        setattr(existing, key, value)
                count += 1
            meta = session.get(Meta, "districts")
            if meta is None:
                session.add(Meta(key="districts", value="1"))
            else:
                meta.value = str(int(meta.value) + 1)
        self.resolve_service_areas()
        return count

    def districts(
        self, municipality_code: str | None = None, level: str | None = None
    ) -> list[dict[str, Any]]:
        with read_session(self.engine) as session:
            statement = select(District).order_by(
                District.municipality_code, District.level, District.name
            )
            if municipality_code:
                statement = statement.where(District.municipality_code == municipality_code)
            if level:
                statement = statement.where(District.level == level)
            rows = session.exec(statement).all()
        return [
            {
                "municipality_code": r.municipality_code,
                "name": r.name,
                "kana": r.kana,
                "level": r.level,
                "approximate": r.approximate,
                "method": r.method,
                "source": r.source,
                "members": r.members,
                "geometry": json.loads(r.geometry),
                "lat": r.lat,
                "lon": r.lon,
            }
            for r in rows
        ]

    def districts_version(self) -> str:
        """The districts' version (bumped by every `load_districts`): read once per web request, in the
        same session as the change-log head."""
        return self._revision_facts()[1]

    def gazetteer(self) -> geo.Gazetteer:
        """The gazetteer of the stored districts, rebuilt when their version moved (one query per call;
        a bulk caller resolves it once per batch and passes it on)."""
        revision = self.districts_version()
        if self._gazetteer_cache is None or self._gazetteer_cache[0] != revision:
            records = [
                geo.DistrictRecord(
                    municipality_code=d["municipality_code"],
                    name=d["name"],
                    kana=d["kana"],
                    level=d["level"],
                    geometry=shape(d["geometry"]),
                    approximate=d["approximate"],
                    method=d["method"] or "",
                    source=d["source"] or "",
                    members=list(d["members"] or []),
                    lat=d["lat"],
                    lon=d["lon"],
                )
                for d in self.districts()
            ]
            self._gazetteer_cache = (revision, geo.Gazetteer(records))
        return self._gazetteer_cache[1]

    def area_index(self) -> geo.AreaIndex:
        revision = self.revision()
        if self._area_cache is None or self._area_cache[0] != revision:
            with read_session(self.engine) as session:
                rows = session.exec(
                    select(ServiceArea.listing_id, ServiceArea.geometry)
                    .join(Listing, col(Listing.id) == col(ServiceArea.listing_id))
                    .where(Listing.status == "published")
                ).all()
            self._area_cache = (
                revision,
                geo.AreaIndex([(listing_id, shape(json.loads(g))) for listing_id, g in rows]),
            )
        return self._area_cache[1]

    def areas_lookup(self, lat: float, lon: float) -> list[dict[str, Any]]:
        """The listings (centers) whose service area holds the point, with the town it falls in."""
        return [self.public_view(x) for x in self.get_many(self.area_index().lookup(lat, lon))]

    def place(
        self,
        clean: dict[str, Any],
        row: int | None = None,
        gazetteer: geo.Gazetteer | None = None,
    ) -> list[Problem]:
        """Fill coordinates / district / municipality from the address or district name (town level)."""
        problems: list[Problem] = []
        gazetteer = gazetteer or self.gazetteer()
        if clean.get("lat") is None or clean.get("lon") is None:
            placement = gazetteer.place_address(clean["address"]) if clean.get("address") else None
            if placement is None and clean.get("district"):
                geometry, unresolved = gazetteer.resolve(
                    [clean["district"]], clean.get("municipality_code")
                )
                if geometry is not None and not unresolved:
                    point = geometry.representative_point()
                    clean.update(
                        lat=round(point.y, 6), lon=round(point.x, 6), location_precision="district"
                    )
            elif placement is not None:
                clean.update(lat=placement.lat, lon=placement.lon, location_precision="town")
                clean["municipality_code"] = (
                    clean.get("municipality_code") or placement.municipality_code
                )
                clean["district"] = clean.get("district") or placement.town
            if clean.get("lat") is None and clean.get("service_area"):
                geometry, _resolved, unresolved = self._resolve_area(
                    clean["service_area"], clean.get("municipality_code"), gazetteer
                )
                if geometry is not None and not unresolved:
                    # No address given: shown at its 担当地区, and labelled so.
                    point = geometry.representative_point()
                    clean.update(
                        lat=round(point.y, 6),
                        lon=round(point.x, 6),
                        location_precision="service_area",
                    )
            if clean.get("lat") is None:
                problems.append(
                    Problem(
                        "address",
                        "住所・地区から場所を特定できません。緯度・経度を指定してください",
                        row,
                        clean.get("address") or clean.get("district"),
                    )
                )
        elif not clean.get("district") or not clean.get("municipality_code"):
            town = gazetteer.town_at(clean["lat"], clean["lon"])
            if town is not None:
                clean["district"] = clean.get("district") or town.name
                clean["municipality_code"] = (
                    clean.get("municipality_code") or town.municipality_code
                )
        return problems

    def place_many(
        self, rows: list[tuple[int, dict[str, Any]]], gazetteer: geo.Gazetteer
    ) -> dict[int, list[Problem]]:
        """`place` for a batch of validated rows (row number, clean): rows with a point but no 町字 are
        looked up together (one vectorized point-in-polygon query); the others one by one. Returns the
        problems of the rows that have any."""
        problems: dict[int, list[Problem]] = {}
        by_point: list[dict[str, Any]] = []
        for row_no, clean in rows:
            if clean.get("lat") is not None and clean.get("lon") is not None:
                if not clean.get("district") or not clean.get("municipality_code"):
                    by_point.append(clean)
                continue
            found = self.place(clean, row_no, gazetteer)
            if found:
                problems[row_no] = found
        if by_point:
            towns = towns_at(
                gazetteer,
                np.array([c["lon"] for c in by_point], dtype=float),
                np.array([c["lat"] for c in by_point], dtype=float),
            )
            for clean, town in zip(by_point, towns, strict=True):
                if town is not None:
                    clean["district"] = clean.get("district") or town.name
                    clean["municipality_code"] = (
                        clean.get("municipality_code") or town.municipality_code
                    )
        return problems

    def _resolve_area(
        self,
        area: dict[str, Any] | None,
        municipality_code: str | None,
        gazetteer: geo.Gazetteer | None = None,
    ) -> tuple[Any, list[str], list[str]]:
        if not area:
            return None, [], []
        if area.get("geometry"):
            return shape(area["geometry"]), [], []
        names = list(area.get("districts") or [])
        geometry, unresolved = (gazetteer or self.gazetteer()).resolve(names, municipality_code)
        return geometry, [n for n in names if n not in unresolved], unresolved

    def _store_area(self, session: Session, listing: Listing) -> list[str]:
        geometry, resolved, unresolved = self._resolve_area(
            listing.service_area, listing.municipality_code
        )
        existing = session.get(ServiceArea, listing.id)
        if geometry is None:
            if existing is not None:
                session.delete(existing)
            return unresolved
        payload = json.dumps(mapping(geometry))
        if existing is None:
            session.add(
                ServiceArea(
                    listing_id=listing.id,
                    geometry=payload,
                    districts=resolved,
                    unresolved=unresolved,
                )
            )
        else:
            existing.geometry, existing.districts, existing.unresolved = (
                payload,
                resolved,
                unresolved,
            )
        return unresolved

    def resolve_service_areas(self) -> int:
        """Re-resolve every center's 担当地区 (after districts change)."""
        with self._writing() as session:
            rows = session.exec(select(Listing).where(col(Listing.service_area).is_not(None))).all()
            for row in rows:
                self._store_area(session, row)
        return len(rows)
