"""A lazy, read-only array of image frames spread over many memory-mapped shard files."""

from __future__ import annotations

import mmap
from typing import Sequence

import numpy as np


class FrameArray:
    """Concatenation of ``parts`` along axis 0, optionally viewed through ``index``.

    Row ``i`` is row ``index[i]`` of the concatenation (all rows in order if ``index`` is
    None). Nothing is read until rows are asked for, so a dataset larger than memory costs
    only the rows in flight. ``frames[idx]`` with an int, a slice or an int array returns
    an ndarray; gathering groups the rows by part so each memmap is touched once.
    ``windows(starts, length)`` copies runs of consecutive frames.
    """

    def __init__(self, parts: Sequence[np.ndarray], index: np.ndarray | None = None):
        if not parts:
            raise ValueError("FrameArray needs at least one part")
        frame = parts[0].shape[1:]
        for p in parts:
            if p.shape[1:] != frame or p.dtype != parts[0].dtype:
                raise ValueError(f"parts disagree: {p.shape[1:]} {p.dtype} vs {frame} "
                                 f"{parts[0].dtype}")
        self._parts = list(parts)
        self._maps = [_mapping(p) for p in self._parts]
        self._offsets = np.cumsum([0] + [len(p) for p in parts])
        self._index = None if index is None else np.asarray(index, np.int64)
        total = int(self._offsets[-1])
        if self._index is not None and len(self._index) and (
                self._index.min() < 0 or self._index.max() >= total):
            raise IndexError(f"index out of range for {total} frames")
        self.shape = (total if self._index is None else len(self._index),) + frame
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def view(self, rows: np.ndarray) -> "FrameArray":
        """A lazy FrameArray of the given rows of this one."""
        rows = np.asarray(rows, np.int64)
        return FrameArray(self._parts, rows if self._index is None else self._index[rows])

    def __array__(self, dtype=None, copy=None):
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            if not -len(self) <= key < len(self):
                raise IndexError(f"frame {key} out of range for {len(self)} frames")
            return self[np.asarray([key % len(self)])][0]
        if isinstance(key, slice):
            return self[np.arange(*key.indices(len(self)))]
        rows = np.asarray(key)
        if rows.dtype == bool or not np.issubdtype(rows.dtype, np.integer):
            raise TypeError(f"frames are indexed by ints, slices or int arrays, not {rows.dtype}")
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"frame index out of range for {len(self)} frames")
        rows = rows % max(len(self), 1)
        flat = rows.reshape(-1)
        flat = flat if self._index is None else self._index[flat]
        return self._gather(flat).reshape(rows.shape + self.shape[1:])

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """``frames[starts[:, None] + arange(length)]``: (B, length, ...) frames.

        Each window that is one contiguous run of a part (always the case for windows
        inside an episode) is copied as one block, after asking the kernel to read it in
        whole (``MADV_WILLNEED``); other windows fall back to a gather.
        """
        starts = np.asarray(starts, np.int64).reshape(-1)
        rows = starts[:, None] + np.arange(length)
        if len(starts) and (starts.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"window out of range for {len(self)} frames")
        base = starts if self._index is None else self._index[starts]
        part = np.searchsorted(self._offsets, base, side="right") - 1
        local = base - self._offsets[part]
        contiguous = local + length <= self._offsets[part + 1] - self._offsets[part]
        if self._index is not None:
            contiguous &= self._index[rows[:, -1]] == base + length - 1
        if not contiguous.all():
            return self[rows]
        out = np.empty((len(starts), length) + self.shape[1:], self.dtype)
        for b in np.argsort(base, kind="stable"):
            p, lo = part[b], local[b]
            _will_need(self._maps[p], self._parts[p], lo, length)
            out[b] = self._parts[p][lo:lo + length]
        return out

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        if len(self._parts) == 1:  # fancy indexing already returns a fresh array
            return self._parts[0][rows]
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        bounds = np.searchsorted(ordered, self._offsets)
        for part in np.flatnonzero(bounds[1:] > bounds[:-1]):
            lo, hi = bounds[part], bounds[part + 1]
            out[order[lo:hi]] = self._parts[part][ordered[lo:hi] - self._offsets[part]]
        return out


def _mapping(array: np.ndarray):
    """(mmap, byte offset of the array's first element in it), or None if not mapped."""
    owner = array
    while owner is not None and not isinstance(owner, mmap.mmap):
        owner = getattr(owner, "base", None)
    if owner is None or len(owner) == 0 or not array.size:
        return None
    start = np.frombuffer(owner, np.uint8, 1).ctypes.data
    return owner, array.ctypes.data - start


def _will_need(mapping, part: np.ndarray, row: int, count: int) -> None:
    """Asks the kernel to read rows ``row .. row + count - 1`` of ``part`` at once."""
    if mapping is None or not hasattr(mmap, "MADV_WILLNEED"):
        return
    owner, offset = mapping
    row_bytes = part.strides[0]
    begin = offset + row * row_bytes
    aligned = begin - begin % mmap.PAGESIZE
    owner.madvise(mmap.MADV_WILLNEED, aligned, begin + count * row_bytes - aligned)
