"""The directory core (framework-free): validate → store → index → query for listings, history,
districts and service areas. Flask routes and the CLI are thin glue over `Directory`."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined
from rapidfuzz import fuzz
from shapely.geometry import mapping, shape
from sqlalchemy import event, func, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from resdb import config, fields, geo, hosts
from resdb.audit import audit
from resdb.db import ensure_schema, is_sqlite, make_engine, read_session, write_session
from resdb.domain.textnorm import normalize
from resdb.domain.travel import haversine_km
from resdb.intake import is_file_name
from resdb.models import (
    ChangeLog,
    District,
    Listing,
    ListingHistory,
    Meta,
    Organization,
    ServiceArea,
    utcnow,
)
from resdb.search import IndexUnhealthy, SearchIndex, SearchQuery, SearchResult
from resdb.validation import Problem, ValidationFailed, validate_listing

# The contract's listing keys, in export order, followed by this product's extensions (resdb.fields).
CONTRACT_FIELDS = fields.CONTRACT_FIELDS
EXTENSION_FIELDS = fields.EXTENSION_FIELDS
PUBLIC_FIELDS = fields.PUBLIC_FIELDS
# Called inside a write's transaction with (session, before, after): may refuse (raise) or add rows.
WriteHook = Callable[[Session, "dict[str, Any] | None", "dict[str, Any]"], None]
ACTION_AUDIT = {
    "create": "listing.create",
    "update": "listing.update",
    "verify": "listing.verify",
    "delete": "listing.delete",
    "restore": "listing.restore",
    "correction": "listing.correction",
}
BULK_REINDEX_THRESHOLD = (
    5000  # a larger backlog of changes is rebuilt (beside the live index), not applied
)
APPLY_BATCH = 500
log = logging.getLogger(__name__)
DUPLICATE_NAME_SCORE = 85.0
DUPLICATE_DISTANCE_KM = 0.2
DUPLICATE_CHECK_ROWS = 100_000  # rows of one import compared for likely duplicates
MAX_REPORTED_PROBLEMS = 10_000  # problems kept in a report (all are counted)
MAX_REPORTED_DUPLICATES = 1_000
DUPLICATE_CELL_LIMIT = 200  # rows kept per ~300 m grid cell for the duplicate check


class ChangesPruned(LookupError):
    """The change log was pruned past this position: start over from the database."""


class NotFound(LookupError):
    pass


class StaleEdit(Exception):
    """The listing changed since the editor read it; nothing was written."""

    def __init__(self, current: dict[str, Any], expected_version: int | None) -> None:
        super().__init__(
            f"listing {current['id']} is at version {current['version']}, not {expected_version}"
        )
        self.current = current
        self.expected_version = expected_version


class Conflict(Exception):
    pass


def listing_to_dict(row: Listing) -> dict[str, Any]:
    """The contract's flat JSON shape (plus extensions) of a stored listing."""
    data: dict[str, Any] = {}
    for name in PUBLIC_FIELDS:
        value = getattr(row, name)
        if isinstance(value, date):
            value = value.isoformat()
        data[name] = value
    return data


@dataclass
class ImportReport:
    """What an import found and did; `problems` empty means it could be (or was) written."""

    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False
    skipped_rows: list[int] = field(
        default_factory=list
    )  # rows with problems (left out by a good-rows-only import)
    problem_count: int = 0  # every problem found (only the first MAX_REPORTED_PROBLEMS are kept)
    status: str = "published"  # what new listings became

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "skipped": len(self.skipped_rows),
            "problem_count": self.problem_count,
            "skipped_rows": self.skipped_rows,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "dry_run": self.dry_run,
            "written": self.written,
            "problems": [p.as_dict() for p in self.problems],
            "warnings": [p.as_dict() for p in self.warnings],
            "likely_duplicates": self.duplicates,
        }


# --- every listing change enters the change log in its own transaction -------------------------
CHANGE_LOG_LOCK = 727_001  # PostgreSQL advisory lock: change-log numbers are taken in commit order


def queue_for_index(session: Session, listing_ids: Iterable[str]) -> None:
    """Note changed listings; they enter the change log just before this transaction commits."""
    session.info.setdefault("changed_ids", set()).update(listing_ids)


@event.listens_for(Session, "before_flush")
def _note_listing_changes(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get("directory") is None:
        return
    queue_for_index(
        session,
        (
            obj.id
            for obj in (*session.new, *session.dirty, *session.deleted)
            if isinstance(obj, Listing) and obj.id
        ),
    )


@event.listens_for(Session, "before_commit")
def _write_change_log(session: Session) -> None:
    """Append the transaction's changed listings to the change log, last thing before commit. On
    PostgreSQL a transaction-scoped advisory lock makes sequence numbers follow commit order, so a host
    that has applied change N has seen every change before N (SQLite writers are serialized anyway)."""
    if session.info.get("directory") is None:
        return
    session.flush()
    changed = sorted(session.info.pop("changed_ids", set()))
    if not changed:
        return
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})
    at = utcnow()
    session.execute(ChangeLog.__table__.insert(), [{"listing_id": i, "at": at} for i in changed])  # type: ignore[attr-defined]
    session.info["logged_changes"] = True


@event.listens_for(Session, "after_commit")
def _follow_after_commit(session: Session) -> None:
    """Bring this host's index up to the change just committed, when nobody else is already doing it
    (never waits: any search checks the log again before it answers)."""
    directory = session.info.get("directory")
    if directory is not None and session.info.pop("logged_changes", False):
        directory.try_follow_changes(wait=0.0)


@event.listens_for(Session, "after_soft_rollback")
def _forget_changes(session: Session, _previous: Any) -> None:
    session.info.pop("changed_ids", None)
    session.info.pop("logged_changes", None)


class Directory:
    """The portable directory over any SQLAlchemy database; `PostgresDirectory` overrides locking."""

    def __init__(self, engine: Engine, instance_dir: Path) -> None:
        self.engine = engine
        self.instance_dir = Path(instance_dir)
        self.index = SearchIndex(self.instance_dir / "index")
        self._area_cache: tuple[str, geo.AreaIndex] | None = None
        self._gazetteer_cache: tuple[str, geo.Gazetteer] | None = None
        self._rebuilder: threading.Thread | None = None
        self.serving = (
            False  # True in web workers: large catch-ups then rebuild in a background thread
        )

    @staticmethod
    def open(
        url: str | None = None, instance_dir: Path | None = None, *, ready: bool = True
    ) -> Directory:
        """The directory for a database URL (default from the configuration), made ready for use."""
        engine = make_engine(url or config.database_url())
        instance = Path(instance_dir) if instance_dir else config.instance_path()
        cls = Directory if is_sqlite(engine) else PostgresDirectory
        directory = cls(engine, instance)
        if ready:
            directory.ensure_ready()
        return directory

    # -- sessions ----------------------------------------------------------------------------
    def _writing(self):  # type: ignore[no-untyped-def]
        session_cm = write_session(self.engine)

        class _Tracked:
            def __enter__(inner) -> Session:
                inner.session = session_cm.__enter__()
                inner.session.info["directory"] = self
                return inner.session

            def __exit__(inner, *exc: Any) -> Any:
                return session_cm.__exit__(*exc)

        return _Tracked()

    def _lock_listing(self, session: Session, listing_id: str) -> Listing | None:
        """The row to change, locked for this transaction (SQLite already holds the write lock)."""
        return session.get(Listing, listing_id)

    # -- start-up and index health -----------------------------------------------------------
    def ensure_ready(self, progress: Callable[[int], None] | None = None) -> str:
        """Schema at head; index checked against the database and brought in step: 'ok', 'caught_up'
        or 'rebuilt'. A rebuild here is at start-up (`resdb serve`, `check`, `init`), never in a request."""
        ensure_schema(self.engine)
        status = "ok"
        cursor = self.index.cursor()
        try:
            if cursor is None or cursor < self._pruned_through():
                raise IndexUnhealthy("索引がありません")
            if cursor < self.head_seq():
                self.follow_changes(wait=600.0, rebuild_inline=True, progress=progress)
                status = "caught_up"
            self.index.check(self.published_count())
        except IndexUnhealthy:
            self.reindex(progress)
            status = "rebuilt"
        self.prune_change_log()
        return status

    @property
    def is_embedded(self) -> bool:
        """True for SQLite (one host); False for a server database that several hosts may share."""
        return is_sqlite(self.engine)

    def shared_secret(self) -> str:
        """A signing key kept in the database, generated once: every host of a shared database signs
        sessions and forms alike without configuring RESDB_SECRET_KEY on each."""
        with read_session(self.engine) as session:
            meta = session.get(Meta, "secret_key")
        if meta is None:
            try:
                with write_session(self.engine) as session:
                    session.add(Meta(key="secret_key", value=secrets.token_hex(32)))
            except IntegrityError:  # another host made it first
                pass
            with read_session(self.engine) as session:
                meta = session.get(Meta, "secret_key")
        assert meta is not None
        return meta.value

    def same_signing_key(self, key: str) -> bool:
        """Whether `key` is the one every other host of this database signs with: the first host to ask
        records the key's fingerprint (never the key); a host configured with another key is told at
        start-up, before its staff sessions and forms fail on every other request."""
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
        with read_session(self.engine) as session:
            meta = session.get(Meta, "signing_key_fingerprint")
        if meta is None:
            try:
                with write_session(self.engine) as session:
                    session.add(Meta(key="signing_key_fingerprint", value=fingerprint))
            except IntegrityError:
                return self.same_signing_key(key)
            return True
        return meta.value == fingerprint

    def published_count(self) -> int:
        with read_session(self.engine) as session:
            return session.exec(
                select(func.count()).select_from(Listing).where(Listing.status == "published")
            ).one()

    def head_seq(self) -> int:
        """The newest committed change-log number (0 for a store that never changed)."""
        with read_session(self.engine) as session:
            high = session.exec(select(func.max(ChangeLog.seq))).one()
        # Pruning always keeps the newest entry, so the pruned mark only matters for an empty log.
        return int(high) if high is not None else self._pruned_through()

    def _pruned_through(self) -> int:
        with read_session(self.engine) as session:
            meta = session.get(Meta, "change_log_pruned_through")
        return int(meta.value) if meta else 0

    def changes_since(self, seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        """(seq, listing id) of the changes after `seq`, oldest first; raises `ChangesPruned` when the
        log no longer reaches back that far (the caller must start over from the database)."""
        if seq < self._pruned_through():
            raise ChangesPruned(seq)
        with read_session(self.engine) as session:
            statement = (
                select(ChangeLog.seq, ChangeLog.listing_id)
                .where(ChangeLog.seq > seq)
                .order_by(ChangeLog.seq)
            )
            if limit is not None:
                statement = statement.limit(limit)
            return [(int(row[0]), row[1]) for row in session.exec(statement).all()]

    def prune_change_log(self, keep_days: int | None = None) -> int:
        """Drop change-log entries older than RESDB_CHANGE_LOG_DAYS (the newest one always stays); a host
        whose index is older than what remains rebuilds from the database. Returns entries removed."""
        days = (
            keep_days
            if keep_days is not None
            else int(config.setting("RESDB_CHANGE_LOG_DAYS") or 14)
        )
        cutoff = utcnow() - timedelta(days=days)
        with self._writing() as session:
            newest = session.exec(select(func.max(ChangeLog.seq))).one()
            high = session.exec(
                select(func.max(ChangeLog.seq)).where(col(ChangeLog.at) < cutoff)
            ).one()
            if high is None or newest is None:
                return 0
            high = min(int(high), int(newest) - 1)
            if high <= 0:
                return 0
            removed = session.exec(delete(ChangeLog).where(col(ChangeLog.seq) <= high)).rowcount  # type: ignore[attr-defined]
            meta = session.get(Meta, "change_log_pruned_through")
            if meta is None:
                session.add(Meta(key="change_log_pruned_through", value=str(high)))
            elif int(meta.value) < high:
                meta.value = str(high)
        return int(removed or 0)

    def revision(self) -> str:
        """What derived caches key on: the change-log head and the districts' version, read fresh on
        every call (one indexed query), so no cache answers from before the last committed change."""
        with read_session(self.engine) as session:
            districts = session.get(Meta, "districts")
        return f"{self.head_seq()}/{districts.value if districts else 0}"

    def iter_published(
        self, batch: int = 2000, *, public: bool = False
    ) -> Iterable[dict[str, Any]]:
        """Every published listing in id order; `public` shows private hosts at their 町字 only."""
        last = ""
        while True:
            with read_session(self.engine) as session:
                rows = session.exec(
                    select(Listing)
                    .where(Listing.status == "published", Listing.id > last)
                    .order_by(Listing.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield self.public_view(listing_to_dict(row)) if public else listing_to_dict(row)
            last = rows[-1].id

    def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the search index from the database (the truth) beside the live one, then catch up
        with what changed meanwhile. One rebuild at a time per host; a second caller waits for it."""
        with self.index.rebuild_lock.hold(wait=3600.0):
            high = (
                self.head_seq()
            )  # read before the rows: whatever commits later is applied after the swap
            count = self.index.rebuild(self.iter_published(public=True), high, progress)
        self.follow_changes(wait=600.0)
        return count

    def rebuild_in_background(self) -> bool:
        """Start a rebuild in a thread of this process unless one runs on this host (for a backlog too
        large to apply inside a request); requests keep answering from the live index meanwhile."""
        if self.index.rebuild_lock.busy() or (
            self._rebuilder is not None and self._rebuilder.is_alive()
        ):
            return False

        def run() -> None:
            try:
                self.reindex()
            except Exception:
                log.warning("background index rebuild failed", exc_info=True)

        self._rebuilder = threading.Thread(target=run, name="resdb-reindex", daemon=True)
        self._rebuilder.start()
        return True

    def follow_changes(
        self,
        wait: float = 1.0,
        *,
        rebuild_inline: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> bool:
        """Apply the committed changes this host's index has not seen, oldest first, until it is at the
        head of the change log. Returns True when the index is current. One applier per host at a time
        (a file lock); another caller waits up to `wait` seconds for it, then answers from the index as
        it is. A backlog larger than BULK_REINDEX_THRESHOLD is rebuilt instead: inline for the CLI and
        start-up (`rebuild_inline`, default: when this process is not serving requests), in a background
        thread otherwise, never in a request."""
        if rebuild_inline is None:
            rebuild_inline = not self.serving
        head = self.head_seq()
        cursor = self.index.cursor()
        if cursor is not None and cursor >= head:
            return True
        if (
            cursor is None
            or cursor < self._pruned_through()
            or head - cursor > BULK_REINDEX_THRESHOLD
        ):
            if rebuild_inline:
                self.reindex(progress)
                return True
            self.rebuild_in_background()
            return False
        with self.index.apply_lock.hold(wait) as got:
            if not got:
                return False
            while True:
                cursor = self.index.cursor()
                if cursor is None:
                    return False
                try:
                    changes = self.changes_since(cursor, limit=APPLY_BATCH)
                except ChangesPruned:
                    break
                if not changes:
                    return True
                self._apply_changes(changes)
        if rebuild_inline:
            self.reindex(progress)
            return True
        self.rebuild_in_background()
        return False

    def try_follow_changes(self, wait: float = 1.0) -> bool:
        """`follow_changes` that never raises (the database has committed; a failing index update is
        logged, and the change stays in the log for the next try)."""
        try:
            return self.follow_changes(wait)
        except Exception:
            log.warning(
                "search index update failed; the change stays in the change log", exc_info=True
            )
            return False

    def _apply_changes(self, changes: list[tuple[int, str]]) -> None:
        """Apply one batch of change-log entries to the index (the caller holds the apply lock)."""
        ids = sorted({listing_id for _, listing_id in changes})
        with read_session(self.engine) as session:
            rows = {
                row.id: row
                for row in session.exec(select(Listing).where(col(Listing.id).in_(ids))).all()
            }
        upserts = [
            self.public_view(listing_to_dict(rows[i]))
            for i in ids
            if i in rows and rows[i].status == "published"
        ]
        deletes = [i for i in ids if i not in rows or rows[i].status != "published"]
        problems = self.index.apply(upserts, deletes, changes[-1][0])
        for listing_id, reason in problems.items():
            log.warning("listing %s left out of the search index: %s", listing_id, reason)

    def index_problems(self) -> dict[str, str]:
        """Listings the search index could not hold (reported by `resdb check` and the editor)."""
        return self.index.problems()

    # -- reading -----------------------------------------------------------------------------
    def get(self, listing_id: str, *, include_unpublished: bool = False) -> dict[str, Any]:
        with read_session(self.engine) as session:
            row = session.get(Listing, listing_id)
        if row is None or (row.status != "published" and not include_unpublished):
            raise NotFound(listing_id)
        return listing_to_dict(row)

    def public_view(self, listing: dict[str, Any]) -> dict[str, Any]:
        """The listing as the public sees it: a private host's home only at its 町字 (see resdb.hosts), and
        no uploaded file's name as 出典."""
        if is_file_name(listing.get("source")):
            listing = {**listing, "source": None}
        if not listing.get("location_private"):
            return listing
        return hosts.public_view(listing, self.gazetteer())

    def get_public(self, listing_id: str) -> dict[str, Any]:
        """A published listing for public pages and the anonymous API."""
        return self.public_view(self.get(listing_id))

    def get_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Published listings in the order of `ids` (missing ones skipped)."""
        return [x for x in self.get_many_any(ids) if x["status"] == "published"]

    def search_ids(self, query: SearchQuery) -> SearchResult:
        """Ranked ids only (no rows fetched): for the map, which needs thousands of points. The index is
        first brought up to the last committed change."""
        self.try_follow_changes()
        return self.index.search(query)

    def search(self, query: SearchQuery) -> dict[str, Any]:
        """Ranked listings: {"items": [...], "total": n}; each item carries `distance_km` when a point is given."""
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
        return {"items": items, "total": result.total}

    def history(self, listing_id: str) -> list[dict[str, Any]]:
        with read_session(self.engine) as session:
            rows = session.exec(
                select(ListingHistory)
                .where(ListingHistory.listing_id == listing_id)
                .order_by(ListingHistory.id)
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

    # -- geography ---------------------------------------------------------------------------
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
                values = {
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

    def gazetteer(self) -> geo.Gazetteer:
        revision = self.revision().split("/")[1]
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
                    .join(Listing, Listing.id == ServiceArea.listing_id)
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

    def place(self, clean: dict[str, Any], row: int | None = None) -> list[Problem]:
        """Fill coordinates / district / municipality from the address or district name (town level)."""
        problems: list[Problem] = []
        gazetteer = self.gazetteer()
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
                    clean["service_area"], clean.get("municipality_code")
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

    def _resolve_area(
        self, area: dict[str, Any] | None, municipality_code: str | None
    ) -> tuple[Any, list[str], list[str]]:
        if not area:
            return None, [], []
        if area.get("geometry"):
            return shape(area["geometry"]), [], []
        names = list(area.get("districts") or [])
        geometry, unresolved = self.gazetteer().resolve(names, municipality_code)
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
            rows = session.exec(select(Listing).where(Listing.service_area.is_not(None))).all()  # type: ignore[union-attr]
            for row in rows:
                self._store_area(session, row)
        return len(rows)

    # -- writing -----------------------------------------------------------------------------
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

    # -- import ------------------------------------------------------------------------------
    def import_records(
        self,
        records: Iterable[tuple[int, dict[str, Any]]],
        *,
        actor: str,
        source_name: str,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        status: str = "published",
        good_rows_only: bool = False,
        source: str | None = None,
        hook: WriteHook | None = None,
        check: Callable[[int, dict[str, Any]], list[Problem]] | None = None,
    ) -> ImportReport:
        """Import (row number, raw record) pairs: all-or-nothing, or only the rows without problems when
        `good_rows_only`. New listings become `status` (draft = for review) unless the row says otherwise;
        `source` (an organisation or document, never a file name) fills rows without 出典; `source_name`
        (the file) goes to the history only. dry_run reports and writes nothing and keeps only a few facts
        per row (records may be a lazy stream: memory stays flat however long the file). `check` names more
        problems of a valid, placed row (the dry run reports them as the real import would refuse them);
        `hook` sees each row's before/after inside the write's transaction."""
        report = ImportReport(dry_run=dry_run, status=status)
        cleaned: list[tuple[int, dict[str, Any]]] = []
        light: list[tuple[int, dict[str, Any]]] = []  # what the duplicate check needs (bounded)
        seen_ids: dict[str, int] = {}
        bad_rows: list[int] = []
        pending_ids: list[str] = []

        def count_pending() -> None:
            existing = {d["id"] for d in self.get_many_any(pending_ids)} if pending_ids else set()
            report.updated += len(existing)
            report.created += len(pending_ids) - len(existing)
            pending_ids.clear()

        def problem(found: Problem) -> None:
            report.problem_count += 1
            if len(report.problems) < MAX_REPORTED_PROBLEMS:
                report.problems.append(found)

        for row_no, raw in records:
            report.total += 1
            if progress:
                progress(1)
            if "__row_error__" in raw:
                problem(Problem(raw.get("__row_field__", "row"), raw["__row_error__"], row_no))
                bad_rows.append(row_no)
                continue
            clean, problems = validate_listing(raw, row_no)
            if not problems:
                problems = self.place(clean, row_no)
            if clean.get("id"):
                if clean["id"] in seen_ids:
                    problems.append(
                        Problem(
                            "id",
                            f"{seen_ids[clean['id']]}行目と同じ id です。id を変えるか、どちらかの行を消してください",
                            row_no,
                            clean["id"],
                        )
                    )
                seen_ids.setdefault(clean["id"], row_no)
            if clean.get("service_area") and not problems:
                _geometry, _resolved, unresolved = self._resolve_area(
                    clean["service_area"], clean.get("municipality_code")
                )
                for name in unresolved:
                    report.warnings.append(
                        Problem("service_area", f"地区「{name}」が見つかりません", row_no, name)
                    )
            if not problems and check is not None:
                problems = check(row_no, clean)
            for found in problems:
                problem(found)
            if problems:
                bad_rows.append(row_no)
                continue
            if not clean.get("source") and source:
                clean["source"] = source
            if "status" not in clean:
                clean["__new_status__"] = status
            if dry_run:
                if len(light) < DUPLICATE_CHECK_ROWS and clean.get("lat") is not None:
                    light.append((row_no, {k: clean.get(k) for k in ("id", "name", "lat", "lon")}))
                if clean.get("id"):
                    pending_ids.append(clean["id"])
                    if len(pending_ids) >= 500:
                        count_pending()
                else:
                    report.created += 1
            else:
                cleaned.append((row_no, clean))
        report.skipped_rows = bad_rows
        checked = light if dry_run else cleaned[:DUPLICATE_CHECK_ROWS]
        report.duplicates = self.likely_duplicates(checked)
        if report.total > DUPLICATE_CHECK_ROWS:
            report.warnings.append(
                Problem("file", f"重複の可能性は最初の {DUPLICATE_CHECK_ROWS:,}行だけ確かめました")
            )
        if dry_run:
            count_pending()
            return report
        if (report.problems and not good_rows_only) or not cleaned:
            self._count_changes(cleaned, report)
            return report
        self._write_import(cleaned, actor, report, hook, source_name)
        report.written = True
        return report

    def _count_changes(
        self, cleaned: list[tuple[int, dict[str, Any]]], report: ImportReport
    ) -> None:
        ids = [c["id"] for _, c in cleaned if c.get("id")]
        existing = {d["id"] for d in self.get_many_any(ids)}
        for _, clean in cleaned:
            if clean.get("id") in existing:
                report.updated += 1
            else:
                report.created += 1

    def get_many_any(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Listings in the order of `ids`, whatever their status (missing ones skipped)."""
        found: dict[str, Listing] = {}
        with read_session(self.engine) as session:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                for row in session.exec(select(Listing).where(col(Listing.id).in_(chunk))).all():
                    found[row.id] = row
        return [listing_to_dict(found[i]) for i in dict.fromkeys(ids) if i in found]

    def _write_import(
        self,
        cleaned: list[tuple[int, dict[str, Any]]],
        actor: str,
        report: ImportReport,
        hook: WriteHook | None = None,
        source_name: str | None = None,
    ) -> None:
        """One transaction: new listings by bulk insert, changed ones through the ORM, history for each."""
        organizations: dict[str, int] = {}
        now = utcnow()
        with self._writing() as session:
            ids = [c["id"] for _, c in cleaned if c.get("id")]
            existing: dict[str, Listing] = {}
            for start in range(0, len(ids), 500):
                for row in session.exec(
                    select(Listing).where(col(Listing.id).in_(ids[start : start + 500]))
                ).all():
                    existing[row.id] = row
            new_rows: list[dict[str, Any]] = []
            history_rows: list[dict[str, Any]] = []
            areas: list[Listing] = []
            for _row_no, clean in cleaned:
                clean.pop("version", None)
                new_status = clean.pop("__new_status__", None)
                listing_id = clean.pop("id", None) or self.new_id(clean)
                listing = existing.get(listing_id)
                if listing is None:
                    row = {
                        **_listing_defaults(),
                        **clean,
                        "id": listing_id,
                        "created_at": now,
                        "updated_at": now,
                        "organization_id": self._organization_id(
                            session, clean.get("operator"), organizations
                        ),
                    }
                    if new_status:
                        row["status"] = new_status
                    new_rows.append(row)
                    if hook is not None:
                        hook(session, None, _public(row))
                    history_rows.append(
                        self._history_row(
                            listing_id,
                            1,
                            "import",
                            actor,
                            None,
                            _public(row),
                            source_name or clean.get("source"),
                        )
                    )
                    report.created += 1
                    continue
                before = listing_to_dict(listing)
                changed = {k: v for k, v in clean.items() if getattr(listing, k) != v}
                if listing.status == "deleted":
                    changed["status"] = "published"
                if not changed:
                    report.unchanged += 1
                    continue
                for key, value in changed.items():
                    setattr(listing, key, value)
                listing.organization_id = self._organization_id(
                    session, listing.operator, organizations
                )
                listing.version += 1
                listing.updated_at = now
                after = listing_to_dict(listing)
                if hook is not None:
                    hook(session, before, after)
                history_rows.append(
                    self._history_row(
                        listing_id,
                        listing.version,
                        "import",
                        actor,
                        before,
                        after,
                        source_name or clean.get("source"),
                    )
                )
                areas.append(listing)
                report.updated += 1
            for start in range(0, len(new_rows), 1000):
                session.execute(Listing.__table__.insert(), new_rows[start : start + 1000])  # type: ignore[attr-defined]
            for start in range(0, len(history_rows), 1000):
                session.execute(
                    ListingHistory.__table__.insert(), history_rows[start : start + 1000]
                )  # type: ignore[attr-defined]
            queue_for_index(session, [row["id"] for row in new_rows])
            session.flush()
            for row in new_rows:
                if row.get("service_area"):
                    areas.append(session.get(Listing, row["id"]))  # type: ignore[arg-type]
            for listing in areas:
                self._store_area(session, listing)
            audit(
                session,
                actor,
                "import",
                "import",
                None,
                f"{source_name}: created {report.created}, updated {report.updated}, unchanged {report.unchanged}",
            )

    @staticmethod
    def _history_row(
        listing_id: str,
        version: int,
        action: str,
        actor: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        note: str | None,
    ) -> dict[str, Any]:
        return {
            "listing_id": listing_id,
            "version": version,
            "action": action,
            "actor": actor[:200],
            "at": utcnow(),
            "before": before,
            "after": after,
            "note": note and note[:500],
        }

    def likely_duplicates(self, cleaned: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Same place under a slightly different name near the same point (within the file and the store)."""
        cell = 0.003
        grid: dict[tuple[int, int], list[tuple[str, str, float, float, str]]] = {}

        def key(lat: float, lon: float) -> tuple[int, int]:
            return int(lat / cell), int(lon / cell)

        incoming_ids = {c.get("id") for _, c in cleaned if c.get("id")}
        with read_session(self.engine) as session:
            stored = session.exec(
                select(Listing.id, Listing.name, Listing.lat, Listing.lon).where(
                    Listing.status == "published"
                )
            ).all()
        for listing_id, name, lat, lon in stored:
            if lat is None or listing_id in incoming_ids:
                continue
            grid.setdefault(key(lat, lon), []).append(
                (listing_id, normalize(name), lat, lon, "既存")
            )
        found = []
        for row_no, clean in cleaned:
            if clean.get("lat") is None or not clean.get("name"):
                continue
            name, lat, lon = normalize(clean["name"]), clean["lat"], clean["lon"]
            k = key(lat, lon)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    for other_id, other_name, olat, olon, origin in grid.get(
                        (k[0] + dy, k[1] + dx), []
                    ):
                        if haversine_km(lat, lon, olat, olon) > DUPLICATE_DISTANCE_KM:
                            continue
                        score = fuzz.ratio(name, other_name)
                        if score >= DUPLICATE_NAME_SCORE:
                            found.append(
                                {
                                    "row": row_no,
                                    "id": clean.get("id"),
                                    "name": clean["name"],
                                    "other": other_id,
                                    "other_origin": origin,
                                    "similarity": round(score, 1),
                                    "message": f"{row_no}行目「{clean['name']}」は{origin}の {other_id} と同じ場所の可能性があります",
                                }
                            )
            if len(found) >= MAX_REPORTED_DUPLICATES:
                break
            here = grid.setdefault(k, [])
            if (
                len(here) < DUPLICATE_CELL_LIMIT
            ):  # thousands of rows on one point must not cost n² comparisons
                here.append((clean.get("id") or f"row-{row_no}", name, lat, lon, f"{row_no}行目"))
        return found


@lru_cache(maxsize=1)
def _defaults_template() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, info in Listing.model_fields.items():
        if info.default_factory is not None:
            values[name] = info.default_factory  # called per row
        else:
            values[name] = None if info.default is PydanticUndefined else info.default
    return values


def _listing_defaults() -> dict[str, Any]:
    """Column values a new listing has when the input does not set them (for bulk inserts)."""
    return {k: (v() if callable(v) else v) for k, v in _defaults_template().items()}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a row dict (as listing_to_dict for a table object)."""
    data = {}
    for name in PUBLIC_FIELDS:
        value = row.get(name)
        data[name] = value.isoformat() if isinstance(value, date) else value
    return data


class PostgresDirectory(Directory):
    """PostgreSQL: rows to change are locked with SELECT … FOR UPDATE (SQLite locks the whole database)."""

    def _lock_listing(self, session: Session, listing_id: str) -> Listing | None:
        return session.exec(
            select(Listing).where(Listing.id == listing_id).with_for_update()
        ).first()
