"""Quotas in the engine: counters in the slots, the check in the window search, the calendar splits.

The rules, counters and calendar themselves are the model's
(:mod:`oarsched.model.quotas`); this module applies them to slot sets the way
OAR3's scheduler does (see the "Engine protocol" there).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from oarsched._core import bitset
from oarsched._core.hierarchy import Request
from oarsched._core.slotset import SlotSet
from oarsched.model.platform import Platform
from oarsched.model.quotas import UNASSIGNED_RULES_ID, QuotasConfig, check_window


class QuotaState:
    """Quotas of one round: the configuration and the round's clock."""

    def __init__(self, config: QuotasConfig, now: int = 0) -> None:
        self.config = config
        self.now = now
        self.calendar = config.calendar

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_config(cls, oar_config, platform: Platform) -> "QuotaState":
        """From oar.conf's QUOTAS_* keys (QUOTAS_CONF_FILE read and checked)."""
        mode = oar_config.quotas_all_nb_resources_mode
        return cls(QuotasConfig.from_file(
            oar_config.quotas_conf_file,
            nb_resources_all=_all_value(platform, mode),
            period=oar_config.quotas_period,
            window_time_limit=oar_config.quotas_window_time_limit,
            all_mode=mode,
        ))

    @classmethod
    def from_rules(cls, rules: Mapping[str, Any] | QuotasConfig, platform: Platform) -> "QuotaState":
        """From OAR3's rules JSON as a dict (library use), or a ready configuration."""
        if isinstance(rules, QuotasConfig):
            return cls(rules)
        return cls(QuotasConfig.from_dict(rules, nb_resources_all=platform.nb_default_not_dead))

    # -- slot sets ---------------------------------------------------------------------
    def new_counters(self):
        return self.config.new_counters()

    def prepare(self, ss: SlotSet) -> None:
        """Give every slot of a new slot set its counters, and split it along the calendar."""
        for sid in ss.ids():
            if ss.quotas[sid] is None:
                ss.quotas[sid] = self.new_counters()
        if self.calendar is not None:
            self._split_along_calendar(ss, ss.first_id)

    def _split_along_calendar(self, ss: SlotSet, sid: int) -> int:
        """Cut slot ``sid`` at the calendar's period changes (up to the horizon); returns the first piece."""
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
        def admitted(sl: int, sr: int, res: np.ndarray) -> bool:
            nb_res = bitset.count(res & default_set)
            window = [(ss.rules_id(s), ss.quotas[s]) for s in ss.ids(sl, sr)]
            return check_window(self.config, window, job, nb_res, walltime)[0]

        if self.calendar is None:
            return ss.find_first(start_sid, walltime, request, ext, admitted)
        return self._find_with_calendar(ss, start_sid, walltime, request, ext, admitted)

    def _find_with_calendar(self, ss: SlotSet, start_sid: int, walltime: int, request: Request, ext, admitted):
        cal = self.calendar
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
                    self._split_along_calendar(ss, right)
                if ss.slot(right)[1] >= job_end or not ss.next_of(right):
                    break
                right = ss.next_of(right)
            res = request.find(ss.window_free(left, right, ext))
            if res is not None and admitted(left, right, res):
                return (left, right, res)
            left = ss.next_of(left)
        return None


def _all_value(platform: Platform, mode: str) -> int:
    """What ``ALL`` stands for in the rules (QUOTAS_ALL_NB_RESOURCES_MODE)."""
    if mode == "default_not_dead":
        return platform.nb_default_not_dead
    return int(np.count_nonzero(platform.default_type))
