# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
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
from libc.stdlib cimport calloc, realloc
from libc.stdlib cimport free as c_free
from libc.string cimport memcpy
from oarsched._core.bitset cimport (
    word, nwords, bs_copy, bs_iand, bs_ior, bs_iandnot, bs_and,
)
from oarsched._core.hierarchy cimport Request

cnp.import_array()

MAX_TIME = 2**31
"""End of OAR3's time line (``oar.kao.slot.MAX_TIME``): the end of every slot set (oarsched's one definition)."""


def _grown(arr, Py_ssize_t cap):
    new = np.zeros(cap, arr.dtype)
    new[: arr.shape[0]] = arr
    return new


cdef class SlotSet:
    """A slot set over ``nbits`` resources starting with one slot ``[begin, end]``.

    ``free`` is the bitset (uint64 array) of the resources free in that slot.
    """

    def __cinit__(self):
        self.free = NULL

    def __dealloc__(self):
        c_free(self.free)

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
        # the free sets, one row per slot id: C memory grown with realloc (no copy, no transient double)
        self.free = <word*>calloc(self.capacity * max(1, self.nwords), sizeof(word))
        if self.free == NULL:
            raise MemoryError()
        self._scratch = np.zeros(max(1, self.nwords), np.uint64)
        self._acc = np.zeros(max(1, self.nwords), np.uint64)
        self._out = np.zeros(max(1, self.nwords), np.uint64)
        self._seq = np.zeros(64, np.int64)
        self.seq_cap = 64
        self.seq_buf = <int64_t*>(<cnp.ndarray>self._seq).data
        self._suffix = np.empty((16, max(1, self.nwords)), np.uint64)
        self.suffix_cap = 16
        self.suffix_buf = <word*>(<cnp.ndarray>self._suffix).data
        self._refresh()
        self.ts = [None] * self.capacity
        self.ph = [None] * self.capacity
        self.quotas = [None] * self.capacity
        self.cache = WindowCache(self)
        self.last_id = 1
        self.first_id = 1
        self.begin = begin
        self.end = end
        self.b[1] = begin
        self.e[1] = end
        if free is not None:
            row = np.zeros(self.nwords, np.uint64)
            row[:] = free
            if self.nwords:
                memcpy(self.free + self.nwords, <word*>(<cnp.ndarray>row).data, self.nwords * sizeof(word))

    cdef void _refresh(self):
        self.b = <int64_t*>(<cnp.ndarray>self._b).data
        self.e = <int64_t*>(<cnp.ndarray>self._e).data
        self.prv = <int64_t*>(<cnp.ndarray>self._prev).data
        self.nxt = <int64_t*>(<cnp.ndarray>self._next).data
        self.rules = <int64_t*>(<cnp.ndarray>self._rules).data
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
            grown = <word*>realloc(self.free, cap * max(1, self.nwords) * sizeof(word))
            if grown == NULL:
                raise MemoryError()
            self.free = grown  # rows past last_id are written (copied) before they are ever read
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
        out = np.empty(self.nwords, np.uint64)
        if self.nwords:
            memcpy(<word*>(<cnp.ndarray>out).data, self.free + sid * self.nwords, self.nwords * sizeof(word))
        return out

    def free_view(self, int64_t sid):
        """The free resources of a slot, as a writable view (for the engine's own updates).

        The view is valid until the slot set next grows (a split that needs
        more room moves the rows): use it at once, never keep it.
        """
        self._check(sid)
        if not self.nwords:
            return np.zeros(0, np.uint64)
        cdef word[::1] row = <word[: self.nwords]>(self.free + sid * self.nwords)
        return np.asarray(row)

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
        """``(left, right)``: first slot ending at or after ``t0``, then first ending at or after ``t1``
        (or the last)."""
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
        if ext is not None and (ext.shape[0] <= self.last_id or ext.shape[1] < self.nwords):
            raise ValueError("ext must have a row of nwords words for every slot id")
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
    cdef int64_t* _seq_room(self, int64_t need) except NULL:
        """The position -> slot id buffer, with room for ``need`` positions (grown by doubling)."""
        if need > self.seq_cap:
            grown = np.zeros(max(2 * need, 64), np.int64)
            grown[: self.seq_cap] = self._seq[: self.seq_cap]
            self._seq = grown
            self.seq_cap = grown.shape[0]
            self.seq_buf = <int64_t*>(<cnp.ndarray>self._seq).data
        return self.seq_buf

    cdef word* _suffix_room(self, int64_t rows) except NULL:
        """Scratch rows for the suffix intersections of one window (grown by doubling, never shrunk)."""
        if rows > self.suffix_cap:
            self._suffix = np.empty((max(2 * rows, 16), max(1, self.nwords)), np.uint64)
            self.suffix_cap = self._suffix.shape[0]
            self.suffix_buf = <word*>(<cnp.ndarray>self._suffix).data
        return self.suffix_buf

    cdef inline void _load(self, word* dst, int64_t sid, const word* X) noexcept:
        """``dst`` = free resources of slot ``sid`` (plus its extension row when ``X`` is given)."""
        bs_copy(dst, self.free + sid * self.nwords, self.nwords)
        if X != NULL:
            bs_ior(dst, X + sid * self.nwords, self.nwords)

    def find_first(self, int64_t start_sid, int64_t walltime, Request request, ext=None, accept=None):
        """First window (in time order, from slot ``start_sid``) where ``request`` fits.

        A window is the run of slots ``L..R`` with ``R`` the first slot such that
        ``end(R) - begin(L) + 1 >= walltime``.  ``ext`` (array indexed by slot id)
        adds shareable resources to each slot (timesharing, placeholders).
        ``accept(L, R, resources)`` may veto a match (quotas).  Returns
        ``(L, R, resources)`` or None.  Afterwards :attr:`last_fit` is the
        left slot of the first window where the request matched, vetoed or
        not (0: none).

        Slots are visited lazily, only as far as the search goes: a search that
        succeeds early costs nothing for the slots after its window.  The window
        intersection is a two-stack sliding window: suffix intersections of the
        older part (rebuilt when the left edge passes them) and one accumulator
        of the newer part, so each slot is intersected a constant number of times.
        """
        cdef Py_ssize_t nw = self.nwords
        cdef int64_t i = 0, j = 0, m = 0, k, bj = -1, p = 0, sbase = 0, nxt_sid
        cdef int64_t* seq
        cdef word* S = NULL
        cdef word* B
        cdef word* A
        cdef word* out
        cdef word* X = NULL
        cdef bint back_empty = True
        if walltime <= 0:
            raise ValueError("walltime must be positive")
        if ext is not None:
            if ext.shape[0] < self.last_id + 1:
                raise ValueError("ext has fewer rows than slots")
            X = <word*>(<cnp.ndarray>ext).data
        nxt_sid = start_sid if start_sid else self.first_id
        self.last_fit = 0
        seq = self._seq_room(64)
        B = <word*>(<cnp.ndarray>self._acc).data
        A = self.scratch
        out = <word*>(<cnp.ndarray>self._out).data
        while True:
            if j < i:
                j = i
            # R: first position j >= i whose slot ends late enough; positions are
            # appended from the linked list as the search reaches them
            while True:
                if j == m:
                    if nxt_sid == 0:
                        return None
                    if m >= self.seq_cap:
                        seq = self._seq_room(m + 1)
                    seq[m] = nxt_sid
                    nxt_sid = self.nxt[nxt_sid]
                    m += 1
                if self.e[seq[j]] - self.b[seq[i]] + 1 >= walltime:
                    break
                j += 1
            # fold positions bj+1..j into the back accumulator
            while bj < j:
                bj += 1
                if bj >= p:
                    if back_empty:
                        self._load(B, seq[bj], X)
                        back_empty = False
                    elif X != NULL:
                        self._load(A, seq[bj], X)
                        bs_iand(B, A, nw)
                    else:
                        bs_iand(B, self.free + seq[bj] * nw, nw)
            if i >= p:
                # rebuild the suffixes over [i, bj] (rows relative to sbase = i); the back accumulator empties
                sbase = i
                S = self._suffix_room(bj - i + 1)
                self._load(S + (bj - sbase) * nw, seq[bj], X)
                k = bj - 1
                while k >= i:
                    if X != NULL:
                        self._load(S + (k - sbase) * nw, seq[k], X)
                        bs_iand(S + (k - sbase) * nw, S + (k + 1 - sbase) * nw, nw)
                    else:
                        bs_and(S + (k - sbase) * nw, self.free + seq[k] * nw, S + (k + 1 - sbase) * nw, nw)
                    k -= 1
                p = bj + 1
                back_empty = True
            if back_empty:
                bs_copy(A, S + (i - sbase) * nw, nw)
            else:
                bs_and(A, S + (i - sbase) * nw, B, nw)
            if request.match(A, out):
                if self.last_fit == 0:
                    self.last_fit = seq[i]
                res = self._out[:nw].copy()
                if accept is None or accept(seq[i], seq[j], res):
                    return (seq[i], seq[j], res)
            i += 1


cdef class _Frontier:
    """Cache entries of one request shape: walltime, counts, slot id and its begin when recorded."""
    cdef int ncounts
    cdef Py_ssize_t n, cap
    cdef object _w, _cnt, _sid, _b0
    cdef int64_t* w
    cdef int64_t* cnt
    cdef int64_t* sid
    cdef int64_t* b0

    def __init__(self, int ncounts):
        self.ncounts = ncounts
        self.n = 0
        self._alloc(16)

    cdef void _alloc(self, Py_ssize_t cap):
        w = np.zeros(cap, np.int64)
        cnt = np.zeros((cap, max(1, self.ncounts)), np.int64)
        sid = np.zeros(cap, np.int64)
        b0 = np.zeros(cap, np.int64)
        if self.n:
            w[: self.n] = self._w[: self.n]
            cnt[: self.n] = self._cnt[: self.n]
            sid[: self.n] = self._sid[: self.n]
            b0[: self.n] = self._b0[: self.n]
        self._w, self._cnt, self._sid, self._b0 = w, cnt, sid, b0
        self.w = <int64_t*>(<cnp.ndarray>w).data
        self.cnt = <int64_t*>(<cnp.ndarray>cnt).data
        self.sid = <int64_t*>(<cnp.ndarray>sid).data
        self.b0 = <int64_t*>(<cnp.ndarray>b0).data
        self.cap = cap

    cdef bint _le(self, Py_ssize_t k, const int64_t* counts) noexcept:
        """Entry ``k`` asks for at most ``counts`` at every level."""
        cdef int c
        for c in range(self.ncounts):
            if self.cnt[k * self.ncounts + c] > counts[c]:
                return False
        return True

    cdef bint _ge(self, Py_ssize_t k, const int64_t* counts) noexcept:
        cdef int c
        for c in range(self.ncounts):
            if self.cnt[k * self.ncounts + c] < counts[c]:
                return False
        return True

    cdef void record(self, int64_t w, const int64_t* counts, int64_t sid, int64_t b) except *:
        """Add an entry; entries it makes useless (asking for more, starting no later) are dropped."""
        cdef Py_ssize_t k = 0, keep = 0
        cdef int c
        for k in range(self.n):
            if self.w[k] >= w and self._ge(k, counts) and self.b0[k] <= b:
                continue  # dominated by the new entry
            if keep != k:
                self.w[keep] = self.w[k]
                self.sid[keep] = self.sid[k]
                self.b0[keep] = self.b0[k]
                for c in range(self.ncounts):
                    self.cnt[keep * self.ncounts + c] = self.cnt[k * self.ncounts + c]
            keep += 1
        self.n = keep
        if self.n == self.cap:
            self._alloc(2 * self.cap)
        self.w[self.n] = w
        self.sid[self.n] = sid
        self.b0[self.n] = b
        for c in range(self.ncounts):
            self.cnt[self.n * self.ncounts + c] = counts[c]
        self.n += 1

    cdef int64_t best(self, int64_t w, const int64_t* counts, const int64_t* begins, int64_t* best_b) noexcept:
        """The latest-beginning slot of an entry the request dominates (0: none); its begin in ``best_b``.

        Entries whose slot no longer begins where it did are ignored.
        """
        cdef Py_ssize_t k
        cdef int64_t out = 0, s
        for k in range(self.n):
            if self.w[k] <= w and self._le(k, counts):
                s = self.sid[k]
                if begins[s] == self.b0[k] and begins[s] > best_b[0]:
                    best_b[0] = begins[s]
                    out = s
        return out


cdef class WindowCache:
    """Where a window search may start: OAR3's per-request cache, extended by dominance.

    OAR3 starts the search of a request where the last job with the very same
    request (walltime, levels, counts, constraint) was placed: every earlier
    window failed for it, and later placements only remove resources.  The
    same holds for any request that *dominates* a cached one — same levels
    and constraint, counts and walltime at least as large — because the
    matcher is monotone (fewer free resources, or a longer window whose free
    set is a subset, never make a request fit that did not).  So the search
    starts at the latest slot among the entries the request dominates, which
    gives the very same first fit as OAR3's exact-key lookup, sooner.

    Keys are the engine's ``(walltime, ((levels, constraint bytes), ...))``;
    requests with keyword counts (ALL, BEST, HALF_BEST) use the exact key only.
    A mapping as far as the engine is concerned (``get``, ``[]``, ``in``).
    """
    cdef SlotSet ss
    cdef dict exact
    cdef dict frontiers
    cdef object _counts             # the counts of the last parsed key or request
    cdef object _last_request, _last_shape

    def __init__(self, SlotSet ss):
        self.ss = ss
        self.exact = {}
        self.frontiers = {}
        self._counts = np.zeros(8, np.int64)

    cdef tuple _parse(self, key):
        """``(shape, counts array)`` of a key, or None when it has a keyword count or an odd form."""
        cdef Py_ssize_t i = 0
        try:
            _w, parts = key
            shape = tuple([(tuple([lbl for lbl, _ in levels]), cons) for levels, cons in parts])
            counts = [n for levels, _ in parts for _, n in levels]
        except (TypeError, ValueError):
            return None
        self._last_request = None  # _counts is about to hold this key's counts
        if not counts or min(counts) <= 0:
            return None
        if len(counts) > self._counts.shape[0]:
            self._counts = np.zeros(2 * len(counts), np.int64)
        arr = self._counts
        for i in range(len(counts)):
            arr[i] = counts[i]
        return (shape, len(counts))

    cdef tuple _request_shape(self, Request request):
        """``(shape, ncounts)`` of a compiled request, as :meth:`_parse` gives for its key; None with keywords."""
        cdef int g, k
        cdef Py_ssize_t i = 0
        if request is self._last_request:  # start_for then record: the same request, parsed once
            return self._last_shape
        self._last_request = request
        self._last_shape = None
        if request.any_negative:
            return None
        labels = request.hierarchy.labels
        cons = request._constraints
        parts = []
        counts = []
        for g in range(request.ngroups):
            parts.append((tuple([labels[request.lvl[k]] for k in range(request.gptr[g], request.gptr[g + 1])]),
                          cons[g].tobytes()))
            for k in range(request.gptr[g], request.gptr[g + 1]):
                counts.append(request.cnt[k])
        if not counts:
            return None
        if len(counts) > self._counts.shape[0]:
            self._counts = np.zeros(2 * len(counts), np.int64)
        arr = self._counts
        for i in range(len(counts)):
            arr[i] = counts[i]
        self._last_shape = (tuple(parts), len(counts))
        return self._last_shape

    def start_for(self, int64_t walltime, Request request):
        """The latest slot before which every window is known to fail for this request (0: none known)."""
        cdef int64_t best_b = -1
        parsed = self._request_shape(request)
        if parsed is None:
            return 0
        fr = self.frontiers.get(parsed[0])
        if fr is None:
            return 0
        return (<_Frontier>fr).best(walltime, <int64_t*>(<cnp.ndarray>self._counts).data, self.ss.b, &best_b)

    def record(self, int64_t walltime, Request request, int64_t sid):
        """Every window before slot ``sid`` failed for this request (on the free resources alone)."""
        parsed = self._request_shape(request)
        if parsed is None or sid <= 0:
            return
        shape, ncounts = parsed
        fr = self.frontiers.get(shape)
        if fr is None:
            fr = self.frontiers[shape] = _Frontier(ncounts)
        (<_Frontier>fr).record(walltime, <int64_t*>(<cnp.ndarray>self._counts).data, sid, self.ss.b[sid])

    def __setitem__(self, key, int64_t sid):
        self.exact[key] = sid
        parsed = self._parse(key)
        if parsed is None:
            return
        shape, ncounts = parsed
        fr = self.frontiers.get(shape)
        if fr is None:
            fr = self.frontiers[shape] = _Frontier(ncounts)
        (<_Frontier>fr).record(key[0], <int64_t*>(<cnp.ndarray>self._counts).data, sid, self.ss.b[sid])

    def get(self, key, default=0):
        """The slot to start the search of ``key`` from (``default`` when nothing is known)."""
        cdef int64_t best_b = -1, s, best = 0
        exact = self.exact.get(key)
        if exact is not None:
            best = exact
            best_b = self.ss.b[best]
        parsed = self._parse(key)
        if parsed is not None:
            fr = self.frontiers.get(parsed[0])
            if fr is not None:
                s = (<_Frontier>fr).best(key[0], <int64_t*>(<cnp.ndarray>self._counts).data, self.ss.b, &best_b)
                if s:
                    best = s
        return best if best else default

    def __getitem__(self, key):
        return self.exact[key]

    def __contains__(self, key):
        return key in self.exact

    def __len__(self):
        return len(self.exact)

    def clear(self):
        self.exact.clear()
        self.frontiers.clear()
