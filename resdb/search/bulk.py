"""Bulk index build: listings tokenized with numpy (code points → 1/2-grams → sorted (term, doc) postings)
and written as whoosh segments through whoosh's own codec writers a whole posting block at a time, with
each segment's search sidecar written from the same arrays; chunks are built in parallel processes."""

from __future__ import annotations

import multiprocessing
import os
import struct
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from whoosh.codec.whoosh3 import (
    LENGTHS_COLUMN,
    W3Codec,
    W3PerDocWriter,
    W3PostingsWriter,
)
from whoosh.filedb.filestore import FileStorage
from whoosh.index import TOC
from whoosh.util.numeric import _length_byte_cache

from resdb.domain.textnorm import words
from resdb.search.schema import GramTokenizer, _schema, listing_fields
from resdb.search.sidecar import column_arrays, posting_arrays, sidecar_dir, write_sidecar

# Documents per bulk segment (document numbers are packed in 21 bits while sorting postings).
SEGMENT_DOCS = 1 << 17
_DOC_BITS = 21
_DOC_MASK = (1 << _DOC_BITS) - 1
_CP_BITS = 21  # a Unicode code point
_LENGTH_CACHE = np.asarray(_length_byte_cache, dtype=np.int64)
_UNSIGNED_COLUMNS = ("cost", "lat", "lon")
TAIL_PART_DOCS = 10_000  # a smaller last chunk stays one segment (see bulk_build's split_tail)


def _length_bytes(lengths: np.ndarray) -> np.ndarray:
    """whoosh's length_to_byte over an array."""
    out = np.searchsorted(_LENGTH_CACHE, lengths, side="left")
    out[lengths >= 106374] = 255
    return out.astype(np.int64)


class _Postings:
    """One field's postings of a segment: sorted term bytes; per term a slice of docs (ascending) with
    their weights (term frequency) and frequencies."""

    def __init__(
        self, terms: list[bytes], offsets: np.ndarray, docs: np.ndarray, freqs: np.ndarray
    ) -> None:
        self.terms, self.offsets, self.docs, self.freqs = terms, offsets, docs, freqs


def _from_pairs(
    keys: np.ndarray, docs: np.ndarray, term_of: Callable[[np.ndarray], list[bytes]]
) -> _Postings:
    """(key, doc) per token → postings with term frequencies; key order must be the term byte order."""
    if not len(keys):
        return _Postings([], np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    combined = (keys.astype(np.uint64) << np.uint64(_DOC_BITS)) | docs.astype(np.uint64)
    unique, freqs = np.unique(combined, return_counts=True)
    term_keys = unique >> np.uint64(_DOC_BITS)
    post_docs = (unique & np.uint64(_DOC_MASK)).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, term_keys[1:] != term_keys[:-1]])
    offsets = np.r_[starts, len(unique)].astype(np.int64)
    return _Postings(term_of(term_keys[starts]), offsets, post_docs, freqs.astype(np.int64))


def _gram_postings(values: Sequence[str], sizes: tuple[int, ...]) -> tuple[_Postings, np.ndarray]:
    """The GramTokenizer's terms for every document at once, and each document's token count."""
    n = len(values)
    memo: dict[str, str] = {}  # activity lists, operators and districts repeat across listings
    per_doc = []
    for value in values:
        joined = memo.get(value)
        if joined is None:
            joined = memo[value] = "\x00".join(words(value))
        per_doc.append(joined)
    lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=n)
    text = "\x00".join(per_doc) + "\x00"
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc_of = np.repeat(np.arange(n, dtype=np.int64), lengths + 1)
    valid = cp != 0
    keys, docs = [], []
    if 1 in sizes:
        at = np.flatnonzero(valid)
        keys.append(cp[at] << np.uint64(_CP_BITS))
        docs.append(doc_of[at])
    if 2 in sizes:
        at = np.flatnonzero(valid[:-1] & valid[1:])
        keys.append((cp[at] << np.uint64(_CP_BITS)) | cp[at + 1])
        docs.append(doc_of[at])
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    all_docs = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    token_counts = np.bincount(all_docs, minlength=n).astype(np.int64)

    def term_of(term_keys: np.ndarray) -> list[bytes]:
        out = []
        for key in term_keys.tolist():
            first, second = key >> _CP_BITS, key & ((1 << _CP_BITS) - 1)
            out.append((chr(first) + (chr(second) if second else "")).encode("utf-8"))
        return out

    return _from_pairs(all_keys, all_docs, term_of), token_counts


def _analyzed_postings(fieldobj: Any, values: Sequence[str]) -> _Postings:
    """Postings of a keyword/ID field through whoosh's own analyzer, once per distinct value."""
    seen: dict[str, list[tuple[int, int]]] = {}
    term_ids: dict[bytes, int] = {}
    keys: list[int] = []
    docs: list[int] = []
    freqs: list[int] = []
    for docnum, value in enumerate(values):
        items = seen.get(value)
        if items is None:
            items = seen[value] = [
                (term_ids.setdefault(tbytes, len(term_ids)), freq)
                for tbytes, freq, _weight, _vbytes in fieldobj.index(value)
            ]
        for term_id, freq in items:
            keys.append(term_id)
            docs.append(docnum)
            freqs.append(freq)
    by_bytes = sorted(term_ids, key=lambda t: t)
    rank = np.zeros(len(term_ids), dtype=np.int64)
    for position, tbytes in enumerate(by_bytes):
        rank[term_ids[tbytes]] = position
    key_arr = rank[np.asarray(keys, dtype=np.int64)] if keys else np.zeros(0, np.int64)
    doc_arr = np.asarray(docs, dtype=np.int64)
    freq_arr = np.asarray(freqs, dtype=np.int64)
    order = np.lexsort((doc_arr, key_arr))
    key_arr, doc_arr, freq_arr = key_arr[order], doc_arr[order], freq_arr[order]
    starts = (
        np.flatnonzero(np.r_[True, key_arr[1:] != key_arr[:-1]])
        if len(key_arr)
        else np.zeros(0, dtype=np.int64)
    )
    offsets = np.r_[starts, len(key_arr)].astype(np.int64)
    terms = [by_bytes[int(k)] for k in key_arr[starts]] if len(key_arr) else []
    return _Postings(terms, offsets, doc_arr, freq_arr)


def _id_postings(ids: Sequence[str]) -> _Postings:
    encoded = np.array([i.encode("utf-8") for i in ids], dtype=object)
    order = np.asarray(sorted(range(len(ids)), key=lambda i: encoded[i]), dtype=np.int64)
    return _Postings(
        [encoded[i] for i in order.tolist()],
        np.arange(len(ids) + 1, dtype=np.int64),
        order,
        np.ones(len(ids), dtype=np.int64),
    )


class _BlockWriter(W3PostingsWriter):  # type: ignore[misc]  # whoosh ships no types: its base is Any
    """whoosh's postings writer fed whole blocks (its own block format and term info), with the
    per-posting work done over plain lists instead of one add_posting() call per posting."""

    _minlength: int | None
    _maxlength: int

    def write_blocks(
        self, docs: list[int], freqs: list[int], lengths: list[int] | None, values: bool
    ) -> None:
        limit = self._blocklimit
        total = len(docs)
        for start in range(0, total, limit):
            end = min(total, start + limit)
            ids = docs[start:end]
            block_freqs = freqs[start:end]
            self._ids = array("I", ids)
            self._weights = array("f", block_freqs)
            self._block_freqs = block_freqs
            self._values = struct.pack(f">{len(block_freqs)}I", *block_freqs) if values else None
            self._maxweight = float(max(block_freqs))
            if lengths is not None:
                block_lengths = [lengths[d] for d in ids]
                self._minlength, self._maxlength = min(block_lengths), max(block_lengths)
            else:
                self._minlength, self._maxlength = None, 0
            self._write_block(last=end == total)

    def _mini_ids(self) -> tuple[int, ...]:
        ids = self._ids
        return (
            ids[0],
            *[b - a for a, b in zip(ids, ids[1:], strict=False)],
        )  # whoosh's delta_encode

    def _mini_weights(self) -> Any:
        freqs = self._block_freqs
        low, high = min(freqs), max(freqs)
        if low == high:
            return None if low == 1 else self._weights[0]
        return tuple(self._weights)

    def _mini_values(self) -> Any:
        return self._values


def _segment_postings(
    rows: list[dict[str, Any]],
) -> tuple[dict[str, _Postings], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every field's postings of `rows` (listing_fields dicts), the gram fields' token counts per
    document, and the unsigned numeric columns as whoosh stores them."""
    schema = _schema()
    n = len(rows)
    unsigned = {
        c: np.fromiter((r[c] for r in rows), dtype=np.int64, count=n) for c in _UNSIGNED_COLUMNS
    }
    postings: dict[str, _Postings] = {}
    lengths: dict[str, np.ndarray] = {}
    for field_name in ("name", "place", "act", "body"):
        analyzer = schema[field_name].analyzer
        assert isinstance(analyzer, GramTokenizer)
        postings[field_name], lengths[field_name] = _gram_postings(
            [r[field_name] for r in rows], analyzer.sizes
        )
    for field_name in ("kind", "targets", "days", "flags", "municipality"):
        postings[field_name] = _analyzed_postings(schema[field_name], [r[field_name] for r in rows])
    postings["id"] = _id_postings([r["id"] for r in rows])
    return postings, lengths, unsigned


def _sidecar_arrays(
    rows: list[dict[str, Any]], postings: dict[str, _Postings], unsigned: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    arrays = column_arrays([r["id"] for r in rows], [r["name_norm"] for r in rows], unsigned)
    for field_name, found in postings.items():
        width = max([1, *map(len, found.terms)])
        arrays.update(
            posting_arrays(
                field_name, np.array(found.terms, dtype=f"S{width}"), found.offsets, found.docs
            )
        )
    return arrays


def memory_arrays(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The sidecar arrays a segment holding `rows` would have, built in memory without writing a
    segment (search's overlay of changes not yet committed to whoosh)."""
    postings, _, unsigned = _segment_postings(rows)
    return _sidecar_arrays(rows, postings, unsigned)


def build_segment(index_dir: str, rows: list[dict[str, Any]]) -> Any:
    """Write one whoosh segment (and its sidecar) holding `rows` (listing_fields dicts); returns the
    segment object for the table of contents."""
    schema = _schema()
    storage = FileStorage(index_dir)
    codec = W3Codec()
    segment = codec.new_segment(storage, "MAIN")
    n = len(rows)
    assert n <= _DOC_MASK
    ids = [r["id"] for r in rows]
    names = [r["name_norm"] for r in rows]
    postings, lengths, unsigned = _segment_postings(rows)

    # Per-document columns: what the normal writer's per-document writer stores.
    perdoc = W3PerDocWriter(codec, storage, segment)
    for field_name in ("id", "name_norm", *_UNSIGNED_COLUMNS):
        fieldobj = schema[field_name]
        perdoc._create_column(field_name, fieldobj.column_type)
        add = perdoc._get_column(field_name).add
        values = ids if field_name == "id" else names if field_name == "name_norm" else None
        if values is not None:
            for docnum, value in enumerate(values):
                add(docnum, fieldobj.to_column_value(value))
        else:
            for docnum, value in enumerate(unsigned[field_name].tolist()):
                add(docnum, value)
    length_bytes: dict[str, np.ndarray] = {}
    for field_name, counts in lengths.items():
        length_bytes[field_name] = _length_bytes(counts)
        column = f"_{field_name}_len"
        perdoc._create_column(column, LENGTHS_COLUMN)
        add = perdoc._get_column(column).add
        for docnum in np.flatnonzero(counts).tolist():
            add(docnum, int(length_bytes[field_name][docnum]))
        perdoc._fieldlengths[field_name] += int(counts.sum())
    perdoc._doccount = n
    perdoc._indoc = False
    perdoc.close()

    # Postings: fields in name order, terms in byte order (the term table's key order).
    fieldwriter = codec.field_writer(storage, segment)
    for field_name in sorted(postings):
        fieldobj = schema[field_name]
        found = postings[field_name]
        if not found.terms:
            continue
        fieldwriter.start_field(field_name, fieldobj)
        writer = _BlockWriter(
            fieldwriter._postfile,
            blocklimit=codec._blocklimit,
            compression=codec._compression,
            inlinelimit=codec._inlinelimit,
        )
        fieldwriter._postwriter = writer
        fixed_values = bool(fieldobj.format.fixed_value_size())
        offsets = found.offsets.tolist()
        doc_lengths = (
            _LENGTH_CACHE[length_bytes[field_name]].tolist() if field_name in length_bytes else None
        )  # each document's field length as whoosh reads it back (byte_to_length)
        for i, tbytes in enumerate(found.terms):
            lo, hi = offsets[i], offsets[i + 1]
            fieldwriter.start_term(tbytes)
            writer.write_blocks(  # per term, so no field's postings are all Python ints at once
                found.docs[lo:hi].tolist(), found.freqs[lo:hi].tolist(), doc_lengths, fixed_values
            )
            fieldwriter.finish_term()
        fieldwriter.finish_field()
    fieldwriter.close()
    segment.set_doc_count(n)

    write_sidecar(
        sidecar_dir(Path(index_dir), segment.segment_id()),
        n,
        _sidecar_arrays(rows, postings, unsigned),
    )
    return segment


def _build_chunk(index_dir: str, docs: list[dict[str, Any]], check: Callable[..., Any]) -> Any:
    rows: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for doc in docs:
        fields = listing_fields(doc)
        reason = check(fields)
        if reason:
            problems[doc["id"]] = reason
        else:
            rows.append(fields)
    return (build_segment(index_dir, rows) if rows else None), problems


def bulk_build(
    index_dir: Path,
    docs: Iterable[dict[str, Any]],
    check: Callable[[dict[str, Any]], str | None],
    progress: Callable[[int], None] | None = None,
    processes: int | None = None,
    split_tail: bool = False,
) -> tuple[int, dict[str, str]]:
    """Index `docs` into the empty whoosh index at `index_dir` (segments of SEGMENT_DOCS built by up to
    `processes` worker processes while this one reads the next chunk) and commit one table of contents.
    `split_tail`: the documents left at the end (fed slowly, as an import commits them) are built as one
    segment per worker, side by side. Returns (documents read, problems by id)."""
    workers = processes if processes is not None else min(2, os.cpu_count() or 1)
    count = 0
    problems: dict[str, str] = {}
    segments: list[Any] = []
    pending: list[Future[Any]] = []

    def collect(future: Future[Any]) -> None:
        segment, found = future.result()
        if segment is not None:
            segments.append(segment)
        problems.update(found)

    chunk: list[dict[str, Any]] = []
    pool = (
        # forkserver: workers start from a clean process, never a fork of a serving one with threads
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
        if workers > 1
        else None
    )
    try:
        for doc in docs:
            chunk.append(doc)
            count += 1
            if progress and count % 500 == 0:
                progress(500)
            if len(chunk) >= SEGMENT_DOCS:
                if pool is None:
                    segment, found = _build_chunk(str(index_dir), chunk, check)
                    segments.append(segment) if segment is not None else None
                    problems.update(found)
                else:
                    while len(pending) >= workers:  # at most one chunk waiting per worker
                        collect(pending.pop(0))
                    pending.append(pool.submit(_build_chunk, str(index_dir), chunk, check))
                chunk = []
        if chunk and pool is not None and split_tail and len(chunk) >= 2 * TAIL_PART_DOCS:
            # The last chunk is built after the last document came: in parts, one per worker.
            size = -(-len(chunk) // workers)
            for start in range(0, len(chunk), size):
                pending.append(
                    pool.submit(_build_chunk, str(index_dir), chunk[start : start + size], check)
                )
        elif chunk:
            if pool is None or not pending:
                segment, found = _build_chunk(str(index_dir), chunk, check)
                if segment is not None:
                    segments.append(segment)
                problems.update(found)
            else:
                pending.append(pool.submit(_build_chunk, str(index_dir), chunk, check))
        for future in pending:
            collect(future)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if progress and count % 500:
        progress(count % 500)
    storage = FileStorage(str(index_dir))
    schema = _schema()
    TOC(schema, segments, 1).write(storage, "MAIN")
    return count, problems
