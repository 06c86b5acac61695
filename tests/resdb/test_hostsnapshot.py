"""Host snapshots: written whole or not at all, refused when damaged, shared read-only or copy-on-write,
one builder per host, and tied to the very change of the very database they reflect."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resdb.directory import Directory
from resdb.hostsnapshot import BlobColumn, SnapshotStore, load_arrays, utf8_blob, write_arrays

SALON = {"id": "s-1", "name": "ふれあいサロン", "kind": "kayoi", "lat": 36.72, "lon": 137.09}


def test_arrays_round_trip_and_strings(tmp_path: Path) -> None:
    blob, offsets = utf8_blob(["射水", "", "café"])
    arrays = {"big": np.arange(10_000, dtype=np.int64), "blob": blob, "off": offsets}
    assert write_arrays(tmp_path / "a", arrays, {"seq": 7})
    loaded = load_arrays(tmp_path / "a")
    assert loaded is not None
    manifest, got = loaded
    assert manifest["seq"] == 7
    assert isinstance(got["big"], np.memmap)  # large arrays are mapped, not read
    assert got["big"][-1] == 9_999
    column = BlobColumn(got["blob"], got["off"])
    assert [column.text(i) for i in range(len(column))] == ["射水", "", "café"]
    assert column[-1] == "café".encode()
    with pytest.raises(IndexError):
        column[3]
    # a second writer of the same folder leaves the first copy alone
    assert not write_arrays(tmp_path / "a", {"big": np.zeros(3)}, {"seq": 8})
    assert load_arrays(tmp_path / "a")[0]["seq"] == 7  # type: ignore[index]


def test_damaged_snapshot_is_refused(tmp_path: Path) -> None:
    write_arrays(tmp_path / "a", {"big": np.arange(100_000)}, {})
    path = tmp_path / "a" / "big.npy"
    path.write_bytes(path.read_bytes()[:-8])
    assert load_arrays(tmp_path / "a") is None
    (tmp_path / "b").mkdir()  # a folder left without a manifest (a writer killed before rename)
    assert load_arrays(tmp_path / "b") is None


def test_copy_on_write_keeps_the_file(tmp_path: Path) -> None:
    write_arrays(tmp_path / "a", {"big": np.zeros(100_000, dtype=np.int64)}, {})
    mine = load_arrays(tmp_path / "a", copy_on_write=True)[1]["big"]  # type: ignore[index]
    mine[5] = 42
    other = load_arrays(tmp_path / "a")[1]["big"]  # type: ignore[index]
    assert int(mine[5]) == 42 and int(other[5]) == 0
    with pytest.raises(ValueError):
        other[5] = 1  # read-only mapping


def test_store_newest_usable_and_prune(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "pool", "1")
    for seq in (3, 10, 7):
        store.publish(seq, {"x": np.full(4, seq)}, {"stamp": f"db:{seq}"}, keep=5)
    found = store.load_newest(lambda m: True)
    assert found is not None and found[0]["seq"] == 10
    found = store.load_newest(lambda m: m["stamp"] != "db:10")
    assert found is not None and found[0]["seq"] == 7
    assert SnapshotStore(tmp_path / "pool", "2").load_newest(lambda m: True) is None  # other format
    store.prune(keep=1)
    assert [p.name[:15] for p in store.folders()] == ["s00000000000010"]


def _hold_lock(root: str, started: multiprocessing.synchronize.Event) -> None:
    with SnapshotStore(Path(root), "1").exclusive():
        started.set()
        time.sleep(1.0)


def test_one_builder_per_host(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    started = context.Event()
    holder = context.Process(target=_hold_lock, args=(str(tmp_path), started))
    holder.start()
    assert started.wait(30)
    began = time.monotonic()
    with SnapshotStore(tmp_path, "1").exclusive():
        waited = time.monotonic() - began
    holder.join(30)
    assert waited > 0.3  # blocked until the other process let go


def test_change_stamp_names_this_change_of_this_database(
    directory: Directory, make_directory, backend: str
) -> None:  # type: ignore[no-untyped-def]
    empty = directory.change_stamp(0)
    assert empty is not None and empty == directory.change_stamp(0)
    directory.create(SALON, actor="a")
    head = directory.head_seq()
    stamp = directory.change_stamp(head)
    assert stamp is not None and stamp.startswith(directory.store_id())
    assert directory.change_stamp(head + 1) is None  # not (yet) in the log
    other = make_directory(backend, name="other")
    assert other.store_id() != directory.store_id()
    other.create(SALON, actor="a")
    assert other.change_stamp(other.head_seq()) != stamp  # same number, another database
    directory.update("s-1", {"name": "サロン"}, actor="a", expected_version=1)
    assert directory.change_stamp(head) == stamp  # later changes leave it alone


def test_index_copy_carries_the_host_snapshots(directory: Directory, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from resdb.hostsnapshot import host_store

    directory.create(SALON, actor="a")
    seq = directory.head_seq()
    stamp = directory.change_stamp(seq)
    store = host_store(directory.instance_dir, "matchpool", "1")
    store.publish(seq, {"x": np.arange(5)}, {"stamp": stamp}, keep=2)
    copied = cli("index", "copy", str(tmp_path / "copy"), directory=directory)
    assert copied.exit_code == 0, copied.output
    host_b = Directory(directory.engine, tmp_path / "host-b")
    installed = cli("index", "install", str(tmp_path / "copy"), directory=host_b)
    assert installed.exit_code == 0, installed.output
    found = host_store(host_b.instance_dir, "matchpool", "1").load_newest(
        lambda m: m["stamp"] == host_b.change_stamp(m["seq"])
    )
    assert found is not None and list(found[1]["x"]) == [0, 1, 2, 3, 4]
    assert (host_b.index.current / "cursor").exists()  # the index itself was installed …
    assert not (host_b.index.current / "host-snapshots").exists()  # … without the snapshots in it


def test_small_snapshot_is_one_file_and_refused_when_cut(tmp_path: Path) -> None:
    blob, offsets = utf8_blob(["ふれあい"])
    arrays = {"ids": np.arange(3), "terms": np.array([b"ab", b"c"]), "blob": blob, "off": offsets}
    write_arrays(tmp_path / "a", arrays, {"size": 3}, pack_small=True)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["manifest.json", "packed.bin"]
    write_arrays(tmp_path / "b", arrays, {"size": 3})  # not asked to pack: one .npy per array
    assert len(list((tmp_path / "b").glob("*.npy"))) == 4
    manifest, got = load_arrays(tmp_path / "a")  # type: ignore[misc]
    assert manifest["size"] == 3 and list(got["terms"]) == [b"ab", b"c"]
    assert BlobColumn(got["blob"], got["off"]).text(0) == "ふれあい"
    packed = tmp_path / "a" / "packed.bin"
    packed.write_bytes(packed.read_bytes()[:-10])
    assert load_arrays(tmp_path / "a") is None


def test_snapshot_written_before_manifests_held_layouts_still_loads(tmp_path: Path) -> None:
    """Sizes keyed by array name, no layouts: each .npy header is read (without numpy's parser)."""
    arrays = {
        "big": np.arange(100_000),
        "terms": np.array([b"ab", b"cde"]),
        "empty": np.zeros(0, dtype=np.int32),
        "grid": np.arange(12.0).reshape(3, 4),
    }
    folder = tmp_path / "old"
    folder.mkdir()
    sizes = {}
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
        sizes[name] = (folder / f"{name}.npy").stat().st_size
    (folder / "manifest.json").write_text(json.dumps({"format": "1", "files": sizes}))
    loaded = load_arrays(folder)
    assert loaded is not None
    for name, array in arrays.items():
        assert loaded[1][name].dtype == array.dtype and np.array_equal(loaded[1][name], array)
    assert isinstance(loaded[1]["big"], np.memmap)


def test_of_two_snapshots_of_one_change_the_later_is_loaded(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "pool", "1")
    for value in range(5):  # e.g. a fresh build and a worker's republished overlay, same seq
        store.publish(9, {"x": np.full(3, value)}, {}, keep=10)
    found = store.load_newest(lambda m: True)
    assert found is not None and int(found[1]["x"][0]) == 4


def test_a_mapped_blob_is_read_with_pread_in_pieces_cut_after_newlines(tmp_path: Path) -> None:
    from resdb.domain.blobs import FileBlob

    lines = [
        "射水の畑",
        "",
        "x" * 50,
        "café ☕",
        "とても長い行" * 400,
        "終",
    ]  # over MAP_ABOVE_BYTES: mapped
    raw = "\n".join(lines).encode()
    assert write_arrays(tmp_path / "t", {"text": np.frombuffer(raw, dtype=np.uint8)}, {})
    loaded = load_arrays(tmp_path / "t", copy_on_write=True)
    assert loaded is not None
    file = FileBlob.of(loaded[1]["text"])
    assert file is not None and file.size == len(raw)
    assert file.read(0, 12) == "射水の畑".encode()
    for chunk in (1, 7, 64, 10_000):
        pieces = list(file.lines(chunk))
        assert b"".join(piece for _at, piece in pieces) == raw
        assert all(raw[at : at + len(piece)] == piece for at, piece in pieces)
        assert all(piece.endswith(b"\n") for _at, piece in pieces[:-1])
    assert FileBlob.of(np.frombuffer(raw, dtype=np.uint8)) is None  # in memory: no file


def _resident_pages(view: Any) -> int:
    """How many of a mapped array's pages are in memory (mincore)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    start = view.ctypes.data - view.ctypes.data % mmap.PAGESIZE
    length = view.ctypes.data + view.nbytes - start
    pages = (length + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = ctypes.create_string_buffer(pages)
    assert libc.mincore(start, length, vector) == 0, ctypes.get_errno()
    return sum(byte & 1 for byte in vector.raw)


def test_prefetch_reads_a_cold_mapped_slice_in_before_it_is_touched(tmp_path: Path) -> None:
    """What makes a search on a cold page cache fast: the postings it will read are asked for at once
    (MADV_WILLNEED) instead of one page fault at a time. Plain and empty arrays are left alone."""
    import os

    from resdb.hostsnapshot import prefetch

    folder = tmp_path / "snap"
    write_arrays(folder, {"docs": np.arange(4_000_000, dtype=np.int64)}, {})
    for path in folder.iterdir():  # out of the page cache, as after a reboot
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    loaded = load_arrays(folder)
    assert loaded is not None
    docs = loaded[1]["docs"]
    part = docs[1_000_000:3_000_000]
    pages = part.nbytes // 4096
    if _resident_pages(part) > pages // 2:
        pytest.skip("this kernel kept the file in its page cache")
    prefetch(part)
    deadline = time.monotonic() + 10
    while _resident_pages(part) < pages * 0.9 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _resident_pages(part) >= pages * 0.9  # read in without touching a single element
    prefetch(np.arange(10))  # not mapped: nothing to do
    prefetch(docs[:0])
