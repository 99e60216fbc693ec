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
from oarsched._core.bitset cimport (
    word, nwords, bs_copy, bs_fill, bs_iand, bs_ior, bs_iandnot, bs_and,
)
from oarsched._core.hierarchy cimport Request

cnp.import_array()

MAX_TIME = 2**31
"""End of OAR3's time line (``oar.kao.slot.MAX_TIME``): the end of every slot set (oarsched's one definition)."""


def _grown(arr, Py_ssize_t rows, fill=0):
    """``arr`` copied into a new array of ``rows`` rows, the new rows set to ``fill`` (left as they come: None)."""
    new = np.empty((rows,) + arr.shape[1:], arr.dtype)
    new[: arr.shape[0]] = arr
    if fill is not None:
        new[arr.shape[0]:] = fill
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
        cdef Py_ssize_t row = max(1, self.nwords)
        self.b = np.zeros(self.capacity, np.int64)
        self.e = np.zeros(self.capacity, np.int64)
        self.prv = np.zeros(self.capacity, np.int64)
        self.nxt = np.zeros(self.capacity, np.int64)
        self.rules = np.full(self.capacity, -1, np.int64)
        self._free = np.zeros((self.capacity, row), np.uint64)
        self.free = self._free
        self.scratch = np.zeros(row, np.uint64)
        self.acc = np.zeros(row, np.uint64)
        self._out = np.zeros(self.nwords, np.uint64)
        self.out = self._out
        self.seq = np.zeros(64, np.int64)
        self.suffix = np.zeros((16, row), np.uint64)
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
            self.free_view(1)[:] = free

    cdef int64_t _new_id(self) except -1:
        cdef int64_t cap
        self.last_id += 1
        if self.last_id >= self.capacity:
            cap = 2 * self.capacity
            self.b = _grown(self.b.base, cap)
            self.e = _grown(self.e.base, cap)
            self.prv = _grown(self.prv.base, cap)
            self.nxt = _grown(self.nxt.base, cap)
            self.rules = _grown(self.rules.base, cap, -1)
            self._free = _grown(self._free, cap, None)  # a row is copied in before it is ever read
            self.free = self._free
            grow = [None] * (cap - self.capacity)
            self.ts.extend(grow)
            self.ph.extend(grow)
            self.quotas.extend(grow)
            self.capacity = cap
        return self.last_id

    cdef void _copy_extras(self, int64_t src, int64_t dst) except *:
        bs_copy(&self.free[dst, 0], &self.free[src, 0], self.nwords)
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
        bs_copy(&self.out[0], &self.free[sid, 0], self.nwords)  # out is scratch between searches
        return cnp.PyArray_Copy(self._out)

    def free_view(self, int64_t sid):
        """The free resources of a slot, as a writable view (for the engine's own updates).

        The view sees the slot set's updates until it next grows (a split that
        needs more room moves the rows to a new array): use it at once, never keep it.
        """
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
        cdef int64_t s
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
                    const word[::1] res, bint sub=True):
        """Occupy (``sub``) or give (``not sub``) ``res`` on ``[start, start+walltime-1]``.

        ``(sl, sr)`` are the slots encompassing the job (see
        :meth:`get_encompassing_slots`).  Returns the ``(left, right)`` ids of the
        slots now covered by the job, for the caller's own bookkeeping
        (timesharing, placeholders, quotas).
        """
        cdef int64_t s
        cdef const word* r = &res[0]
        if self.b[sl] < start:
            self._split_before(sl, start)
        if self.e[sr] > start + walltime:
            self._split_after(sr, start + walltime)
        s = sl
        while True:
            if sub:
                bs_iandnot(&self.free[s, 0], r, self.nwords)
            s_next = self.nxt[s]
            if s == sr or s_next == 0:
                break
            s = s_next
        return (sl, sr)

    def add_free(self, int64_t sl, int64_t sr, const word[::1] res):
        """Add ``res`` to the free resources of slots ``sl..sr``."""
        cdef int64_t s = sl
        cdef const word* r = &res[0]
        while True:
            bs_ior(&self.free[s, 0], r, self.nwords)
            if s == sr or self.nxt[s] == 0:
                break
            s = self.nxt[s]

    def window_free(self, int64_t sl, int64_t sr, const word[:, ::1] ext=None):
        """Resources free in every slot of ``sl..sr`` (with ``ext[sid]`` added to each slot when given)."""
        cdef int64_t s = sl
        cdef word* a = &self.out[0]  # free while the answer is built: find_first copies its own out first
        cdef word* x = &self.scratch[0]
        if ext is not None and (ext.shape[0] <= self.last_id or ext.shape[1] < self.nwords):
            raise ValueError("ext must have a row of nwords words for every slot id")
        bs_fill(a, <word>0xFFFFFFFFFFFFFFFF, self.nwords)
        while True:
            if ext is None:
                bs_iand(a, &self.free[s, 0], self.nwords)
            else:
                bs_copy(x, &self.free[s, 0], self.nwords)
                bs_ior(x, &ext[s, 0], self.nwords)
                bs_iand(a, x, self.nwords)
            if s == sr or self.nxt[s] == 0:
                break
            s = self.nxt[s]
        return cnp.PyArray_Copy(self._out)

    # -- the window search ------------------------------------------------------------
    cdef int64_t* _seq_room(self, int64_t need) except NULL:
        """The position -> slot id buffer, with room for ``need`` positions (grown by doubling)."""
        if need > self.seq.shape[0]:
            self.seq = _grown(self.seq.base, max(2 * need, 64))
        return &self.seq[0]

    cdef word* _suffix_room(self, int64_t rows) except NULL:
        """Scratch rows for the suffix intersections of one window (grown by doubling, never shrunk)."""
        if rows > self.suffix.shape[0]:
            self.suffix = np.empty((max(2 * rows, 16), max(1, self.nwords)), np.uint64)  # nothing to keep
        return &self.suffix[0, 0]

    cdef inline void _load(self, word* dst, int64_t sid, const word* X, Py_ssize_t xw) noexcept:
        """``dst`` = free resources of slot ``sid`` (plus its extension row, rows ``xw`` words apart, if ``X``)."""
        bs_copy(dst, &self.free[sid, 0], self.nwords)
        if X != NULL:
            bs_ior(dst, X + sid * xw, self.nwords)

    def find_first(self, int64_t start_sid, int64_t walltime, Request request, const word[:, ::1] ext=None,
                   accept=None):
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
        cdef word* B = &self.acc[0]
        cdef word* A = &self.scratch[0]
        cdef word* out = &self.out[0]
        cdef const word* X = NULL
        cdef Py_ssize_t xw = 0
        cdef bint back_empty = True
        if walltime <= 0:
            raise ValueError("walltime must be positive")
        if ext is not None:
            if ext.shape[0] < self.last_id + 1:
                raise ValueError("ext has fewer rows than slots")
            X = &ext[0, 0]
            xw = ext.shape[1]
        nxt_sid = start_sid if start_sid else self.first_id
        self.last_fit = 0
        seq = self._seq_room(64)
        while True:
            if j < i:
                j = i
            # R: first position j >= i whose slot ends late enough; positions are
            # appended from the linked list as the search reaches them
            while True:
                if j == m:
                    if nxt_sid == 0:
                        return None
                    if m >= self.seq.shape[0]:
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
                        self._load(B, seq[bj], X, xw)
                        back_empty = False
                    elif X != NULL:
                        self._load(A, seq[bj], X, xw)
                        bs_iand(B, A, nw)
                    else:
                        bs_iand(B, &self.free[seq[bj], 0], nw)
            if i >= p:
                # rebuild the suffixes over [i, bj] (rows relative to sbase = i); the back accumulator empties
                sbase = i
                S = self._suffix_room(bj - i + 1)
                self._load(S + (bj - sbase) * nw, seq[bj], X, xw)
                k = bj - 1
                while k >= i:
                    if X != NULL:
                        self._load(S + (k - sbase) * nw, seq[k], X, xw)
                        bs_iand(S + (k - sbase) * nw, S + (k + 1 - sbase) * nw, nw)
                    else:
                        bs_and(S + (k - sbase) * nw, &self.free[seq[k], 0], S + (k + 1 - sbase) * nw, nw)
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
                res = cnp.PyArray_Copy(self._out)
                if accept is None or accept(seq[i], seq[j], res):
                    return (seq[i], seq[j], res)
            i += 1


cdef class _Frontier:
    """Cache entries of one request shape: walltime, counts, slot id and its begin when recorded."""
    cdef int ncounts
    cdef Py_ssize_t n, cap
    cdef int64_t[::1] w, sid, b0   # numpy arrays the frontier holds, as the slot set's buffers
    cdef int64_t[:, ::1] cnt        # entry -> its ncounts counts

    def __init__(self, int ncounts):
        self.ncounts = ncounts
        self.n = 0
        self.w = np.zeros(16, np.int64)
        self.sid = np.zeros(16, np.int64)
        self.b0 = np.zeros(16, np.int64)
        self.cnt = np.zeros((16, max(1, ncounts)), np.int64)
        self.cap = 16

    cdef int _grow(self) except -1:
        self.cap *= 2
        self.w = _grown(self.w.base, self.cap)
        self.sid = _grown(self.sid.base, self.cap)
        self.b0 = _grown(self.b0.base, self.cap)
        self.cnt = _grown(self.cnt.base, self.cap)
        return 0

    cdef bint _le(self, Py_ssize_t k, const int64_t* counts) noexcept:
        """Entry ``k`` asks for at most ``counts`` at every level."""
        cdef int c
        for c in range(self.ncounts):
            if self.cnt[k, c] > counts[c]:
                return False
        return True

    cdef bint _ge(self, Py_ssize_t k, const int64_t* counts) noexcept:
        cdef int c
        for c in range(self.ncounts):
            if self.cnt[k, c] < counts[c]:
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
                    self.cnt[keep, c] = self.cnt[k, c]
            keep += 1
        self.n = keep
        if self.n == self.cap:
            self._grow()
        self.w[self.n] = w
        self.sid[self.n] = sid
        self.b0[self.n] = b
        for c in range(self.ncounts):
            self.cnt[self.n, c] = counts[c]
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
    cdef int64_t[::1] _counts       # the counts of the last parsed key or request
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
        for i in range(len(counts)):
            self._counts[i] = counts[i]
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
        for i in range(len(counts)):
            self._counts[i] = counts[i]
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
        return (<_Frontier>fr).best(walltime, &self._counts[0], &self.ss.b[0], &best_b)

    def record(self, int64_t walltime, Request request, int64_t sid):
        """Every window before slot ``sid`` failed for this request (on the free resources alone)."""
        parsed = self._request_shape(request)
        if parsed is None or sid <= 0:
            return
        shape, ncounts = parsed
        fr = self.frontiers.get(shape)
        if fr is None:
            fr = self.frontiers[shape] = _Frontier(ncounts)
        (<_Frontier>fr).record(walltime, &self._counts[0], sid, self.ss.b[sid])

    def __setitem__(self, key, int64_t sid):
        self.exact[key] = sid
        parsed = self._parse(key)
        if parsed is None:
            return
        shape, ncounts = parsed
        fr = self.frontiers.get(shape)
        if fr is None:
            fr = self.frontiers[shape] = _Frontier(ncounts)
        (<_Frontier>fr).record(key[0], &self._counts[0], sid, self.ss.b[sid])

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
                s = (<_Frontier>fr).best(key[0], &self._counts[0], &self.ss.b[0], &best_b)
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
