"""The compiled core: bitsets, the hierarchy matcher, slot splitting, the window search."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oarsched._core import bitset
from oarsched._core.hierarchy import Hierarchy, Request
from oarsched._core.slotset import MAX_TIME, SlotSet
from oarsched.engine import reference
from tests.strategies import nested_platforms, requests


def ids(bs):
    return [int(x) for x in bitset.to_indices(bs)]


# -- bitsets -------------------------------------------------------------------------------
@given(st.sets(st.integers(0, 300)), st.integers(301, 400))
def test_bitset_roundtrip(members, nbits):
    bs = bitset.from_indices(members, nbits)
    assert ids(bs) == sorted(members)
    assert bitset.count(bs) == len(members)
    mask = np.zeros(nbits, bool)
    mask[list(members)] = True
    assert np.array_equal(bitset.from_mask(mask), bs)


def test_bitset_rejects_out_of_range():
    with pytest.raises(IndexError):
        bitset.from_indices([10], 10)


# -- hierarchy matcher: the reference's worked example (roids 0-7, roid 3 busy) ------------------
@pytest.fixture
def small_hierarchy():
    levels = {
        "switch": [np.arange(0, 4), np.arange(4, 8)],
        "network_address": [np.arange(0, 2), np.arange(2, 4), np.arange(4, 6), np.arange(6, 8)],
        "resource_id": [np.array([i]) for i in range(8)],
    }
    return Hierarchy(8, levels)


@pytest.mark.parametrize("levels, expected", [
    ([("switch", 1), ("network_address", 2)], [4, 5, 6, 7]),
    ([("network_address", 2), ("resource_id", 1)], [0, 2]),
    ([("switch", 2), ("network_address", 1), ("resource_id", 1)], [0, 4]),
    ([("network_address", 3)], [0, 1, 4, 5, 6, 7]),
    ([("switch", 1), ("resource_id", 3)], [0, 1, 2]),
    ([("network_address", -1)], None),
    ([("network_address", -2)], [0, 1, 4, 5, 6, 7]),
    ([("network_address", -3)], [0, 1]),
    ([("network_address", 4)], None),
    ([("switch", 2), ("network_address", 2)], None),
    ([("switch", 1), ("network_address", -1)], None),  # keywords only work on one level
])
def test_worked_example(small_hierarchy, levels, expected):
    free = bitset.from_indices([0, 1, 2, 4, 5, 6, 7], 8)
    everything = bitset.from_indices(range(8), 8)
    res = Request(small_hierarchy, [(levels, everything)]).find(free)
    assert (None if res is None else ids(res)) == expected


def test_groups_are_matched_independently_and_unioned(small_hierarchy):
    free = bitset.from_indices(range(8), 8)
    everything = bitset.from_indices(range(8), 8)
    req = Request(small_hierarchy, [([("resource_id", 2)], everything), ([("resource_id", 2)], everything)])
    assert ids(req.find(free)) == [0, 1]  # OAR3: overlapping groups give fewer resources


def test_constraint_restricts_a_group(small_hierarchy):
    free = bitset.from_indices(range(8), 8)
    only_second_switch = bitset.from_indices(range(4, 8), 8)
    req = Request(small_hierarchy, [([("network_address", 1)], only_second_switch)])
    assert ids(req.find(free)) == [4, 5]


def test_unknown_level_is_a_key_error(small_hierarchy):
    with pytest.raises(KeyError):
        Request(small_hierarchy, [([("cpu", 1)], None)])


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_matcher_agrees_with_reference(data):
    platform = data.draw(nested_platforms())
    groups = data.draw(requests())
    hy = Hierarchy(platform.size, {lbl: platform.level(lbl) for lbl in platform.hierarchy_labels})
    free = [i for i in range(platform.size) if platform.schedulable[i] and data.draw(st.booleans())]
    cons = []
    for _ in groups:
        if data.draw(st.booleans()):
            cons.append([i for i in range(platform.size) if platform.schedulable[i]])
        else:
            cons.append([i for i in range(platform.size) if platform.schedulable[i] and data.draw(st.booleans())])
    core = Request(hy, [(g, bitset.from_indices(c, platform.size)) for g, c in zip(groups, cons)])
    got = core.find(bitset.from_indices(free, platform.size))
    levels = {lbl: [frozenset(int(x) for x in b) for b in platform.level(lbl)] for lbl in platform.hierarchy_labels}
    want = reference.find_request(set(free), list(zip(groups, [set(c) for c in cons])), levels)
    assert (None if got is None else set(ids(got))) == want


# -- slot splitting (OAR3's one-second rules) -----------------------------------------------------
def test_split_at_before_and_after():
    ss = SlotSet(4, 100, 200, bitset.from_indices([0, 1], 4))
    new, old = ss.split_at_before(1, 150)
    assert ss.slot(new)[:2] == (100, 149) and ss.slot(old)[:2] == (150, 200)
    assert ss.first_id == new
    left, right = ss.split_at_after(old, 180)
    assert ss.slot(left)[:2] == (150, 179) and ss.slot(right)[:2] == (180, 200)
    assert [s[1:] for s in ss.slots()] == [(100, 149), (150, 179), (180, 200)]
    assert ids(ss.free_of(right)) == [0, 1]


def test_split_at_the_first_second_makes_a_one_second_slot():
    ss = SlotSet(4, 100, 200, bitset.from_indices([0], 4))
    new, old = ss.split_at_before(1, 100)
    assert ss.slot(new)[:2] == (100, 100) and ss.slot(old)[:2] == (101, 200)
    a, b = ss.split_at_after(old, 101)
    assert ss.slot(a)[:2] == (101, 101) and ss.slot(b)[:2] == (102, 200)


def test_one_second_slot_is_not_split():
    ss = SlotSet(4, 100, 100, bitset.from_indices([0], 4))
    assert ss.split_at_before(1, 100) == (1, 1)
    assert ss.split_at_after(1, 100) == (1, 1)
    assert len(ss) == 1


def test_split_slots_job_ending_on_slot_end_blocks_one_more_second():
    ss = SlotSet(4, 0, MAX_TIME, bitset.from_indices(range(4), 4))
    res = bitset.from_indices([0], 4)
    sl, sr = ss.get_encompassing_slots(0, 99)
    ss.split_slots(sl, sr, 0, 100, res)
    assert [s[1:] for s in ss.slots()] == [(0, 99), (100, MAX_TIME)]
    # a job whose end falls exactly on the end of a slot: no split, it also blocks second 200
    ss2 = SlotSet(4, 100, 200, bitset.from_indices(range(4), 4))
    sl, sr = ss2.get_encompassing_slots(100, 199)
    ss2.split_slots(sl, sr, 100, 100, res)
    assert [s[1:] for s in ss2.slots()] == [(100, 200)]
    assert ids(ss2.free_of(1)) == [1, 2, 3]


def test_slot_id_at():
    ss = SlotSet(4, 100, 200, bitset.from_indices([0], 4))
    ss.split_at_after(1, 150)
    assert ss.slot_id_at(99) == 0
    assert ss.slot_id_at(120) == 1
    assert ss.slot_id_at(150) == 2
    assert ss.slot_id_at(201) == 0


# -- the window search ------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_window_search_agrees_with_reference(data):
    platform = data.draw(nested_platforms(states=False))
    n = platform.size
    hy = Hierarchy(n, {lbl: platform.level(lbl) for lbl in platform.hierarchy_labels})
    ss = SlotSet(n, 0, 10_000, bitset.from_indices(range(n), n))
    # occupy random jobs to fragment the slot set
    for _ in range(data.draw(st.integers(0, 8))):
        start = data.draw(st.integers(0, 9_000))
        wall = data.draw(st.integers(1, 800))
        res = [i for i in range(n) if data.draw(st.booleans())]
        sl, sr = ss.get_encompassing_slots(start, start + wall - 1)
        ss.split_slots(sl, sr, start, wall, bitset.from_indices(res, n))
    groups = data.draw(requests(max_groups=1, keywords=False))
    walltime = data.draw(st.integers(1, 3_000))
    everything = bitset.from_indices(range(n), n)
    req = Request(hy, [(g, everything) for g in groups])
    got = ss.find_first(0, walltime, req)
    slots = [(b, e, set(ids(ss.free_of(sid)))) for sid, b, e in ss.slots()]
    levels = {lbl: [frozenset(int(x) for x in b) for b in platform.level(lbl)] for lbl in platform.hierarchy_labels}
    want = reference.find_first_window(slots, walltime, [(g, set(range(n))) for g in groups], levels)
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert (ss.slot(got[0])[0], set(ids(got[2]))) == want


def test_missing_compiled_core_fails_with_a_build_hint(monkeypatch):
    import importlib
    import sys

    import oarsched._core as core

    monkeypatch.setitem(sys.modules, "oarsched._core.slotset", None)  # as if the extension were not built
    monkeypatch.delattr(core, "slotset")
    with pytest.raises(ImportError, match="pip install"):
        importlib.reload(core)
    monkeypatch.undo()
    importlib.reload(core)
