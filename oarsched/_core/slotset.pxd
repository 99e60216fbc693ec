# cython: language_level=3
"""C-level API of the slot set: a time-ordered linked list of slots, each with its free resources."""
from libc.stdint cimport int64_t
from oarsched._core.bitset cimport word
from oarsched._core.hierarchy cimport Request


cdef class SlotSet:
    cdef readonly Py_ssize_t nbits, nwords
    cdef readonly int64_t last_id, first_id, capacity
    cdef readonly int64_t begin, end
    cdef readonly int64_t last_fit   # find_first: left slot of the first window the request matched
    cdef object _b, _e, _prev, _next, _rules
    cdef int64_t* b
    cdef int64_t* e
    cdef int64_t* prv
    cdef int64_t* nxt
    cdef int64_t* rules
    cdef word* free              # capacity rows of nwords words (malloc'd, grown by realloc)
    cdef public object cache     # (walltime, request key) -> slot id where the window search may start
    cdef public list ts          # slot id -> None or {(user_key, name_key): bitset}
    cdef public list ph          # slot id -> None or {name: bitset}
    cdef public list quotas      # slot id -> None or quota counters
    cdef object _scratch, _seq, _acc, _out, _suffix
    cdef word* scratch
    cdef int64_t* seq_buf        # find_first: position -> slot id
    cdef int64_t seq_cap
    cdef word* suffix_buf        # find_first: suffix intersections of the current window
    cdef int64_t suffix_cap

    cdef int64_t _new_id(self) except -1
    cdef void _refresh(self)
    cdef int64_t _split_before(self, int64_t sid, int64_t t) except -1
    cdef int64_t _split_after(self, int64_t sid, int64_t t) except -1
    cdef void _copy_extras(self, int64_t src, int64_t dst) except *
    cdef int64_t* _seq_room(self, int64_t need) except NULL
    cdef word* _suffix_room(self, int64_t rows) except NULL
    cdef inline void _load(self, word* dst, int64_t sid, const word* X) noexcept
