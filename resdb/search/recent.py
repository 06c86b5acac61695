"""Changes committed to the database but not yet to the whoosh index, held per process: the newest
version of every changed listing as one in-memory segment, with masks hiding the older versions in the
committed segments. A search is then current without a whoosh commit per edit; a host's follower
writes the changes to whoosh in batches (see ChangeLogFollower.current_changes)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from resdb.search.bulk import memory_arrays
from resdb.search.schema import _check_fields, listing_fields
from resdb.search.segments import _MemorySegment, _Segment, _Snapshot


class RecentView:
    """One committed generation seen through the recent changes, as `run_search` reads a snapshot:
    each committed segment with the changed listings' old documents masked, then the in-memory one."""

    def __init__(self, parts: list[tuple[_Segment, np.ndarray, int]], live_count: int) -> None:
        self.parts = parts
        self.live_count = live_count


class RecentChanges:
    """Listings changed after the index's cursor (`base`) up to change `seen`, by id: the change number
    last seen for it and its index fields (None: deleted, unpublished, or a document the index leaves
    out). Callers hold `lock` across a rebase, the read of new changes and `add`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.base = -1
        self.seen = -1
        self._entries: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._version = 0
        self._segment: _MemorySegment | None = None
        self._view_key: tuple[Any, int] | None = None
        self._view: RecentView | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def rebase(self, cursor: int) -> None:
        """The committed index now holds every change up to `cursor`: forget what it holds; forget
        everything when the index went back (a copy from another host installed, a rebuild)."""
        with self.lock:
            if cursor < self.base:
                self._entries = {}
                self.seen = cursor
                self._changed()
            elif cursor > self.base:
                kept = {i: e for i, e in self._entries.items() if e[0] > cursor}
                if len(kept) != len(self._entries):
                    self._entries = kept
                    self._changed()
            self.base = cursor
            self.seen = max(self.seen, cursor)

    def add(self, changes: list[tuple[int, str]], docs: dict[str, dict[str, Any] | None]) -> None:
        """Record `changes` (change number, listing id; oldest first) read after `seen`, with each
        listing's public document as read after those changes (None: no longer published)."""
        if not changes:
            return
        with self.lock:
            last = {listing_id: seq for seq, listing_id in changes}
            for listing_id, seq in last.items():
                doc = docs.get(listing_id)
                fields = listing_fields(doc) if doc is not None else None
                if fields is not None and _check_fields(fields):
                    fields = None  # the committed index leaves it out too (and reports it)
                self._entries[listing_id] = (seq, fields)
            self.seen = max(self.seen, changes[-1][0])
            self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._segment = None
        self._view = None

    def view(self, snap: _Snapshot) -> _Snapshot | RecentView:
        """`snap` as it reads with the recent changes applied (itself when there are none)."""
        with self.lock:
            if not self._entries:
                return snap
            key = (snap.generation, self._version)
            if self._view is not None and self._view_key == key:
                return self._view
            parts: list[tuple[_Segment, np.ndarray, int]] = []
            live_count = snap.live_count
            for seg, live, offset in snap.parts:
                hidden = [seg.postings("id", listing_id) for listing_id in self._entries]
                docs = np.concatenate(hidden) if hidden else np.zeros(0, dtype=np.int64)
                docs = docs[live[docs]] if len(docs) else docs
                if len(docs):
                    live = live.copy()
                    live[docs] = False
                    live_count -= len(np.unique(docs))
                parts.append((seg, live, offset))
            segment = self._memory_segment()
            if segment is not None:
                parts.append((segment, np.ones(segment.size, dtype=bool), snap.size))
                live_count += segment.size
            self._view_key, self._view = key, RecentView(parts, live_count)
            return self._view

    def _memory_segment(self) -> _MemorySegment | None:
        if self._segment is None:
            rows = [
                fields for _, (_, fields) in sorted(self._entries.items()) if fields is not None
            ]
            if rows:
                self._segment = _MemorySegment(memory_arrays(rows), len(rows))
        return self._segment
