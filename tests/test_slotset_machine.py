"""The compiled slot set against a plain model, driven by a Hypothesis state machine.

The model is a list of slots ``[id, begin, end, free]`` in time order, with
OAR3's splitting rules written out in Python (the one-second rules of
``split_at_before``/``split_at_after``, and ``split_slots`` splitting only when
the job starts after a slot begins or ends before a slot ends).  Each step
applies the same operation to both -- occupy a job as the engine does
(``get_encompassing_slots`` + ``split_slots``), give resources back
(``add_free``), split a slot, search a window (``find_first`` with a
compiled ``Request``, with and without a sharing extension or a veto) --
and compares results; after every step the whole slot list, ids and links
included, must match.  Window searches are checked against
:func:`oarsched.engine.reference.find_first_window`, occupations also against
their meaning (the job's resources are busy over its span, nothing changes
outside it but the one extra second of OAR3's rule).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from oarsched._core import bitset
from oarsched._core.hierarchy import Hierarchy, Request
from oarsched._core.slotset import MAX_TIME, SlotSet
from oarsched.engine import reference


@dataclass
class Slot:
    id: int
    b: int
    e: int
    free: frozenset


def ids_of(bs) -> frozenset:
    return frozenset(int(x) for x in bitset.to_indices(bs))


class SlotSetMachine(RuleBasedStateMachine):
    """A :class:`SlotSet` and its model, kept in step."""

    # ------------------------------------------------------------------ set-up
    @initialize(nbits=st.integers(1, 10), node_size=st.integers(1, 3), begin=st.integers(0, 100),
                length=st.one_of(st.integers(0, 300), st.just(None)), data=st.data())
    def setup(self, nbits, node_size, begin, length, data):
        self.n = nbits
        self.begin = begin
        self.end = MAX_TIME if length is None else begin + length
        free = frozenset(i for i in range(nbits) if data.draw(st.booleans(), label="initially free"))
        self.ss = SlotSet(nbits, begin, self.end, bitset.from_indices(sorted(free), nbits))
        self.model = [Slot(1, begin, self.end, free)]
        self.last_id = 1
        blocks = {
            "resource_id": [np.array([i]) for i in range(nbits)],
            "node": [np.arange(lo, min(lo + node_size, nbits)) for lo in range(0, nbits, node_size)],
        }
        self.hierarchy = Hierarchy(nbits, blocks)
        self.levels = {lbl: [frozenset(int(x) for x in b) for b in bl] for lbl, bl in blocks.items()}

    # ----------------------------------------------------------------- helpers
    def bits(self, members) -> np.ndarray:
        return bitset.from_indices(sorted(members), self.n)

    def index(self, sid: int) -> int:
        return next(i for i, s in enumerate(self.model) if s.id == sid)

    def model_split_before(self, i: int, t: int) -> int:
        s = self.model[i]
        if s.b == s.e:
            return s.id
        self.last_id += 1
        new = Slot(self.last_id, s.b, s.b if t == s.b else t - 1, s.free)
        s.b = s.b + 1 if t == s.b else t
        self.model.insert(i, new)
        return new.id

    def model_split_after(self, i: int, t: int) -> int:
        s = self.model[i]
        if s.b == s.e:
            return s.id
        self.last_id += 1
        new = Slot(self.last_id, s.b + 1 if t == s.b else t, s.e, s.free)
        s.e = t if t == s.b else t - 1
        self.model.insert(i + 1, new)
        return new.id

    def model_encompassing(self, t0: int, t1: int) -> tuple[int, int]:
        i = 0
        while self.model[i].e < t0 and i < len(self.model) - 1:
            i += 1
        j = i
        while self.model[j].e < t1 and j < len(self.model) - 1:
            j += 1
        return self.model[i].id, self.model[j].id

    def model_split_slots(self, sl: int, sr: int, start: int, walltime: int) -> list[Slot]:
        """OAR3's ``split_slots``: the slots now covered by the job, left to right."""
        if self.model[self.index(sl)].b < start:
            self.model_split_before(self.index(sl), start)
        if self.model[self.index(sr)].e > start + walltime:
            self.model_split_after(self.index(sr), start + walltime)
        return self.model[self.index(sl): self.index(sr) + 1]

    def request(self, data) -> tuple[Request, list]:
        """A compiled request and its reference form ``[(levels, constraint set)]``."""
        groups = []
        for _ in range(data.draw(st.integers(1, 2), label="groups")):
            shape = data.draw(st.sampled_from(["node", "resource_id", "node/resource_id"]), label="shape")
            if shape == "node/resource_id":
                levels = [("node", data.draw(st.integers(1, 3))), ("resource_id", data.draw(st.integers(1, 3)))]
            else:
                levels = [(shape, data.draw(st.one_of(st.integers(1, 4), st.sampled_from([-1, -2, -3]))))]
            constraint = frozenset(range(self.n)) if data.draw(st.booleans(), label="unconstrained") else \
                frozenset(i for i in range(self.n) if data.draw(st.booleans(), label="allowed"))
            groups.append((levels, constraint))
        compiled = Request(self.hierarchy, [(lv, self.bits(c)) for lv, c in groups])
        return compiled, [(lv, set(c)) for lv, c in groups]

    # ------------------------------------------------------------------- rules
    @rule(data=st.data(), walltime=st.integers(1, 400))
    def occupy(self, data, walltime):
        """A job as the engine places it (``occupy``/``insert_jobs``): it may start before the set."""
        start = data.draw(st.integers(max(self.begin - 50, self.begin - walltime),
                                      min(self.end, self.begin + 500)), label="start")
        res = frozenset(i for i in range(self.n) if data.draw(st.booleans(), label="resource"))
        before = [(s.b, s.e, s.free) for s in self.model]
        sl, sr = self.ss.get_encompassing_slots(start, start + walltime - 1)
        assert (sl, sr) == self.model_encompassing(start, start + walltime - 1)
        got = self.ss.split_slots(sl, sr, start, walltime, self.bits(res), True)
        covered = self.model_split_slots(sl, sr, start, walltime)
        assert got == (covered[0].id, covered[-1].id)
        for s in covered:
            s.free = s.free - res
        # meaning: busy over [start, start + walltime - 1]; outside, only OAR3's one extra second
        for s in self.model:
            overlaps = s.b <= start + walltime - 1 and s.e >= start
            if overlaps:
                assert not (s.free & res)
            changed = any(b <= s.b and s.e <= e and (f - s.free) for b, e, f in before)
            if changed:  # within [start, start + walltime]: the job, plus at most one second at its end
                assert start <= s.e <= start + walltime and (s.b >= start or s.b == self.begin)

    @rule(data=st.data())
    def give(self, data):
        """Resources given back over a span (``split_slots(sub=False)`` + ``add_free``: containers)."""
        start = data.draw(st.integers(self.begin, min(self.end, self.begin + 500)), label="start")
        walltime = data.draw(st.integers(1, 300), label="walltime")
        res = frozenset(i for i in range(self.n) if data.draw(st.booleans(), label="resource"))
        sl, sr = self.ss.get_encompassing_slots(start, start + walltime - 1)
        sl, sr = self.ss.split_slots(sl, sr, start, walltime, self.bits(res), False)
        self.ss.add_free(sl, sr, self.bits(res))
        m_sl, m_sr = self.model_encompassing(start, start + walltime - 1)
        covered = self.model_split_slots(m_sl, m_sr, start, walltime)
        assert (sl, sr) == (covered[0].id, covered[-1].id)
        for s in covered:
            s.free = s.free | res

    @rule(data=st.data(), before=st.booleans())
    def split(self, data, before):
        i = data.draw(st.integers(0, len(self.model) - 1), label="slot")
        s = self.model[i]
        t = data.draw(st.integers(s.b, min(s.e, s.b + 400)), label="t")
        if before:
            got = self.ss.split_at_before(s.id, t)
            sid = s.id
            new = self.model_split_before(i, t)
            assert got == (new, sid)
        else:
            got = self.ss.split_at_after(s.id, t)
            new = self.model_split_after(i, t)
            assert got == (s.id, new)

    @rule(data=st.data())
    def split_outside_is_refused(self, data):
        i = data.draw(st.integers(0, len(self.model) - 1), label="slot")
        s = self.model[i]
        t = data.draw(st.one_of(st.integers(s.b - 10, s.b - 1), st.integers(s.e + 1, s.e + 10)), label="t")
        try:
            self.ss.split_at_after(s.id, t)
        except ValueError:
            return
        raise AssertionError(f"split of slot {s.id} [{s.b}, {s.e}] at {t} accepted")

    @rule(data=st.data(), walltime=st.integers(1, 500))
    def find_first(self, data, walltime):
        start_index = data.draw(st.integers(0, len(self.model) - 1), label="from slot")
        compiled, groups = self.request(data)
        start_sid = self.model[start_index].id if start_index else data.draw(st.sampled_from([0, self.model[0].id]))
        got = self.ss.find_first(start_sid, walltime, compiled)
        slots = [(s.b, s.e, set(s.free)) for s in self.model[start_index:]]
        want = reference.find_first_window(slots, walltime, groups, self.levels)
        if want is None:
            assert got is None
            assert self.ss.last_fit == 0
            return
        assert got is not None
        left, right, res = got
        li, ri = self.index(left), self.index(right)
        assert (self.model[li].b, ids_of(res)) == (want[0], frozenset(want[1]))
        # R is the first slot making the window long enough
        assert self.model[ri].e - self.model[li].b + 1 >= walltime
        assert ri == li or self.model[ri - 1].e - self.model[li].b + 1 < walltime
        assert self.ss.last_fit == left
        # a veto of every match finds nothing, but remembers where the first one was
        assert self.ss.find_first(start_sid, walltime, compiled, None, lambda L, R, r: False) is None
        assert self.ss.last_fit == left

    @rule(data=st.data(), walltime=st.integers(1, 300))
    def find_first_with_extension(self, data, walltime):
        """Timesharing/placeholder resources added per slot (``ext``) count as free."""
        compiled, groups = self.request(data)
        extra = {s.id: frozenset(i for i in range(self.n) if data.draw(st.booleans(), label="shared"))
                 for s in self.model}
        ext = np.zeros((self.ss.last_id + 1, max(1, self.ss.nwords)), dtype=np.uint64)
        for sid, members in extra.items():
            ext[sid] = self.bits(members)
        got = self.ss.find_first(0, walltime, compiled, ext)
        slots = [(s.b, s.e, set(s.free | extra[s.id])) for s in self.model]
        want = reference.find_first_window(slots, walltime, groups, self.levels)
        if want is None:
            assert got is None
        else:
            assert got is not None
            assert (self.ss.slot(got[0])[0], ids_of(got[2])) == (want[0], frozenset(want[1]))
        wf = self.ss.window_free(self.model[0].id, self.model[-1].id, ext)
        assert ids_of(wf) == frozenset.intersection(*(s.free | extra[s.id] for s in self.model))

    @rule(data=st.data())
    def window_free(self, data):
        i = data.draw(st.integers(0, len(self.model) - 1), label="left")
        j = data.draw(st.integers(i, len(self.model) - 1), label="right")
        got = ids_of(self.ss.window_free(self.model[i].id, self.model[j].id))
        assert got == frozenset.intersection(*(s.free for s in self.model[i: j + 1]))

    @rule(data=st.data())
    def slot_id_at(self, data):
        t = data.draw(st.integers(self.begin - 5, min(self.end, self.model[-1].b + 50) + 5), label="t")
        holding = [s.id for s in self.model if s.b <= t <= s.e]
        assert self.ss.slot_id_at(t) == (holding[0] if holding else 0)

    @rule(data=st.data())
    def encompassing_from_a_slot(self, data):
        """``get_encompassing_slots`` may start its walk from a given slot (``insert_jobs`` does)."""
        i = data.draw(st.integers(0, len(self.model) - 1), label="first")
        t0 = data.draw(st.integers(self.model[i].b, self.model[i].e if self.model[i].e < MAX_TIME
                                   else self.model[i].b + 1000), label="t0")
        t1 = t0 + data.draw(st.integers(0, 500), label="span")
        got = self.ss.get_encompassing_slots(t0, t1, self.model[i].id)
        j = i
        while self.model[j].e < t1 and j < len(self.model) - 1:
            j += 1
        assert got == (self.model[i].id, self.model[j].id)

    # -------------------------------------------------------------- invariants
    @invariant()
    def same_slots(self):
        assert self.ss.slots() == [(s.id, s.b, s.e) for s in self.model]
        assert [ids_of(self.ss.free_of(s.id)) for s in self.model] == [s.free for s in self.model]
        assert self.ss.last_id == self.last_id and len(self.ss) == len(self.model)

    @invariant()
    def links_and_cover(self):
        assert self.ss.first_id == self.model[0].id and self.ss.last_slot_id == self.model[-1].id
        assert self.model[0].b == self.begin and self.model[-1].e == self.end
        for k, s in enumerate(self.model):
            b, e, prev, nxt = self.ss.slot(s.id)
            assert b <= e
            assert prev == (self.model[k - 1].id if k else 0)
            assert nxt == (self.model[k + 1].id if k + 1 < len(self.model) else 0)
            if k:
                assert self.model[k - 1].e + 1 == b


def test_slot_set_state_machine():
    run_state_machine_as_test(SlotSetMachine, settings=settings(max_examples=100, stateful_step_count=30,
                                                                 deadline=None))


@pytest.mark.slow
def test_slot_set_state_machine_long():
    run_state_machine_as_test(SlotSetMachine, settings=settings(max_examples=1000, stateful_step_count=60,
                                                                 deadline=None))
