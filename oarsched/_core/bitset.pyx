# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Python helpers around the bitset C API (conversions and set algebra for tests and the engine)."""
import numpy as np
cimport numpy as cnp
from oarsched._core.bitset cimport word, nwords, bs_count, bs_set_range, __builtin_popcountll, __builtin_ctzll

cnp.import_array()


def empty(Py_ssize_t nbits):
    """An empty set able to hold ``nbits`` resources."""
    return np.zeros(nwords(nbits), dtype=np.uint64)


def from_indices(indices, Py_ssize_t nbits):
    """The set of the given order indices."""
    out = np.zeros(nwords(nbits), dtype=np.uint64)
    cdef word[::1] o = out
    cdef long long i
    for i in indices:
        if i < 0 or i >= nbits:
            raise IndexError(f"order index {i} out of range 0..{nbits - 1}")
        o[i >> 6] |= (<word>1) << (i & 63)
    return out


def from_mask(mask):
    """The set of the True positions of a boolean array."""
    mask = np.asarray(mask, dtype=bool)
    n = mask.shape[0]
    padded = np.zeros(nwords(n) * 64, dtype=bool)
    padded[:n] = mask
    return np.packbits(padded, bitorder="little").view(np.uint64).copy()


cdef inline const word* _words(const word[::1] bs) noexcept:
    """The words of a set (NULL when it has none: nothing is read then)."""
    return &bs[0] if bs.shape[0] else NULL


def to_indices(const word[::1] bs):
    """Sorted order indices of a set."""
    cdef Py_ssize_t nw = bs.shape[0], w, k = 0
    cdef const word* a = _words(bs)
    cdef word x
    out = np.empty(bs_count(a, nw), dtype=np.int64)
    cdef cnp.int64_t[::1] o = out
    for w in range(nw):
        x = a[w]
        while x:
            o[k] = w * 64 + __builtin_ctzll(x)
            k += 1
            x &= x - 1
    return out


def to_runs(const word[::1] bs):
    """The set as runs of consecutive order indices: an ``(n, 2)`` int64 array of inclusive ``[lo, hi]``.

    A compact form for sets of consecutive resources (a job's nodes): a few
    bytes per run instead of a bit per resource of the platform.
    """
    cdef Py_ssize_t nw = bs.shape[0], w, n = 0, k = 0
    cdef const word* a = _words(bs)
    cdef word x, prev_top = 0
    # a run starts at every set bit whose predecessor is clear
    for w in range(nw):
        x = a[w]
        n += __builtin_popcountll(x & ~((x << 1) | prev_top))
        prev_top = x >> 63
    out = np.empty((n, 2), dtype=np.int64)
    cdef cnp.int64_t[:, ::1] o = out
    cdef long long i, start = -1
    for w in range(nw):
        x = a[w]
        if x == 0:
            if start >= 0:
                o[k, 0], o[k, 1] = start, w * 64 - 1
                k += 1
                start = -1
            continue
        if x == <word>0xFFFFFFFFFFFFFFFF:
            if start < 0:
                start = w * 64
            continue
        for i in range(64):
            if (x >> i) & 1:
                if start < 0:
                    start = w * 64 + i
            elif start >= 0:
                o[k, 0], o[k, 1] = start, w * 64 + i - 1
                k += 1
                start = -1
    if start >= 0:
        o[k, 0], o[k, 1] = start, nw * 64 - 1
        k += 1
    return out


def runs_to_indices(const cnp.int64_t[:, :] runs):
    """Sorted order indices of ``(n, 2)`` inclusive runs (see :func:`to_runs`)."""
    cdef Py_ssize_t r, n = runs.shape[0], k = 0, total = 0
    cdef long long i
    for r in range(n):
        total += runs[r, 1] - runs[r, 0] + 1
    out = np.empty(total, dtype=np.int64)
    cdef cnp.int64_t[::1] o = out
    for r in range(n):
        for i in range(runs[r, 0], runs[r, 1] + 1):
            o[k] = i
            k += 1
    return out


def from_runs(const cnp.int64_t[:, :] runs, Py_ssize_t nbits):
    """The set of ``(n, 2)`` inclusive runs of order indices."""
    out = np.zeros(nwords(nbits), dtype=np.uint64)
    cdef word[::1] o = out
    cdef Py_ssize_t r
    for r in range(runs.shape[0]):
        if runs[r, 0] < 0 or runs[r, 1] >= nbits or runs[r, 0] > runs[r, 1]:
            raise IndexError(f"run [{runs[r, 0]}, {runs[r, 1]}] out of range 0..{nbits - 1}")
        bs_set_range(&o[0], runs[r, 0], runs[r, 1])
    return out


def count(const word[::1] bs):
    """Number of resources in a set."""
    return bs_count(_words(bs), bs.shape[0])
