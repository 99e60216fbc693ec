"""Running find and assign plugins inside a scheduling round.

A round hands a job here only when its types name a plugin
(``find=``/``assign=``); every other job stays on the compiled path.  This
is engine code: it runs the plugins on the public search API of
:class:`~oarsched.engine.search.Search`; the plugins see only
:mod:`oarsched.plugins.api`.

* A **find** plugin is called window by window by a Python window search
  (:meth:`JobSearch.scan`) with the same windows as the compiled one
  (``SlotSet.find_first``): time order from the first slot (or the dependency
  bound), the right edge the first slot ending late enough, quotas checked
  on each match (calendar included).  Found windows never feed the search
  cache (they are not what the compiled matcher would find).
* An **assign** plugin gets an :class:`~oarsched.plugins.api.AssignContext`
  whose searches are this module's (compiled when no find function is
  involved), and returns a placement that is checked here and applied by the
  scheduler.

What a plugin returns is checked: a find result must be order indices, free
in the window and allowed by the job's constraints; a placement must name one
of the job's moldables, start no earlier than allowed, fit in the slot set,
use free and allowed resources and pass the quotas.  A failure raises
:class:`~oarsched.plugins.api.PluginError` (a ``JobError``): the scheduler
reports it for that job, leaves the job unscheduled this round, and goes on.
"""
from __future__ import annotations

import operator
import os
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from oarsched._core import bitset
from oarsched.engine.quotas import QuotaState
from oarsched.engine.search import Choice, CompiledMoldable, Found, Search
from oarsched.engine.slots import SlotSet, share_extension
from oarsched.model.job import ALLOW, Job, placeholder_of, quota_view, timesharing_key
from oarsched.plugins.api import (
    AssignContext,
    GroupRequest,
    MoldableRequest,
    Placement,
    PluginError,
    SlotView,
    Window,
    checked_indices,
    indices_to_set,
    set_to_indices,
)
from oarsched.plugins.registry import PluginCall, parse_plugin_call
from oarsched.quotas import UNASSIGNED_RULES_ID, check_window


def choose(search: Search, ss: SlotSet, job: Job, moldables: Sequence[CompiledMoldable],
           min_start: int) -> Choice | str | None:
    """Place a job whose types name a plugin: a choice, None (no place), or the reason it got none."""
    registry = search.plugin_registry()
    types = job.types
    finder = None
    if "find" in types:
        call = parse_plugin_call(types["find"])
        finder = BoundPlugin("find", call, registry.find(call.name, job.id), job.id)
    job_search = JobSearch(search, ss, job, moldables, min_start, finder)
    if "assign" in types:
        call = parse_plugin_call(types["assign"])
        return job_search.assign(BoundPlugin("assign", call, registry.assign(call.name, job.id), job.id))
    return job_search.choose()


class BoundPlugin:
    """A plugin function with the arguments of the job type that named it."""

    def __init__(self, kind: str, call: PluginCall, func: Callable[..., Any], job_id: int) -> None:
        self.kind = kind
        self.call = call
        self.func = func
        self.job_id = job_id

    @property
    def name(self) -> str:
        return self.call.name

    def invoke(self, arg: Any) -> Any:
        """Call the plugin; any exception becomes a PluginError naming it, the job and where it failed."""
        try:
            return self.func(arg, *self.call.args, **self.call.kwargs)
        except PluginError:
            raise
        except Exception as exc:
            raise self.error(f"raised {type(exc).__name__}: {exc}{_where(exc)}") from exc

    def error(self, problem: str) -> PluginError:
        return PluginError(self.job_id, self.kind, self.name, problem)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {os.path.basename(last.filename)}:{last.lineno})"


class _Refused(Exception):
    """A placement the engine cannot apply; the message says why."""


class JobSearch:
    """The window searches of one plugin job, and the service behind its AssignContext."""

    def __init__(self, search: Search, ss: SlotSet, job: Job, moldables: Sequence[CompiledMoldable],
                 min_start: int, finder: BoundPlugin | None) -> None:
        self.sched = search
        self.ss = ss
        self.job = job
        self.compiled = list(moldables)
        self.min_start = min_start
        self.quotas: QuotaState | None = search.quotas
        self.with_quotas = self.quotas is not None and not job.no_quotas
        self.checked = self.quotas if self.with_quotas else None
        """The quotas that check this job (None: quotas off, or a no_quotas job)."""
        self.quota_job = quota_view(job) if self.with_quotas else None
        self.finder = finder
        self._share = (timesharing_key(job), *placeholder_of(job.types))
        self._ext: np.ndarray | None = None
        self.plans = [self._plan(c) for c in self.compiled]
        self._compiled_of = {id(p): c for p, c in zip(self.plans, self.compiled)}
        self._plan_of = {id(c): p for p, c in zip(self.plans, self.compiled)}

    def _plan(self, c: CompiledMoldable) -> MoldableRequest:
        groups = tuple(GroupRequest(tuple(levels), cons) for levels, cons in c.groups)
        return MoldableRequest(c.id, c.walltime, groups, c.request, self.sched.hierarchy)

    @property
    def ext(self) -> np.ndarray | None:
        """Resources the job may share, per slot id (rebuilt when the slot set got new slots)."""
        ts_key, ph, ph_name = self._share
        if ts_key is None and ph != ALLOW:
            return None
        if self._ext is None or self._ext.shape[0] <= self.ss.last_id:
            self._ext = share_extension(self.ss, ts_key, ph, ph_name)
        return self._ext

    @property
    def earliest(self) -> int:
        return max(self.min_start, self.ss.begin)

    # -- the scheduler's moldable choice, with the job's find plugin ------------------------
    def choose(self) -> Choice | None:
        if self.finder is None:
            return self.sched.choose_moldable(self.ss, self.job, self.compiled, self.min_start)
        return self.sched.choose_moldable(self.ss, self.job, self.compiled, self.min_start,
                                          self._find_window_with_plugin)

    def _find_window_with_plugin(self, ss: SlotSet, job: Job, mld: CompiledMoldable, min_start: int) -> Found | None:
        assert self.finder is not None  # only installed as the search of a job with a find plugin
        return self.search(self._plan_of[id(mld)], min_start, None, self.finder)

    def search(self, plan: MoldableRequest, min_start: int, latest: int | None,
               finder: BoundPlugin) -> Found | None:
        """First window from ``min_start`` (-1: the beginning) where ``finder`` takes resources.

        Returns ``(start, resources bitset)`` or None.
        """
        if min_start < 0:
            start_sid = 0
        else:
            start_sid = self.sched.start_slot(self.ss, min_start)
            if start_sid < 0:
                return None

        def match(begin: int, first: bool, free_set: np.ndarray) -> np.ndarray | None:
            window = Window(self.job, plan, begin, first, self.sched.platform, free_set)
            return self._checked_find(finder, plan, begin, free_set, finder.invoke(window))

        found = self.scan(start_sid, plan.walltime, latest, match)
        if found is None:
            return None
        return self.ss.slot(found[0])[0], found[2]

    def scan(self, start_sid: int, walltime: int, latest: int | None,
             match: Callable[[int, bool, np.ndarray], np.ndarray | None],
             ) -> tuple[int, int, np.ndarray] | None:
        """The compiled search's windows, in Python: ``(L, R, resources)`` of the first accepted match."""
        ss = self.ss
        calendar = self.checked.calendar if self.checked is not None else None
        left = start_sid or ss.first_id
        right = left
        while left:
            begin, _end, prev, _next = ss.slot(left)
            if latest is not None and begin > latest:
                return None
            job_end = begin + walltime - 1
            if ss.slot(right)[1] < begin:
                right = left
            while ss.slot(right)[1] < job_end:
                right = ss.next_of(right)
                if not right:
                    return None
            if calendar is not None:
                last = self._calendar_right(begin, right, job_end)
                if last is None:
                    return None
                right = last
            free_set = ss.window_free(left, right, self.ext)
            res = match(begin, prev == 0, free_set)
            if res is not None and self._quota_refusal(left, right, res, walltime) is None:
                return left, right, res
            left = ss.next_of(left)
        return None

    def _calendar_right(self, begin: int, right: int, job_end: int) -> int | None:
        """Walk the right edge over calendar-split slots (as the quotas search does).

        Returns the window's last slot, or None when the job must be given up (time limit).
        """
        ss, quotas = self.ss, self.checked
        assert quotas is not None and quotas.calendar is not None  # only with temporal quotas
        while True:
            if quotas.calendar.window_limit_reached(begin, ss.slot(right)[1], job_end, quotas.now):
                return None
            if ss.rules_id(right) == UNASSIGNED_RULES_ID:
                quotas.split_along_calendar(ss, right)
            if ss.slot(right)[1] >= job_end or not ss.next_of(right):
                return right
            right = ss.next_of(right)

    def _quota_refusal(self, left: int, right: int, res: np.ndarray, walltime: int) -> str | None:
        """Why the quotas refuse ``res`` on slots ``left..right``, or None."""
        job, quotas = self.quota_job, self.checked
        if job is None or quotas is None:  # quotas off, or a no_quotas job
            return None
        ss = self.ss
        nb_res = bitset.count(res & self.sched.default_set)
        window = [(ss.rules_id(s), ss.quotas[s]) for s in ss.ids(left, right)]
        ok, message, rule, limit = check_window(quotas.config, window, job, nb_res, walltime)
        return None if ok else f"{message} (rule {rule}, limit {limit})"

    def _checked_find(self, finder: BoundPlugin, plan: MoldableRequest, begin: int, free_set: np.ndarray,
                      result: Any) -> np.ndarray | None:
        """A find result as a bitset (None: nothing in this window); garbage raises PluginError."""
        if result is None:
            return None
        try:
            roids = checked_indices(result, self.sched.nbits)
        except (TypeError, ValueError) as exc:
            raise finder.error(f"returned {exc}") from None
        if roids.size == 0:
            return None
        res = indices_to_set(roids, self.sched.nbits)
        busy = res & ~free_set
        if busy.any():
            raise finder.error(f"returned resources that are not free in the window starting at "
                               f"{begin}: {self._ids(busy)}")
        outside = res & ~plan.allowed_set
        if outside.any():
            raise finder.error(f"returned resources outside the job's constraints: {self._ids(outside)}")
        return res

    def _ids(self, bs: np.ndarray, shown: int = 8) -> str:
        rids = self.sched.platform.rids[set_to_indices(bs)]
        more = f" and {rids.size - shown} more" if rids.size > shown else ""
        return "resource ids " + ", ".join(str(int(r)) for r in rids[:shown]) + more

    # -- assign ------------------------------------------------------------------------------
    def assign(self, plugin: BoundPlugin) -> Choice | str:
        ctx = AssignContext(self.job, self.plans, self.min_start, self.earliest, self.ss.begin, self.ss.end,
                            self.sched.platform, self)
        placement = plugin.invoke(ctx)
        if placement is None:
            return f"assign plugin {plugin.name!r} found no placement"
        if not isinstance(placement, Placement):
            raise plugin.error(f"returned a {type(placement).__name__}, expected a Placement or None")
        try:
            plan, start, res = self._validate(placement)
        except _Refused as exc:
            raise plugin.error(f"returned an invalid placement: {exc}") from None
        return plan.id, plan.walltime, start, res

    def _validate(self, p: Placement) -> tuple[MoldableRequest, int, np.ndarray]:
        plan = next((m for m in self.plans if m.id == p.moldable_id), None)
        if plan is None:
            ids = ", ".join(str(m.id) for m in self.plans)
            raise _Refused(f"moldable {p.moldable_id!r} is not one of the job's ({ids})")
        try:
            start = operator.index(p.start_time)
        except TypeError:
            raise _Refused(f"start time {p.start_time!r} is not an integer") from None
        if start < self.earliest:
            raise _Refused(f"starts at {start}, before the earliest allowed start {self.earliest}")
        end = start + plan.walltime - 1
        if end > self.ss.end:
            raise _Refused(f"ends at {end}, after the end of the slot set ({self.ss.end})")
        try:
            roids = checked_indices(p.roids, self.sched.nbits)
        except (TypeError, ValueError) as exc:
            raise _Refused(f"resources: {exc}") from None
        if roids.size == 0:
            raise _Refused("no resources")
        res = indices_to_set(roids, self.sched.nbits)
        sl, sr = self._span(start, end)
        busy = res & ~self.ss.window_free(sl, sr, self.ext)
        if busy.any():
            raise _Refused(f"{self._ids(busy)} are not free during [{start}, {end}]")
        outside = res & ~plan.allowed_set
        if outside.any():
            raise _Refused(f"{self._ids(outside)} are outside the job's constraints")
        refusal = self._quota_refusal(sl, sr, res, plan.walltime)
        if refusal is not None:
            raise _Refused(f"the quotas refuse it: {refusal}")
        return plan, start, res

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Slots covering ``[start, end]`` (calendar periods assigned first when quotas apply)."""
        ss = self.ss
        quotas = self.checked
        if quotas is not None and quotas.calendar is not None:
            for sid in ss.ids(ss.slot_id_at(start), ss.slot_id_at(end)):
                if ss.rules_id(sid) == UNASSIGNED_RULES_ID:
                    quotas.split_along_calendar(ss, sid)
        return ss.slot_id_at(start), ss.slot_id_at(end)

    # -- the AssignContext service -------------------------------------------------------------
    def first_fit(self, plan: MoldableRequest, earliest: int | None, latest: int | None,
                  find: Callable[..., Any] | None) -> Placement | None:
        min_start = self.min_start
        if earliest is not None and earliest > max(self.min_start, self.ss.begin):
            min_start = earliest
        finder = self.finder
        if find is not None:
            finder = BoundPlugin("find", PluginCall(getattr(find, "__name__", repr(find))), find, self.job.id)
        if finder is None:
            compiled = self._compiled_of[id(plan)]
            found = self.sched.find_window(self.ss, self.job, compiled, min_start)
        else:
            found = self.search(plan, min_start, latest, finder)
        if found is None or (latest is not None and found[0] > latest):
            return None
        return Placement(plan.id, found[0], set_to_indices(found[1]))

    def default(self) -> Placement | None:
        choice = self.choose()
        if choice is None:
            return None
        mld_id, _w, start, res = choice
        return Placement(mld_id, start, set_to_indices(res))

    def check(self, placement: Placement) -> str | None:
        try:
            self._validate(placement)
        except _Refused as exc:
            return str(exc)
        return None

    def slots(self) -> list[SlotView]:
        ss, ext = self.ss, self.ext
        out = []
        for sid in ss.ids():
            b, e, _, _ = ss.slot(sid)
            free = ss.free_of(sid)
            if ext is not None:
                free |= ext[sid]
            out.append(SlotView(b, e, free))
        return out

    def free_between(self, start: int, end: int) -> np.ndarray | None:
        ss = self.ss
        if end < start:
            return None
        sl, sr = ss.slot_id_at(start), ss.slot_id_at(end)
        if not sl or not sr:
            return None
        return set_to_indices(ss.window_free(sl, sr, self.ext))
