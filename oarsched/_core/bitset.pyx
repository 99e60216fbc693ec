# cython: language_level=3
"""Python helpers around the bitset C API (conversions and set algebra for tests and the engine)."""
import numpy as np
cimport numpy as cnp
from oarsched._core.bitset cimport word, nwords, bs_count

cnp.import_array()


def empty(Py_ssize_t nbits):
    """An empty set able to hold ``nbits`` resources."""
    return np.zeros(nwords(nbits), dtype=np.uint64)


def from_indices(indices, Py_ssize_t nbits):
    """The set of the given order indices."""
    cdef cnp.ndarray[cnp.uint64_t, ndim=1] out = np.zeros(nwords(nbits), dtype=np.uint64)
    cdef long long i
    for i in indices:
        if i < 0 or i >= nbits:
            raise IndexError(f"order index {i} out of range 0..{nbits - 1}")
        out[i >> 6] |= (<word>1) << (i & 63)
    return out


def from_mask(mask):
    """The set of the True positions of a boolean array."""
    mask = np.asarray(mask, dtype=bool)
    n = mask.shape[0]
    padded = np.zeros(nwords(n) * 64, dtype=bool)
    padded[:n] = mask
    return np.packbits(padded, bitorder="little").view(np.uint64).copy()


def to_indices(cnp.ndarray[cnp.uint64_t, ndim=1] bs):
    """Sorted order indices of a set."""
    cdef Py_ssize_t nw = bs.shape[0], w, k = 0
    cdef word x
    cdef cnp.ndarray[cnp.int64_t, ndim=1] out = np.empty(bs_count(<word*>bs.data, nw), dtype=np.int64)
    for w in range(nw):
        x = bs[w]
        while x:
            out[k] = w * 64 + __builtin_ctz(x)
            k += 1
            x &= x - 1
    return out


def count(cnp.ndarray[cnp.uint64_t, ndim=1] bs):
    """Number of resources in a set."""
    return bs_count(<word*>bs.data, bs.shape[0])


cdef extern from *:
    int __builtin_ctz "__builtin_ctzll"(unsigned long long) nogil
