"""The directory facade (framework-free): one `Directory` that callers use for listings, history,
districts and service areas; each concern lives in its own module and is mixed in here."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from resdb import config
from resdb.background import Background
from resdb.changelog import (
    APPLY_BATCH,
    BULK_REINDEX_THRESHOLD,
    CHANGE_LOG_LOCK,
    ChangeLogFollower,
    ChangeReads,
    ChangesPruned,
    queue_for_index,
)
from resdb.db import ensure_schema, is_sqlite, make_engine, read_session, write_session
from resdb.duplicates import likely_duplicates
from resdb.importing import Importing, ImportReport
from resdb.listings import (
    CONTRACT_FIELDS,
    EXTENSION_FIELDS,
    PUBLIC_FIELDS,
    Conflict,
    NotFound,
    StaleEdit,
    WriteHook,
    listing_to_dict,
)
from resdb.models import Listing, Meta
from resdb.places import Places
from resdb.reads import ListingReads
from resdb.search import IndexUnhealthy, RecentChanges, SearchIndex
from resdb.writes import ACTION_AUDIT, ListingWrites

log = logging.getLogger(__name__)

__all__ = [
    "ACTION_AUDIT",
    "APPLY_BATCH",
    "BULK_REINDEX_THRESHOLD",
    "CHANGE_LOG_LOCK",
    "CONTRACT_FIELDS",
    "EXTENSION_FIELDS",
    "PUBLIC_FIELDS",
    "ChangesPruned",
    "Conflict",
    "Directory",
    "ImportReport",
    "NotFound",
    "PostgresDirectory",
    "StaleEdit",
    "WriteHook",
    "listing_to_dict",
    "queue_for_index",
]


class Directory(ChangeLogFollower, Places, ListingReads, ListingWrites, Importing):
    """The portable directory over any SQLAlchemy database; `PostgresDirectory` overrides locking."""

    def __init__(self, engine: Engine, instance_dir: Path) -> None:
        self.engine = engine
        self.instance_dir = Path(instance_dir)
        self.index = SearchIndex(self.instance_dir / "index")
        self._area_cache = None
        self._gazetteer_cache = None
        self._rebuilder = None
        self.background = Background()
        self.serving = (
            False  # True in web workers: large catch-ups then rebuild in a background thread
        )
        self.batch_commits = False
        self._head_seen = (float("-inf"), 0)
        self._recent = RecentChanges()
        self._change_reads = ChangeReads()

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

    def close(self, timeout: float = 60.0) -> None:
        """Stop and wait for the threads this directory started (follower, rebuild, snapshot builds,
        import jobs), then close the index and the database connections."""
        left = self.background.close(timeout)
        if left:
            log.warning("background work still running at close: %s", ", ".join(left))
        self.index.close()
        self.engine.dispose()

    def _writing(self) -> AbstractContextManager[Session]:
        session_cm = write_session(self.engine)

        class _Tracked:
            session: Session

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
        return self.meta_once("secret_key", lambda: secrets.token_hex(32))

    def meta_once(self, key: str, make: Callable[[], str]) -> str:
        """The stored fact `key`, made with `make()` by the first process of any host that asks (a
        concurrent maker's value wins if it committed first; everyone then reads the same one)."""
        with read_session(self.engine) as session:
            meta = session.get(Meta, key)
        if meta is None:
            try:
                with write_session(self.engine) as session:
                    session.add(Meta(key=key, value=make()))
            except IntegrityError:  # another process made it first
                pass
            with read_session(self.engine) as session:
                meta = session.get(Meta, key)
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

    def likely_duplicates(self, cleaned: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Same place under a slightly different name near the same point (within the file and the store)."""
        return likely_duplicates(self.engine, cleaned)


class PostgresDirectory(Directory):
    """PostgreSQL: rows to change are locked with SELECT … FOR UPDATE (SQLite locks the whole database)."""

    def _lock_listing(self, session: Session, listing_id: str) -> Listing | None:
        return session.exec(
            select(Listing).where(Listing.id == listing_id).with_for_update()
        ).first()
