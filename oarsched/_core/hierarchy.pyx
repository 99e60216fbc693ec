# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Hierarchy matcher: OAR3's scattered block extraction over bitsets.

A request such as ``switch=1/network_address=2/core=4`` is matched level by
level, first fit in block order: a block of an upper level counts when enough
of its children can be taken, and a bottom-level block is only taken when it
is entirely free.  Keyword counts (ALL = -1, BEST = -2, HALF_BEST = -3) are
only meaningful on single-level requests, as in OAR3.
"""
import numpy as np
cimport cython
cimport numpy as cnp
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport int8_t, int64_t
from oarsched._core.bitset cimport (
    word, nwords, bs_and, bs_count, bs_fill, bs_range_all, bs_range_any,
    bs_range_count, bs_set_range, bs_take_first,
)

cnp.import_array()

cdef enum:
    MAX_DEPTH = 32


cdef int64_t* _p64(int64_t[::1] a) except? NULL:
    """The first element of an array kept by the hierarchy (NULL when it is empty: nothing is read then)."""
    return &a[0] if a.shape[0] else NULL


cdef int8_t* _p8(int8_t[::1] a) except? NULL:
    return &a[0] if a.shape[0] else NULL


cdef void* _c_array(Py_ssize_t n, size_t size) except NULL:
    """Room for ``n`` items of ``size`` bytes (one at least), to be freed by their owner.

    Not zeroed: every item is written before it is read (zeroing the work lists,
    as large as the biggest level, would cost more than the matching).
    """
    cdef void* p = malloc((n if n > 0 else 1) * size)
    if p == NULL:
        raise MemoryError()
    return p


cdef class Hierarchy:
    """The hierarchy levels of a platform, as block interval lists.

    ``levels`` maps each label to its blocks (arrays of order indices), in
    block order.  Relations between two levels are built on first use.
    """

    def __cinit__(self):
        self.levels = NULL
        self.pairs = NULL
        self.npairs = 0
        self.cap_pairs = 0

    def __init__(self, Py_ssize_t nbits, dict levels):
        """``levels``: label -> block id of every order index (int array, -1 = none), or a list of blocks."""
        cdef int i
        self.nbits = nbits
        self.labels = list(levels)
        self._label_index = {lbl: i for i, lbl in enumerate(self.labels)}
        self._keep = []
        self._block_of = []
        self._block_size = []
        self._pairs = {}
        self.nlevels = len(self.labels)
        self.levels = <Level*>malloc(max(1, self.nlevels) * sizeof(Level))
        self.max_blocks = 1
        for i, lbl in enumerate(self.labels):
            self._build_level(i, levels[lbl])

    def __dealloc__(self):
        free(self.levels)
        free(self.pairs)

    def _build_level(self, int i, blocks):
        block_of, sizes, ptr_a, lo_a, hi_a = _level_arrays(self.nbits, blocks)
        cdef Py_ssize_t nb = sizes.shape[0]
        self._keep.extend([ptr_a, lo_a, hi_a, sizes])
        self._block_of.append(block_of)
        self._block_size.append(sizes)
        self.levels[i].nblocks = nb
        self.levels[i].ptr = _p64(ptr_a)
        self.levels[i].lo = _p64(lo_a)
        self.levels[i].hi = _p64(hi_a)
        self.levels[i].size = _p64(sizes)
        self.levels[i].unit = bool(nb == 0 or sizes.max() == 1)
        if nb > self.max_blocks:
            self.max_blocks = nb

    cpdef int level_index(self, str label) except -1:
        try:
            return self._label_index[label]
        except KeyError:
            raise KeyError(label) from None

    def nblocks(self, str label):
        return self.levels[self.level_index(label)].nblocks

    cdef Pair* pair(self, int upper, int lower) except NULL:
        key = (upper, lower)
        idx = self._pairs.get(key)
        if idx is None:
            idx = self._build_pair(upper, lower)
        return &self.pairs[<int>idx]

    def _build_pair(self, int upper, int lower):
        ent_b, subset, lo, hi, iptr, eptr = _pair_arrays(
            self._block_of[upper], self._block_of[lower], self._block_size[lower], self.levels[upper].nblocks
        )
        self._keep.extend([ent_b, subset, lo, hi, iptr, eptr])
        if self.npairs == self.cap_pairs:
            self.cap_pairs = max(4, 2 * self.cap_pairs)
            self.pairs = <Pair*>realloc(self.pairs, self.cap_pairs * sizeof(Pair))
        cdef Pair* p = &self.pairs[self.npairs]
        p.eptr = _p64(eptr)
        p.blk = _p64(ent_b)
        p.subset = _p8(subset)
        p.iptr = _p64(iptr)
        p.lo = _p64(lo)
        p.hi = _p64(hi)
        self._pairs[(upper, lower)] = self.npairs
        self.npairs += 1
        return self.npairs - 1


@cython.wraparound(True)
@cython.boundscheck(True)
def _level_arrays(Py_ssize_t nbits, blocks):
    """Interval lists of a level's blocks and the block of each order index.

    ``blocks`` is either the block id of every order index (-1: in no block;
    ids numbered in block order) or a list of arrays of order indices.
    """
    if isinstance(blocks, np.ndarray) and blocks.ndim == 1 and blocks.shape[0] == nbits:
        block_of = np.ascontiguousarray(blocks, dtype=np.int64)
    else:
        block_of = np.full(nbits, -1, dtype=np.int64)
        for b, members in enumerate(blocks):
            block_of[np.asarray(members, dtype=np.int64)] = b
    roids = np.nonzero(block_of >= 0)[0].astype(np.int64)
    nb = int(block_of.max()) + 1 if roids.shape[0] else 0
    bb = block_of[roids]
    order = np.lexsort((roids, bb))
    r, bb = roids[order], bb[order]
    n = r.shape[0]
    sizes = np.ascontiguousarray(np.bincount(bb, minlength=nb), dtype=np.int64) if n else np.zeros(nb, np.int64)
    newrun = np.ones(n, dtype=bool)
    if n > 1:
        newrun[1:] = (bb[1:] != bb[:-1]) | (r[1:] != r[:-1] + 1)
    starts = np.nonzero(newrun)[0]
    lo_a = np.ascontiguousarray(r[starts], dtype=np.int64)
    hi_a = np.ascontiguousarray(r[np.append(starts[1:], n) - 1] if n else r[starts], dtype=np.int64)
    runs = np.bincount(bb[starts], minlength=nb) if n else np.zeros(nb, np.int64)
    ptr_a = np.ascontiguousarray(np.concatenate(([0], np.cumsum(runs))), dtype=np.int64)
    return block_of, sizes, ptr_a, lo_a, hi_a


@cython.wraparound(True)
@cython.boundscheck(True)
def _pair_arrays(bu, bl, lower_sizes, Py_ssize_t upper_nblocks):
    """For each upper block P, the lower blocks meeting P (in lower order) and the intervals of P & x."""
    roids = np.nonzero((bu >= 0) & (bl >= 0))[0].astype(np.int64)
    a = bu[roids]
    b = bl[roids]
    order = np.lexsort((roids, b, a))
    a, b, r = a[order], b[order], roids[order]
    n = r.shape[0]
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, np.zeros(0, np.int8), z, z, np.zeros(1, np.int64), np.zeros(upper_nblocks + 1, np.int64)
    newent = np.ones(n, dtype=bool)
    if n > 1:
        newent[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    ent_start = np.nonzero(newent)[0]
    ent_a = a[ent_start]
    ent_b = np.ascontiguousarray(b[ent_start], dtype=np.int64)
    ent_count = np.diff(np.append(ent_start, n))
    subset = np.ascontiguousarray(ent_count == lower_sizes[ent_b], dtype=np.int8)
    newiv = newent.copy()
    if n > 1:
        newiv[1:] |= r[1:] != r[:-1] + 1
    iv_start = np.nonzero(newiv)[0]
    iv_end = np.append(iv_start[1:], n) - 1
    lo = np.ascontiguousarray(r[iv_start], dtype=np.int64)
    hi = np.ascontiguousarray(r[iv_end], dtype=np.int64)
    iptr = np.ascontiguousarray(np.append(np.searchsorted(iv_start, ent_start), iv_start.shape[0]), dtype=np.int64)
    counts = np.bincount(ent_a, minlength=upper_nblocks) if ent_a.shape[0] else np.zeros(upper_nblocks, np.int64)
    eptr = np.ascontiguousarray(np.concatenate(([0], np.cumsum(counts))), dtype=np.int64)
    return ent_b, subset, lo, hi, iptr, eptr


cdef inline bint _block_all(Level* lev, const word* itvs, int64_t b) noexcept nogil:
    cdef int64_t k
    for k in range(lev.ptr[b], lev.ptr[b + 1]):
        if not bs_range_all(itvs, lev.lo[k], lev.hi[k]):
            return False
    return True


cdef inline bint _block_any(Level* lev, const word* itvs, int64_t b) noexcept nogil:
    cdef int64_t k
    for k in range(lev.ptr[b], lev.ptr[b + 1]):
        if bs_range_any(itvs, lev.lo[k], lev.hi[k]):
            return True
    return False


cdef inline bint _entry_all(Pair* p, const word* itvs, int64_t e) noexcept nogil:
    cdef int64_t k
    for k in range(p.iptr[e], p.iptr[e + 1]):
        if not bs_range_all(itvs, p.lo[k], p.hi[k]):
            return False
    return True


cdef class Request:
    """Resource groups of one moldable, ready for :meth:`match`.

    ``groups`` is a list of ``(levels, constraint)``: ``levels`` a list of
    ``(label, count)`` top to bottom, ``constraint`` a bitset (uint64 array)
    of the resources the group may use.
    """

    def __cinit__(self):
        self.lvl = self.gptr = NULL
        self.cnt = self.minres = self.bufs = NULL
        self.work = NULL
        self.ops = NULL
        self.nops = 0
        self.cap_ops = 0

    def __init__(self, Hierarchy hierarchy, list groups):
        cdef int g, k
        if self.ops != NULL:
            raise RuntimeError("a request is initialised once")
        self.hierarchy = hierarchy
        self.ngroups = len(groups)
        self.nwords = nwords(hierarchy.nbits)
        cons = np.zeros((max(1, self.ngroups), self.nwords), dtype=np.uint64)
        lvls, cnts, gptr, minres = [], [], [0], []
        self.any_negative = False
        depth = 1
        for g, (levels, constraint) in enumerate(groups):
            if constraint is not None:
                cons[g, :] = constraint
            else:
                cons[g, :] = np.uint64(0xFFFFFFFFFFFFFFFF)
            need = 1
            for label, n in levels:
                lvls.append(hierarchy.level_index(label))
                cnts.append(int(n))
                if n <= 0:
                    self.any_negative = True
                need *= max(1, int(n))
            if len(levels) == 1 and levels[0][1] > 0:
                li = hierarchy.level_index(levels[0][0])
                sizes = hierarchy._block_size[li]
                need = int(levels[0][1]) * (int(sizes.min()) if sizes.shape[0] else 1)
            minres.append(need)
            gptr.append(len(lvls))
            depth = max(depth, len(levels))
        self._constraints = cons
        self.cons = cons
        self._found = np.zeros(self.nwords, dtype=np.uint64)
        self.found = self._found
        if depth > MAX_DEPTH:
            raise ValueError(f"at most {MAX_DEPTH} hierarchy levels per group")
        self.depth_cap = depth
        self.lvl = <int*>_c_array(len(lvls), sizeof(int))
        self.cnt = <int64_t*>_c_array(len(cnts), sizeof(int64_t))
        for k in range(len(lvls)):
            self.lvl[k] = lvls[k]
            self.cnt[k] = cnts[k]
        self.gptr = <int*>_c_array(len(gptr), sizeof(int))
        for k in range(len(gptr)):
            self.gptr[k] = gptr[k]
        self.minres = <int64_t*>_c_array(len(minres), sizeof(int64_t))
        for k in range(len(minres)):
            self.minres[k] = minres[k]
        self.work = <word*>_c_array(self.nwords, sizeof(word))
        self.bufs = <int64_t*>_c_array(2 * depth * hierarchy.max_blocks, sizeof(int64_t))
        self.cap_ops = 64
        self.ops = <Op*>_c_array(self.cap_ops, sizeof(Op))
        # build the pairs now: nothing Python-level is left for match()
        for g in range(self.ngroups):
            for k in range(self.gptr[g], self.gptr[g + 1] - 1):
                hierarchy.pair(self.lvl[k], self.lvl[k + 1])

    def __dealloc__(self):
        free(self.lvl)
        free(self.cnt)
        free(self.gptr)
        free(self.minres)
        free(self.work)
        free(self.bufs)
        free(self.ops)

    @property
    def min_resources(self):
        """Lower bound of the resources each group needs (used to skip hopeless windows)."""
        return [int(self.minres[g]) for g in range(self.ngroups)]

    def find(self, const word[::1] avail):
        """The resources the request takes in ``avail``, or None when it does not fit."""
        if avail.shape[0] != self.nwords:
            raise ValueError("bitset of the wrong size")
        if not self.match(&avail[0], &self.found[0]):
            return None
        return cnp.PyArray_Copy(self._found)

    cdef int64_t _push(self, int64_t lo, int64_t hi, int64_t n) except -1:
        if self.nops == self.cap_ops:
            self.cap_ops *= 2
            self.ops = <Op*>realloc(self.ops, self.cap_ops * sizeof(Op))
            if self.ops == NULL:
                raise MemoryError()
        self.ops[self.nops].lo = lo
        self.ops[self.nops].hi = hi
        self.ops[self.nops].n = n
        self.nops += 1
        return self.nops

    cdef bint match(self, const word* avail, word* out) except -1:
        cdef int g
        cdef int64_t k
        cdef Py_ssize_t nw = self.nwords
        cdef word* work = self.work
        bs_fill(out, 0, nw)
        for g in range(self.ngroups):
            bs_and(work, avail, &self.cons[g, 0], nw)
            if bs_count(work, nw) < self.minres[g]:
                return False
            self.nops = 0
            if not self._match_group(work, g):
                return False
            for k in range(self.nops):
                if self.ops[k].n == 0:
                    bs_set_range(out, self.ops[k].lo, self.ops[k].hi)
                else:
                    bs_take_first(out, work, self.ops[k].lo, self.ops[k].hi, self.ops[k].n)
        return True

    cdef bint _match_group(self, const word* itvs, int g) except -1:
        cdef int nlev = self.gptr[g + 1] - self.gptr[g]
        cdef int li = self.lvl[self.gptr[g]]
        cdef int64_t n = self.cnt[self.gptr[g]]
        cdef Level* lev = &self.hierarchy.levels[li]
        cdef int64_t b, k, taken = 0, half
        if nlev > 1:
            return self._find_n_h(itvs, g, 0, nlev, NULL, lev.nblocks)
        if n > 0:
            if lev.unit:
                if bs_count(itvs, self.nwords) < n:
                    return False
                self._push(0, self.hierarchy.nbits - 1, n)
                return True
            for b in range(lev.nblocks):
                if _block_all(lev, itvs, b):
                    for k in range(lev.ptr[b], lev.ptr[b + 1]):
                        self._push(lev.lo[k], lev.hi[k], 0)
                    taken += 1
                    if taken == n:
                        return True
            return False
        if n == -1:  # ALL: every block of the level, entirely free
            if lev.nblocks == 0:
                return False
            for b in range(lev.nblocks):
                if not _block_all(lev, itvs, b):
                    return False
            for b in range(lev.nblocks):
                for k in range(lev.ptr[b], lev.ptr[b + 1]):
                    self._push(lev.lo[k], lev.hi[k], 0)
            return True
        if n == -2 or n == -3:  # BEST: every free block; HALF_BEST: the first half of them
            for b in range(lev.nblocks):
                if _block_all(lev, itvs, b):
                    taken += 1
            half = taken if n == -2 else taken // 2
            if half == 0:
                return False
            taken = 0
            for b in range(lev.nblocks):
                if taken == half:
                    break
                if _block_all(lev, itvs, b):
                    for k in range(lev.ptr[b], lev.ptr[b + 1]):
                        self._push(lev.lo[k], lev.hi[k], 0)
                    taken += 1
            return True
        return False

    cdef bint _find_n_h(self, const word* itvs, int g, int h, int nlev, const int64_t* cur, int64_t ncur) except -1:
        cdef int base = self.gptr[g]
        cdef int li = self.lvl[base + h], lj = self.lvl[base + h + 1]
        cdef int64_t n = self.cnt[base + h], nn = self.cnt[base + h + 1]
        cdef Level* lev = &self.hierarchy.levels[li]
        cdef Level* low = &self.hierarchy.levels[lj]
        cdef int64_t* avail = self.bufs + (2 * h) * self.hierarchy.max_blocks
        cdef int64_t* child = self.bufs + (2 * h + 1) * self.hierarchy.max_blocks
        cdef int64_t i, b, e, k, navail = 0, found = 0, saved, mark, got, c, nch
        cdef Pair* p
        if n <= 0:
            return False
        for i in range(ncur):
            b = cur[i] if cur != NULL else i
            if _block_any(lev, itvs, b):
                avail[navail] = b
                navail += 1
        if navail < n:
            return False
        p = self.hierarchy.pair(li, lj)
        saved = self.nops
        if h == nlev - 2:
            if nn <= 0:
                return False
            i = 0
            while i < navail and found < n:
                b = avail[i]
                i += 1
                if low.unit:
                    # children are single resources in order: take the first nn free ones of b
                    c = 0
                    for k in range(lev.ptr[b], lev.ptr[b + 1]):
                        c += bs_range_count(itvs, lev.lo[k], lev.hi[k])
                    if c < nn:
                        continue
                    got = 0
                    for k in range(lev.ptr[b], lev.ptr[b + 1]):
                        if got == nn:
                            break
                        c = bs_range_count(itvs, lev.lo[k], lev.hi[k])
                        if c > nn - got:
                            c = nn - got
                        if c > 0:
                            self._push(lev.lo[k], lev.hi[k], c)
                            got += c
                    found += 1
                else:
                    mark = self.nops
                    got = 0
                    for e in range(p.eptr[b], p.eptr[b + 1]):
                        if _entry_all(p, itvs, e):
                            for k in range(p.iptr[e], p.iptr[e + 1]):
                                self._push(p.lo[k], p.hi[k], 0)
                            got += 1
                            if got == nn:
                                break
                    if got == nn:
                        found += 1
                    else:
                        self.nops = mark
        else:
            i = 0
            while i < navail and found < n:
                b = avail[i]
                i += 1
                nch = 0
                for e in range(p.eptr[b], p.eptr[b + 1]):
                    if p.subset[e]:
                        child[nch] = p.blk[e]
                        nch += 1
                mark = self.nops
                if self._find_n_h(itvs, g, h + 1, nlev, child, nch):
                    found += 1
                else:
                    self.nops = mark
        if found == n:
            return True
        self.nops = saved
        return False
