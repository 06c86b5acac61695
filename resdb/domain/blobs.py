"""Many strings as one uint8 blob plus offsets: what a memory-mapped snapshot holds instead of a list of
Python strings (one copy per host in the page cache, read one string at a time)."""

from __future__ import annotations

from collections.abc import Sequence
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
