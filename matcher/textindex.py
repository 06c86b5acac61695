"""The pool's text stage: normalized listing texts, searched as one blob plus a tail of later rows.

Name, description and activities of every listing are normalized once into one line each. The lines
present when the pool was built are joined into one string (a term's listings are found with one
regular-expression scan of it); rows appended later by `CandidatePool.apply` form a short tail that
is checked line by line. Whole-pool hits are cached per term set and brought up to date lazily when
rows were appended since. A term set not cached yet is looked up only in the candidate rows asked
about when they are few (a person's reachable listings), so an unseen interest never scans the whole
pool of a million listings on the request path.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from resdb.domain.textnorm import normalize

TERM_CACHE_SIZE = 512
# Candidate rows below this share of the pool are searched line by line for a term set not cached yet.
LOCAL_SCAN_SHARE = 0.1


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


def _pattern(terms: frozenset[str]) -> re.Pattern[str] | None:
    usable = sorted((t for t in terms if t and "\n" not in t), key=len, reverse=True)
    return re.compile("|".join(re.escape(t) for t in usable)) if usable else None


class TextIndex:
    """Normalized lines of a pool's rows; `rows_source` gives the listings when lines are first needed."""

    def __init__(self, rows_source: Callable[[], list[Mapping[str, Any]]]) -> None:
        self._rows_source = rows_source
        self.lines: list[str] | None = None
        self._blob = ""
        self._blob_rows = 0  # rows [0, _blob_rows) are in the blob; later rows are the tail
        self._line_starts = np.zeros(0, dtype=np.int64)
        self._cache: OrderedDict[frozenset[str], tuple[int, np.ndarray]] = OrderedDict()

    def ensure(self) -> list[str]:
        if self.lines is None:
            lines = normalized_lines(self._rows_source())
            lengths = np.fromiter((len(x) + 1 for x in lines), dtype=np.int64, count=len(lines))
            self._line_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
            self._blob = "\n".join(lines)
            self._blob_rows = len(lines)
            self.lines = lines
        return self.lines

    def append(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Lines of rows appended to the pool (a no-op until the text is first needed)."""
        if self.lines is not None:
            self.lines.extend(normalized_lines(list(items)))

    def _scan_rows(self, pattern: re.Pattern[str], rows: Iterable[int]) -> np.ndarray:
        assert self.lines is not None
        lines = self.lines
        return np.fromiter(
            (i for i in rows if pattern.search(lines[i]) is not None), dtype=np.int64
        )

    def hits(self, terms: frozenset[str]) -> np.ndarray:
        """Sorted row indices whose text contains any of the (normalized) terms; cached per term set."""
        lines = self.ensure()
        cached = self._cache.get(terms)
        if cached is not None and cached[0] == len(lines):
            self._cache.move_to_end(terms)
            return cached[1]
        pattern = _pattern(terms)
        if pattern is None or not lines:
            found = np.zeros(0, dtype=np.int64)
        elif cached is not None:  # rows appended since: only they are searched
            tail = self._scan_rows(pattern, range(cached[0], len(lines)))
            found = np.concatenate((cached[1], tail))
        else:
            positions = np.fromiter(
                (m.start() for m in pattern.finditer(self._blob)), dtype=np.int64
            )
            head = np.unique(np.searchsorted(self._line_starts, positions, side="right") - 1)
            found = np.concatenate(
                (head, self._scan_rows(pattern, range(self._blob_rows, len(lines))))
            )
        self._cache[terms] = (len(lines), found)
        self._cache.move_to_end(terms)
        if len(self._cache) > TERM_CACHE_SIZE:
            self._cache.popitem(last=False)
        return found

    def contains_any(self, terms: frozenset[str], idx: np.ndarray, n_rows: int) -> np.ndarray:
        """For each row in idx: does its text contain one of the terms?"""
        lines = self.ensure()
        if terms not in self._cache and idx.size < LOCAL_SCAN_SHARE * max(n_rows, 1):
            pattern = _pattern(terms)
            if pattern is None:
                return np.zeros(idx.size, dtype=bool)
            search = pattern.search
            return np.fromiter(
                (search(lines[i]) is not None for i in idx.tolist()), dtype=bool, count=idx.size
            )
        found = self.hits(terms)
        if found.size == 0:
            return np.zeros(idx.size, dtype=bool)
        mask = np.zeros(n_rows, dtype=bool)
        mask[found] = True
        in_view: np.ndarray = mask[idx]
        return in_view
