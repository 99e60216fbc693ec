# cython: language_level=3
"""C-level API of resource sets as bitsets over order indices.

A resource set is a contiguous array of 64-bit words; bit ``i`` stands for
the resource of order index ``i``.  Every function works on raw pointers so
that the slot set and the hierarchy matcher can call them inside their loops
without touching Python objects.
"""
from libc.stdint cimport uint64_t, int64_t

ctypedef uint64_t word


cdef extern from "popcount.h":
    int __builtin_popcountll "oarsched_popcount64"(unsigned long long) nogil
    int64_t oarsched_count(const uint64_t* a, int64_t nw, const uint64_t* b) nogil
    int __builtin_ctzll(unsigned long long) nogil


cdef inline Py_ssize_t nwords(Py_ssize_t nbits) noexcept nogil:
    return (nbits + 63) >> 6


cdef inline void bs_copy(word* dst, const word* src, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(nw):
        dst[i] = src[i]


cdef inline void bs_fill(word* dst, word value, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(nw):
        dst[i] = value


cdef inline void bs_and(word* dst, const word* a, const word* b, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(nw):
        dst[i] = a[i] & b[i]


cdef inline void bs_iand(word* dst, const word* a, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(nw):
        dst[i] &= a[i]


cdef inline void bs_ior(word* dst, const word* a, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(nw):
        dst[i] |= a[i]


cdef inline void bs_iandnot(word* dst, const word* a, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(nw):
        dst[i] &= ~a[i]


cdef inline Py_ssize_t bs_count(const word* a, Py_ssize_t nw) noexcept nogil:
    return oarsched_count(a, nw, NULL)


cdef inline Py_ssize_t bs_count_and(const word* a, const word* b, Py_ssize_t nw) noexcept nogil:
    return oarsched_count(a, nw, b)


cdef inline bint bs_empty(const word* a, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(nw):
        if a[i]:
            return False
    return True


cdef inline word _mask(int64_t lo_bit, int64_t hi_bit) noexcept nogil:
    # bits lo_bit..hi_bit (inclusive) of one word, 0 <= lo_bit <= hi_bit <= 63
    cdef word m = (<word>0xFFFFFFFFFFFFFFFF) << lo_bit
    if hi_bit < 63:
        m &= ((<word>1) << (hi_bit + 1)) - 1
    return m


cdef inline bint bs_range_all(const word* a, int64_t lo, int64_t hi) noexcept nogil:
    """True when every bit of [lo, hi] is set."""
    cdef int64_t wl = lo >> 6, wh = hi >> 6, w
    cdef word m
    if wl == wh:
        m = _mask(lo & 63, hi & 63)
        return (a[wl] & m) == m
    m = _mask(lo & 63, 63)
    if (a[wl] & m) != m:
        return False
    for w in range(wl + 1, wh):
        if a[w] != <word>0xFFFFFFFFFFFFFFFF:
            return False
    m = _mask(0, hi & 63)
    return (a[wh] & m) == m


cdef inline bint bs_range_any(const word* a, int64_t lo, int64_t hi) noexcept nogil:
    """True when some bit of [lo, hi] is set."""
    cdef int64_t wl = lo >> 6, wh = hi >> 6, w
    if wl == wh:
        return (a[wl] & _mask(lo & 63, hi & 63)) != 0
    if a[wl] & _mask(lo & 63, 63):
        return True
    for w in range(wl + 1, wh):
        if a[w]:
            return True
    return (a[wh] & _mask(0, hi & 63)) != 0


cdef inline Py_ssize_t bs_range_count(const word* a, int64_t lo, int64_t hi) noexcept nogil:
    """Number of set bits in [lo, hi]."""
    cdef int64_t wl = lo >> 6, wh = hi >> 6, w
    cdef Py_ssize_t c
    if wl == wh:
        return __builtin_popcountll(a[wl] & _mask(lo & 63, hi & 63))
    c = __builtin_popcountll(a[wl] & _mask(lo & 63, 63))
    for w in range(wl + 1, wh):
        c += __builtin_popcountll(a[w])
    c += __builtin_popcountll(a[wh] & _mask(0, hi & 63))
    return c


cdef inline void bs_set_range(word* a, int64_t lo, int64_t hi) noexcept nogil:
    cdef int64_t wl = lo >> 6, wh = hi >> 6, w
    if wl == wh:
        a[wl] |= _mask(lo & 63, hi & 63)
        return
    a[wl] |= _mask(lo & 63, 63)
    for w in range(wl + 1, wh):
        a[w] = <word>0xFFFFFFFFFFFFFFFF
    a[wh] |= _mask(0, hi & 63)


cdef inline int64_t bs_take_first(word* dst, const word* a, int64_t lo, int64_t hi, int64_t n) noexcept nogil:
    """Set in ``dst`` the first ``n`` set bits of ``a`` within [lo, hi]; return how many were taken."""
    cdef int64_t w, wl = lo >> 6, wh = hi >> 6, taken = 0, bit
    cdef word x
    w = wl
    while w <= wh and taken < n:
        x = a[w]
        if w == wl and w == wh:
            x &= _mask(lo & 63, hi & 63)
        elif w == wl:
            x &= _mask(lo & 63, 63)
        elif w == wh:
            x &= _mask(0, hi & 63)
        while x and taken < n:
            bit = __builtin_ctzll(x)
            dst[w] |= (<word>1) << bit
            x &= x - 1
            taken += 1
        w += 1
    return taken
