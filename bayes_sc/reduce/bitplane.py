"""Bin a bitshuffle-LZ4 frame chunk without unshuffling it: counts summed in bit planes.

A photon-counting frame is sparse: most pixels hold 0 or 1. Bitshuffle stores each block of
``m`` pixels (8 KiB) as bit planes (plane ``r`` holds bit ``r`` of every pixel, pixel ``i`` at
bit ``i % 8`` of byte ``i // 8``). After LZ4-decompressing a block into an L1-sized buffer,
a bin's counts are ``sum_r 2**r × (number of set bits of plane r in the bin)``, so only the
set bits of the planes need visiting, never the 18 MB unshuffled frame. Exactness does not
depend on sparsity: a block that is dense (many set bits), that may hold a value at or above
the saturation value, or that is not a whole number of 64-bit words, is unshuffled (the
bitshuffle library's own routine) and summed pixel by pixel, exactly as :mod:`.frames` does.

The chunk layout (bitshuffle's HDF5 filter, LZ4 mode): a 12-byte header (u64 BE total bytes,
u32 BE block bytes); per block a u32 BE compressed size and an LZ4 block; the last
``n % block`` pixels form one shorter block (rounded down to a multiple of 8); the final
``n % 8`` pixels are stored raw, little-endian.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

try:  # the decoders come from the bitshuffle extension we already depend on
    import bitshuffle.ext as _bshuf_ext

    _lib = ctypes.CDLL(_bshuf_ext.__file__)
    _lib.LZ4_decompress_safe, _lib.bshuf_bitunshuffle  # noqa: B018 (both must exist)
    llvm.load_library_permanently(_bshuf_ext.__file__)
    AVAILABLE = True
except (ImportError, OSError, AttributeError):  # pragma: no cover
    AVAILABLE = False

# int LZ4_decompress_safe(const char* src, char* dst, int srcSize, int dstCapacity)
_lz4 = types.ExternalFunction(
    "LZ4_decompress_safe", types.int32(types.voidptr, types.voidptr, types.int32, types.int32)
)
# int64 bshuf_bitunshuffle(const void* in, void* out, size_t size, size_t elem_size, size_t block)
_unshuffle = types.ExternalFunction(
    "bshuf_bitunshuffle",
    types.int64(types.voidptr, types.voidptr, types.uintp, types.uintp, types.uintp),
)
CORRUPT = -1


@intrinsic
def _cttz(typingctx, x):  # trailing zeros of a non-zero word (one instruction)
    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], cgutils.true_bit)

    return x(x), codegen


@intrinsic
def _popcount(typingctx, x):
    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])

    return x(x), codegen


@intrinsic
def _address(typingctx, arr, offset):  # raw pointer to arr.data + offset bytes
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.ptrtoint(ary.data, ir.IntType(64))
        return builder.inttoptr(builder.add(ptr, args[1]), ir.IntType(8).as_pointer())

    return types.voidptr(arr, types.int64), codegen


@njit(nogil=True, cache=True)
def _add_value(v, p, b, no_bin, saturation, out, excluded, n_exc):  # pragma: no cover (JIT)
    if v >= saturation:
        if b != no_bin:
            if n_exc < excluded.size:
                excluded[n_exc] = p
            n_exc += 1
        return n_exc
    out[b] += v
    return n_exc


@njit(nogil=True, cache=True)
def bin_chunk(raw, n, block_elems, pixel_bin, consider, no_bin, saturation, sat_plane, out,
              excluded, planes, vals):  # fmt: skip  # pragma: no cover (JIT)
    """Add one chunk's valid counts to ``out``; return (status, excluded pixels in bins).

    ``vals`` (length ``block_elems``, the frame's dtype) fixes the item size; ``planes`` holds
    one decompressed block (uint64 words); ``consider`` has one bit per pixel, set where the
    pixel lies in a bin. Status is 0, or ``CORRUPT`` for a chunk that does not decode to
    ``n`` pixels.
    """
    itemsize = vals.itemsize
    nplanes = 8 * itemsize
    pos = np.int64(12)
    base = np.int64(0)
    n_exc = 0
    one = np.uint64(1)
    while True:
        m = min(block_elems, n - base)
        m -= m % 8
        if m == 0:
            break
        if pos + 4 > raw.size:
            return CORRUPT, n_exc
        nb = (np.int64(raw[pos]) << 24) | (np.int64(raw[pos + 1]) << 16)
        nb |= (np.int64(raw[pos + 2]) << 8) | np.int64(raw[pos + 3])
        pos += 4
        if nb <= 0 or pos + nb > raw.size:
            return CORRUPT, n_exc
        nbytes = m * itemsize
        if _lz4(_address(raw, pos), _address(planes, 0), np.int32(nb), np.int32(nbytes)) != nbytes:
            return CORRUPT, n_exc
        pos += nb
        dense = m % 64 != 0
        if not dense:
            wpr = m // 64  # words per plane
            cw = base // 64
            high = np.uint64(0)
            for r in range(sat_plane, nplanes):  # may a value be saturated?
                off = r * wpr
                for w in range(wpr):
                    high |= planes[off + w] & consider[cw + w]
            bits = 0  # set bits of planes 0 and 1: visiting one costs ~4 plain pixels
            for r in range(min(2, nplanes)):
                off = r * wpr
                for w in range(wpr):
                    bits += _popcount(planes[off + w] & consider[cw + w])
            dense = high != 0 or bits > m // 4
        if not dense:
            for r in range(nplanes):
                off = r * wpr
                acc = np.uint64(0)
                for w in range(wpr):  # vectorised: no branch inside
                    acc |= planes[off + w] & consider[cw + w]
                if acc == 0:
                    continue
                add = one << np.uint64(r)
                for w in range(wpr):
                    x = planes[off + w] & consider[cw + w]
                    while x:
                        out[pixel_bin[base + w * 64 + _cttz(x)]] += add
                        x &= x - one
        else:
            _unshuffle(_address(planes, 0), _address(vals, 0), m, itemsize, m)
            for i in range(m):
                p = base + i
                n_exc = _add_value(
                    np.uint64(vals[i]), p, pixel_bin[p], no_bin, saturation, out, excluded, n_exc
                )
        base += m
    # The last n % 8 pixels are stored raw, little-endian.
    if pos + (n - base) * itemsize != raw.size:
        return CORRUPT, n_exc
    for p in range(base, n):
        v = np.uint64(0)
        for k in range(itemsize):
            v |= np.uint64(raw[pos + k]) << np.uint64(8 * k)
        pos += itemsize
        n_exc = _add_value(v, p, pixel_bin[p], no_bin, saturation, out, excluded, n_exc)
    return 0, n_exc


def consider_bits(in_bin: np.ndarray) -> np.ndarray:
    """Pack a flat boolean "pixel lies in a bin" map into 64-bit words, bitshuffle's order."""
    padded = np.zeros(-(-in_bin.size // 64) * 64, bool)
    padded[: in_bin.size] = in_bin
    return np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)


def saturation_plane(saturation: int, itemsize: int) -> int:
    """Lowest bit plane a value at or above ``saturation`` must have set."""
    return min(int(saturation).bit_length() - 1, 8 * itemsize)
