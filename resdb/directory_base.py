"""What the directory's mixins (changelog, places, reads, writes, importing) share: the state `Directory`
sets up and, for the type checker only, the methods one mixin calls on another (no behaviour here)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from resdb.background import Background
    from resdb.changelog import ChangeReads
    from resdb.geo import AreaIndex, Gazetteer
    from resdb.models import Listing
    from resdb.search import RecentChanges, SearchIndex
    from resdb.validation import Problem


class DirectoryBase:
    """The attributes `Directory.__init__` sets, declared once for every mixin."""

    engine: Engine
    instance_dir: Path
    index: SearchIndex
    serving: bool  # True in web workers: large catch-ups then rebuild in a background thread
    batch_commits: bool  # True under a batching follower: searches read recent changes from memory
    _recent: RecentChanges
    _change_reads: ChangeReads  # the last change-log reads, shared by this process's caches
    _head_seen: tuple[float, int]  # (time.monotonic() before the read, head): the latest head read
    background: Background  # the daemon threads it started; close() stops and joins them
    _rebuilder: threading.Thread | None
    _area_cache: tuple[str, AreaIndex] | None
    _gazetteer_cache: tuple[str, Gazetteer] | None

    if TYPE_CHECKING:
        # Defined by `Directory` itself.
        def _writing(self) -> AbstractContextManager[Session]: ...

        def _lock_listing(self, session: Session, listing_id: str) -> Listing | None: ...

        def likely_duplicates(
            self, cleaned: list[tuple[int, dict[str, Any]]]
        ) -> list[dict[str, Any]]: ...

        # resdb.changelog.ChangeLogFollower
        def revision(self) -> str: ...

        def head_seq(self) -> int: ...

        def try_follow_changes(self, wait: float = 1.0) -> bool: ...

        def current_changes(self) -> RecentChanges | None: ...

        def _read_head_seq(self) -> int: ...

        def _revision_facts(self) -> tuple[int, str, int]: ...

        def iter_published(
            self, batch: int = 5000, *, public: bool = False
        ) -> Iterable[dict[str, Any]]: ...

        # resdb.places.Places
        def gazetteer(self) -> Gazetteer: ...

        def districts_version(self) -> str: ...

        def store_id(self) -> str: ...

        def meta_once(self, key: str, make: Callable[[], str]) -> str: ...

        def change_stamp(self, seq: int) -> str | None: ...

        def place(
            self,
            clean: dict[str, Any],
            row: int | None = None,
            gazetteer: Gazetteer | None = None,
        ) -> list[Problem]: ...

        def place_many(
            self, rows: list[tuple[int, dict[str, Any]]], gazetteer: Gazetteer
        ) -> dict[int, list[Problem]]: ...

        def _resolve_area(
            self,
            area: dict[str, Any] | None,
            municipality_code: str | None,
            gazetteer: Gazetteer | None = None,
        ) -> tuple[Any, list[str], list[str]]: ...

        def _store_area(self, session: Session, listing: Listing) -> list[str]: ...

        # resdb.reads.ListingReads
        def public_view(
            self, listing: dict[str, Any], gazetteer: Gazetteer | None = None
        ) -> dict[str, Any]: ...

        def get_many(
            self, ids: Sequence[str], *, include_unpublished: bool = False
        ) -> list[dict[str, Any]]: ...

        # resdb.writes.ListingWrites
        def _organization_id(
            self, session: Session, operator: str | None, cache: dict[str, int] | None = None
        ) -> int | None: ...

        @staticmethod
        def new_id(clean: dict[str, Any]) -> str: ...
