"""One scheduling round: its state (:class:`Round`) and its pipeline (:func:`run_round`).

:func:`run_round` is the one way a round is run, by the drop-in
(``oarsched-kamelot``), the simulator and anything else::

    order (JOB_PRIORITY) -> cap (MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND)
      -> screen (malformed jobs, dependency cycles) -> place, job by job,
         until ``should_stop()`` -> tell the jobs that never fit

A :class:`Round` owns what one round builds on a
:class:`~oarsched.engine.search.Search`: the slot sets (``default`` and one
per container), the jobs placed so far (for dependencies), the ids of the
round's jobs, the decisions and the quotas.  Placing a job runs the search
API, or the job's find/assign plugin (:mod:`oarsched.engine.plugin_runtime`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from oarsched._core import bitset
from oarsched.engine.quotas import QuotaState
from oarsched.engine.result import Assignment, ScheduledJob, ScheduleResult
from oarsched.engine.search import ConstraintResolver, SchedulerOptions, Search
from oarsched.engine.slots import (
    MAX_TIME,
    Occupation,
    SlotSet,
    give,
    insert_jobs,
    new_slot_set,
    occupy,
)
from oarsched.errors import JobError, OarschedError
from oarsched.model.job import AVAILABLE_UPTO_JOB, Job, dependency_cycles, validate_job
from oarsched.model.platform import Platform
from oarsched.policies.sorting import (
    AccountingRow,
    SortingConfig,
    karma_window_start,
    needs_accounting,
    order_jobs,
)

if TYPE_CHECKING:
    from oarsched.plugins.registry import PluginRegistry

log = logging.getLogger("oarsched.engine")

MAX_EXPLAINED = 50
"""Unplaced jobs checked, per round, for a request that can never fit."""

NEVER_FITS = ("its request never fits, even on an empty platform: more resources than exist or than its "
              "properties select, or a walltime beyond their available_upto or the end of time (2**31)")


class Round:
    """The state of one round on ``search``: slot sets, placed jobs, the round's ids, decisions, quotas.

    ``scheduled`` are the jobs already in the gantt; ``round_ids`` the ids of
    every job of the round (a job waiting for one of them waits for its place).
    """

    def __init__(self, search: Search, now: int, scheduled: Iterable[ScheduledJob] = (),
                 round_ids: Iterable[int] = ()) -> None:
        self.search = search
        self.now = now
        self.quotas: QuotaState | None = search.quotas
        if self.quotas is not None:
            self.quotas.now = now
        self.result = ScheduleResult()
        self.round_ids = set(round_ids)
        search.new_round(self.round_ids)
        self.slot_sets: dict[str, SlotSet] = {
            "default": new_slot_set(search.nbits, now, search.schedulable.copy(), quotas=self.quotas)}
        self._block_available_upto(self.slot_sets["default"])
        self._insert_scheduled(list(scheduled))
        self.placed: dict[int, tuple[int, int]] = {}
        """Job id -> (start, W) of the jobs placed this round, for their dependents."""
        self.floor = -1
        """No job starts before it (-1: the slot sets' beginning); see :meth:`place_more`."""

    def place_more(self, jobs: Sequence[Job], now: int) -> ScheduleResult:
        """Place ``jobs`` from ``now`` on, after everything this round holds; their decisions alone.

        The decisions of a round at ``now`` given the jobs placed here as
        already scheduled, provided no job was removed since and none held up
        to ``now`` or before ended (the caller's promise: the simulator calls
        it only then; the slots before ``now`` are simply not searched).
        Rounds with quotas are not continued (their counters depend on ``now``).
        """
        if self.quotas is not None:
            raise ValueError("a round with quotas cannot be continued at a later time")
        self.result, self.placed, self.round_ids = ScheduleResult(), {}, {j.id for j in jobs}
        self.floor = now
        for job in jobs:
            self.place(job)
        return self.result

    # -- what is already there ---------------------------------------------------------------
    def _block_available_upto(self, ss: SlotSet) -> None:
        """Resources leave the platform at their ``available_upto``: a pseudo job holds them from then on."""
        quota_job = AVAILABLE_UPTO_JOB if self.quotas is not None else None
        pseudo = [Occupation(start_time=t, walltime=MAX_TIME - t, resources=res, quota_job=quota_job,
                             nb_default=nb_default)
                  for t, res, nb_default in self.search.leaving]
        insert_jobs(ss, pseudo, self.quotas)

    def add_scheduled(self, scheduled: Iterable[ScheduledJob]) -> None:
        """Jobs already in the gantt occupy their resources, besteffort ones included (the meta-scheduler
        adds the running besteffort jobs when it reaches the besteffort queue)."""
        self._insert_scheduled(list(scheduled), keep_besteffort=True)

    def _insert_scheduled(self, scheduled: list[ScheduledJob], keep_besteffort: bool = False) -> None:
        search, now, slot_sets = self.search, self.now, self.slot_sets
        sec = search.options.job_security_time
        per_set: dict[str, list[Occupation]] = {"default": []}
        held: dict[int, Any] = {}
        for job in sorted(scheduled, key=lambda j: (j.start_time, j.id)):
            is_be = "besteffort" in job.types
            if is_be and not (search.options.besteffort_round or keep_besteffort):
                continue
            entry = search.held_entry(job, held)
            res = entry.res
            if job.state == "Suspended":
                res = res & ~search.suspendable
            w = int(job.walltime) + sec + int(job.suspended_time)
            if "container" in job.types:
                name = job.types["container"] or str(job.id)
                inner = slot_sets.get(name)
                if inner is None:
                    inner = slot_sets[name] = new_slot_set(search.nbits, 1, bitset.empty(search.nbits),
                                                           quotas=self.quotas)
                give(inner, Occupation(start_time=max(job.start_time, now), walltime=w - sec, resources=res))
            set_name = job.types.get("inner", "default") if "inner" in job.types else "default"
            key = (job.start_time, w, job.state, self.quotas is not None)
            if entry.occupation is None or entry.key != key:
                entry.key = key
                entry.occupation = search.occupation(job, job.start_time, w, res,
                                                     entry.nb_default if res is entry.res else None)
            per_set.setdefault(set_name, []).append(entry.occupation)
        search.held = held
        for name, ss in slot_sets.items():
            if name in per_set:
                insert_jobs(ss, per_set[name], self.quotas)

    # -- placing jobs -------------------------------------------------------------------------
    def place(self, job: Job) -> None:
        """Place ``job`` or say why not (in ``result``); a bad job is reported and skipped, never fatal."""
        try:
            self._place(job)
        except JobError as exc:
            log.error("%s; job skipped", exc)
            self.result.errors[job.id] = exc.message
            self.result.unscheduled[job.id] = exc.message
        except OarschedError as exc:
            log.error("job %s: %s; job skipped", job.id, exc)
            self.result.errors[job.id] = str(exc)
            self.result.unscheduled[job.id] = str(exc)

    def min_start(self, job: Job) -> int | str:
        """Earliest start allowed by dependencies, -1 for none, or the reason the job must wait."""
        min_start = -1
        for dep in job.dependencies:
            if dep.state == "Error":
                continue
            if dep.state == "Waiting":
                if dep.job_id not in self.round_ids:
                    return f"depends on waiting job {dep.job_id} that is not scheduled in this round"
                if dep.job_id not in self.placed:
                    return f"depends on job {dep.job_id} that has no place yet"
                start, w = self.placed[dep.job_id]
                min_start = max(min_start, start + w)
            elif dep.state == "Terminated" and (dep.exit_code in (0, None)):
                continue
            else:
                return f"depends on job {dep.job_id} in state {dep.state}" + (
                    f" (exit code {dep.exit_code})" if dep.state == "Terminated" else "")
        return min_start

    def _place(self, job: Job) -> None:
        search, result = self.search, self.result
        min_start = self.min_start(job)
        if isinstance(min_start, str):
            result.unscheduled[job.id] = min_start
            return
        min_start = max(min_start, self.floor)
        set_name = job.types["inner"] if "inner" in job.types else "default"
        ss = self.slot_sets.get(set_name)
        if ss is None:
            raise JobError(job.id, f"container {set_name!r} has no slot set (not placed or unknown)")
        moldables = search.compile(job)
        if "find" in job.types or "assign" in job.types:
            # loaded on the first plugin job: the compiled path never imports the plugin machinery
            from oarsched.engine import plugin_runtime

            choice = plugin_runtime.choose(search, ss, job, moldables, min_start)
        else:
            choice = search.choose_moldable(ss, job, moldables, min_start)
        if choice is None or isinstance(choice, str):
            result.unscheduled[job.id] = choice or "no suitable resources and time window"
            return
        mld_id, w, start, res = choice
        occupy(ss, search.occupation(job, start, w, res), self.quotas)
        result.assignments[job.id] = Assignment(
            job_id=job.id, moldable_id=mld_id, start_time=start, walltime=w, runs=bitset.to_runs(res),
            rid_of=search.platform.rids,
        )
        self.placed[job.id] = (start, w)
        if "container" in job.types:
            self._open_container(job, start, w, res)

    def _open_container(self, job: Job, start: int, w: int, res: np.ndarray) -> None:
        sec = self.search.options.job_security_time
        name = job.types["container"] or str(job.id)
        inner = self.slot_sets.get(name)
        if inner is not None:
            give(inner, Occupation(start_time=start, walltime=w - sec, resources=res))
        else:
            self.slot_sets[name] = new_slot_set(self.search.nbits, start, res.copy(), end=start + w - sec,
                                                quotas=self.quotas)


# ---------------------------------------------------------------------------- the pipeline

AccountingSource = Callable[[int, int], Sequence[AccountingRow]]
"""``(window_start, now)`` -> the accounting rows of the round's queues (read only when the order needs them)."""


@dataclass
class RoundOptions:
    """What a round needs besides the platform and the jobs."""

    now: int
    queues: Sequence[str] = ("default",)
    """The queues scheduled together (their accounting rows count for the karma)."""
    ordering: SortingConfig | None = None
    """JOB_PRIORITY and its keys (:class:`~oarsched.policies.sorting.SortingSettings`); None keeps the
    jobs in the order given."""
    accounting: AccountingSource | None = None
    """Where FAIRSHARE and MULTIFACTOR read past consumption (none: no rows)."""
    max_jobs: int | None = None
    """[MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND] jobs placed at most, in order; None: all."""
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    constraints: ConstraintResolver | None = None
    """How a resource group's property expression selects resources (default: in memory)."""
    plugins: PluginRegistry | None = None
    max_explained: int = MAX_EXPLAINED
    """Unplaced jobs checked for a request that never fits (0: none)."""
    deferred: frozenset[int] = frozenset()
    """Jobs placed after all the others (in their order): those an earlier round gave up on."""


@dataclass
class RoundOutcome:
    """What a round decided, and what it left out."""

    result: ScheduleResult
    jobs: list[Job]
    """The jobs placed in this order (ordered, capped, screened)."""
    skipped: dict[int, str] = field(default_factory=dict)
    """Jobs left out by the screen (malformed, in a dependency cycle): id -> why."""
    karma: dict[int, float] = field(default_factory=dict)
    """Karma per job id, from the ordering (FAIRSHARE, MULTIFACTOR, CUSTOM)."""
    not_considered: list[int] = field(default_factory=list)
    """Jobs not reached because ``should_stop`` said so; not in ``result``."""
    never_fit: list[int] = field(default_factory=list)
    """Jobs that found no place and would find none on an empty platform."""
    state: Round | None = field(default=None, repr=False)
    """The round itself (its slot sets hold every decision): :meth:`Round.place_more` continues it."""

    def considered_starts(self) -> dict[int, int]:
        """Job id -> start for every job the round considered, -1 for those it could not place
        (screened out included); the jobs past the cap or not reached are absent.

        This is what OAR3's kamelot leaves in ``jobs.start_time`` (trap T22).
        """
        missed = set(self.not_considered)
        out = {jid: -1 for jid in self.skipped}
        for job in self.jobs:
            if job.id not in missed:
                a = self.result.assignments.get(job.id)
                out[job.id] = -1 if a is None else a.start_time
        return out


def run_round(platform: Platform, jobs: Sequence[Job], scheduled: Iterable[ScheduledJob], options: RoundOptions,
              should_stop: Callable[[], bool] | None = None, search: Search | None = None,
              into: Round | None = None) -> RoundOutcome:
    """Order, cap, screen and place ``jobs`` after the ``scheduled`` ones; tell those that never fit.

    ``should_stop`` is asked before each job but the first (a placement is
    never interrupted; every round makes progress): once it says True, the
    remaining jobs are ``not_considered``.  ``search`` reuses a
    :class:`Search` built for ``platform`` (its options then apply, not
    ``options.scheduler``).  ``into``: place into that round's slot sets
    (which keep what earlier calls placed: the meta-scheduler's queue groups
    share them) instead of new ones; ``scheduled`` and ``search`` are then its.
    """
    if into is not None:
        search = into.search
    if search is None:
        search = Search(platform, options.scheduler, constraints=options.constraints, plugins=options.plugins)
    ordered, karma = ordered_jobs(jobs, options)
    if options.deferred:
        ordered = ([j for j in ordered if j.id not in options.deferred]
                   + [j for j in ordered if j.id in options.deferred])
    if options.max_jobs is not None:
        ordered = ordered[:options.max_jobs]
    skipped: dict[int, str] = {}
    ordered = screen(ordered, skipped)
    if into is None:
        rnd = Round(search, options.now, scheduled, round_ids=(j.id for j in ordered))
    else:
        rnd = into
        rnd.round_ids = {j.id for j in ordered}
        rnd.result = ScheduleResult()
    not_considered: list[int] = []
    for i, job in enumerate(ordered):
        if i > 0 and should_stop is not None and should_stop():
            not_considered = [j.id for j in ordered[i:]]
            break
        rnd.place(job)
    outcome = RoundOutcome(rnd.result, ordered, skipped, karma, not_considered, state=rnd)
    outcome.never_fit = explain_never_fitting(search, outcome, options.now, options.max_explained)
    return outcome


def ordered_jobs(jobs: Sequence[Job], options: RoundOptions) -> tuple[list[Job], dict[int, float]]:
    """The jobs in the policy's order, and their karma."""
    if options.ordering is None:
        return list(jobs), {}
    settings, now = options.ordering, options.now
    accounting: Sequence[AccountingRow] = []
    if options.accounting is not None and needs_accounting(settings):
        accounting = options.accounting(karma_window_start(now, settings), now)
    order, karma = order_jobs(jobs, accounting, options.queues, now, settings)
    by_id = {j.id: j for j in jobs}
    return [by_id[i] for i in order], karma


def screen(jobs: list[Job], skipped: dict[int, str]) -> list[Job]:
    """The jobs that can be scheduled, in order; the others are logged and added to ``skipped``."""
    cycles = dependency_cycles(jobs)
    kept = []
    for job in jobs:
        try:
            validate_job(job)
            if job.id in cycles:
                raise JobError(job.id, _cycle_message(job.id, cycles[job.id]))
        except JobError as exc:
            log.error("%s; job skipped", exc)
            skipped[job.id] = exc.message
            continue
        kept.append(job)
    return kept


def _cycle_message(job_id: int, members: list[int], shown: int = 10) -> str:
    if members == [job_id]:
        return f"depends on itself (job {job_id} waits for job {job_id})"
    names = ", ".join(map(str, members[:shown]))
    if len(members) > shown:
        names += f" and {len(members) - shown} more"
    return f"dependency cycle among jobs {names}: none of them can ever start"


def explain_never_fitting(search: Search, outcome: RoundOutcome, now: int, limit: int = MAX_EXPLAINED) -> list[int]:
    """Tell apart, among the jobs that found no place, those that would find none on an empty platform.

    Only jobs without dependencies and outside containers are looked at (up
    to ``limit`` a round); for those the reason becomes a warning saying the
    request never fits.  Returns their ids.
    """
    result = outcome.result
    skip = set(outcome.not_considered) | set(result.errors)
    candidates = [j for j in outcome.jobs if j.id in result.unscheduled and j.id not in skip
                  and not j.dependencies and "inner" not in j.types][:limit]
    never: list[int] = []
    if not candidates:
        return never
    empty = Search(search.platform, SchedulerOptions(job_security_time=search.options.job_security_time),
                   constraints=search.constraints, plugins=search.plugins)
    for job in candidates:
        alone = Round(empty, now, round_ids=(job.id,))
        alone.place(job)
        if job.id not in alone.result.assignments and job.id not in alone.result.errors:
            log.warning("job %s: %s", job.id, NEVER_FITS)
            result.unscheduled[job.id] = NEVER_FITS
            never.append(job.id)
    return never
