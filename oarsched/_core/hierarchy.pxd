# cython: language_level=3
"""C-level API of the hierarchy matcher (OAR's scattered block extraction)."""
cimport numpy as cnp
from libc.stdint cimport int8_t, int64_t
from oarsched._core.bitset cimport word


cdef struct Level:
    int64_t nblocks
    int64_t* ptr        # block b spans intervals ptr[b] .. ptr[b+1]-1
    int64_t* lo
    int64_t* hi
    int64_t* size       # resources per block
    bint unit           # every block is a single resource (blocks in order-index order)


cdef struct Pair:
    # For each block P of the upper level: the blocks x of the lower level meeting P,
    # in the lower level's order, with the intervals of P & x.
    int64_t* eptr       # P's entries are eptr[P] .. eptr[P+1]-1
    int64_t* blk        # entry -> lower block index
    int8_t* subset      # entry -> lower block entirely inside P
    int64_t* iptr       # entry -> intervals iptr[e] .. iptr[e+1]-1
    int64_t* lo
    int64_t* hi


cdef struct Op:
    # A piece of an answer: set [lo, hi], or (n > 0) take the first n free resources of [lo, hi].
    int64_t lo
    int64_t hi
    int64_t n


cdef class Hierarchy:
    cdef readonly Py_ssize_t nbits
    cdef readonly list labels
    cdef dict _label_index
    cdef list _keep                 # the numpy arrays owning the memory the C structs point into
    cdef list _block_of             # per level: order index -> block index (-1: none)
    cdef list _block_size
    cdef Level* levels
    cdef int nlevels
    cdef dict _pairs                # (upper, lower) -> index into pairs
    cdef Pair* pairs
    cdef int npairs, cap_pairs
    cdef int64_t max_blocks

    cdef Pair* pair(self, int upper, int lower) except NULL
    cpdef int level_index(self, str label) except -1


cdef class Request:
    """A moldable's resource groups compiled for the matcher."""
    cdef readonly Hierarchy hierarchy
    cdef readonly int ngroups
    cdef readonly Py_ssize_t nwords
    cdef readonly bint any_negative
    # Bitsets that cross to Python are numpy arrays, reached through typed memoryviews ...
    cdef object _constraints        # 2D uint64 array (ngroups, nwords), the owner of cons
    cdef word[:, ::1] cons
    cdef cnp.ndarray _found
    cdef word[::1] found            # find: the answer (a copy of _found is returned)
    # ... the rest is C memory the request owns alone (malloc'd in __init__, freed in __dealloc__)
    cdef int* lvl                   # all groups' level indices, group g at gptr[g]..gptr[g+1]-1
    cdef int64_t* cnt
    cdef int* gptr
    cdef int64_t* minres            # a lower bound of the resources a group needs
    cdef word* work                 # one group's available resources
    cdef int64_t* bufs              # per depth: avail list and children list
    cdef int depth_cap
    cdef Op* ops                    # grown with realloc
    cdef int64_t nops, cap_ops

    cdef bint match(self, const word* avail, word* out) except -1
    cdef bint _match_group(self, const word* itvs, int g) except -1
    cdef bint _find_n_h(self, const word* itvs, int g, int h, int nlev, const int64_t* cur, int64_t ncur) except -1
    cdef int64_t _push(self, int64_t lo, int64_t hi, int64_t n) except -1
