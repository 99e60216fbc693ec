"""Quotas in the engine: counters in the slots, the check in the window search, the calendar splits.

The rules, counters and calendar themselves are the model's
(:mod:`oarsched.quotas`); this module applies them to slot sets the way
OAR3's scheduler does (see the "Engine protocol" there).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from oarsched._core import bitset
from oarsched._core.hierarchy import Request
from oarsched._core.slotset import SlotSet
from oarsched.model.job import quota_view
from oarsched.model.platform import Platform
from oarsched.quotas import (
    UNASSIGNED_RULES_ID,
    Counters,
    QuotasConfig,
    QuotasSettings,
    combined_count,
    compare_limits,
    counted_keys,
)


class SlotCounters(Counters):
    """A slot's quota counters, with a batch update: the engine computes a job's keys once, not per slot."""

    __slots__ = ()

    def copy(self) -> SlotCounters:
        """An independent copy (for a slot split)."""
        clone = SlotCounters.__new__(SlotCounters)
        clone.job_types = self.job_types
        clone._counts = self._counts.copy()
        return clone

    def add_keys(self, keys: tuple, nb_res: int, work: int) -> None:
        """What :meth:`Counters.update` does, given the job's counted keys (with repetitions)."""
        counts = self._counts
        for key in keys:
            r, j, s = counts.get(key, (0, 0, 0))
            counts[key] = (r + nb_res, j + 1, s + work)


class QuotaState:
    """Quotas of one round: the configuration and the round's clock."""

    def __init__(self, config: QuotasConfig, now: int = 0) -> None:
        self.config = config
        self.now = now
        self.calendar = config.calendar
        self._job_types = tuple(config.job_types)
        self._keys: dict[tuple, tuple] = {}
        self._job_rules: dict[tuple, tuple] = {}
        rule_sets = [config.default_rules, *config.rule_sets]
        self._rule_keys = frozenset(key for rules in rule_sets for key in rules.limits)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: QuotasSettings, platform: Platform) -> "QuotaState":
        """From oar.conf's QUOTAS_* keys (the rules file read and checked)."""
        mode = settings.all_nb_resources_mode
        return cls(QuotasConfig.from_file(
            settings.conf_file,
            nb_resources_all=_all_value(platform, mode),
            period=settings.period,
            window_time_limit=settings.window_time_limit,
            all_mode=mode,
        ))

    @classmethod
    def from_rules(cls, rules: Mapping[str, Any] | QuotasConfig, platform: Platform) -> "QuotaState":
        """From OAR3's rules JSON as a dict (library use), or a ready configuration."""
        if isinstance(rules, QuotasConfig):
            return cls(rules)
        return cls(QuotasConfig.from_dict(rules, nb_resources_all=platform.nb_default_not_dead))

    # -- slot sets ---------------------------------------------------------------------
    def new_counters(self) -> SlotCounters:
        """Empty counters for a slot, counting the configuration's job types."""
        return SlotCounters(self._job_types)

    def counted_keys(self, job) -> tuple:
        """The counter keys a job increments in every slot it spans, memoised.

        OAR3's ``Quotas.update`` increments up to 16 keys per counted type
        (queue, project and user, each as itself and as ``*``); a check only
        ever reads the key its rule resolves to: the rule's own fields, or the
        job's value where the rule says ``/``.  Keys no rule of any rule set
        can resolve to are never read, so they are not kept (the decisions are
        the same; the slots' counters hold fewer keys).
        """
        memo = (job.queue, job.project, job.user, tuple(job.types))
        keys = self._keys.get(memo)
        if keys is None:
            keys = self._keys[memo] = tuple(k for k in counted_keys(job, self._job_types) if self._readable(k))
        return keys

    def _readable(self, key: tuple) -> bool:
        """Some rule resolves to this counter key (its fields, or ``/`` standing for the job's value)."""
        return any(all(r == "/" or r == k for r, k in zip(rule, key)) for rule in self._rule_keys)

    def prepare(self, ss: SlotSet) -> None:
        """Give every slot of a new slot set its counters, and split it along the calendar."""
        for sid in ss.ids():
            if ss.quotas[sid] is None:
                ss.quotas[sid] = self.new_counters()
        if self.calendar is not None:
            self.split_along_calendar(ss, ss.first_id)

    def split_along_calendar(self, ss: SlotSet, sid: int) -> int:
        """Cut slot ``sid`` at the calendar's period changes (up to the horizon); returns the first piece."""
        assert self.calendar is not None  # only called with temporal quotas
        b, e, _, _ = ss.slot(sid)
        cur = sid
        for _pb, pe, rules_id in self.calendar.segments(b, e):
            if pe < ss.slot(cur)[1]:
                left, cur_next = ss.split_at_after(cur, pe + 1)
                ss.set_rules_id(left, rules_id)
                cur = cur_next
            else:
                ss.set_rules_id(cur, rules_id)
        return sid

    # -- the window search with quotas ---------------------------------------------------
    def find_window(self, ss: SlotSet, start_sid: int, walltime: int, request: Request,
                    ext: np.ndarray | None, job, default_set: np.ndarray):
        """First window where ``request`` fits *and* the quotas admit the job: ``(L, R, resources)`` or None."""
        check = _JobCheck(self.config, job, walltime, self._job_rules)

        def admitted(sl: int, sr: int, res: np.ndarray) -> bool:
            return check.admits(ss, sl, sr, bitset.count(res & default_set))

        if self.calendar is None:
            start, sound = _skip_known_failures(ss, start_sid, walltime, request, ext)
            found = ss.find_first(start, walltime, request, ext, admitted)
            if sound and ss.last_fit:
                ss.cache.record(walltime, request, ss.last_fit)
            return found
        return self._find_with_calendar(ss, start_sid, walltime, request, ext, admitted)

    def admits_window(self, ss: SlotSet, sl: int, sr: int, walltime: int, job, res: np.ndarray,
                      default_set: np.ndarray) -> bool:
        """Whether the quotas admit ``job`` on the fixed window ``sl..sr`` with ``res`` (advance reservations).

        OAR3 checks a new reservation's quotas whatever its ``no_quotas`` type.
        """
        check = _JobCheck(self.config, quota_view(job), walltime, self._job_rules)
        return check.admits(ss, sl, sr, bitset.count(res & default_set))

    def _find_with_calendar(self, ss: SlotSet, start_sid: int, walltime: int, request: Request, ext, admitted):
        cal = self.calendar
        assert cal is not None  # only called with temporal quotas
        left = start_sid or ss.first_id
        while left:
            begin = ss.slot(left)[0]
            job_end = begin + walltime - 1
            right = left
            while right and ss.slot(right)[1] < job_end:
                right = ss.next_of(right)
            if not right:
                return None
            # the window's last slot: apply the time limit, and split it along the calendar when
            # it lies past the horizon; walk on until the whole job is covered by assigned slots
            while True:
                if cal.window_limit_reached(begin, ss.slot(right)[1], job_end, self.now):
                    return None
                if ss.rules_id(right) == UNASSIGNED_RULES_ID:
                    known = ss.last_id
                    self.split_along_calendar(ss, right)
                    ext = _extension_for_new_slots(ext, ss.last_id, known, right)
                if ss.slot(right)[1] >= job_end or not ss.next_of(right):
                    break
                right = ss.next_of(right)
            res = request.find(ss.window_free(left, right, ext))
            if res is not None and admitted(left, right, res):
                return (left, right, res)
            left = ss.next_of(left)
        return None


class _JobCheck:
    """:func:`~oarsched.quotas.check_window` for one job's search, its rule lookups done once.

    The same test, in the same order: the window's slots grouped by rules id
    (in order of first appearance); for each group, the rule the job falls
    under, the counters of its key combined over the group's slots (maximum
    of resources and jobs, sum of resource-seconds) plus the job itself, and
    OAR3's comparison.  What depends on the job alone (its rule and counter
    key per rules id, how many times its own update counts that key) is
    computed once per search instead of once per candidate window.
    """

    def __init__(self, config: QuotasConfig, job, walltime: int, memo: dict[tuple, tuple]) -> None:
        self.config = config
        self.job = job
        self.walltime = walltime
        self._memo = memo
        self._identity = (job.queue, job.project, job.user, tuple(job.types))

    def _rule(self, rules_id: int) -> tuple:
        """``(limits, rule_key, counter_key, repeats)`` of the job under a rules id (memoised per job identity)."""
        memo_key = (self._identity, rules_id)
        found = self._memo.get(memo_key)
        if found is None:
            limits, rule_key, counter_key = self.config.slot_rules(rules_id).find(self.job)
            repeats = 0
            if limits is not None:
                repeats = sum(1 for key in counted_keys(self.job, self.config.job_types) if key == counter_key)
            found = self._memo[memo_key] = (limits, rule_key, counter_key, repeats)
        return found

    def admits(self, ss: SlotSet, sl: int, sr: int, nb_res: int) -> bool:
        """Whether the quotas admit the job with ``nb_res`` default resources on the slots ``sl..sr``."""
        sids = ss.ids(sl, sr)
        if self.config.calendar is None:  # every slot has the default rules (-1): one group
            return self._admits_one_group(ss, sids, nb_res)
        groups: dict[int, list] = {}
        for s in sids:
            groups.setdefault(ss.rules_id(s), []).append(ss.quotas[s])
        for rules_id, slots in groups.items():
            limits, rule_key, counter_key, repeats = self._rule(rules_id)
            if limits is None:
                continue
            count = combined_count(slots, counter_key)
            if repeats:
                r, j, w = count or (0, 0, 0)
                count = (r + repeats * nb_res, j + repeats, w + repeats * nb_res * self.walltime)
            if count is not None and not compare_limits(limits, count, rule_key)[0]:
                return False
        return True


    def _admits_one_group(self, ss: SlotSet, sids: list[int], nb_res: int) -> bool:
        """:meth:`admits` when all the slots share the default rules: the combined count inlined."""
        limits, rule_key, counter_key, repeats = self._rule(UNASSIGNED_RULES_ID)
        if limits is None:
            return True
        quotas = ss.quotas
        count = None
        for s in sids:
            value = quotas[s].get(counter_key)
            if value is None:
                continue
            if count is None:
                count = value
            else:
                count = (max(count[0], value[0]), max(count[1], value[1]), count[2] + value[2])
        if repeats:
            r, j, w = count or (0, 0, 0)
            count = (r + repeats * nb_res, j + repeats, w + repeats * nb_res * self.walltime)
        return count is None or compare_limits(limits, count, rule_key)[0]


def _skip_known_failures(ss: SlotSet, start_sid: int, walltime: int, request: Request,
                         ext: np.ndarray | None) -> tuple[int, bool]:
    """Where the quotas' window search may start, and whether its first fit can be recorded.

    The slot set's :class:`~oarsched._core.slotset.WindowCache` knows, from
    earlier searches of requests this one dominates, a slot before which no
    window has the free resources this request needs: quotas cannot admit what
    does not fit, so the search starts at the later of that slot and
    ``start_sid``.  The first window where the request fits (admitted or not)
    is in turn a known bound for later requests — when every window before the
    search's start is known to fail, i.e. the start is the slot set's first
    slot or the known bound (not a later dependency's end).  Jobs using shared
    resources (``ext``: timesharing, ``allow``) neither use nor give bounds.
    """
    cache = ss.cache
    if ext is not None or not hasattr(cache, "start_for"):
        return start_sid, False
    known = cache.start_for(walltime, request)
    if not known:
        return start_sid, start_sid in (0, ss.first_id)
    if not start_sid or ss.slot(start_sid)[0] <= ss.slot(known)[0]:
        return known, True
    return start_sid, False


def _extension_for_new_slots(ext: np.ndarray | None, last_id: int, known: int, parent: int) -> np.ndarray | None:
    """Rows for the slots a calendar split just made out of ``parent``: they share what it shares."""
    if ext is None or last_id <= known:
        return ext
    grown = np.zeros((last_id + 1, ext.shape[1]), dtype=ext.dtype)
    grown[: ext.shape[0]] = ext
    grown[known + 1 :] = ext[parent]
    return grown


def _all_value(platform: Platform, mode: str) -> int:
    """What ``ALL`` stands for in the rules (QUOTAS_ALL_NB_RESOURCES_MODE)."""
    if mode == "default_not_dead":
        return platform.nb_default_not_dead
    return int(np.count_nonzero(platform.default_type))
