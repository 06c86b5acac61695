"""Reading listings: one, many, search, history and the public view of each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select

from resdb import geo, hosts
from resdb.db import read_session
from resdb.directory_base import DirectoryBase
from resdb.domain.travel import haversine_km
from resdb.intake import is_file_name
from resdb.listings import NotFound, listing_to_dict
from resdb.models import (
    Listing,
    ListingHistory,
)
from resdb.search import SearchQuery, SearchResult


class ListingReads(DirectoryBase):
    """Reads (mixed into `Directory`)."""

    def get(self, listing_id: str, *, include_unpublished: bool = False) -> dict[str, Any]:
        with read_session(self.engine) as session:
            row = session.get(Listing, listing_id)
        if row is None or (row.status != "published" and not include_unpublished):
            raise NotFound(listing_id)
        return listing_to_dict(row)

    def public_view(
        self, listing: dict[str, Any], gazetteer: geo.Gazetteer | None = None
    ) -> dict[str, Any]:
        """The listing as the public sees it: a private host's home only at its 町字 (see resdb.hosts), and
        no uploaded file's name as 出典."""
        if is_file_name(listing.get("source")):
            listing = {**listing, "source": None}
        if not listing.get("location_private"):
            return listing
        return hosts.public_view(listing, gazetteer or self.gazetteer())

    def get_public(self, listing_id: str) -> dict[str, Any]:
        """A published listing for public pages and the anonymous API."""
        return self.public_view(self.get(listing_id))

    def get_many(
        self, ids: Sequence[str], *, include_unpublished: bool = False
    ) -> list[dict[str, Any]]:
        """Listings in the order of `ids` (missing ones skipped): published ones only, or whatever their
        status with `include_unpublished`."""
        found: dict[str, Listing] = {}
        with read_session(self.engine) as session:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                for row in session.exec(select(Listing).where(col(Listing.id).in_(chunk))).all():
                    if include_unpublished or row.status == "published":
                        found[row.id] = row
        return [listing_to_dict(found[i]) for i in dict.fromkeys(ids) if i in found]

    def search_ids(self, query: SearchQuery) -> SearchResult:
        """Ranked ids only (no rows fetched): for the map, which needs thousands of points. The index is
        first brought up to the last committed change, or the changes after it read from memory; when
        neither could be done (a backlog being rebuilt), `pending_changes` says how many are missing."""
        recent = self.current_changes()
        result = self.index.search(query, recent)
        seen = recent.seen if recent is not None else self.index.cursor()
        result.pending_changes = max(0, self.head_seq() - seen) if seen is not None else 0
        return result

    def search(self, query: SearchQuery) -> dict[str, Any]:
        """Ranked listings: {"items": [...], "total": n, "pending_changes": n} (see `search_ids`); each item
        carries `distance_km` when a point is given."""
        result = self.search_ids(query)
        items = [self.public_view(x) for x in self.get_many(result.ids)]
        if len(items) != len(
            result.ids
        ):  # a listing changed between the index and the rows: ask again
            result = self.search_ids(query)
            items = [self.public_view(x) for x in self.get_many(result.ids)]
        hits = {hit.id: hit for hit in result.hits}
        for item in items:
            hit = hits[item["id"]]
            if hit.distance_km is None and query.near and item.get("lat") is not None:
                hit.distance_km = haversine_km(
                    query.near[0], query.near[1], item["lat"], item["lon"]
                )
            item["distance_km"] = round(hit.distance_km, 3) if hit.distance_km is not None else None
            item["fuzzy"] = hit.fuzzy
        return {"items": items, "total": result.total, "pending_changes": result.pending_changes}

    def history(self, listing_id: str) -> list[dict[str, Any]]:
        with read_session(self.engine) as session:
            rows = session.exec(
                select(ListingHistory)
                .where(ListingHistory.listing_id == listing_id)
                .order_by(col(ListingHistory.id))
            ).all()
        return [
            {
                "version": r.version,
                "action": r.action,
                "actor": r.actor,
                "at": r.at.isoformat(),
                "before": r.before,
                "after": r.after,
                "note": r.note,
            }
            for r in rows
        ]

    def all_listings(self, *, include_unpublished: bool = False) -> list[dict[str, Any]]:
        with read_session(self.engine) as session:
            statement = select(Listing).order_by(Listing.id)
            if not include_unpublished:
                statement = statement.where(Listing.status == "published")
            return [listing_to_dict(row) for row in session.exec(statement).all()]
