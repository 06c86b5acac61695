"""The pool's text stage: normalized listing texts, searched as one UTF-8 blob plus a tail of later rows.

Name, description and activities of every listing are normalized once into one line each. The lines
present when the pool was built are joined into one UTF-8 byte blob (a term's listings are found with
one bytes regular-expression scan of it; positions are byte offsets, mapped to rows by the byte starts
of the lines); the blob may be a memory-mapped snapshot array shared by every worker of a host, then read
from its file with pread (in pieces of a few MB for a scan), so that its pages stay in the host's page
cache and out of every worker's mapping (RSS, PSS). Rows
appended later by `CandidatePool.apply` form a short tail of str lines that is checked line by line.
Whole-pool hits are cached per term set and brought up to date lazily when rows were appended since.
A term set not cached yet is looked up only in the candidate rows asked about when they are few (a
person's reachable listings), so an unseen interest never scans the whole pool of a million listings
on the request path. UTF-8 is self-synchronizing: a term's bytes match exactly where its characters do.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from resdb.domain.blobs import FileBlob
from resdb.domain.textnorm import normalize

TERM_CACHE_SIZE = 512
SCAN_CHUNK = 4 << 20  # bytes of a mapped blob read at a time by a whole-blob scan
# Candidate rows below this share of the pool are searched line by line for a term set not cached yet.
LOCAL_SCAN_SHARE = 0.1
_NEWLINE = 10


def raw_text(item: Mapping[str, Any]) -> str:
    parts = [str(item.get("name") or ""), str(item.get("description") or "")]
    parts.extend(str(a) for a in (item.get("activities") or ()))
    return " ".join(parts).replace("\r", " ").replace("\n", " ")


def normalized_lines(items: list[Mapping[str, Any]]) -> list[str]:
    """One normalized line per listing (normalized at once; one by one if line breaks moved)."""
    lines = normalize("\n".join(raw_text(item) for item in items)).split("\n")
    if len(lines) != len(items):
        lines = [normalize(raw_text(item)) for item in items]
    return lines if items else []


def _usable(terms: frozenset[str]) -> list[str]:
    return sorted((t for t in terms if t and "\n" not in t), key=len, reverse=True)


def _pattern(terms: frozenset[str]) -> re.Pattern[str] | None:
    usable = _usable(terms)
    return re.compile("|".join(re.escape(t) for t in usable)) if usable else None


def _bytes_pattern(terms: frozenset[str]) -> re.Pattern[bytes] | None:
    usable = _usable(terms)
    return re.compile(b"|".join(re.escape(t.encode("utf-8")) for t in usable)) if usable else None


def _touch(cache: OrderedDict[Any, Any], key: Any) -> None:
    """Mark a cache entry recently used (readers share the caches: another may have dropped it)."""
    try:
        cache.move_to_end(key)
    except KeyError:
        pass


def _trim(cache: OrderedDict[Any, Any]) -> None:
    while len(cache) > TERM_CACHE_SIZE:
        try:
            cache.popitem(last=False)
        except KeyError:
            return


def lines_blob(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 blob of the lines joined by newlines, byte start of every line plus one past the end)."""
    raw = "\n".join(lines).encode("utf-8")
    blob = np.frombuffer(raw, dtype=np.uint8)
    breaks = np.flatnonzero(blob == _NEWLINE).astype(np.int64)
    starts = np.concatenate(([0], breaks + 1, [len(raw) + 1])).astype(np.int64)
    if not lines:
        starts = np.zeros(1, dtype=np.int64)
    return blob, starts


class TextIndex:
    """Normalized lines of a pool's rows; `rows_source` gives the listings when lines are first needed
    (or `from_blob` starts from a prepared blob, e.g. a memory-mapped snapshot)."""

    def __init__(self, rows_source: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._rows_source = rows_source
        self.prepared = False
        self._blob = memoryview(b"")
        self._blob_array = np.zeros(0, dtype=np.uint8)
        self._file: FileBlob | None = None  # the blob's file, when mapped: scans read it with pread
        self._starts = np.zeros(1, dtype=np.int64)  # byte start of every blob line, then end + 1
        self._blob_rows = 0  # rows [0, _blob_rows) are in the blob; later rows are the tail
        self._tail: list[str] = []
        self._cache: OrderedDict[frozenset[str], tuple[int, np.ndarray]] = OrderedDict()
        self._term_rows: OrderedDict[str, np.ndarray] = OrderedDict()  # blob rows by single term

    @classmethod
    def from_blob(
        cls, blob: np.ndarray, starts: np.ndarray, file: FileBlob | None = None
    ) -> TextIndex:
        """Over a prepared blob; `file`: the blob's file (it is then read with pread)."""
        index = cls(lambda: ())
        index._set_blob(blob, starts)
        index._file = file
        return index

    def _set_blob(self, blob: np.ndarray, starts: np.ndarray) -> None:
        self._blob_array = blob
        contiguous: Any = np.ascontiguousarray(blob, dtype=np.uint8)
        self._blob = memoryview(contiguous).cast("B")
        self._file = None
        self._starts = starts
        self._blob_rows = max(0, int(starts.size) - 1)
        self.prepared = True

    def ensure(self) -> TextIndex:
        if not self.prepared:
            self._set_blob(*lines_blob(normalized_lines(list(self._rows_source()))))
        return self

    def __len__(self) -> int:
        return self._blob_rows + len(self._tail)

    def line(self, i: int) -> str:
        """The normalized line of row i."""
        self.ensure()
        if i < self._blob_rows:
            start, end = int(self._starts[i]), int(self._starts[i + 1]) - 1
            raw = self._file.read(start, end) if self._file else bytes(self._blob[start:end])
            return raw.decode("utf-8")
        return self._tail[i - self._blob_rows]

    def append(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Lines of rows appended to the pool (a no-op until the text is first needed)."""
        if self.prepared:
            self._tail.extend(normalized_lines(list(items)))

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(blob, starts) of every line, tail included (see lines_blob)."""
        self.ensure()
        if not self._tail:
            return np.asarray(self._blob_array, dtype=np.uint8), np.asarray(self._starts)
        head = [self.line(i) for i in range(self._blob_rows)]
        return lines_blob(head + self._tail)

    def cached(self) -> list[tuple[frozenset[str], np.ndarray]]:
        """Whole-pool hits of the term sets cached and current (a snapshot keeps them)."""
        return [(terms, found) for terms, (rows, found) in self._cache.items() if rows == len(self)]

    def seed(self, terms: frozenset[str], found: np.ndarray) -> None:
        """Whole-pool hits of a term set known from a snapshot of this very text."""
        self._cache[terms] = (len(self), found)

    def _scan_rows(self, terms: frozenset[str], rows: Iterable[int]) -> np.ndarray:
        found = self._search_rows(terms, rows)
        return np.fromiter((i for i, hit in found if hit), dtype=np.int64)

    def _search_rows(
        self, terms: frozenset[str], rows: Iterable[int]
    ) -> Iterable[tuple[int, bool]]:
        """(row, holds a term) for the rows given: blob rows searched in place, tail rows as str."""
        bsearch = _bytes_pattern(terms)
        tsearch = _pattern(terms)
        if bsearch is None or tsearch is None:
            return ((i, False) for i in rows)
        blob, starts, n_blob, tail = self._blob, self._starts, self._blob_rows, self._tail
        search_blob, search_text, file = bsearch.search, tsearch.search, self._file

        def one(i: int) -> bool:
            if i < n_blob:
                start, end = int(starts[i]), int(starts[i + 1]) - 1
                if file is not None:
                    return search_blob(file.read(start, end)) is not None
                return search_blob(blob, start, end) is not None
            return search_text(tail[i - n_blob]) is not None

        return ((i, one(i)) for i in rows)

    def hits(self, terms: frozenset[str]) -> np.ndarray:
        """Sorted row indices whose text contains any of the (normalized) terms; cached per term set."""
        self.ensure()
        total = len(self)
        cached = self._cache.get(terms)
        if cached is not None and cached[0] == total:
            _touch(self._cache, terms)
            return cached[1]
        pattern = _bytes_pattern(terms)
        if pattern is None or not total:
            found = np.zeros(0, dtype=np.int64)
        elif cached is not None:  # rows appended since: only they are searched
            tail = self._scan_rows(terms, range(cached[0], total))
            found = np.concatenate((cached[1], tail))
        else:
            parts = [self._blob_hits(term) for term in _usable(terms)]
            head = np.unique(np.concatenate(parts)) if len(parts) > 1 else parts[0]
            found = np.concatenate(
                (head, self._scan_rows(terms, range(self._blob_rows, total)))
            ).astype(np.int64)
        self._cache[terms] = (total, found)
        _touch(self._cache, terms)
        _trim(self._cache)
        return found

    def _blob_hits(self, term: str) -> np.ndarray:
        """Sorted blob rows holding one term (cached per term: term sets share terms). One literal
        pattern per term: the regular-expression engine then skips ahead to the term's first byte,
        where an alternation of UTF-8 terms would stop at nearly every character (they share lead
        bytes) and scan several times slower."""
        cached = self._term_rows.get(term)
        if cached is not None:
            _touch(self._term_rows, term)
            return cached
        finder = re.compile(re.escape(term.encode("utf-8"))).finditer
        if (
            self._file is not None
        ):  # the mapped blob read in pieces: its pages stay out of the mapping
            pieces = self._file.lines(SCAN_CHUNK)
            found = (at + m.start() for at, piece in pieces for m in finder(piece))
        else:
            found = (m.start() for m in finder(self._blob))
        positions = np.fromiter(found, dtype=np.int64)
        rows = np.unique(np.searchsorted(self._starts, positions, side="right") - 1)
        self._term_rows[term] = rows
        _trim(self._term_rows)
        return rows

    def contains_any(self, terms: frozenset[str], idx: np.ndarray, n_rows: int) -> np.ndarray:
        """For each row in idx: does its text contain one of the terms?"""
        self.ensure()
        if terms not in self._cache and idx.size < LOCAL_SCAN_SHARE * max(n_rows, 1):
            return np.fromiter(
                (hit for _i, hit in self._search_rows(terms, idx.tolist())),
                dtype=bool,
                count=idx.size,
            )
        found = self.hits(terms)
        if found.size == 0:
            return np.zeros(idx.size, dtype=bool)
        mask = np.zeros(n_rows, dtype=bool)
        mask[found] = True
        in_view: np.ndarray = mask[idx]
        return in_view
