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

# In-memory segments kept before they are merged into one: each add makes one (only its listings), but
# every search reads every part, so a worker that read changes many times between two index commits
# would search many tiny segments.
MAX_MEMORY_PARTS = 4


class RecentView:
    """One committed generation seen through the recent changes, as `run_search` reads a snapshot:
    each committed segment with the changed listings' old documents masked, then the in-memory one."""

    def __init__(self, parts: list[tuple[_Segment, np.ndarray, int]], live_count: int) -> None:
        self.parts = parts
        self.live_count = live_count


class RecentChanges:
    """Listings changed after the index's cursor (`base`) up to change `seen`, by id: the change number
    last seen for it and its index fields (None: deleted, unpublished, or a document the index leaves
    out). Callers hold `lock` across a rebase, the read of new changes and `add`.

    Kept incrementally, since each change reaches every worker of every host: each `add` builds one
    small in-memory segment of just the listings it names (an older copy of a listing in an earlier
    one is masked; past MAX_MEMORY_PARTS they are merged into one), and the committed documents a
    change hides are looked up once per listing and generation."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.base = -1
        self.seen = -1
        self._entries: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._version = 0
        # One in-memory segment per add (None when it named only deletions), with its rows' ids, and
        # the part holding each listing's newest document.
        self._parts: list[tuple[_MemorySegment | None, list[str]]] = []
        self._newest_part: dict[str, int] = {}
        # The committed documents each listing's change hides, per committed segment, for one generation.
        self._hidden_generation: Any = None
        self._hidden: dict[str, list[np.ndarray]] = {}
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
                self._restart()
            elif cursor > self.base:
                kept = {i: e for i, e in self._entries.items() if e[0] > cursor}
                if len(kept) != len(self._entries):
                    self._entries = kept
                    self._restart()
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
            if len(self._parts) >= MAX_MEMORY_PARTS:
                self._restart()  # every search reads each part: a few, not one per read
            else:
                self._add_part(sorted(last))
            self.seen = max(self.seen, changes[-1][0])

    def _add_part(self, listing_ids: list[str]) -> None:
        """One in-memory segment for the newest documents of `listing_ids`."""
        documents = {i: self._entries[i][1] for i in listing_ids}
        fields = [(i, doc) for i, doc in documents.items() if doc is not None]
        rows = [i for i, _ in fields]
        segment = (
            _MemorySegment(memory_arrays([doc for _, doc in fields]), len(fields))
            if fields
            else None
        )
        for listing_id in listing_ids:
            self._newest_part[listing_id] = len(self._parts)
        self._parts.append((segment, rows))
        self._version += 1
        self._view = None

    def _restart(self) -> None:
        """Parts rebuilt from the entries left: one segment for all of them."""
        self._parts, self._newest_part = [], {}
        self._version += 1
        self._view = None
        if self._entries:
            self._add_part(sorted(self._entries))

    def _hidden_docs(self, snap: _Snapshot) -> dict[str, list[np.ndarray]]:
        """The committed documents of each changed listing, per committed segment of `snap`; looked up
        only for listings not seen before in this generation."""
        if self._hidden_generation != snap.generation:
            self._hidden_generation, self._hidden = snap.generation, {}
        hidden = self._hidden
        for listing_id in self._entries:
            if listing_id not in hidden:
                hidden[listing_id] = [seg.postings("id", listing_id) for seg, _, _ in snap.parts]
        return hidden

    def view(self, snap: _Snapshot) -> _Snapshot | RecentView:
        """`snap` as it reads with the recent changes applied (itself when there are none)."""
        with self.lock:
            if not self._entries:
                return snap
            key = (snap.generation, self._version)
            if self._view is not None and self._view_key == key:
                return self._view
            hidden = self._hidden_docs(snap)
            parts: list[tuple[_Segment, np.ndarray, int]] = []
            live_count = snap.live_count
            for k, (seg, live, offset) in enumerate(snap.parts):
                found = [hidden[listing_id][k] for listing_id in self._entries]
                docs = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
                docs = docs[live[docs]] if len(docs) else docs
                if len(docs):
                    live = live.copy()
                    live[docs] = False
                    live_count -= len(np.unique(docs))
                parts.append((seg, live, offset))
            offset = snap.size
            for p, (segment, rows) in enumerate(self._parts):
                if segment is None:
                    continue
                newest = np.fromiter(
                    (self._newest_part.get(i) == p for i in rows), dtype=bool, count=len(rows)
                )
                parts.append((segment, newest, offset))
                live_count += int(np.count_nonzero(newest))
                offset += segment.size
            self._view_key, self._view = key, RecentView(parts, live_count)
            return self._view
