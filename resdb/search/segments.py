"""Whoosh segments as search reads them: one `_Segment` per immutable segment (its sidecar arrays,
memory-mapped), shared by the snapshots of a process; a `_Snapshot` is one generation's list of
segments with each one's live mask. Nothing is concatenated across segments: an edit costs its own
small segment and one deletion mask, never the corpus."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from resdb.hostsnapshot import prefetch
from resdb.search.sidecar import (
    _decode_postings,
    arrays_from_leaf,
    load_sidecar,
    sidecar_dir,
    write_sidecar,
)

_EMPTY = np.empty(0, dtype=np.int64)


class _Segment:
    """What one whoosh segment holds, read from its sidecar (built from whoosh on first open when the
    bulk builder did not write it). Segments never change after they are written, only their deletion
    sets do, and those are read from each new generation."""

    def __init__(self, ix: Any, segment: Any, generation: int, index_dir: Path) -> None:
        self._ix = ix
        self._segment = segment
        self._generation = generation
        self._reader: Any = None
        self.size = segment.doc_count_all()
        path = sidecar_dir(index_dir, segment.segment_id())
        arrays = load_sidecar(path, self.size)
        if arrays is None:  # missing, truncated or of another format: rebuilt, never trusted
            if path.exists():
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            write_sidecar(path, self.size, arrays_from_leaf(self.reader))
            arrays = load_sidecar(path, self.size)
            if arrays is None:
                raise OSError(f"sidecar {path} cannot be read back")
        self._take(arrays)

    def _take(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.lat: np.ndarray = arrays["lat"]
        self.lon: np.ndarray = arrays["lon"]
        self.cost: np.ndarray = arrays["cost"]
        self.name_len: np.ndarray = arrays["name_len"]
        self.tiebreak: np.ndarray = arrays["tiebreak"]

    @property
    def reader(self) -> Any:
        """A whoosh reader of this segment (decoding and checks only: its deletion set may be stale)."""
        if self._reader is None:
            from whoosh.reading import SegmentReader

            self._reader = SegmentReader(
                self._ix.storage, self._ix.schema, self._segment, generation=self._generation
            )
        return self._reader

    def _string(self, prefix: str, docnum: int) -> str:
        off = self.arrays[f"{prefix}_off"]
        return bytes(self.arrays[f"{prefix}_blob"][int(off[docnum]) : int(off[docnum + 1])]).decode(
            "utf-8"
        )

    def id_at(self, docnum: int) -> str:
        return self._string("ids", docnum)

    def name_at(self, docnum: int) -> str:
        return self._string("names", docnum)

    def names_at(self, docs: np.ndarray) -> list[str]:
        """The normalized names of many documents: offsets gathered at once, bytes sliced from one
        memoryview of the mapped blob (no per-name array object)."""
        off = np.asarray(self.arrays["names_off"])
        raw = np.asarray(self.arrays["names_blob"]).data
        starts, ends = off[docs].tolist(), off[docs + 1].tolist()
        return [bytes(raw[a:b]).decode("utf-8") for a, b in zip(starts, ends, strict=True)]

    @property
    def ids(self) -> list[str]:
        return [self.id_at(i) for i in range(self.size)]

    def postings(self, field_name: str, term: str) -> np.ndarray:
        """Document numbers (this segment's own, deleted ones included) holding `term`, a view into the
        mapped sidecar: a binary search in the sorted term table, no decoding."""
        terms = self.arrays[f"{field_name}.terms"]
        if not len(terms):
            return _EMPTY
        key = term.encode("utf-8")
        if len(key) > terms.dtype.itemsize:
            return _EMPTY
        at = int(np.searchsorted(terms, key))
        if at >= len(terms) or terms[at] != key:
            return _EMPTY
        offsets = self.arrays[f"{field_name}.offsets"]
        return self.arrays[f"{field_name}.docs"][int(offsets[at]) : int(offsets[at + 1])]

    def mask_of(self, field_name: str, terms: Any) -> np.ndarray:
        lists = [self.postings(field_name, term) for term in terms]
        for found in lists:
            prefetch(found)  # all read from disk at once on a cold page cache
        mask = np.zeros(self.size, dtype=bool)
        for found in lists:
            mask[found] = True
        return mask

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class _MemorySegment(_Segment):
    """A segment that exists only in this process's memory: the documents changed since the index's
    last whoosh commit (see resdb.search.recent), with the same arrays a sidecar would hold."""

    def __init__(self, arrays: dict[str, np.ndarray], size: int) -> None:
        self._reader = None
        self.size = size
        self._take(arrays)

    @property
    def reader(self) -> Any:
        raise TypeError("an in-memory segment has no whoosh reader")

    def close(self) -> None:
        pass


class _SegmentCache:
    """Segments by segment id, shared by the snapshots of one process; segments that left the index
    (merged away, or a rebuilt index) are dropped when a new snapshot no longer names them."""

    def __init__(self) -> None:
        self._segments: dict[str, _Segment] = {}
        self._lock = threading.Lock()

    def segments_for(
        self, ix: Any, toc_segments: list[Any], generation: int, index_dir: Path
    ) -> list[_Segment]:
        with self._lock:
            fresh: dict[str, _Segment] = {}
            for segment in toc_segments:
                key = segment.segment_id()
                fresh[key] = self._segments.get(key) or _Segment(ix, segment, generation, index_dir)
            self._segments = fresh
            return [fresh[segment.segment_id()] for segment in toc_segments]


class _Snapshot:
    """One index generation: its segments (shared, never copied) and each one's live mask, read from
    this generation's table of contents (a reader reused across generations, as whoosh's refresh()
    does, keeps stale deletions: edited listings would show twice). Document numbers of the
    generation are a segment's offset + its own number."""

    def __init__(
        self,
        ix: Any,
        generation: tuple[str | None, int],
        cache: _SegmentCache,
        index_dir: Path,
    ) -> None:
        self.generation = generation
        toc_segments = [seg for seg in ix._segments() if seg.doc_count_all()]
        self.segments = cache.segments_for(ix, toc_segments, generation[1], index_dir)
        self.offsets: list[int] = []
        self.lives: list[np.ndarray] = []
        offset = 0
        for segment, seg in zip(toc_segments, self.segments, strict=True):
            self.offsets.append(offset)
            offset += seg.size
            live = np.ones(seg.size, dtype=bool)
            deleted = list(segment.deleted_docs())
            if deleted:
                live[np.asarray(deleted, dtype=np.int64)] = False
            self.lives.append(live)
        self.size = offset
        self.live_count = int(sum(int(live.sum()) for live in self.lives))

    @property
    def leaves(self) -> list[tuple[Any, int]]:
        return [(seg.reader, off) for seg, off in zip(self.segments, self.offsets, strict=True)]

    @property
    def parts(self) -> list[tuple[_Segment, np.ndarray, int]]:
        return list(zip(self.segments, self.lives, self.offsets, strict=True))

    @property
    def reader(self) -> Any:
        """A whoosh reader over this generation (for checks against whoosh's own walk)."""
        from whoosh.reading import MultiReader

        readers = [seg.reader for seg in self.segments]
        return readers[0] if len(readers) == 1 else MultiReader(readers)

    def postings(self, field_name: str, term: str) -> np.ndarray:
        """Generation-wide document numbers holding `term` (checks and tools; search works per segment)."""
        parts = [
            seg.postings(field_name, term).astype(np.int64) + offset
            for seg, offset in zip(self.segments, self.offsets, strict=True)
        ]
        parts = [p for p in parts if len(p)]
        return np.concatenate(parts) if parts else _EMPTY

    def decoded_postings(self, field_name: str, term: str) -> np.ndarray:
        """The same, decoded from whoosh's own posting blocks (to check the sidecars against)."""
        parts = [
            _decode_postings(seg.reader, field_name, term) + offset
            for seg, offset in zip(self.segments, self.offsets, strict=True)
        ]
        parts = [p for p in parts if len(p)]
        return np.concatenate(parts) if parts else _EMPTY
