"""Many strings as one uint8 blob plus offsets: what a memory-mapped snapshot holds instead of a list of
Python strings (one copy per host in the page cache, read one string at a time)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

_EMPTY_BLOB = np.zeros(0, dtype=np.uint8)


def utf8_blob(values: Sequence[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 blob + offsets (n + 1) holding a list of strings (UTF-8) or byte strings."""
    encoded = [v if isinstance(v, bytes) else v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        np.cumsum(
            np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:]
        )
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else _EMPTY_BLOB
    return blob, offsets


class BlobColumn(Sequence[bytes]):
    """The byte strings of a (memory-mapped) blob + offsets pair, read one at a time without copying
    the rest."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets

    def __len__(self) -> int:
        return max(0, len(self.offsets) - 1)

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.blob[int(self.offsets[i]) : int(self.offsets[i + 1])].tobytes()

    def text(self, i: int) -> str:
        return self[i].decode("utf-8")


class FileBlob:
    """The bytes of a memory-mapped blob read from its file with pread instead of through the mapping:
    rows read one at a time and at random, or a whole scan, would fault the pages into the mapping (and
    count in the process's RSS and PSS); pread leaves them in the host's page cache only."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.offset = offset
        self.size = size
        weakref.finalize(self, os.close, self.fd)

    def read(self, start: int, end: int) -> bytes:
        return os.pread(self.fd, end - start, self.offset + start)

    def lines(self, chunk: int, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(byte position, bytes) of consecutive pieces of about `chunk` bytes from `start` to the end,
        each cut after a newline (the last one excepted): a pattern without a newline never spans two."""
        pos = start
        while pos < self.size:
            end = min(self.size, pos + chunk)
            piece = self.read(pos, end)
            while end < self.size and piece.rfind(b"\n") < 0:  # one line longer than a chunk
                more = self.read(end, min(self.size, end + chunk))
                piece, end = piece + more, end + len(more)
            if end < self.size:
                piece = piece[: piece.rfind(b"\n") + 1]
            yield pos, piece
            pos += len(piece)

    @classmethod
    def of(cls, blob: np.ndarray) -> FileBlob | None:
        """For a read-only or copy-on-write np.memmap of a file region (uint8); None otherwise."""
        filename = getattr(blob, "filename", None)
        offset = getattr(blob, "offset", None)
        if not isinstance(blob, np.memmap) or filename is None or offset is None:
            return None
        try:
            return cls(str(filename), int(offset), int(blob.nbytes))
        except (OSError, TypeError, ValueError):
            return None
