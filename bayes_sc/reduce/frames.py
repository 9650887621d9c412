"""Sum each frame's raw counts into the bins: one integer pass per frame, two threads.

Per frame: the compressed chunk is read (``FrameReader``) and, for bitshuffle-LZ4 chunks of
unsigned counts, decoded block by block and binned in bit planes (:mod:`.bitplane`), never
unshuffled whole; any other frame is decompressed and one compiled pass over the pixels adds
every valid value to its bin. Both give the same integers. Pixels whose value is the saturation
value (or above) are never data: inside a bin they are recorded in ``excluded``. A frame
with no valid pixel in any bin is kept, with zero counts, and flagged ``frame_excluded``.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import InputError
from ..io.eiger_fast import RawChunk
from . import bitplane

log = logging.getLogger(__name__)
MAX_LISTED = 65536  # excluded pixels collected in the compiled pass before a NumPy recount


@njit(nogil=True, cache=True)
def _bin_frame(frame, pixel_bin, no_bin, saturation, out, excluded):  # pragma: no cover (JIT)
    n_excluded = 0
    for p in range(frame.size):
        v = frame[p]
        b = pixel_bin[p]
        if v >= saturation:
            if b != no_bin:
                if n_excluded < excluded.size:
                    excluded[n_excluded] = p
                n_excluded += 1
            continue
        out[b] += v
    return n_excluded


@dataclass
class FrameResult:
    """One reduced frame: counts per bin, flat indices of excluded pixels, whole-frame flag."""

    index: int
    counts: np.ndarray
    excluded: np.ndarray
    frame_excluded: bool


class Binner:
    """Applies a pixel → bin map to flat frames (thread-safe: no shared mutable state)."""

    def __init__(self, pixel_bin: np.ndarray, n_bins: int, saturation: int):
        flat = pixel_bin.reshape(-1)
        self.n_bins = n_bins
        self.saturation = saturation
        # Unbinned pixels go to an extra "no bin" slot, so the pass has no branch for them;
        # uint16 halves the map's memory traffic when the bins fit.
        dtype = np.uint16 if n_bins < 2**16 - 1 else np.int32
        self.pixel_bin = np.where(flat >= 0, flat, n_bins).astype(dtype)
        self.n_used = int((flat >= 0).sum())
        self.n_pixels = flat.size
        self.consider = bitplane.consider_bits(flat >= 0)

    def __call__(self, index: int, frame: np.ndarray | RawChunk) -> FrameResult:
        """Bin one frame, given flat (decoded) or as its stored bitshuffle-LZ4 chunk."""
        out = np.zeros(self.n_bins + 1, np.uint64)
        listed = np.empty(MAX_LISTED, np.int64)
        n_exc = self._bin_chunk(frame, out, listed) if isinstance(frame, RawChunk) else None
        if n_exc is None:  # a decoded frame, or a chunk the bit-plane pass does not take
            frame = frame.decode() if isinstance(frame, RawChunk) else frame
            n_exc = _bin_frame(frame, self.pixel_bin, self.n_bins, self.saturation, out, listed)
        if n_exc == self.n_used:
            log.warning(
                "frame %d: every pixel in a peak region is invalid; kept with zero counts", index
            )
            return FrameResult(index, np.zeros(self.n_bins, np.uint32), np.empty(0, np.int64), True)
        if n_exc > MAX_LISTED:
            frame = frame.decode() if isinstance(frame, RawChunk) else frame
            listed = np.flatnonzero((frame >= self.saturation) & (self.pixel_bin != self.n_bins))
        else:
            listed = listed[:n_exc].copy()
        counts = out[: self.n_bins]
        if counts.max(initial=0) >= 2**32:
            raise OverflowError(f"frame {index}: a bin holds more than 2**32 counts")
        return FrameResult(index, counts.astype(np.uint32), listed, False)

    def _bin_chunk(self, chunk: RawChunk, out: np.ndarray, listed: np.ndarray) -> int | None:
        if not bitplane.AVAILABLE or chunk.dtype.kind != "u" or chunk.n_pixels != self.n_pixels:
            return None
        vals = np.empty(chunk.block_elems, chunk.dtype)
        buf = np.empty(chunk.block_elems * chunk.dtype.itemsize // 8, np.uint64)
        sat_plane = bitplane.saturation_plane(self.saturation, chunk.dtype.itemsize)
        status, n_exc = bitplane.bin_chunk(
            chunk.data, chunk.n_pixels, chunk.block_elems, self.pixel_bin, self.consider,
            self.n_bins, np.uint64(self.saturation), sat_plane, out, listed,
            buf, vals,
        )  # fmt: skip
        if status == bitplane.CORRUPT:
            raise InputError(chunk.path, f"frame {chunk.index}: corrupt bitshuffle-LZ4 chunk")
        return n_exc


def reduce_frames(read, binner: Binner, indices, *, workers: int = 2):
    """Yield :class:`FrameResult` for ``indices`` in order; ``read(i)`` returns a flat frame
    or its :class:`~bayes_sc.io.eiger_fast.RawChunk`.

    At most ``2 × workers`` frames are in flight, so memory stays flat in the scan length.
    """
    indices = list(indices)
    if workers <= 1:
        for i in indices:
            yield binner(i, read(i))
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="reduce") as pool:
        pending: deque = deque()
        it = iter(indices)
        try:
            for i in it:
                pending.append(pool.submit(lambda k: binner(k, read(k)), i))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
