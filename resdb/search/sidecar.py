"""Per-segment sidecar files: what search reads of one whoosh segment (ids, names, filter columns, and
every posting list in CSR form) as plain .npy arrays memory-mapped read-only, so every worker of a host
shares one copy through the OS page cache instead of decoding its own."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from resdb.hostsnapshot import load_arrays, utf8_blob, write_arrays
from resdb.search.schema import _NUMERIC_FIELDS, LAT_OFFSET, LON_OFFSET, MICRO, _tiebreak

# Bumped whenever what a sidecar holds changes: an older sidecar is then rebuilt, never trusted.
SIDECAR_FORMAT = "1"
# Fields whose postings search reads (everything indexed; `name_norm` is read as a column only).
POSTING_FIELDS = (
    "id",
    "name",
    "place",
    "act",
    "body",
    "kind",
    "targets",
    "days",
    "flags",
    "municipality",
)
_EMPTY = np.empty(0, dtype=np.int64)


def sidecar_dir(index_dir: Path, segment_id: str) -> Path:
    return Path(index_dir) / f"side-{segment_id}"


def column_arrays(
    ids: Sequence[str], names: Sequence[str], columns: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The per-document arrays of a segment from its stored values (`columns`: the raw unsigned
    lat/lon/cost columns as whoosh stores them)."""
    size = len(ids)
    ids_blob, ids_off = utf8_blob(ids)
    names_blob, names_off = utf8_blob(names)
    raw = {name: np.asarray(columns[name], dtype=np.float64) for name in _NUMERIC_FIELDS}
    return {
        "ids_blob": ids_blob,
        "ids_off": ids_off,
        "names_blob": names_blob,
        "names_off": names_off,
        "lat": raw["lat"] / MICRO - LAT_OFFSET,
        "lon": raw["lon"] / MICRO - LON_OFFSET,
        "cost": raw["cost"] - 1,  # -1 = unknown
        "name_len": np.fromiter((len(n) for n in names), dtype=np.float64, count=size),
        "tiebreak": np.fromiter((_tiebreak(i) for i in ids), dtype=np.int64, count=size),
    }


def posting_arrays(
    field_name: str, terms: np.ndarray, offsets: np.ndarray, docs: np.ndarray
) -> dict[str, np.ndarray]:
    """One field's postings: `terms` (UTF-8, fixed width, sorted), `offsets` (len + 1), `docs`
    (ascending within each term)."""
    return {
        f"{field_name}.terms": terms,
        f"{field_name}.offsets": offsets.astype(np.int64, copy=False),
        f"{field_name}.docs": docs.astype(np.int32, copy=False),
    }


def _decode_postings(leaf: Any, field_name: str, term: Any) -> np.ndarray:
    """Every document number of one segment holding `term` (deleted ones included), decoded a whole
    whoosh block at a time (the generic matcher walks one posting per call)."""
    try:
        matcher = leaf.postings(field_name, term)
    except Exception:  # whoosh raises TermNotFound for absent terms
        return _EMPTY
    parts: list[np.ndarray] = []
    try:
        while not matcher._atend:
            if matcher._data is None:
                matcher._read_data()
            raw = np.asarray(matcher._data[0], dtype=np.int64)
            parts.append(raw if matcher._byteids else np.cumsum(raw))  # ids are delta-coded
            matcher._next_block()
    except AttributeError:  # a matcher without whoosh3 blocks: the generic walk
        return np.fromiter(leaf.postings(field_name, term).all_ids(), dtype=np.int64)
    if not parts:
        return _EMPTY
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def arrays_from_leaf(leaf: Any) -> dict[str, np.ndarray]:
    """Decode a whoosh segment (a small incremental one, or one whoosh merged) into sidecar arrays."""
    size = leaf.doc_count_all()
    ids = list(leaf.column_reader("id")) if size else []
    names = list(leaf.column_reader("name_norm")) if size else []
    columns = {
        name: np.fromiter(leaf.column_reader(name), dtype=np.float64, count=size)
        if size
        else np.zeros(0)
        for name in _NUMERIC_FIELDS
    }
    arrays = column_arrays(ids, names, columns)
    indexed = set(leaf.indexed_field_names())
    for field_name in POSTING_FIELDS:
        terms: list[bytes] = list(leaf.lexicon(field_name)) if field_name in indexed else []
        lists = [_decode_postings(leaf, field_name, t) for t in terms]
        arrays.update(postings_from_lists(field_name, terms, lists))
    return arrays


def postings_from_lists(
    field_name: str, terms: Sequence[bytes], lists: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    order = sorted(range(len(terms)), key=lambda i: terms[i])
    offsets = np.zeros(len(terms) + 1, dtype=np.int64)
    if terms:
        np.cumsum([len(lists[i]) for i in order], out=offsets[1:])
    docs = (
        np.concatenate([lists[i] for i in order]) if terms else np.zeros(0, dtype=np.int32)
    ).astype(np.int32)
    table = np.array([terms[i] for i in order], dtype=f"S{max(1, *map(len, terms or [b'']))}")
    return posting_arrays(field_name, table, offsets, docs)


def write_sidecar(directory: Path, size: int, arrays: dict[str, np.ndarray]) -> None:
    """Write a sidecar atomically (see hostsnapshot.write_arrays): readers see a whole sidecar or none;
    when another process got there first, its copy stays."""
    write_arrays(directory, arrays, {"format": SIDECAR_FORMAT, "size": size}, pack_small=True)


def load_sidecar(directory: Path, size: int) -> dict[str, np.ndarray] | None:
    """The arrays of a sidecar, memory-mapped read-only; None when it is missing, of another format or
    size, or any file is not whole (the caller rebuilds it)."""
    loaded = load_arrays(directory)
    if loaded is None:
        return None
    manifest, arrays = loaded
    if manifest.get("format") != SIDECAR_FORMAT or manifest.get("size") != size:
        return None
    if not _consistent(arrays, size):
        return None
    return arrays


def _consistent(arrays: dict[str, np.ndarray], size: int) -> bool:
    for name in ("lat", "lon", "cost", "name_len", "tiebreak"):
        if name not in arrays or len(arrays[name]) != size:
            return False
    for prefix in ("ids", "names"):
        off = arrays.get(f"{prefix}_off")
        blob = arrays.get(f"{prefix}_blob")
        if off is None or blob is None or len(off) != size + 1 or int(off[-1]) != len(blob):
            return False
    for field_name in POSTING_FIELDS:
        terms = arrays.get(f"{field_name}.terms")
        offsets = arrays.get(f"{field_name}.offsets")
        docs = arrays.get(f"{field_name}.docs")
        if terms is None or offsets is None or docs is None:
            return False
        if len(offsets) != len(terms) + 1 or int(offsets[-1]) != len(docs):
            return False
    return True


def remove_stale(index_dir: Path, keep: Iterable[str]) -> None:
    """Delete sidecars of segments no longer in the index (a process still mapping one keeps its
    pages until it lets go)."""
    wanted = {f"side-{segment_id}" for segment_id in keep}
    for path in Path(index_dir).glob("side-*"):
        if path.name not in wanted:
            shutil.rmtree(path, ignore_errors=True)
