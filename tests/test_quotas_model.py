"""OAR3 quotas model (``oarsched.quotas``).

* parsing of the rules file, rule lookup, counters, window check and the
  calendar, with the outcomes of OAR3's ``tests/kao/test_quotas.py`` and
  ``tests/kao/test_temporal_quotas.py`` (re-expressed, not copied);
* the corrected traps (T6: period containing now; the window time limit on
  the open-ended last slot), with hand-computed cases;
* error messages for malformed rules files;
* property tests (the check is monotone, the calendar tiles time);
* every ``quotas.json`` of the conformance corpus and of the benchmarks parses,
  and the 13 corpus quotas cases replay to their expected decisions through a
  small reference slot list (:class:`MiniSlots`) that follows OAR3's slot rules
  and the engine protocol written in the module docstring.

Times of temporal tests are pinned: ``MONDAY`` is 2023-11-13 00:00 UTC and the
calendar gets ``tz=UTC`` (OAR3's tests use the current week in local time).
"""

from __future__ import annotations

import datetime as dt
import glob
import itertools
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oarsched.errors import ConfigError
from oarsched.quotas import (
    AVAILABLE_UPTO_JOB,
    DAY,
    MAX_TIME,
    OPEN_END,
    WEEK,
    Calendar,
    Counters,
    Oneshot,
    Periodical,
    QuotasConfig,
    Rules,
    check_window,
)

UTC = dt.timezone.utc
MONDAY = 1699833600  # 2023-11-13 00:00:00 UTC, a Monday
HOUR = 3600
SHARED = "/work/shared"
ATTRIBUTE_TYPES = ("timesharing", "placeholder", "allow", "assign", "find", "no_quotas")


@dataclass
class QJob:
    """A job as the quotas read it."""

    user: str = "toto"
    project: str = ""
    queue: str = "default"
    types: dict = field(default_factory=dict)


def config(rules: dict, nb_all: int = 32, **kw) -> QuotasConfig:
    kw.setdefault("tz", UTC)
    return QuotasConfig.from_dict(rules, nb_resources_all=nb_all, **kw)


def counters_with(cfg: QuotasConfig, *placed: tuple[QJob, int, int]) -> Counters:
    c = cfg.new_counters()
    for job, nb_res, walltime in placed:
        c.update(job, nb_res, walltime)
    return c


# ---------------------------------------------------------------------------
# A reference slot list driving the model the way the engine must
# ---------------------------------------------------------------------------


class Slot:
    __slots__ = ("b", "counters", "e", "free", "rid")

    def __init__(self, b: int, e: int, free: frozenset, rid: int, counters: Counters) -> None:
        self.b, self.e, self.free, self.rid, self.counters = b, e, free, rid, counters

    def piece(self, b: int, e: int) -> Slot:
        return Slot(b, e, self.free, self.rid, self.counters.copy())


Pick = Callable[[frozenset], frozenset]


def first_blocks(blocks: list[frozenset], n: int) -> Pick:
    """OAR3's one-level matcher: the first ``n`` blocks entirely free, else nothing."""

    def pick(avail: frozenset) -> frozenset:
        chosen = [b for b in blocks if b <= avail][:n]
        return frozenset().union(*chosen) if len(chosen) == n else frozenset()

    return pick


class MiniSlots:
    """Slots as OAR3 keeps them (splits, security of ``t == b``, counters copied on
    split), with quotas applied as the docstring of ``oarsched.quotas`` says."""

    def __init__(
        self,
        cfg: QuotasConfig,
        begin: int,
        end: int = MAX_TIME,
        free: frozenset = frozenset(),
        default: frozenset | None = None,
        now: int | None = None,
    ) -> None:
        self.cfg, self.cal = cfg, cfg.calendar
        self.now = begin if now is None else now
        self.default = free if default is None else default
        self.slots = [Slot(begin, end, free, -1, cfg.new_counters())]
        if self.cal:
            self.split_along_calendar(0)

    # -- splits ----------------------------------------------------------
    def split_after(self, i: int, t: int) -> None:
        s = self.slots[i]
        if s.b == s.e:
            return
        start = t if t != s.b else s.b + 1
        self.slots.insert(i + 1, s.piece(start, s.e))
        s.e = start - 1

    def split_before(self, i: int, t: int) -> None:
        s = self.slots[i]
        if s.b == s.e:
            return
        end = t - 1 if t != s.b else s.b
        self.slots.insert(i, s.piece(s.b, end))
        s.b = end + 1

    def split_along_calendar(self, i: int) -> None:
        s = self.slots[i]
        for _, e, rid in self.cal.segments(s.b, s.e):
            if e < self.slots[i].e:
                self.split_after(i, e + 1)
            self.slots[i].rid = rid
            i += 1

    # -- occupation ------------------------------------------------------
    def encompassing(self, t0: int, t1: int) -> tuple[int, int]:
        left = 0
        while self.slots[left].e < t0:
            left += 1
        right = left
        while self.slots[right].e < t1 and right + 1 < len(self.slots):
            right += 1
        return left, right

    def occupy(self, start: int, w: int, res: frozenset, job: QJob | None) -> None:
        left, right = self.encompassing(start, start + w - 1)
        if self.slots[left].b < start:
            self.split_before(left, start)
            left, right = left + 1, right + 1
        if self.slots[right].e > start + w:
            self.split_after(right, start + w)
        for s in self.slots[left : right + 1]:
            s.free = s.free - res
            if job is not None:
                s.counters.update(job, len(res & self.default), w)

    def insert(self, jobs: list[tuple[int, int, frozenset, QJob | None]]) -> None:
        """Jobs placed before the round: ``(start, W, resources, job or None for containers)``."""
        for start, w, res, job in sorted(jobs, key=lambda j: j[0]):
            if start + w < self.slots[0].b or start > self.slots[-1].e:
                continue
            self.occupy(start, w, res, job)

    # -- search ----------------------------------------------------------
    def schedule(
        self, job: QJob, w: int, pick: Pick, no_quotas: bool = False
    ) -> tuple[int, frozenset] | None:
        """Place a job at the first window where resources and quotas fit; None if none."""
        slots, left = self.slots, 0
        while left < len(slots):
            right = left
            while right < len(slots) and slots[right].e - slots[left].b + 1 < w:
                right += 1
            if right == len(slots):
                return None
            if self.cal and not no_quotas:
                right = self._calendar_window(left, right, w)
                if right is None:
                    return None
            avail = frozenset.intersection(*(s.free for s in slots[left : right + 1]))
            res = pick(avail)
            if res and (no_quotas or self.check(job, left, right, len(res & self.default), w)[0]):
                start = slots[left].b
                self.occupy(start, w, res, job)
                return start, res
            left += 1
        return None

    def _calendar_window(self, left: int, right: int, w: int) -> int | None:
        """Window time limit, then lazy calendar split of unassigned slots up to the job's end."""
        slots, job_end = self.slots, self.slots[left].b + w - 1
        while True:
            if self.cal.window_limit_reached(slots[left].b, slots[right].e, job_end, self.now):
                return None
            if slots[right].rid != -1:
                return right
            self.split_along_calendar(right)
            while slots[right].e < job_end:
                right += 1

    def check(self, job: QJob, left: int, right: int, nb_res: int, w: int):
        window = [(s.rid, s.counters) for s in self.slots[left : right + 1]]
        return check_window(self.cfg, window, job, nb_res, w)

    def layout(self) -> list[tuple[int, int, int]]:
        return [(s.b, s.e, s.rid) for s in self.slots]


def procset(*ranges: tuple[int, int]) -> frozenset:
    return frozenset(i for a, b in ranges for i in range(a, b + 1))


NODES = [procset((1, 8)), procset((9, 16)), procset((17, 24)), procset((25, 32))]
ALL32 = procset((1, 32))


# ---------------------------------------------------------------------------
# Rules file parsing
# ---------------------------------------------------------------------------


def test_limits_numbers_all_and_hours_truncation():
    cfg = config(
        {"quotas": {"*,*,*,john": [100, "ALL", "0.5*ALL"], "*,projA,*,*": ["34.5", "ALL", "2*ALL"]}},
        nb_all=100,
    )
    assert cfg.rules(-1).limits == {
        ("*", "*", "*", "john"): (100, 100, 180000),
        ("*", "projA", "*", "*"): (34, 100, 720000),
    }


@pytest.mark.parametrize(
    "hours, seconds", [(0.5, 0), (1.5, 3600), ("1.9", 3600), (2, 7200), (-1, -3600), ("-0.5", 0)]
)
def test_resource_hours_truncated_before_scaling(hours, seconds):
    cfg = config({"quotas": {"*,*,*,carol": [-1, -1, hours]}})
    assert cfg.rules(-1).limits[("*", "*", "*", "carol")][2] == seconds


def test_all_value_depends_on_mode():
    rules = {"quotas": {"*,*,*,*": ["ALL", "0.5*ALL", -1]}}
    assert config(rules, nb_all=12).rules(-1).limits[("*", "*", "*", "*")][:2] == (12, 6)
    # OAR3's nb_resources_default in any other mode is 0 or 1 (T16)
    assert config(rules, nb_all=12, all_mode="default").rules(-1).limits[("*", "*", "*", "*")][:2] == (1, 0)
    assert config(rules, nb_all=0, all_mode="default").rules(-1).limits[("*", "*", "*", "*")][:2] == (0, 0)


def test_all_in_temporal_rule_sets_uses_the_same_value():
    # OAR3 evaluates temporal rule sets without ALL and crashes; fixed here
    cfg = config({"periodical": [["* * * *", "q1", ""]], "q1": {"*,*,*,*": ["ALL", -1, -1]}}, nb_all=7)
    assert cfg.rules(0).limits == {("*", "*", "*", "*"): (7, -1, -3600)}


def test_job_types_star_first_and_keys_verbatim():
    cfg = config({"quotas": {"*, *,*,*": [1, 1, 1]}, "job_types": ["besteffort", "deploy"]})
    assert cfg.job_types == ["*", "besteffort", "deploy"]
    assert list(cfg.rules(-1).limits) == [("*", " *", "*", "*")]  # no stripping, as OAR3
    assert config({}).job_types == ["*"] and config({}).calendar is None and not config({}).rules(-1)


def test_rule_set_ids_in_order_of_first_appearance():
    cfg = config(
        {
            "periodical": [
                ["* * * *", "night", ""],
                ["08:00-19:00 mon-fri * *", "work", ""],
                ["* sat * *", "night", ""],
            ],
            "oneshot": [
                ["2023-12-24 00:00", "2023-12-26 00:00", "xmas"],
                ["2023-12-31 00:00", "2024-01-01 00:00", "work", ""],
            ],
            "night": {"*,*,*,*": [6, -1, -1]},
            "work": {"*,*,*,*": [2, -1, -1]},
            "xmas": {},
        }
    )
    assert cfg.rule_set_names == ["night", "work", "xmas"]
    assert [cfg.rules(i).limits.get(("*", "*", "*", "*")) for i in range(3)] == [
        (6, -1, -3600),
        (2, -1, -3600),
        None,
    ]


# ---------------------------------------------------------------------------
# Rule lookup
# ---------------------------------------------------------------------------


def lookup(limits: dict, job: QJob):
    return Rules(limits).find(job)


def test_lookup_prefers_value_then_slash_then_star():
    limits = {
        ("*", "*", "*", "*"): (1, -1, -1),
        ("*", "*", "*", "/"): (2, -1, -1),
        ("*", "*", "*", "john"): (3, -1, -1),
    }
    assert lookup(limits, QJob("john")) == ((3, -1, -1), ("*", "*", "*", "john"), ("*", "*", "*", "john"))
    assert lookup(limits, QJob("paul")) == ((2, -1, -1), ("*", "*", "*", "/"), ("*", "*", "*", "paul"))
    del limits[("*", "*", "*", "/")]
    assert lookup(limits, QJob("paul")) == ((1, -1, -1), ("*", "*", "*", "*"), ("*", "*", "*", "*"))


def test_lookup_never_backtracks():
    limits = {("default", "projX", "*", "*"): (1, -1, -1), ("*", "*", "*", "*"): (2, -1, -1)}
    # queue 'default' is taken, then project projA has no branch under it: no rule at all
    assert lookup(limits, QJob(project="projA"))[0] is None
    assert lookup(limits, QJob(project="projA", queue="admin"))[1] == ("*", "*", "*", "*")


def test_lookup_slash_substituted_in_counter_key_but_not_for_types():
    limits = {("/", "/", "/", "/"): (1, -1, -1)}
    _, rule_key, counter_key = lookup(limits, QJob("bob", "pA", "admin", {"deploy": ""}))
    assert rule_key == ("/", "/", "/", "/") and counter_key == ("admin", "pA", "/", "bob")


def test_lookup_uses_only_the_first_type():
    limits = {("*", "*", "besteffort", "*"): (1, -1, -1), ("*", "*", "*", "*"): (9, -1, -1)}
    assert lookup(limits, QJob(types={"besteffort": ""}))[1][2] == "besteffort"
    assert lookup(limits, QJob(types={"deploy": "", "besteffort": ""}))[1][2] == "*"
    assert lookup(limits, QJob(types={}))[1][2] == "*"


def test_lookup_empty_field_value_is_a_dead_end_as_in_oar3():
    assert lookup({("*", "", "*", "*"): (1, -1, -1)}, QJob(project=""))[0] is None
    assert lookup({("*", "*", "*", "*"): (1, -1, -1)}, QJob(project=""))[0] == (1, -1, -1)


# ---------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------


def test_update_counts_eight_keys_per_counted_type():
    cfg = config({"job_types": ["besteffort"]})
    c = counters_with(cfg, (QJob("alice", "pA", "default", {"besteffort": ""}), 4, 100))
    assert len(c) == 16
    for key in [
        ("default", "pA", "*", "alice"),
        ("*", "*", "*", "*"),
        ("*", "pA", "besteffort", "*"),
        ("default", "*", "besteffort", "alice"),
    ]:
        assert c.get(key) == (4, 1, 400)
    c.update(QJob("bob", "pA", "default", {"deploy": ""}), 2, 10)  # 'deploy' is not counted
    assert len(c) == 16 + 4 and c.get(("*", "*", "*", "*")) == (6, 2, 420)
    assert c.get(("*", "*", "deploy", "*")) is None


def test_duplicated_job_types_count_twice_as_in_oar3():
    c = counters_with(config({"job_types": ["*"]}), (QJob(), 3, 10))
    assert c.get(("*", "*", "*", "*")) == (6, 2, 60)


def test_copy_is_independent():
    cfg = config({})
    a = counters_with(cfg, (QJob(), 1, 1))
    b = a.copy()
    b.update(QJob(), 1, 1)
    assert a.get(("*", "*", "*", "*")) == (1, 1, 1) and b.get(("*", "*", "*", "*")) == (2, 2, 2)


def test_available_upto_pseudo_job_counts_as_user_empty_in_default_queue():
    cfg = config({"quotas": {"*,*,*,*": [4, -1, -1], "*,*,*,/": [-1, -1, -1]}})
    c = counters_with(cfg, (AVAILABLE_UPTO_JOB, 4, 1000))
    assert c.get(("default", "", "*", "")) == (4, 1, 4000) and len(c) == 8
    # T5: the pseudo-job uses up a global quota; the per-user rule sees user ""
    cfg = config({"quotas": {"*,*,*,*": [4, -1, -1]}})
    assert check_window(cfg, [(-1, counters_with(cfg, (AVAILABLE_UPTO_JOB, 4, 1000)))], QJob(), 1, 60)[
        :2
    ] == (False, "nb resources quotas failed")


# ---------------------------------------------------------------------------
# Window check
# ---------------------------------------------------------------------------


def test_check_messages_order_and_equality_passes():
    cfg = config({"quotas": {"*,*,*,*": [4, 2, 1]}})
    job = QJob()
    assert check_window(cfg, [(-1, cfg.new_counters())], job, 4, 900) == (True, "quotas ok", None, None)
    assert check_window(cfg, [(-1, cfg.new_counters())], job, 5, 1) == (
        False,
        "nb resources quotas failed",
        ("*", "*", "*", "*"),
        4,
    )
    two_jobs = counters_with(cfg, (job, 0, 0), (job, 0, 0))
    assert check_window(cfg, [(-1, two_jobs)], job, 1, 1)[1:] == (
        "nb jobs quotas failed",
        ("*", "*", "*", "*"),
        2,
    )
    assert check_window(cfg, [(-1, cfg.new_counters())], job, 2, 1801)[1:] == (
        "resources hours quotas failed",
        ("*", "*", "*", "*"),
        3600,
    )


def test_window_combines_max_of_resources_and_jobs_and_sum_of_resource_seconds():
    cfg = config({"quotas": {"*,*,*,*": [10, 2, 1]}})  # 1 h = 3600 resource-seconds
    a = counters_with(cfg, (QJob("u1"), 3, 1000))
    b = counters_with(cfg, (QJob("u2"), 4, 500))
    job = QJob("u3")
    # resources: max(3, 4) + 6 = 10 ok; jobs: max(1, 1) + 1 = 2 ok; work: 3000 + 2000 + 6*1 = 5006 > 3600
    assert check_window(cfg, [(-1, a), (-1, b)], job, 6, 1)[1] == "resources hours quotas failed"
    assert check_window(cfg, [(-1, a)], job, 6, 1)[0]
    # T5: the same job seen in two slots of the window counts twice its full work
    same = counters_with(cfg, (QJob("u1"), 1, 2000))
    assert not check_window(cfg, [(-1, same), (-1, same.copy())], job, 0, 1)[0]
    assert check_window(cfg, [(-1, same)], job, 0, 1)[0]


def test_untracked_type_rule_and_dead_end_never_limit():
    cfg = config({"quotas": {"*,*,besteffort,*": [0, 0, 0]}})  # besteffort not in job_types
    assert check_window(cfg, [(-1, cfg.new_counters())], QJob(types={"besteffort": ""}), 5, 5)[0]
    cfg = config({"quotas": {"*,*,besteffort,*": [0, 0, 0]}, "job_types": ["besteffort"]})
    assert not check_window(cfg, [(-1, cfg.new_counters())], QJob(types={"besteffort": ""}), 1, 5)[0]
    cfg = config({"quotas": {"*,*,*,john": [0, 0, 0]}})
    assert check_window(cfg, [(-1, cfg.new_counters())], QJob("paul"), 5, 5)[0]


def test_groups_by_rules_id_first_failure_wins():
    cfg = config(
        {
            "periodical": [["* mon-wed * *", "q1", ""], ["* thu-sun * *", "q2", ""]],
            "q1": {"*,*,*,/": [16, -1, -1]},
            "q2": {"*,*,*,/": [24, 1, -1]},
        }
    )
    busy = counters_with(cfg, (QJob("toto"), 1, 10))
    window = [(0, cfg.new_counters()), (1, busy), (0, cfg.new_counters())]
    assert check_window(cfg, window, QJob("toto"), 20, 10) == (
        False,
        "nb resources quotas failed",
        ("*", "*", "*", "/"),
        16,
    )
    assert check_window(cfg, window, QJob("toto"), 10, 10) == (
        False,
        "nb jobs quotas failed",
        ("*", "*", "*", "/"),
        1,
    )
    assert check_window(cfg, window[:1], QJob("toto"), 10, 10)[0]


def test_empty_rule_set_and_unassigned_slots_rules():
    cfg = config(
        {
            "quotas": {"*,*,*,*": [1, -1, -1]},
            "periodical": [["* mon * *", "a", ""], ["* tue-sun * *", "b", ""]],
            "a": {"*,*,*,*": [5, -1, -1]},
            "b": {},
        }
    )
    assert cfg.rules(1) == Rules({}) and cfg.slot_rules(1) == cfg.rules(-1)  # empty set -> default rules
    assert cfg.slot_rules(-1) == cfg.rules(-1)  # last calendar set 'b' is empty -> default
    cfg = config(
        {
            "quotas": {"*,*,*,*": [1, -1, -1]},
            "periodical": [["* mon * *", "a", ""], ["* tue-sun * *", "b", ""]],
            "a": {"*,*,*,*": [5, -1, -1]},
            "b": {"*,*,*,*": [7, -1, -1]},
        }
    )
    assert cfg.slot_rules(-1) == cfg.rules(1)  # OAR3's set_rules(-1): the last calendar set
    assert config({"quotas": {"*,*,*,*": [1, -1, -1]}}).slot_rules(-1).limits == {
        ("*", "*", "*", "*"): (1, -1, -3600)
    }


def test_check_window_needs_a_slot():
    with pytest.raises(ValueError):
        check_window(config({}), [], QJob(), 1, 1)


# ---------------------------------------------------------------------------
# OAR3's test_quotas.py, re-expressed on the reference slot list
# ---------------------------------------------------------------------------


def slots_0_to(end: int, rules: dict | None = None, cfg: QuotasConfig | None = None) -> MiniSlots:
    return MiniSlots(cfg or config({"quotas": rules or {}}), 0, end, ALL32)


def test_oar3_one_job_no_rules():
    ms = slots_0_to(100)
    assert ms.schedule(QJob(), 60, first_blocks(NODES, 2)) == (0, procset((1, 16)))
    assert [(s.b, s.e, s.free) for s in ms.slots] == [(0, 59, procset((17, 32))), (60, 100, ALL32)]


@pytest.mark.parametrize("limit, expected", [(1, None), (16, (0, procset((1, 16))))])
def test_oar3_one_job_rule_nb_res(limit, expected):
    ms = slots_0_to(100, {"*,*,*,/": [limit, -1, -1]})
    assert ms.schedule(QJob(), 60, first_blocks(NODES, 2)) == expected


def test_oar3_four_jobs_rule_1():
    ms = slots_0_to(10000, {"*,*,*,/": [16, -1, -1], "*,yop,*,*": [-1, 1, -1]})
    ms.insert([(0, 20, procset((9, 24)), QJob("toto")), (0, 50, procset((1, 8)), QJob("lulu", "yop"))])
    assert ms.schedule(QJob("toto"), 10, first_blocks(NODES, 1)) == (20, procset((9, 16)))
    assert ms.schedule(QJob("lulu", "yop"), 60, first_blocks(NODES, 1)) == (50, procset((1, 8)))


def test_oar3_three_jobs_rule_1():
    ms = slots_0_to(10000, {"*,*,*,/": [8, -1, -1]})
    ms.insert([(50, 100, procset((17, 24)), QJob("toto"))])
    assert ms.schedule(QJob("toto"), 200, first_blocks(NODES, 1)) == (150, procset((1, 8)))
    assert ms.schedule(QJob("lulu", "yop"), 100, first_blocks(NODES, 1)) == (0, procset((1, 8)))


def test_oar3_two_job_rules_nb_res_quotas_file(tmp_path):
    path = tmp_path / "quotas.json"
    path.write_text('{"quotas": {"*,*,*,toto": [1,-1,-1],"*,*,*,john": [150,-1,-1]}}')
    ms = slots_0_to(100, cfg=QuotasConfig.from_file(path, nb_resources_all=32))
    assert ms.schedule(QJob("toto"), 60, first_blocks(NODES, 2)) is None
    assert ms.schedule(QJob("tutu"), 60, first_blocks(NODES, 2)) == (0, procset((1, 16)))  # no rule for tutu


@pytest.mark.parametrize(
    "rules, job",
    [
        ({"quotas": {"*,*,besteffort,*": [-1, -1, -1], "*,*,*,yop": [-1, 1, -1]}}, QJob("yop")),
        ({"quotas": {"*,*,yop,*": [-1, 1, -1]}, "job_types": ["yop"]}, QJob("toto", types={"yop": ""})),
    ],
)
def test_oar3_two_jobs_one_at_a_time(rules, job):
    ms = slots_0_to(100, cfg=config(rules))
    assert ms.schedule(job, 50, first_blocks(NODES, 1))[0] == 0
    assert ms.schedule(job, 50, first_blocks(NODES, 1))[0] == 50


# ---------------------------------------------------------------------------
# Calendar: OAR3's test_temporal_quotas.py (unit parts), re-expressed
# ---------------------------------------------------------------------------

RULES_FULL = {
    "periodical": [
        ["08:00-19:00 mon-fri * *", "quotas_workday", "workdays"],
        ["19:00-00:00 mon-thu * *", "quotas_night", "nights of workdays"],
        ["00:00-08:00 tue-fri * *", "quotas_night", "nights of workdays"],
        ["19:00-00:00 fri * *", "quotas_weekend", "weekend"],
        ["* sat-sun * *", "quotas_weekend", "weekend"],
        ["00:00-08:00 mon * *", "quotas_weekend", "weekend"],
    ],
    "oneshot": [
        ["2020-07-23 19:30", "2020-08-29 8:30", "quotas_holiday", "summer holiday"],
        ["2020-03-16 19:30", "2020-05-10 8:30", "quotas_holiday", "confinement"],
    ],
    "quotas_workday": {"*,*,*,john": [100, -1, -1], "*,projA,*,*": [200, -1, -1]},
    "quotas_night": {"*,*,*,john": [100, -1, -1], "*,projA,*,*": [200, -1, -1]},
    "quotas_weekend": {"*,*,*,john": [100, -1, -1], "*,projA,*,*": [200, -1, -1]},
    "quotas_holiday": {"*,*,*,john": [100, -1, -1], "*,projA,*,*": [200, -1, -1]},
}
RULES_SIMPLE = {
    "periodical": [["* mon-wed * *", "quotas_1", "test1"], ["* thu-sun * *", "quotas_2", "test2"]],
    "quotas_1": {"*,*,*,/": [16, -1, -1], "*,projA,*,*": [20, -1, -1]},
    "quotas_2": {"*,*,*,/": [24, -1, -1], "*,projB,*,*": [15, -1, -1]},
}
THREE_WEEKS = 3 * WEEK


def simple_with_oneshot() -> dict:
    """RULES_SIMPLE plus a holiday from Monday noon to Thursday 00:00 (as OAR3's test builds it)."""
    rules = json.loads(json.dumps(RULES_SIMPLE))
    rules["oneshot"] = [["2023-11-13 12:00", "2023-11-16 00:00", "quotas_holiday", "summer holiday"]]
    rules["quotas_holiday"] = {"*,*,*,*": [32, -1, -1]}
    return rules


def week_entries(cfg: QuotasConfig) -> list[tuple[int, int, str]]:
    return [(p.begin, p.duration, cfg.rule_set_names[p.rules_id]) for p in cfg.calendar.periodicals]


def assert_tiles_week(cfg: QuotasConfig) -> None:
    t = 0
    for p in cfg.calendar.periodicals:
        assert p.begin == t and p.duration > 0
        t = p.end
    assert t == WEEK


@pytest.mark.parametrize(
    "rules",
    [
        RULES_FULL,
        {
            "periodical": [["* * * *", "night", ""], ["08:00-19:00 mon-fri * *", "work", ""]],
            "night": {},
            "work": {},
        },
        {"periodical": [["* * * *", "work", ""]], "work": {"*,*,*,john": [100, -1, -1]}},
    ],
)
def test_oar3_calendars_tile_the_week(rules):
    assert_tiles_week(config(rules))


def test_default_fills_gaps_with_its_rules():
    cfg = config(
        {
            "periodical": [["* * * *", "night", ""], ["08:00-19:00 mon-fri * *", "work", ""]],
            "night": {},
            "work": {},
        }
    )
    entries = week_entries(cfg)
    assert entries[:3] == [
        (0, 8 * HOUR, "night"),
        (8 * HOUR, 11 * HOUR, "work"),
        (19 * HOUR, 13 * HOUR, "night"),
    ]
    assert entries[-1] == (4 * DAY + 19 * HOUR, 2 * DAY + 5 * HOUR, "night") and len(entries) == 11


def test_day_ranges_and_week_wrap():
    cfg = config(
        {"periodical": [["* fri-mon * *", "we", ""], ["08:00-10:00 tue,thu * *", "x", ""]], "we": {}, "x": {}}
    )
    assert week_entries(cfg) == [
        (0, DAY, "we"),
        (DAY + 8 * HOUR, 2 * HOUR, "x"),
        (3 * DAY + 8 * HOUR, 2 * HOUR, "x"),
        (4 * DAY, 3 * DAY, "we"),
    ]


def test_oar3_rules_at_week_start():
    cal = config(RULES_SIMPLE, period=THREE_WEEKS).calendar
    assert cal.rules_at(MONDAY) == (0, 259200)


def test_oar3_rules_at_inside_a_oneshot():
    cal = config(simple_with_oneshot(), period=THREE_WEEKS).calendar
    assert cal.rules_at(MONDAY + int(1.5 * DAY)) == (2, 129600)


@pytest.mark.parametrize(
    "end, expected",
    [
        (MONDAY + 3 * DAY, [(3 * DAY, 0), (1, 1)]),
        (MONDAY + 4 * DAY, [(3 * DAY, 0), (DAY + 1, 1)]),
        (MONDAY + 5 * DAY, [(3 * DAY, 0), (2 * DAY + 1, 1)]),
        (MONDAY + 2 * WEEK - 1, [(259200, 0), (345600, 1), (259200, 0), (345600, 1)]),
        (MONDAY + 2 * WEEK, [(259200, 0), (345600, 1), (259200, 0), (345600, 1), (1, 0)]),
    ],
)
def test_oar3_simple_slot_set_splits(end, expected):
    cal = config(RULES_SIMPLE, period=THREE_WEEKS).calendar
    pieces = cal.segments(MONDAY, end)
    assert [(e - b + 1, rid) for b, e, rid in pieces] == expected
    ms = MiniSlots(config(RULES_SIMPLE, period=THREE_WEEKS), MONDAY, end, ALL32)
    assert [(e - b + 1, rid) for b, e, rid in ms.layout()] == expected


def test_oneshot_slot_set_splits_follow_the_calendar():
    # OAR3's test_temporal_slotSet_oneshot expects [(43200, 0), (216000, 2), (259200, 0), (86400, 1)]:
    # its next_rules cycles an index that the oneshot left behind, so Thursday-Saturday get the
    # Monday-Wednesday rules.  Here the period after the holiday is Thursday-Sunday's.
    cal = config(simple_with_oneshot(), period=THREE_WEEKS).calendar
    assert [(e - b + 1, rid) for b, e, rid in cal.segments(MONDAY, MONDAY + WEEK - 1)] == [
        (43200, 0),
        (216000, 2),
        (345600, 1),
    ]


def test_oar3_check_slots_quotas_over_periods():
    cfg = config(RULES_SIMPLE, period=THREE_WEEKS)
    ms = MiniSlots(cfg, MONDAY, MONDAY + 2 * WEEK - 1, ALL32)
    assert ms.check(QJob("toto"), 0, 3, 2, WEEK)[0]  # a job over periods of different rules is fine
    assert ms.check(QJob("john"), 0, 0, 10, DAY) == (True, "quotas ok", None, None)
    assert ms.check(QJob("john"), 0, 0, 20, DAY) == (
        False,
        "nb resources quotas failed",
        ("*", "*", "*", "/"),
        16,
    )


def test_oar3_temporal_four_jobs():
    ms = MiniSlots(config(RULES_SIMPLE, period=THREE_WEEKS), MONDAY, MONDAY + WEEK - 1, ALL32)
    assert ms.schedule(QJob(), 60, first_blocks(NODES, 3)) == (MONDAY + 259200, procset((1, 24)))
    assert ms.schedule(QJob(), 60, first_blocks(NODES, 4)) is None
    assert ms.schedule(QJob(), int(3.5 * DAY), first_blocks(NODES, 1)) == (MONDAY + 259260, procset((1, 8)))
    assert ms.schedule(QJob(), 60, first_blocks(NODES, 1)) == (MONDAY, procset((1, 8)))


def test_oar3_temporal_oneshot_job():
    ms = MiniSlots(config(simple_with_oneshot(), period=THREE_WEEKS), MONDAY, MONDAY + WEEK - 1, ALL32)
    assert ms.schedule(QJob(), 60, first_blocks(NODES, 4)) == (MONDAY + 43200, ALL32)


def test_oar3_temporal_no_quotas_job():
    ms = MiniSlots(config(RULES_SIMPLE, period=THREE_WEEKS), MONDAY, MONDAY + WEEK - 1, ALL32)
    assert ms.schedule(QJob(), 60, first_blocks(NODES, 4), no_quotas=True) == (MONDAY, ALL32)


def test_oar3_temporal_window_time_limit_case():
    ms = MiniSlots(config(RULES_SIMPLE, period=THREE_WEEKS), MONDAY, MONDAY + 2 * WEEK, ALL32)
    assert ms.schedule(QJob(), 3 * DAY, first_blocks(NODES, 3)) == (MONDAY + 259200, procset((1, 24)))
    assert ms.schedule(QJob(), 10 * DAY, first_blocks(NODES, 5)) is None


@pytest.mark.parametrize("limits, second_user", [([24, -1, -1], "toto2"), ([-1, 2, -1], "toto")])
def test_oar3_temporal_multi_periods(limits, second_user):
    """A oneshot a few minutes ahead with a lower limit delays only the job that exceeds it."""
    now = MONDAY + 10 * HOUR + 17
    low = [8, -1, -1] if limits[0] > 0 else [-1, 1, -1]
    rules = {
        "periodical": [["* * * *", "quotas_1", "test1"]],
        "oneshot": [["2023-11-13 10:05", "2023-11-13 10:10", "quotas_2", "not important"]],
        "quotas_1": {"*,*,*,/": limits},
        "quotas_2": {"*,*,*,/": low},
    }
    ms = MiniSlots(config(rules, period=THREE_WEEKS), now, now + 2 * WEEK, ALL32)
    assert ms.schedule(QJob("toto"), 300, first_blocks(NODES, 1))[0] == now
    assert ms.schedule(QJob(second_user), 300, first_blocks(NODES, 2))[0] > now


# ---------------------------------------------------------------------------
# Corrected traps, hand-computed
# ---------------------------------------------------------------------------


def test_t6_period_containing_now_days():
    # quotas_temporal_days: now is Wednesday 20:00; mon-wed (0) still applies for 4 h.
    cal = config({"periodical": RULES_SIMPLE["periodical"], "quotas_1": {}, "quotas_2": {}}).calendar
    now = 1700078400
    assert now - MONDAY == 2 * DAY + 20 * HOUR
    assert cal.rules_at(now) == (0, 4 * HOUR)  # OAR3: (1, 100800), thu-sun's rules until Friday 00:00
    assert cal.next_rules(now + 4 * HOUR) == (1, 4 * DAY)
    assert cal.segments(now, MAX_TIME)[:3] == [
        (now, now + 4 * HOUR - 1, 0),
        (now + 4 * HOUR, now + 4 * HOUR + 4 * DAY - 1, 1),
        (MONDAY + WEEK, MONDAY + WEEK + 3 * DAY - 1, 0),
    ]


def test_t6_period_containing_now_workday():
    # quotas_temporal_workday: Monday 07:20:34, the night rules hold until 08:00.
    rules = {
        "periodical": [["08:00-19:00 mon-fri * *", "quotas_workday", ""], ["* * * *", "quotas_night", ""]],
        "quotas_workday": {},
        "quotas_night": {},
    }
    cal = config(rules).calendar
    now = 1699860034
    assert cal.rules_at(now) == (1, 8 * HOUR - (now - MONDAY))  # OAR3: (0, 13166), workday until 11:00
    assert cal.next_rules(MONDAY + 8 * HOUR) == (0, 11 * HOUR)


def test_t6_no_negative_remaining_on_friday():
    cal = config(RULES_SIMPLE).calendar
    friday_noon = MONDAY + 4 * DAY + 12 * HOUR
    assert cal.rules_at(friday_noon) == (1, int(2.5 * DAY))  # OAR3: remaining 4d - 4.5d < 0


def test_t6_gaps_get_the_default_rules_and_oneshot_only_calendars_work():
    cfg = config(
        {
            "quotas": {"*,*,*,*": [3, -1, -1]},
            "periodical": [["08:00-19:00 mon-fri * *", "work", ""]],
            "work": {"*,*,*,*": [1, -1, -1]},
        }
    )
    cal = cfg.calendar
    assert cal.rules_at(MONDAY + HOUR) == (cal.gap_rules_id, 7 * HOUR)
    assert cfg.rules(cal.gap_rules_id) == cfg.rules(-1)
    assert cal.rules_at(MONDAY + 5 * DAY) == (cal.gap_rules_id, 2 * DAY)
    cfg = config({"oneshot": [["2023-11-14 00:00", "2023-11-15 00:00", "h", ""]], "h": {}})
    cal = cfg.calendar
    assert cal.rules_at(MONDAY) == (cal.gap_rules_id, DAY)
    assert cal.rules_at(MONDAY + DAY) == (0, DAY)
    assert cal.rules_at(MONDAY + 2 * DAY) == (cal.gap_rules_id, 5 * DAY)


def test_oneshot_cuts_a_period_and_its_end_is_exclusive():
    cal = config(
        {
            "periodical": [["* * * *", "base", ""]],
            "oneshot": [["2023-11-15 02:00", "2023-11-15 06:00", "m", ""]],
            "base": {},
            "m": {},
        }
    ).calendar
    start, end = MONDAY + 2 * DAY + 2 * HOUR, MONDAY + 2 * DAY + 6 * HOUR
    assert cal.rules_at(MONDAY) == (0, start - MONDAY)
    assert cal.rules_at(start + 1) == (1, end - start - 1)
    assert cal.rules_at(end) == (0, WEEK - (end - MONDAY))


def test_back_to_back_oneshots_both_apply():
    # OAR3 stops at the first oneshot (its end is inclusive, remaining 0) and never applies 'b'
    cal = config({"periodical": [["* * * *", "base", ""]], "base": {}, "a": {}, "b": {},
                  "oneshot": [["2023-11-13 00:00", "2023-11-14 00:00", "a", ""],
                              ["2023-11-14 00:00", "2023-11-15 00:00", "b", ""]]}).calendar
    assert cal.rules_at(MONDAY + DAY) == (2, DAY)
    assert [(b - MONDAY, e - MONDAY, r) for b, e, r in cal.segments(MONDAY, MONDAY + WEEK - 1)] == [
        (0, DAY - 1, 1), (DAY, 2 * DAY - 1, 2), (2 * DAY, WEEK - 1, 0)]


def test_horizon_and_next_rules_stop():
    cal = config(RULES_SIMPLE).calendar
    now = MONDAY + DAY
    assert cal.horizon(now) == MONDAY + 1296000
    cal.rules_at(now)
    assert cal.period_end == MONDAY + 1296000
    assert cal.next_rules(MONDAY + 1296000) == (None, 0)
    pieces = cal.segments(now, MAX_TIME)
    assert pieces[-1][1] + 1 >= cal.horizon(now) and pieces[-1][0] < cal.horizon(now)
    assert pieces[-1][1] + 1 == MONDAY + 2 * WEEK + 3 * DAY  # week 3's mon-wed began before the horizon


def test_window_limit_bounded_slots_as_oar3():
    cal = config(RULES_SIMPLE, window_time_limit=10800).calendar
    now = 1700000099
    assert cal.window_limit_reached(
        1700003333, 1700438399, 1700005192, now
    )  # quotas_temporal_window_limit, job 5
    assert not cal.window_limit_reached(100, 100 + 10800, 150, now)
    assert cal.window_limit_reached(100, 100 + 10801, 150, now)


@pytest.mark.parametrize("tail_end", [MAX_TIME, OPEN_END])
def test_window_limit_open_tail_measures_the_job_from_now(tail_end):
    cal = config(RULES_SIMPLE).calendar  # limit 60 days
    now = MONDAY
    assert not cal.window_limit_reached(MONDAY + 20 * DAY, tail_end, MONDAY + 21 * DAY, now)  # OAR3: True
    assert not cal.window_limit_reached(MONDAY + 59 * DAY, tail_end, now + 60 * DAY, now)
    assert cal.window_limit_reached(MONDAY + 59 * DAY, tail_end, now + 60 * DAY + 1, now)


def test_job_past_the_horizon_is_placed_and_search_is_bounded():
    """A job only the weekend admits, when the first weekends are full: OAR3 gives it up."""
    rules = {
        "periodical": [["* mon-fri * *", "week", ""], ["* sat-sun * *", "weekend", ""]],
        "week": {"*,*,*,*": [0, -1, -1]},
        "weekend": {"*,*,*,*": [-1, -1, -1]},
    }
    cfg = config(rules)  # horizon: 15 days after Monday
    ms = MiniSlots(cfg, MONDAY, free=ALL32)
    busy = [(MONDAY + k * WEEK + 5 * DAY, 2 * DAY, ALL32, QJob("other")) for k in range(3)]
    ms.insert(busy)
    start, _ = ms.schedule(QJob(), HOUR, first_blocks(NODES, 1))
    assert start == MONDAY + 3 * WEEK + 5 * DAY
    assert ms.slots[-1].rid == -1 and ms.slots[-1].e == MAX_TIME
    cfg = config(rules, window_time_limit=20 * DAY)
    ms = MiniSlots(cfg, MONDAY, free=ALL32)
    ms.insert(busy)
    assert ms.schedule(QJob(), HOUR, first_blocks(NODES, 1)) is None
    assert ms.slots[-1].b < MONDAY + 6 * WEEK  # the lazy splitting stopped near now + limit


def test_local_time_from_tz_env(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        cal = QuotasConfig.from_dict(RULES_SIMPLE, nb_resources_all=1).calendar
        assert cal.week_origin(MONDAY) == MONDAY - 9 * HOUR
        assert cal.rules_at(MONDAY) == (0, 3 * DAY - 9 * HOUR)
        cfg = QuotasConfig.from_dict(
            {"oneshot": [["2023-11-13 09:00", "2023-11-13 10:00", "h", ""]], "h": {}}, nb_resources_all=1
        )
        assert cfg.calendar.oneshots[0].begin == MONDAY
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_explicit_tz_and_dst_long_week():
    paris = pytest.importorskip("zoneinfo").ZoneInfo("Europe/Paris")
    cal = config(
        {"periodical": [["* mon-sat * *", "a", ""], ["* sun * *", "b", ""]], "a": {}, "b": {}}, tz=paris
    ).calendar
    origin = int(dt.datetime(2023, 10, 23, tzinfo=paris).timestamp())  # the clocks go back on Sunday 29
    next_origin = int(dt.datetime(2023, 10, 30, tzinfo=paris).timestamp())
    assert next_origin - origin == WEEK + HOUR
    assert cal.week_origin(origin + 3 * DAY) == origin
    assert cal.rules_at(origin + WEEK + 1800) == (1, 1800)  # the extra hour belongs to Sunday
    assert cal.rules_at(next_origin) == (0, 6 * DAY)


# ---------------------------------------------------------------------------
# Malformed rules files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules, fragment",
    [
        ([], "JSON object"),
        ({"quotas": {}, "extra": {}}, "'extra'"),
        ({"quotas": {"*,*,*": [1, 1, 1]}}, "'*,*,*'"),
        ({"quotas": {"*,*,*,*,*": [1, 1, 1]}}, "'*,*,*,*,*'"),
        ({"quotas": {"*,*,*,bob": 5}}, "'*,*,*,bob'"),
        ({"quotas": {"*,*,*,bob": [5, -1]}}, "'*,*,*,bob'"),
        ({"quotas": {"*,*,*,bob": [5, -1, -1, 0]}}, "'*,*,*,bob'"),
        ({"quotas": {"*,*,*,bob": "123"}}, "'*,*,*,bob'"),
        ({"quotas": {"*,*,*,bob": ["many", -1, -1]}}, "'*,*,*,bob'[0]"),
        ({"quotas": {"*,*,*,bob": [-1, "ALL*2", -1]}}, "'*,*,*,bob'[1]"),
        ({"quotas": {"*,*,*,bob": [-1, -1, None]}}, "'*,*,*,bob'[2]"),
        ({"quotas": {"*,*,*,bob": [-1, -1, "inf"]}}, "'*,*,*,bob'[2]"),
        ({"quotas": [1]}, '"quotas"'),
        ({"job_types": "besteffort"}, '"job_types"'),
        ({"periodical": {}}, '"periodical"'),
        ({"periodical": [["* * * *"]]}, '"periodical" entry 0'),
        ({"periodical": [["* * * *", "nope"]]}, "'nope' is not defined"),
        ({"periodical": [["* * *", "r"]], "r": {}}, '"* * *"'),
        ({"periodical": [["* mon 1 *", "r"]], "r": {}}, '"* mon 1 *"'),
        ({"periodical": [["* monday * *", "r"]], "r": {}}, "'monday'"),
        ({"periodical": [["19:00-08:00 mon * *", "r"]], "r": {}}, "ends before it begins"),
        ({"periodical": [["08:00-08:00 mon * *", "r"]], "r": {}}, "empty hour range"),
        ({"periodical": [["8h-9h mon * *", "r"]], "r": {}}, "'8h'"),
        ({"periodical": [["20:00-25:00 mon * *", "r"]], "r": {}}, "24:00"),
        ({"periodical": [["08:00-10:00 fri-mon * *", "r"]], "r": {}}, "wraps"),
        ({"periodical": [["* mon-wed * *", "r"], ["08:00-10:00 tue * *", "r"]], "r": {}}, "overlaps"),
        ({"periodical": [["* * * *", "r"]], "r": []}, "rule set 'r'"),
        ({"oneshot": [["2023-11-13", "2023-11-14 00:00", "r", ""]], "r": {}}, '"oneshot" entry 0'),
        ({"oneshot": [["2023-02-30 00:00", "2023-11-14 00:00", "r", ""]], "r": {}}, "2023-02-30"),
        ({"oneshot": [["2023-11-14 00:00", "2023-11-13 00:00", "r", ""]], "r": {}}, "ends before it begins"),
        ({"oneshot": [["2023-11-14 00:00", "2023-11-15 00:00"]]}, '"oneshot" entry 0'),
    ],
)
def test_malformed_rules_name_the_fault(rules, fragment):
    with pytest.raises(ConfigError) as err:
        config(rules)
    assert fragment in str(err.value)


def test_unreferenced_rule_set_is_an_unknown_key():
    with pytest.raises(ConfigError, match="'quotas_2'"):
        config({"periodical": [["* * * *", "quotas_1"]], "quotas_1": {}, "quotas_2": {}})


def test_from_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"quotas": {"*,*,*,*": [1, 2, 3],}}')
    with pytest.raises(ConfigError, match="bad.json: bad JSON"):
        QuotasConfig.from_file(bad, nb_resources_all=1)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"quotas": {"*,*": [1, 2, 3]}}')
    with pytest.raises(ConfigError, match=r"wrong\.json: .*'\*,\*'"):
        QuotasConfig.from_file(wrong, nb_resources_all=1)
    with pytest.raises(ConfigError, match="cannot read"):
        QuotasConfig.from_file(tmp_path / "missing.json", nb_resources_all=1)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

QUEUES, PROJECTS, USERS, TYPES = (
    ["default", "admin"],
    ["pA", "pB", ""],
    ["alice", "bob"],
    ["besteffort", "deploy"],
)

jobs = st.builds(
    QJob,
    st.sampled_from(USERS),
    st.sampled_from(PROJECTS),
    st.sampled_from(QUEUES),
    st.lists(st.sampled_from(TYPES), unique=True, max_size=2).map(lambda ts: {t: "" for t in ts}),
)
rule_keys = st.tuples(
    st.sampled_from(QUEUES + ["*", "/"]),
    st.sampled_from(PROJECTS[:2] + ["*", "/"]),
    st.sampled_from(TYPES + ["*"]),
    st.sampled_from(USERS + ["*", "/"]),
)
limits = st.tuples(st.integers(-1, 12), st.integers(-1, 4), st.integers(-1, 3000))
placements = st.lists(st.tuples(jobs, st.integers(0, 6), st.integers(1, 200)), max_size=4)


@st.composite
def quota_setups(draw):
    cfg = QuotasConfig(Rules(draw(st.dictionaries(rule_keys, limits, max_size=6))), ["*", "besteffort"])
    window = []
    for _ in range(draw(st.integers(1, 4))):
        window.append((-1, counters_with(cfg, *draw(placements))))
    return cfg, window, draw(jobs), draw(st.integers(0, 6)), draw(st.integers(1, 200))


@settings(max_examples=300, deadline=None)
@given(quota_setups(), st.data())
def test_check_is_monotone_in_the_counters(setup, data):
    cfg, window, job, nb_res, w = setup
    if check_window(cfg, window, job, nb_res, w)[0]:
        return
    i = data.draw(st.integers(0, len(window) - 1))
    more = window[i][1].copy()
    for extra, n, wt in data.draw(placements):
        more.update(extra, n, wt)
    bigger = window[:i] + [(window[i][0], more)] + window[i + 1 :]
    assert not check_window(cfg, bigger, job, nb_res, w)[0]
    split = window[: i + 1] + [(window[i][0], window[i][1].copy())] + window[i + 1 :]  # finer slots (T5)
    assert not check_window(cfg, split, job, nb_res, w)[0]


@st.composite
def calendars(draw):
    cuts = sorted(draw(st.sets(st.integers(1, 7 * 24 - 1), max_size=8)))
    bounds = [0] + [c * HOUR for c in cuts] + [WEEK]
    names = ["r0", "r1", "r2"]
    periodicals = [
        Periodical(b, e - b, draw(st.integers(0, 2)), "x")
        for b, e in itertools.pairwise(bounds)
        if draw(st.booleans()) or len(bounds) == 2
    ]
    oneshots = []
    for _ in range(draw(st.integers(0, 2))):
        b = MONDAY + draw(st.integers(-DAY, 3 * WEEK)) // 60 * 60
        oneshots.append(
            Oneshot(b, b + draw(st.integers(1, 4 * DAY)) // 60 * 60 + 60, draw(st.integers(0, 2)))
        )
    return Calendar(periodicals, oneshots, names, tz=UTC)


@settings(max_examples=200, deadline=None)
@given(calendars(), st.integers(MONDAY - WEEK, MONDAY + 4 * WEEK), st.integers(0, 6 * WEEK))
def test_calendar_pieces_tile_time(cal, begin, length):
    rid, remaining = cal.rules_at(begin)
    assert remaining >= 1
    if not cal.oneshots:
        offset = begin - cal.week_origin(begin)
        holding = [p for p in cal.periodicals if p.begin <= offset < p.end]
        assert rid == (holding[0].rules_id if holding else cal.gap_rules_id)
        assert cal.rules_at(begin + remaining - 1)[0] == rid
    end = begin + length
    pieces = cal.segments(begin, end)
    assert pieces[0][0] == begin
    for (b0, e0, _), (b1, _, _) in itertools.pairwise(pieces):
        assert b0 <= e0 and b1 == e0 + 1
    assert all(cal.rules_at(b)[0] == r for b, _, r in pieces)
    last_end = pieces[-1][1]
    assert last_end == end or (last_end < end and last_end + 1 >= cal.horizon(begin))


# ---------------------------------------------------------------------------
# Shared rules files and the corpus quotas cases
# ---------------------------------------------------------------------------

QUOTAS_FILES = sorted(
    glob.glob(f"{SHARED}/conformance/*/quotas.json") + glob.glob(f"{SHARED}/bench/*/quotas.json")
)


@pytest.mark.skipif(not QUOTAS_FILES, reason="no shared quotas files")
@pytest.mark.parametrize("path", QUOTAS_FILES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_shared_quotas_files_parse(path):
    cfg = QuotasConfig.from_file(path, nb_resources_all=10000, tz=UTC)
    assert cfg.job_types[0] == "*"
    if cfg.calendar:
        assert cfg.calendar.rules_at(MONDAY)[1] > 0


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_conf(path: str) -> dict[str, str]:
    """``KEY="value"`` lines of an oar.conf (values cut at ``#`` as OAR3 does)."""
    conf = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0]
            if "=" in line:
                key, value = line.split("=", 1)
                conf[key.strip()] = value.strip().strip("\"'")
    return conf


def replay_case(case: str) -> dict:
    """Replay a corpus quotas case (FIFO, ``resource_id=N``, one moldable) on MiniSlots."""
    meta, conf = read_json(f"{case}/case.json"), read_conf(f"{case}/oar.conf")
    now, sec, queue = int(meta["now"]), int(conf.get("SCHEDULER_JOB_SECURITY_TIME", 60)), meta["queue"]
    db = sqlite3.connect(f"{case}/before.sqlite")
    resources = list(
        db.execute("SELECT resource_id, type, state, available_upto FROM resources ORDER BY resource_id")
    )
    usable = [r for r in resources if r[2] in ("Alive", "Absent")]
    roid = {r[0]: i for i, r in enumerate(usable)}
    cfg = QuotasConfig.from_file(
        f"{case}/quotas.json",
        nb_resources_all=sum(r[2] != "Dead" and r[1] == "default" for r in resources),
        period=int(conf.get("QUOTAS_PERIOD", 1296000)),
        window_time_limit=int(conf.get("QUOTAS_WINDOW_TIME_LIMIT", 5184000)),
        tz=UTC,
    )
    ms = MiniSlots(
        cfg,
        now,
        free=frozenset(range(len(usable))),
        default=frozenset(i for i, r in enumerate(usable) if r[1] == "default"),
    )
    upto: dict[int, set] = {}
    for i, r in enumerate(usable):
        upto.setdefault(r[3], set()).add(i)
    ms.insert([(t, MAX_TIME - t, frozenset(s), AVAILABLE_UPTO_JOB) for t, s in sorted(upto.items())])
    raw_types: dict[int, dict] = {}
    for jid, text in db.execute("SELECT job_id, type FROM job_types ORDER BY job_type_id"):
        name, _, value = text.partition("=")
        raw_types.setdefault(jid, {})[name] = value
    jobs = {r[0]: r for r in db.execute("SELECT job_id, job_user, project, queue_name, state FROM jobs")}

    def quota_job(jid: int) -> QJob:
        types = {k: v for k, v in raw_types.get(jid, {}).items() if k not in ATTRIBUTE_TYPES}
        return QJob(jobs[jid][1], jobs[jid][2], jobs[jid][3], types)

    placed = []
    for mid, start in db.execute("SELECT moldable_job_id, start_time FROM gantt_jobs_predictions"):
        jid, walltime = db.execute(
            "SELECT moldable_job_id, moldable_walltime FROM moldable_job_descriptions WHERE moldable_id = ?",
            (mid,),
        ).fetchone()
        res = frozenset(
            roid[r]
            for (r,) in db.execute(
                "SELECT resource_id FROM gantt_jobs_resources WHERE moldable_job_id = ?", (mid,)
            )
            if r in roid
        )
        job = quota_job(jid)
        if "besteffort" not in job.types or queue == "besteffort":
            placed.append((start, walltime + sec, res, None if "container" in job.types else job))
    ms.insert(placed)
    blocks = [frozenset([i]) for i in range(len(usable))]
    predictions, resources_out, unscheduled = [], {}, []
    for jid in sorted(j for j, r in jobs.items() if r[4] == "Waiting" and r[3] == queue):
        ((mid, walltime),) = db.execute(
            "SELECT moldable_id, moldable_walltime FROM moldable_job_descriptions WHERE moldable_job_id = ?",
            (jid,),
        )
        ((count,),) = db.execute(
            "SELECT res_job_value FROM job_resource_descriptions d JOIN job_resource_groups g "
            "ON d.res_job_group_id = g.res_group_id WHERE g.res_group_moldable_id = ?",
            (mid,),
        )
        found = ms.schedule(
            quota_job(jid),
            walltime + sec,
            first_blocks(blocks, count),
            no_quotas="no_quotas" in raw_types.get(jid, {}),
        )
        if found is None:
            unscheduled.append(jid)
            continue
        predictions.append({"job_id": jid, "moldable_job_id": mid, "start_time": found[0]})
        resources_out[str(mid)] = sorted(usable[i][0] for i in found[1])
    return {"predictions": predictions, "resources": resources_out, "unscheduled_job_ids": unscheduled}


def corpus_quotas_cases() -> list[str]:
    cases = sorted(glob.glob(f"{SHARED}/conformance/quotas_*"))
    simple = []
    for case in cases:
        db = sqlite3.connect(f"{case}/before.sqlite")
        levels = {r[0] for r in db.execute("SELECT res_job_resource_type FROM job_resource_descriptions")}
        props = {r[0] or "" for r in db.execute("SELECT res_group_property FROM job_resource_groups")}
        multi = db.execute(
            "SELECT COUNT(*) FROM moldable_job_descriptions GROUP BY moldable_job_id HAVING COUNT(*) > 1"
        ).fetchall()
        conf = read_conf(f"{case}/oar.conf")
        if (
            levels == {"resource_id"}
            and props == {""}
            and not multi
            and conf.get("JOB_PRIORITY", "FIFO") == "FIFO"
        ):
            simple.append(case)
    return simple


CORPUS_CASES = corpus_quotas_cases()


@pytest.mark.skipif(not CORPUS_CASES, reason="no conformance corpus")
@pytest.mark.parametrize("case", CORPUS_CASES, ids=os.path.basename)
def test_corpus_quotas_case_replays(case):
    expected_file = f"{case}/expected_fixed.json"
    if not os.path.exists(expected_file):
        expected_file = f"{case}/expected.json"
    expected = read_json(expected_file)
    got = replay_case(case)
    assert got == {k: expected[k] for k in ("predictions", "resources", "unscheduled_job_ids")}
