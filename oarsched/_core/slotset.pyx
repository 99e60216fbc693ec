# cython: language_level=3
"""The slot set: free resources through time, OAR3's ``SlotSet`` over bitsets.

Slots are kept in a linked list (ids never reused, 0 = none) with inclusive
``[begin, end]`` bounds and the set of resources free during the whole slot.
Splitting follows OAR3 to the second (its one-second rules are part of the
decisions a drop-in must reproduce):

* ``split_at_before(s, t)``: new slot ``[b, t-1]`` in front, ``s`` keeps ``[t, e]``;
* ``split_at_after(s, t)``: ``s`` keeps ``[b, t-1]``, new slot ``[t, e]`` after;
* both are no-ops on a one-second slot, and with ``t == b`` give ``[b, b]`` and ``[b+1, e]``.

The window search (:meth:`SlotSet.find_first`) walks windows of consecutive
slots at least a walltime wide, in time order, keeping the intersection of a
sliding window with the two-stack technique so that each slot is intersected
a constant number of times per search.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t
from oarsched._core.bitset cimport (
    word, nwords, bs_copy, bs_fill, bs_iand, bs_ior, bs_iandnot, bs_and,
)
from oarsched._core.hierarchy cimport Request

cnp.import_array()

MAX_TIME = 2**31


def _grown(arr, Py_ssize_t cap):
    new = np.zeros(cap, arr.dtype)
    new[: arr.shape[0]] = arr
    return new


cdef class SlotSet:
    """A slot set over ``nbits`` resources starting with one slot ``[begin, end]``.

    ``free`` is the bitset (uint64 array) of the resources free in that slot.
    """

    def __init__(self, Py_ssize_t nbits, int64_t begin, int64_t end=MAX_TIME, free=None, Py_ssize_t capacity=64):
        if end < begin:
            raise ValueError(f"slot set ends ({end}) before it begins ({begin})")
        self.nbits = nbits
        self.nwords = nwords(nbits)
        self.capacity = max(4, capacity)
        self._b = np.zeros(self.capacity, np.int64)
        self._e = np.zeros(self.capacity, np.int64)
        self._prev = np.zeros(self.capacity, np.int64)
        self._next = np.zeros(self.capacity, np.int64)
        self._rules = np.full(self.capacity, -1, np.int64)
        self._free = np.zeros((self.capacity, max(1, self.nwords)), np.uint64)
        self._scratch = np.zeros(max(1, self.nwords), np.uint64)
        self._acc = np.zeros(max(1, self.nwords), np.uint64)
        self._out = np.zeros(max(1, self.nwords), np.uint64)
        self._seq = np.zeros(0, np.int64)
        self._refresh()
        self.ts = [None] * self.capacity
        self.ph = [None] * self.capacity
        self.quotas = [None] * self.capacity
        self.cache = {}
        self.last_id = 1
        self.first_id = 1
        self.begin = begin
        self.end = end
        self.b[1] = begin
        self.e[1] = end
        if free is not None:
            self._free[1, : self.nwords] = free

    cdef void _refresh(self):
        self.b = <int64_t*>(<cnp.ndarray>self._b).data
        self.e = <int64_t*>(<cnp.ndarray>self._e).data
        self.prv = <int64_t*>(<cnp.ndarray>self._prev).data
        self.nxt = <int64_t*>(<cnp.ndarray>self._next).data
        self.rules = <int64_t*>(<cnp.ndarray>self._rules).data
        self.free = <word*>(<cnp.ndarray>self._free).data
        self.scratch = <word*>(<cnp.ndarray>self._scratch).data

    cdef int64_t _new_id(self) except -1:
        cdef int64_t cap
        self.last_id += 1
        if self.last_id >= self.capacity:
            cap = 2 * self.capacity
            self._b = _grown(self._b, cap)
            self._e = _grown(self._e, cap)
            self._prev = _grown(self._prev, cap)
            self._next = _grown(self._next, cap)
            rules = np.full(cap, -1, np.int64)
            rules[: self.capacity] = self._rules
            self._rules = rules
            free = np.zeros((cap, self._free.shape[1]), np.uint64)
            free[: self.capacity] = self._free
            self._free = free
            grow = [None] * (cap - self.capacity)
            self.ts.extend(grow)
            self.ph.extend(grow)
            self.quotas.extend(grow)
            self.capacity = cap
            self._refresh()
        return self.last_id

    cdef void _copy_extras(self, int64_t src, int64_t dst) except *:
        bs_copy(self.free + dst * self.nwords, self.free + src * self.nwords, self.nwords)
        self.rules[dst] = self.rules[src]
        t = self.ts[src]
        self.ts[dst] = dict(t) if t else None
        p = self.ph[src]
        self.ph[dst] = dict(p) if p else None
        q = self.quotas[src]
        self.quotas[dst] = q.copy() if q is not None else None

    # -- inspection -------------------------------------------------------------
    def slot(self, int64_t sid):
        """``(begin, end, prev, next)`` of a slot."""
        self._check(sid)
        return (self.b[sid], self.e[sid], self.prv[sid], self.nxt[sid])

    def free_of(self, int64_t sid):
        """A copy of the free resources of a slot (bitset)."""
        self._check(sid)
        return self._free[sid, : self.nwords].copy()

    def free_view(self, int64_t sid):
        """The free resources of a slot, as a writable view (for the engine's own updates)."""
        self._check(sid)
        return self._free[sid, : self.nwords]

    def rules_id(self, int64_t sid):
        return self.rules[sid]

    def set_rules_id(self, int64_t sid, int64_t rid):
        self.rules[sid] = rid

    def next_of(self, int64_t sid):
        return self.nxt[sid]

    def prev_of(self, int64_t sid):
        return self.prv[sid]

    @property
    def last_slot_id(self):
        cdef int64_t s = self.first_id
        while self.nxt[s] != 0:
            s = self.nxt[s]
        return s

    def ids(self, int64_t start=0, int64_t stop=0):
        """Slot ids in time order from ``start`` (default: first) to ``stop`` (default: last), inclusive."""
        cdef int64_t s = start if start else self.first_id
        out = []
        while s != 0:
            out.append(s)
            if s == stop:
                break
            s = self.nxt[s]
        return out

    def __len__(self):
        return len(self.ids())

    def slots(self):
        """``[(id, begin, end), ...]`` in time order."""
        return [(s, self.b[s], self.e[s]) for s in self.ids()]

    def _check(self, int64_t sid):
        if sid <= 0 or sid > self.last_id:
            raise KeyError(f"no slot {sid}")

    # -- splitting (OAR3's one-second rules) -------------------------------------
    cdef int64_t _split_before(self, int64_t sid, int64_t t) except -1:
        cdef int64_t nid, b = self.b[sid]
        if b == self.e[sid]:
            return sid
        nid = self._new_id()
        self.b[nid] = b
        self.e[nid] = b if t == b else t - 1
        self.prv[nid] = self.prv[sid]
        self.nxt[nid] = sid
        if self.prv[sid] != 0:
            self.nxt[self.prv[sid]] = nid
        else:
            self.first_id = nid
        self.prv[sid] = nid
        self.b[sid] = b + 1 if t == b else t
        self._copy_extras(sid, nid)
        return nid

    cdef int64_t _split_after(self, int64_t sid, int64_t t) except -1:
        cdef int64_t nid, b = self.b[sid]
        if b == self.e[sid]:
            return sid
        nid = self._new_id()
        self.b[nid] = b + 1 if t == b else t
        self.e[nid] = self.e[sid]
        self.prv[nid] = sid
        self.nxt[nid] = self.nxt[sid]
        if self.nxt[sid] != 0:
            self.prv[self.nxt[sid]] = nid
        self.nxt[sid] = nid
        self.e[sid] = t if t == b else t - 1
        self._copy_extras(sid, nid)
        return nid

    def split_at_before(self, int64_t sid, int64_t t):
        """Split slot ``sid`` at ``t``, the new slot going in front: ``(new_id, sid)``."""
        self._check(sid)
        if not (self.b[sid] <= t <= self.e[sid]):
            raise ValueError(f"time {t} outside slot {sid} [{self.b[sid]}, {self.e[sid]}]")
        return (self._split_before(sid, t), sid)

    def split_at_after(self, int64_t sid, int64_t t):
        """Split slot ``sid`` at ``t``, the new slot going after: ``(sid, new_id)``."""
        self._check(sid)
        if not (self.b[sid] <= t <= self.e[sid]):
            raise ValueError(f"time {t} outside slot {sid} [{self.b[sid]}, {self.e[sid]}]")
        return (sid, self._split_after(sid, t))

    def slot_id_at(self, int64_t t):
        """The slot containing ``t``; 0 when ``t`` is outside the slot set."""
        cdef int64_t s = self.first_id
        if self.b[s] > t:
            return 0
        while self.e[s] < t and self.nxt[s] != 0:
            s = self.nxt[s]
        if self.nxt[s] == 0 and self.e[s] < t:
            return 0
        return s

    def get_encompassing_slots(self, int64_t t0, int64_t t1, int64_t first_id=0):
        """``(left, right)``: first slot ending at or after ``t0``, then first ending at or after ``t1`` (or the last)."""
        cdef int64_t sl = first_id if first_id else self.first_id
        while self.e[sl] < t0 and self.nxt[sl] != 0:
            sl = self.nxt[sl]
        cdef int64_t sr = sl
        while self.e[sr] < t1 and self.nxt[sr] != 0:
            sr = self.nxt[sr]
        return (sl, sr)

    def split_slots(self, int64_t sl, int64_t sr, int64_t start, int64_t walltime,
                    cnp.ndarray[cnp.uint64_t, ndim=1] res, bint sub=True):
        """Occupy (``sub``) or give (``not sub``) ``res`` on ``[start, start+walltime-1]``.

        ``(sl, sr)`` are the slots encompassing the job (see
        :meth:`get_encompassing_slots`).  Returns the ``(left, right)`` ids of the
        slots now covered by the job, for the caller's own bookkeeping
        (timesharing, placeholders, quotas).
        """
        cdef int64_t s
        cdef word* r = <word*>res.data
        if self.b[sl] < start:
            self._split_before(sl, start)
        if self.e[sr] > start + walltime:
            self._split_after(sr, start + walltime)
        s = sl
        while True:
            if sub:
                bs_iandnot(self.free + s * self.nwords, r, self.nwords)
            s_next = self.nxt[s]
            if s == sr or s_next == 0:
                break
            s = s_next
        return (sl, sr)

    def add_free(self, int64_t sl, int64_t sr, cnp.ndarray[cnp.uint64_t, ndim=1] res):
        """Add ``res`` to the free resources of slots ``sl..sr``."""
        cdef int64_t s = sl
        while True:
            bs_ior(self.free + s * self.nwords, <word*>res.data, self.nwords)
            if s == sr or self.nxt[s] == 0:
                break
            s = self.nxt[s]

    def window_free(self, int64_t sl, int64_t sr, ext=None):
        """Resources free in every slot of ``sl..sr`` (with ``ext[sid]`` added to each slot when given)."""
        cdef int64_t s = sl
        acc = np.full(self.nwords, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        cdef word* a = <word*>(<cnp.ndarray>acc).data
        cdef word* x
        cdef cnp.ndarray ext_arr
        while True:
            if ext is None:
                bs_iand(a, self.free + s * self.nwords, self.nwords)
            else:
                ext_arr = ext
                x = <word*>ext_arr.data + s * self.nwords
                bs_copy(self.scratch, self.free + s * self.nwords, self.nwords)
                bs_ior(self.scratch, x, self.nwords)
                bs_iand(a, self.scratch, self.nwords)
            if s == sr or self.nxt[s] == 0:
                break
            s = self.nxt[s]
        return acc

    # -- the window search ------------------------------------------------------------
    def find_first(self, int64_t start_sid, int64_t walltime, Request request, ext=None, accept=None):
        """First window (in time order, from slot ``start_sid``) where ``request`` fits.

        A window is the run of slots ``L..R`` with ``R`` the first slot such that
        ``end(R) - begin(L) + 1 >= walltime``.  ``ext`` (array indexed by slot id)
        adds shareable resources to each slot (timesharing, placeholders).
        ``accept(L, R, resources)`` may veto a match (quotas).  Returns
        ``(L, R, resources)`` or None.
        """
        cdef Py_ssize_t nw = self.nwords
        cdef int64_t s, m = 0, i, j, k, bj, p
        cdef int64_t* seq
        cdef word* S
        cdef word* B
        cdef word* A
        cdef word* out
        cdef word* X = NULL
        cdef bint back_empty
        if walltime <= 0:
            raise ValueError("walltime must be positive")
        if ext is not None:
            if ext.shape[0] < self.last_id + 1:
                raise ValueError("ext has fewer rows than slots")
            X = <word*>(<cnp.ndarray>ext).data
        # slots in time order from start_sid
        s = start_sid if start_sid else self.first_id
        if self._seq.shape[0] < self.last_id + 1:
            self._seq = np.zeros(2 * (self.last_id + 1), np.int64)
        seq = <int64_t*>(<cnp.ndarray>self._seq).data
        while s != 0:
            seq[m] = s
            m += 1
            s = self.nxt[s]
        suffix = np.empty((max(1, m), max(1, nw)), np.uint64)
        S = <word*>(<cnp.ndarray>suffix).data
        B = <word*>(<cnp.ndarray>self._acc).data
        A = self.scratch
        out = <word*>(<cnp.ndarray>self._out).data
        j = 0
        bj = -1      # last position folded into the back accumulator or the suffixes
        p = 0        # suffixes cover positions [.., p-1], the back accumulator [p, bj]
        back_empty = True
        for i in range(m):
            if j < i:
                j = i
            while j < m and self.e[seq[j]] - self.b[seq[i]] + 1 < walltime:
                j += 1
            if j == m:
                break
            # fold positions bj+1..j into the back accumulator
            while bj < j:
                bj += 1
                if bj >= p:
                    if back_empty:
                        bs_copy(B, self.free + seq[bj] * nw, nw)
                        if X != NULL:
                            bs_ior(B, X + seq[bj] * nw, nw)
                        back_empty = False
                    else:
                        if X != NULL:
                            bs_copy(A, self.free + seq[bj] * nw, nw)
                            bs_ior(A, X + seq[bj] * nw, nw)
                            bs_iand(B, A, nw)
                        else:
                            bs_iand(B, self.free + seq[bj] * nw, nw)
            if i >= p:
                # rebuild the suffixes over [i, bj]; the back accumulator becomes empty
                bs_copy(S + bj * nw, self.free + seq[bj] * nw, nw)
                if X != NULL:
                    bs_ior(S + bj * nw, X + seq[bj] * nw, nw)
                k = bj - 1
                while k >= i:
                    if X != NULL:
                        bs_copy(S + k * nw, self.free + seq[k] * nw, nw)
                        bs_ior(S + k * nw, X + seq[k] * nw, nw)
                        bs_iand(S + k * nw, S + (k + 1) * nw, nw)
                    else:
                        bs_and(S + k * nw, self.free + seq[k] * nw, S + (k + 1) * nw, nw)
                    k -= 1
                p = bj + 1
                back_empty = True
            if back_empty:
                bs_copy(A, S + i * nw, nw)
            else:
                bs_and(A, S + i * nw, B, nw)
            if request.match(A, out):
                res = self._out[:nw].copy()
                if accept is None or accept(seq[i], seq[j], res):
                    return (seq[i], seq[j], res)
        return None
