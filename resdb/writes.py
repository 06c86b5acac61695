"""Writing one listing: create, update, verify, delete and restore, each with its history row and audit
entry in the same transaction."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlmodel import Session, select

from resdb.audit import audit
from resdb.directory_base import DirectoryBase
from resdb.listings import Conflict, NotFound, StaleEdit, WriteHook, listing_to_dict
from resdb.models import (
    Listing,
    ListingHistory,
    Organization,
    utcnow,
)
from resdb.validation import ValidationFailed, validate_listing

ACTION_AUDIT = {
    "create": "listing.create",
    "update": "listing.update",
    "verify": "listing.verify",
    "delete": "listing.delete",
    "restore": "listing.restore",
    "correction": "listing.correction",
}


class ListingWrites(DirectoryBase):
    """One listing's changes (mixed into `Directory`)."""

    def _organization_id(
        self, session: Session, operator: str | None, cache: dict[str, int] | None = None
    ) -> int | None:
        if not operator:
            return None
        if cache is not None and operator in cache:
            return cache[operator]
        org = session.exec(select(Organization).where(Organization.name == operator)).first()
        if org is None:
            org = Organization(name=operator)
            session.add(org)
            session.flush()
        if cache is not None and org.id is not None:
            cache[operator] = org.id
        return org.id

    @staticmethod
    def new_id(clean: dict[str, Any]) -> str:
        prefix = clean.get("municipality_code") or "res"
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def _history(
        self,
        session: Session,
        listing_id: str,
        version: int,
        action: str,
        actor: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        note: str | None = None,
    ) -> None:
        """The listing's history row and the audit entry of the same change (same transaction)."""
        session.add(
            ListingHistory(
                listing_id=listing_id,
                version=version,
                action=action,
                actor=actor[:200],
                before=before,
                after=after,
                note=note and note[:500],
            )
        )
        audit(
            session,
            actor,
            ACTION_AUDIT.get(action, f"listing.{action}"),
            "listing",
            listing_id,
            f"version {version}",
        )

    def _prepare(
        self, raw: dict[str, Any], *, partial: bool = False, row: int | None = None
    ) -> dict[str, Any]:
        clean, problems = validate_listing(raw, row, partial=partial)
        if not problems and not partial:
            problems += self.place(clean, row)
        if problems:
            raise ValidationFailed(problems)
        return clean

    def create(
        self, raw: dict[str, Any], actor: str, *, hook: WriteHook | None = None
    ) -> dict[str, Any]:
        clean = self._prepare(raw)
        clean.pop("version", None)
        listing_id = clean.pop("id", None) or self.new_id(clean)
        with self._writing() as session:
            if session.get(Listing, listing_id) is not None:
                raise Conflict(f"id {listing_id} は既に使われています")
            listing = Listing(id=listing_id, **clean)
            listing.organization_id = self._organization_id(session, listing.operator)
            session.add(listing)
            session.flush()
            self._store_area(session, listing)
            after = listing_to_dict(listing)
            if hook is not None:
                hook(session, None, after)
            self._history(session, listing_id, listing.version, "create", actor, None, after)
        return after

    def _editable(
        self, session: Session, listing_id: str, expected_version: int | None
    ) -> tuple[Listing, dict[str, Any]]:
        """The locked row and its current public form; NotFound, or StaleEdit when it moved on."""
        listing = self._lock_listing(session, listing_id)
        if listing is None or listing.status == "deleted":
            raise NotFound(listing_id)
        before = listing_to_dict(listing)
        if expected_version is not None and listing.version != expected_version:
            raise StaleEdit(before, expected_version)
        return listing, before

    def _record_change(
        self,
        session: Session,
        listing: Listing,
        before: dict[str, Any],
        action: str,
        actor: str,
        note: str | None = None,
        hook: WriteHook | None = None,
    ) -> dict[str, Any]:
        """Bump the version and keep the change in the listing's history (and the audit log); returns the new
        public form. `hook` sees before and after first and may refuse the change."""
        listing.version += 1
        listing.updated_at = utcnow()
        after = listing_to_dict(listing)
        if hook is not None:
            hook(session, before, after)
        self._history(session, listing.id, listing.version, action, actor, before, after, note)
        return after

    def update(
        self,
        listing_id: str,
        raw: dict[str, Any],
        actor: str,
        *,
        expected_version: int | None,
        action: str = "update",
        note: str | None = None,
        hook: WriteHook | None = None,
    ) -> dict[str, Any]:
        """Partial update; refused with StaleEdit when the listing moved past `expected_version`."""
        patch = self._prepare(raw, partial=True)
        patch.pop("id", None)
        patch.pop("version", None)
        with self._writing() as session:
            listing, before = self._editable(session, listing_id, expected_version)
            merged = {
                **before,
                **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in patch.items()},
            }
            if "address" in patch and "lat" not in patch and "lon" not in patch:
                merged["lat"] = merged["lon"] = None  # place the new address
                if "district" not in patch:
                    merged["district"] = None
            placed, problems = validate_listing(
                {k: merged[k] for k in merged if k not in {"status", "updated_at", "version"}}
            )
            if not problems:
                problems = self.place(placed)
            if problems:
                raise ValidationFailed(problems)
            for key in ("lat", "lon", "district", "municipality_code", "location_precision"):
                if placed.get(key) is not None and patch.get(key) is None:
                    patch[key] = placed[key]
            changed = {k: v for k, v in patch.items() if getattr(listing, k) != v}
            if not changed:
                if hook is not None:
                    hook(session, before, before)
                return before
            for key, value in changed.items():
                setattr(listing, key, value)
            if "operator" in changed:
                listing.organization_id = self._organization_id(session, listing.operator)
            if "service_area" in changed or "municipality_code" in changed:
                self._store_area(session, listing)
            return self._record_change(session, listing, before, action, actor, note, hook)

    def verify(
        self,
        listing_id: str,
        actor: str,
        *,
        on: date | None = None,
        expected_version: int | None = None,
        hook: WriteHook | None = None,
    ) -> dict[str, Any]:
        """「確認しました」: the facts were checked today."""
        return self.update(
            listing_id,
            {"verified_at": (on or date.today()).isoformat()},
            actor,
            expected_version=expected_version,
            action="verify",
            hook=hook,
        )

    def delete(
        self,
        listing_id: str,
        actor: str,
        *,
        expected_version: int | None,
        hook: WriteHook | None = None,
    ) -> dict[str, Any]:
        """Soft delete: hidden everywhere, kept with its history, restorable."""
        with self._writing() as session:
            listing, before = self._editable(session, listing_id, expected_version)
            listing.status = "deleted"
            return self._record_change(session, listing, before, "delete", actor, None, hook)

    def restore(
        self,
        listing_id: str,
        actor: str,
        *,
        to_version: int | None = None,
        hook: WriteHook | None = None,
    ) -> dict[str, Any]:
        """Undo a delete, or bring back the content a listing had at `to_version`."""
        with self._writing() as session:
            listing = self._lock_listing(session, listing_id)
            if listing is None:
                raise NotFound(listing_id)
            before = listing_to_dict(listing)
            if to_version is None:
                snapshot = {"status": "published"}
            else:
                entry = session.exec(
                    select(ListingHistory).where(
                        ListingHistory.listing_id == listing_id,
                        ListingHistory.version == to_version,
                    )
                ).first()
                if entry is None or entry.after is None:
                    raise NotFound(f"{listing_id} version {to_version}")
                snapshot = {
                    k: v for k, v in entry.after.items() if k not in {"version", "updated_at", "id"}
                }
                snapshot["status"] = (
                    "published"
                    if snapshot.get("status") == "deleted"
                    else snapshot.get("status", "published")
                )
            clean, problems = validate_listing(snapshot, partial=True)
            if problems:
                raise ValidationFailed(problems)
            for key, value in clean.items():
                setattr(listing, key, value)
            listing.status = snapshot.get("status", "published")
            self._store_area(session, listing)
            return self._record_change(
                session,
                listing,
                before,
                "restore",
                actor,
                f"version {to_version}" if to_version else None,
                hook,
            )
