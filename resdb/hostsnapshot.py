"""Host snapshots: arrays one process of a host derives from the database (the matching pool, the map's
columns, the search sidecars) written once as .npy files and memory-mapped by every worker, so a host
keeps one copy in the OS page cache and a worker starts by mapping files, not by reading every listing.

A snapshot is a folder of `.npy` files plus `manifest.json` (what it holds, the byte size of every file
and the caller's facts, e.g. the change-log number it reflects). It is written into a temporary folder
and renamed into place, so readers see a whole snapshot or none; a missing or truncated file makes the
loader answer None (the caller rebuilds, never trusts it). `SnapshotStore` keeps the snapshots of one
kind in one folder of the instance, newest change-log number first, and lets one process of the host
build while the others wait for it (an advisory file lock).
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import json
import logging
import multiprocessing
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from resdb.background import Background
from resdb.domain.blobs import BlobColumn, utf8_blob

__all__ = [
    "BlobColumn",
    "BuilderThread",
    "SnapshotStore",
    "copy_newest",
    "give_back_freed_memory",
    "publish_in_child",
    "host_store",
    "load_arrays",
    "reflects",
    "utf8_blob",
    "write_arrays",
]

SNAPSHOTS_DIR = "snapshots"  # in the instance folder: one sub-folder (a SnapshotStore) per kind
MAP_ABOVE_BYTES = 128 + 4096  # smaller files are read into memory (not worth a mapping)
PACK_BELOW_BYTES = 256 * 1024  # with pack_small, arrays together under this go into one file
PACKED = "packed.bin"
_ALIGN = 64


def _layout(array: np.ndarray, offset: int) -> dict[str, Any]:
    return {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}


_DESCR = re.compile(r"""['"]descr['"]\s*:\s*['"]([^'"]+)['"]""")
_SHAPE = re.compile(r"""['"]shape['"]\s*:\s*\(([^)]*)\)""")
_FORTRAN = re.compile(r"""['"]fortran_order['"]\s*:\s*True""")


def _npy_layout(path: Path) -> dict[str, Any]:
    """dtype, shape and data offset of a .npy file, read from its header with regular expressions (a
    snapshot written before manifests held layouts)."""
    with open(path, "rb") as handle:
        start = handle.read(12)
        if start[:6] != b"\x93NUMPY":
            raise ValueError(f"{path} is not a .npy file")
        if start[6] == 1:
            size, at = int.from_bytes(start[8:10], "little"), 10
        else:
            size, at = int.from_bytes(start[8:12], "little"), 12
        handle.seek(at)
        header = handle.read(size).decode("latin1")
    descr, shape = _DESCR.search(header), _SHAPE.search(header)
    if descr is None or shape is None or _FORTRAN.search(header):
        raise ValueError(f"{path}: unexpected .npy header")
    dims = [int(n) for n in shape.group(1).replace(" ", "").split(",") if n]
    return {"dtype": descr.group(1), "shape": dims, "offset": at + size, "file": path.name}


def write_arrays(
    directory: Path,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    *,
    pack_small: bool = False,
) -> bool:
    """Write every array and then the manifest (`meta`, file sizes and each array's dtype, shape and
    data offset) into a temporary folder and rename it to `directory`: readers see a whole snapshot or
    none. False when another process got there first (its copy stays). Arrays are standard `.npy`
    files; `pack_small`: arrays under PACK_BELOW_BYTES together go into one raw file, read whole (an
    edit's tiny search segment) instead of one file each."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        files: dict[str, int] = {}
        layouts: dict[str, dict[str, Any]] = {}
        contiguous = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        if pack_small and sum(int(a.nbytes) for a in contiguous.values()) < PACK_BELOW_BYTES:
            path = tmp / PACKED
            with open(path, "wb") as handle:
                for name, array in contiguous.items():
                    handle.write(b"\0" * (-handle.tell() % _ALIGN))
                    layouts[name] = {**_layout(array, handle.tell()), "file": PACKED}
                    handle.write(array.tobytes())
            files[PACKED] = path.stat().st_size
        else:
            for name, array in contiguous.items():
                path = tmp / f"{name}.npy"
                np.save(path, array, allow_pickle=False)
                size = path.stat().st_size
                files[path.name] = size
                layouts[name] = {**_layout(array, size - array.nbytes), "file": path.name}
        manifest = {**meta, "files": files, "arrays": layouts}
        (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        try:
            os.rename(tmp, directory)
        except OSError:  # already there (another worker wrote it)
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_arrays(
    directory: Path, *, copy_on_write: bool = False
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """(manifest, arrays) of a snapshot folder, large arrays memory-mapped (read-only, or copy-on-write:
    a write makes a private copy of the touched pages only); None when the manifest or any file is
    missing or not whole. Arrays are placed from the manifest's layouts, never by parsing .npy headers
    (numpy parses them with `ast`, which Python 3.11 does not make safe beside another thread compiling
    code)."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            return None
        # Manifests written before they named files and layouts keyed sizes by array name.
        files = {
            name if name.endswith((".npy", ".bin")) else f"{name}.npy": int(nbytes)
            for name, nbytes in manifest["files"].items()
        }
        manifest["files"] = files
        for filename, nbytes in files.items():
            if (directory / filename).stat().st_size != nbytes:
                return None
        layouts = manifest.get("arrays") or {
            filename.removesuffix(".npy"): _npy_layout(directory / filename) for filename in files
        }
        raw: dict[str, bytes] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, layout in layouts.items():
            filename = layout["file"]
            dtype = np.dtype(layout["dtype"])
            shape = tuple(int(n) for n in layout["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            offset = int(layout["offset"])
            if offset + count * dtype.itemsize > manifest["files"][filename]:
                return None
            if manifest["files"][filename] > MAP_ABOVE_BYTES and filename != PACKED and count:
                arrays[name] = np.memmap(
                    directory / filename,
                    dtype=dtype,
                    mode="c" if copy_on_write else "r",
                    offset=offset,
                    shape=shape,
                )
            else:
                if filename not in raw:
                    raw[filename] = (directory / filename).read_bytes()
                flat = np.frombuffer(raw[filename], dtype=dtype, count=count, offset=offset)
                arrays[name] = flat.reshape(shape).copy()  # writable, like a copy-on-write map
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest, arrays


def reflects(meta: dict[str, Any], head: int, change_stamp: Callable[[int], str | None]) -> bool:
    """Whether a snapshot's manifest names a change at or before `head` that this database still holds:
    its `stamp` (written at publish from `Directory.change_stamp`) equals the database's stamp of `seq`."""
    seq, stamp = meta.get("seq"), meta.get("stamp")
    return isinstance(seq, int) and seq <= head and stamp is not None and change_stamp(seq) == stamp


class SnapshotStore:
    """The snapshots of one kind under `root` (e.g. instance/snapshots/matchpool), named by the change-log
    number they reflect; `format` is bumped whenever what they hold changes (older ones are ignored)."""

    def __init__(self, root: Path, format: str) -> None:
        self.root = Path(root)
        self.format = format

    def folders(self) -> list[Path]:
        """Snapshot folders, newest change-log number first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("s")]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def load_newest(
        self,
        usable: Callable[[dict[str, Any]], bool],
        *,
        copy_on_write: bool = False,
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The newest whole snapshot of this format whose manifest `usable` accepts; None when none."""
        for folder in self.folders():
            loaded = load_arrays(folder, copy_on_write=copy_on_write)
            if loaded is None or loaded[0].get("format") != self.format:
                continue
            if usable(loaded[0]):
                return loaded
        return None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the store's build lock (one builder per host; others block here, then look again)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".build.lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def publish(
        self, seq: int, arrays: dict[str, np.ndarray], meta: dict[str, Any], *, keep: int = 2
    ) -> Path:
        """Write a snapshot reflecting change-log number `seq`, then drop all but the newest `keep`
        (a process still mapping a dropped one keeps its pages until it lets go)."""
        # Named by change number, then time written: of two snapshots of one change the later wins.
        folder = self.root / f"s{seq:014d}-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        write_arrays(folder, arrays, {**meta, "format": self.format, "seq": seq})
        self.prune(keep)
        return folder

    def prune(self, keep: int = 2) -> None:
        for folder in self.folders()[keep:]:
            shutil.rmtree(folder, ignore_errors=True)


_LIBC: Any = None  # the C library, loaded once (False: not available)
_PAGE = os.sysconf("SC_PAGE_SIZE")
_MADV_WILLNEED = 3
# The kernel reads at most the device's readahead size per MADV_WILLNEED call (read_ahead_kb, 128 KB by
# default): a longer range is asked for in pieces of that size.
_PREFETCH_PIECE = 128 * 1024


def _libc() -> Any:
    """The process's C library (madvise, malloc_trim), loaded once; None where it cannot be."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
            _LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


def prefetch(view: np.ndarray) -> None:
    """Ask the kernel to read a mapped array's pages now, in large requests (MADV_WILLNEED), rather than
    one page fault at a time as the array is read: what makes a query on a cold page cache slow. Cheap
    when the pages are already in memory; a no-op for arrays that are not mapped or where madvise is
    missing."""
    if not view.nbytes or not (isinstance(view, np.memmap) or isinstance(view.base, np.memmap)):
        return
    libc = _libc()
    if libc is None:
        return
    start = view.ctypes.data
    aligned = start - start % _PAGE
    end = start + view.nbytes
    for piece in range(aligned, end, _PREFETCH_PIECE):
        libc.madvise(piece, min(_PREFETCH_PIECE, end - piece), _MADV_WILLNEED)


def give_back_freed_memory() -> None:
    """Return the heap a whole build freed to the system, once its snapshot is published and mapped: the
    build's objects form reference cycles that only a full collection frees, and glibc keeps freed heap
    otherwise (the worker that built would stay at the size of an unshared copy although it now answers
    from the mapping)."""
    gc.collect()
    libc = _libc()
    try:
        if libc is not None:
            libc.malloc_trim(0)
    except AttributeError:  # not glibc
        pass


def publish_in_child(target: Callable[[str, str], None], url: str, instance_dir: Path) -> bool:
    """Run `target(url, instance_dir)` (a module-level function that builds a host snapshot from the
    database and publishes it) in a fresh process and wait for it: the build's heap (listing dicts,
    rows, text) lives and dies there, so the worker that built keeps no more than the workers that only
    map. False when it could not run or failed (the caller then builds in its own process)."""
    try:
        process = multiprocessing.get_context("spawn").Process(
            target=target, args=(url, str(instance_dir)), name="resdb-snapshot-build"
        )
        process.start()
        process.join()
    except (OSError, RuntimeError, AssertionError):  # e.g. no new process may start here
        logging.getLogger(__name__).warning("snapshot build process not started", exc_info=True)
        return False
    return process.exitcode == 0


def child_url(engine: Any) -> str | None:
    """The database URL a build process can open (password included), or None when another process
    cannot reach the same database (SQLite in memory)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    return str(url.render_as_string(hide_password=False))


def host_store(instance_dir: Path, kind: str, format: str) -> SnapshotStore:
    """The store of one kind of host snapshot (e.g. "matchpool", "map") in an instance folder."""
    return SnapshotStore(Path(instance_dir) / SNAPSHOTS_DIR / kind, format)


def copy_newest(source_root: Path, destination_root: Path) -> list[str]:
    """Copy the newest snapshot of every kind from one snapshots folder to another (a new host starts
    from another's, as with `resdb index copy`; each is checked against the database when loaded, so a
    copy that no longer matches is simply rebuilt). The kinds copied."""
    copied: list[str] = []
    if not Path(source_root).is_dir():
        return copied
    for kind_dir in sorted(p for p in Path(source_root).iterdir() if p.is_dir()):
        newest = SnapshotStore(kind_dir, "").folders()[:1]
        for folder in newest:
            target = Path(destination_root) / kind_dir.name / folder.name
            if target.exists():
                continue
            tmp = target.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(folder, tmp)
            os.rename(tmp, target)
            copied.append(kind_dir.name)
    return copied


class BuilderThread:
    """At most one background build of a host snapshot per process at a time (the map's columns, the
    matching pool): `start(run)` is a no-op while the previous run is still going."""

    def __init__(self, name: str, background: Background) -> None:
        self.name = name
        self.background = background
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the current run (if any) to finish."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def start(self, run: Callable[[], None]) -> bool:
        """Run `run` in a daemon thread of the directory's `Background` unless one is running (or the
        directory is closing); True if started."""
        with self._lock:
            if self.alive:
                return False
            self._thread = self.background.start(self.name, run)
            return self._thread is not None
