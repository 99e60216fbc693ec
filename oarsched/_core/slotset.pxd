# cython: language_level=3
"""C-level API of the slot set: a time-ordered linked list of slots, each with its free resources."""
cimport numpy as cnp
from libc.stdint cimport int64_t
from oarsched._core.bitset cimport word
from oarsched._core.hierarchy cimport Request


cdef class SlotSet:
    cdef readonly Py_ssize_t nbits, nwords
    cdef readonly int64_t last_id, first_id, capacity
    cdef readonly int64_t begin, end
    cdef readonly int64_t last_fit   # find_first: left slot of the first window the request matched
    cdef public object cache     # (walltime, request key) -> slot id where the window search may start
    cdef public list ts          # slot id -> None or {(user_key, name_key): bitset}
    cdef public list ph          # slot id -> None or {name: bitset}
    cdef public list quotas      # slot id -> None or quota counters
    # Every buffer of the slot set is a numpy array it holds alone, reached from C through a typed
    # memoryview (the view holds its array: one owner, nothing to free by hand).  Growing copies into
    # a new array, twice as large; a view handed out before keeps the old array alive, never dangles.
    cdef int64_t[::1] b, e, prv, nxt, rules
    cdef cnp.ndarray _free       # (capacity, max(1, nwords)) uint64 array: slot id -> its free resources
    cdef word[:, ::1] free
    cdef word[::1] scratch
    cdef word[::1] acc           # find_first: intersection of the newer part of the window
    cdef cnp.ndarray _out
    cdef word[::1] out           # find_first: the matcher's answer
    cdef int64_t[::1] seq        # find_first: position -> slot id
    cdef word[:, ::1] suffix     # find_first: suffix intersections of the current window

    cdef int64_t _new_id(self) except -1
    cdef int64_t _split_before(self, int64_t sid, int64_t t) except -1
    cdef int64_t _split_after(self, int64_t sid, int64_t t) except -1
    cdef void _copy_extras(self, int64_t src, int64_t dst) except *
    cdef int64_t* _seq_room(self, int64_t need) except NULL
    cdef word* _suffix_room(self, int64_t rows) except NULL
    cdef inline void _load(self, word* dst, int64_t sid, const word* X, Py_ssize_t xw) noexcept
