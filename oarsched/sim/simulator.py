"""Event-driven replay of a workload through oarsched's scheduler, the way OAR runs it.

The simulated system is OAR's server loop with oarsched as the scheduler of
every queue:

* **Events.**  A job is submitted at its submit time; a running job ends at
  ``start + runtime``, or is killed at ``start + walltime`` when its run time
  is longer (status ``killed``).  All events of one instant are handled
  together, then one **scheduling round** runs.  Rounds also run every
  ``period`` seconds when a period is given (OAR's meta-scheduler is also
  woken periodically), and at the earliest start the last round planned in
  the future (so that a job planned after, say, a quotas period change
  starts even when no other event happens then) -- earlier by
  ``SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION`` when that is
  set, to kill the besteffort jobs in its way -- and at each accepted
  reservation's start.
* **A round** is ``oarsched-kao``'s meta round, run in memory by the same
  engine code (:func:`oarsched.engine.meta.run_meta_round` with
  :class:`~oarsched.engine.meta.MemoryRound`; ``tests/test_sim_kao_parity.py``
  writes simulated rounds as OAR3 databases and checks that kao decides the
  same): queue groups from the highest priority to the lowest (queues of
  equal priority are scheduled together, as OAR3 does), each group's waiting
  jobs ordered by the configured policy
  (:func:`~oarsched.policies.sorting.order_jobs`: FIFO, FAIRSHARE,
  MULTIFACTOR, CUSTOM plugins), capped at
  ``MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND`` and placed into slot sets
  shared by the whole round (running jobs, accepted reservations and the
  groups before); after each group, its queues' accepted reservations are
  checked and their new ones accepted or refused.  Then the jobs placed at
  the current time are launched; jobs placed in the future are **not**
  started or kept: the next round plans them again (as OAR does).
* **Advance reservations** (a job with a ``reservation`` start time) wait,
  like OAR3's ``toSchedule`` jobs, for the round of their submission
  instant: a start in the past becomes the round's time (refused when its
  whole walltime is already past), and the reservation is accepted when its
  first moldable fits at that start in the round's slot sets -- after the
  jobs of its own and higher-priority queue groups were placed, so a waiting
  job planned there refuses it --, otherwise ``rejected``.  An accepted
  reservation holds its resources in every later round and is launched at
  its time (late, it keeps its end).  A reservation accepted to start now
  makes the round exit 1 and the simulation runs another round at once, as
  Almighty runs kao again.
* **Besteffort** jobs (queue or type ``besteffort``): the groups of the
  other queues do not see them (OAR's rule: their resources look free); the
  besteffort queue alone sees everything.  When a job about to start (by
  ``SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION`` seconds from
  now) is placed on resources a besteffort job holds, the round kills those
  besteffort jobs (status ``preempted``, in OAR3's order) and launches
  nothing (kao's exit 2); the killed jobs' resources are free at once and
  the simulation runs the next round at the same instant, which launches.
  With ``requeue_besteffort=True``, or for a job of type ``idempotent``, the
  preempted job is resubmitted as OAR3's bipbip resubmits a besteffort
  idempotent job Leon killed: a **new job** with a new id (after every
  workload id and every id issued before: FIFO puts it behind the jobs
  waiting), the same request, walltime, run time, queue and types, and the
  preempted job's submission time (OAR3's copy keeps ``submission_time``);
  the preempted job ends ``preempted``.  Records link the two
  (``resubmitted_as``, ``resubmit_of``: see :mod:`oarsched.sim.records`),
  each run belongs to the id that ran it, and the metrics count a workload
  job once, by the last record of its chain.  A job depending on the
  preempted one depends on its resubmission (OAR3 moves the dependencies
  of the jobs already submitted; a workload's dependencies name workload
  jobs, so the simulator moves every one).  Workload jobs are not
  checkpointable: a besteffort job is killed, never only signalled.
  OAR3 resubmits without limit, and with a kill duration two besteffort
  jobs can kill each other's resubmissions without end (a job planned
  within the kill duration kills the besteffort job in its way, even a
  besteffort job that will have ended by then: OAR3's rule, kept), so a
  simulation must bound it: a workload job is resubmitted at most
  ``max_resubmissions`` times (default :data:`MAX_RESUBMISSIONS`); preempted
  once more, it ends ``preempted`` (its reason says so).
* **What changed when the simulator took kao's round** (the old simulator
  had rules of its own): queues of equal priority were scheduled one after
  the other, now together; a reservation was accepted at its submission
  against running jobs and accepted reservations only, now in the round
  after the waiting jobs of its queue group and those before were placed
  (first moldable only; refused when too old); a besteffort job in the way
  was killed and the job started in the same step, now the killing round
  launches nothing and the next one, at the same instant, places and
  launches; besteffort jobs are killed the kill duration before the start;
  no job is launched on an ``Absent`` resource, and an accepted reservation
  some of whose resources are not Alive waits for them, then (after
  ``RESERVATION_WAITING_RESOURCES_TIMEOUT``) has its resources reduced, by
  kao's rules (OAR3's, trap M8 included: see docs/differences-from-oar3.md).
* **Never-fitting jobs**: a job that cannot be placed even on the empty
  platform (too many resources, beyond ``available_upto``...) or that the
  scheduler cannot understand is ``rejected`` at submission instead of
  waiting forever.
* **Accounting** (for FAIRSHARE and MULTIFACTOR): when a job ends its usage is
  added to accounting rows cut in windows of ``ACCOUNTING_WINDOW`` seconds
  (default 86400) as ``oaraccounting`` does: ``USED`` is resources x time
  held, ``ASKED`` resources x walltime.  OAR runs ``oaraccounting``
  periodically; the simulation accounts each job as it ends.
* **Dependencies** (``depends``): the waiting job sees the state of the jobs
  it needs (Waiting, Running, Terminated with exit code 0 when completed,
  Error when killed or rejected) and the engine applies OAR's rules.
* **Backfilling**: OAR's is conservative (every waiting job gets a
  reservation in its order; a later job starts earlier only when it delays
  none of them).  ``backfilling="easy"`` is the EASY baseline researchers
  compare against: jobs start in order while they can; the first that
  cannot gets a reservation, and every later job starts now only when it
  does not delay that one job (the others get no reservation).
* The job security time is ``SCHEDULER_JOB_SECURITY_TIME`` of the
  configuration given; without a configuration it is 0 (as in the library's
  :func:`oarsched.schedule`) so that hand-computed schedules are exact.
  OAR3's default is 60 s: ``oarsched simulate`` uses 60 s unless told
  otherwise, and says so.
"""
from __future__ import annotations

import dataclasses
import heapq
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from oarsched.engine.meta import (
    EXIT_BESTEFFORT_KILL,
    EXIT_OK,
    BesteffortJob,
    GanttJob,
    MemoryRound,
    MetaDecisions,
    MetaRound,
    MetaState,
)
from oarsched.engine.round import Round, RoundOptions, RoundOutcome, ordered_jobs, screen
from oarsched.engine.scheduler import (
    Assignment,
    ScheduledJob,
    Scheduler,
    ScheduleResult,
    SchedulerOptions,
)
from oarsched.errors import ConfigError
from oarsched.model.job import Dependency, Job
from oarsched.model.platform import Platform
from oarsched.oar.config import OarConfig
from oarsched.policies.sorting import AccountingRow, needs_accounting
from oarsched.sim.metrics import DEFAULT_BOUND, Comparison, Metrics, compare, compute_metrics
from oarsched.sim.records import JobRecord, Run, workload_ids, write_records
from oarsched.sim.workload import Workload, WorkloadJob, load_workload

__all__ = ["BACKFILLING", "CHECKPOINT_FORMAT", "DEFAULT_QUEUES", "MAX_RESUBMISSIONS", "SimulationResult", "Simulator",
           "simulate"]

log = logging.getLogger("oarsched.sim")

DEFAULT_QUEUES: dict[str, int] = {"admin": 10, "default": 2, "besteffort": 0}
"""OAR's stock queues and priorities."""

DEFAULT_ACCOUNTING_WINDOW = 86400

BACKFILLING = ("conservative", "easy")
"""Backfilling disciplines: OAR's (conservative) and EASY."""

Progress = Callable[[int, int], None]
"""``progress(jobs_done, jobs_total)``, called after each instant of simulated time."""

MAX_RESUBMISSIONS = 10
"""Resubmissions of one workload job a simulation allows by default (OAR3 has no limit; see the module docstring)."""

CHECKPOINT_FORMAT = 2
"""Version of the checkpoint's content (bumped when the saved run's state changes shape).
2: resubmitted besteffort jobs are new jobs; the checkpoint starts with a header naming the format."""

# event kinds, in the order they are handled within one instant
_END, _SUBMIT, _REQUEUE, _AR_START, _TICK, _WAKE = range(6)


@dataclass
class SimulationResult:
    """Outcome of a simulation: one record per job, every run, and how the run went."""

    records: list[JobRecord]
    runs: list[Run]
    platform: Platform
    workload: Workload
    rounds: int = 0
    """Scheduling rounds run (one per instant with something to schedule)."""
    full_rounds: int = 0
    """Rounds that replanned every waiting job (the others kept the last plan and placed the new jobs)."""
    skipped: list[tuple[int, int | None, str]] = field(default_factory=list)
    """Workload entries left out before simulating: ``(line, job id, reason)``."""
    config: OarConfig | None = None
    """The configuration the run used (ordering policy, security time...)."""
    interrupted_at: int | None = None
    """Simulated time the run was stopped at (None: it ran to its end)."""

    @property
    def resources(self) -> int:
        """Schedulable resources of the platform (the utilization's denominator)."""
        return int(self.platform.schedulable.sum())

    def record(self, job_id: int) -> JobRecord:
        """The record of one job (KeyError for an unknown id)."""
        for r in self.records:
            if r.id == job_id:
                return r
        raise KeyError(job_id)

    def chain(self, workload_id: int) -> list[JobRecord]:
        """A workload job's records: its own, then its resubmissions in order (the last holds its outcome)."""
        out = [self.record(workload_id)]
        while out[-1].resubmitted_as is not None:
            out.append(self.record(out[-1].resubmitted_as))
        return out

    @cached_property
    def _workload_ids(self) -> dict[int, int]:
        return workload_ids(self.records)

    @cached_property
    def _specs(self) -> dict[int, WorkloadJob]:
        return {j.id: j for j in self.workload.jobs}

    def workload_job(self, job_id: int) -> WorkloadJob:
        """The workload job a job id runs: its own, or for a resubmission the one it resubmits (KeyError for
        an unknown id)."""
        return self._specs[self._workload_ids.get(job_id, job_id)]

    def metrics(self, bound: int = DEFAULT_BOUND) -> Metrics:
        """Wait, slowdown, utilization... (see :mod:`oarsched.sim.metrics`)."""
        return compute_metrics(self.records, self.resources, runs=self.runs, bound=bound)

    def compare(self, other: SimulationResult | Sequence[JobRecord], names: tuple[str, str] = ("A", "B"),
                bound: int = DEFAULT_BOUND, other_resources: int | None = None) -> Comparison:
        """This run (A) against another one (B): a result, or records read from a file.

        B's utilization is computed on B's platform for a result, else on
        ``other_resources`` (default: this run's platform).
        """
        if isinstance(other, SimulationResult):
            return compare(self.records, other.records, self.resources, names=names, bound=bound,
                           runs_a=self.runs, runs_b=other.runs, resources_b=other.resources)
        return compare(self.records, list(other), self.resources, names=names, bound=bound, runs_a=self.runs,
                       resources_b=other_resources)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the records as CSV, or JSON for a ``.json`` path."""
        write_records(self.records, path)

    def check(self) -> list[str]:
        """Invariants of the run, as readable problems (empty when all hold).

        No two runs share a resource at the same time (unless the jobs may
        share it: timesharing, placeholders), no job starts before its
        submission or ends before its start, no run uses an unknown resource.
        """
        from oarsched.engine.checks import overlaps
        from oarsched.engine.scheduler import ScheduleResult

        problems = []
        for r in self.records:
            if r.start is not None and r.start < r.submit:
                problems.append(f"job {r.id} starts at {r.start} before its submission at {r.submit}")
            if r.start is not None and r.end is not None and r.end < r.start:
                problems.append(f"job {r.id} ends at {r.end} before its start at {r.start}")
        spans = []
        for run in self.runs:
            spec = self.workload_job(run.job_id)
            unknown = [rid for rid in run.resources if rid not in self.platform.roid_of]
            if unknown:
                problems.append(f"job {run.job_id} ran on unknown resources {unknown[:5]}")
            spans.append(ScheduledJob(id=run.job_id, start_time=run.start, walltime=run.end - run.start,
                                      resources=run.resources, types=spec.types, user=spec.user, name=spec.name))
        problems += overlaps(self.platform, [], ScheduleResult(), spans)
        return problems


@dataclass(eq=False)
class _SimJob:
    """A job's state during the simulation."""

    spec: WorkloadJob
    job: Job | None = None
    """The engine's view of the job, from its submission to its end (not kept longer: memory)."""
    state: str = "pending"  # pending -> waiting | reserved -> running -> done
    status: str = ""
    reason: str = ""
    start: int | None = None
    end: int | None = None
    resources: list[int] = field(default_factory=list)
    moldable_id: int = 0
    preemptions: int = 0
    run_no: int = 0
    reserved_start: int | None = None
    scheduled: ScheduledJob | None = None
    resubmit_of: int | None = None
    """The id of the job this one resubmits (None for a workload job)."""
    resubmitted_as: int | None = None

    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def engine(self) -> Job:
        """:attr:`job`, asked for only while it is set (from the job's submission to its end)."""
        assert self.job is not None, f"job {self.spec.id}: no engine job before its submission or after its end"
        return self.job

    @property
    def requeues(self) -> bool:
        return "idempotent" in self.spec.types


class Simulator:
    """Replays workloads on one platform with one configuration (see the module docstring).

    ``config``: an :class:`~oarsched.oar.config.OarConfig`, a mapping of
    oar.conf keys, or None (defaults with a job security time of 0).
    ``queues``: ``{name: priority}`` (default: OAR's ``admin`` 10,
    ``default`` 2, ``besteffort`` 0); queues of equal priority are scheduled
    in the order given.  ``quotas``: OAR3's quotas rules as a dict (or a
    :class:`~oarsched.quotas.QuotasConfig`); by default ``QUOTAS=yes``
    in the configuration reads ``QUOTAS_CONF_FILE``.  ``plugins``: the
    :class:`~oarsched.plugins.PluginRegistry` resolving ``find=``/``assign=``
    job types (default: the scheduler's, from the installed entry points);
    CUSTOM orderings come from ``JOB_PRIORITY=CUSTOM`` in ``config``.
    ``backfilling``: ``"conservative"`` (OAR's) or ``"easy"``.
    ``requeue_besteffort``: resubmit every preempted besteffort job (as OAR3
    does for the ``idempotent`` ones), each workload job at most
    ``max_resubmissions`` times (None: no limit, OAR3's, which may not end).
    ``incremental``: reuse the last round's plan when it cannot change (see
    :meth:`_Run.can_extend`), and keep compiled requests and running jobs'
    resource sets between rounds; False replans every waiting job from
    scratch at every event (the same records, slower: the tests compare both).
    """

    def __init__(self, platform: Platform, *, config: OarConfig | Mapping[str, Any] | None = None,
                 queues: Mapping[str, int] | None = None, quotas: Any = None, period: int | None = None,
                 requeue_besteffort: bool = False, plugins: Any = None,
                 backfilling: str = "conservative", incremental: bool = True,
                 max_resubmissions: int | None = MAX_RESUBMISSIONS) -> None:
        if backfilling not in BACKFILLING:
            raise ConfigError(f"backfilling must be one of {', '.join(BACKFILLING)}, got {backfilling!r}")
        self.backfilling = backfilling
        self.incremental = incremental
        self.platform = platform
        self.config = _config(config)
        self.config.validate()
        self.queues = dict(DEFAULT_QUEUES if queues is None else queues)
        if not self.queues:
            raise ConfigError("a simulation needs at least one queue")
        self.queue_order = sorted(self.queues, key=lambda q: -self.queues[q])
        self.groups: list[list[str]] = []
        """Queues of equal priority, scheduled together (OAR3's queue groups), higher priority first."""
        for queue in self.queue_order:
            if self.groups and self.queues[self.groups[-1][0]] == self.queues[queue]:
                self.groups[-1].append(queue)
            else:
                self.groups.append([queue])
        if period is not None and period <= 0:
            raise ConfigError(f"the scheduling period must be positive, got {period}")
        self.period = period
        self.requeue_besteffort = requeue_besteffort
        if max_resubmissions is not None and max_resubmissions < 0:
            raise ConfigError(f"max_resubmissions must be >= 0 (or None: no limit), got {max_resubmissions}")
        self.max_resubmissions = max_resubmissions
        self.max_jobs = self.config.max_jobs_per_round
        self.sorting = self.config.sorting_settings()
        self.accounting_window = int(self.config.get("ACCOUNTING_WINDOW", DEFAULT_ACCOUNTING_WINDOW) or
                                     DEFAULT_ACCOUNTING_WINDOW)
        quota_state = _quota_state(quotas, self.config, platform)
        self.extendable = (incremental and backfilling == "conservative" and quota_state is None
                           and self.config.job_priority == "FIFO")
        """Whether a plan may be kept between rounds: a time-independent order (FIFO: by job id) and no
        quotas calendar, so that a plan made earlier is the plan a later round would make."""
        sec = self.config.job_security_time
        self.kill_duration = self.config.get_int("SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION") \
            if "SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION" in self.config else 0
        self.reservation_timeout = self.config.get_int("RESERVATION_WAITING_RESOURCES_TIMEOUT") \
            if "RESERVATION_WAITING_RESOURCES_TIMEOUT" in self.config else 300
        extra = {} if plugins is None else {"plugins": plugins}
        options = SchedulerOptions(job_security_time=sec, quotas=quota_state)
        self.scheduler = Scheduler(platform, options, **extra)
        self.besteffort_scheduler = Scheduler(
            platform, SchedulerOptions(job_security_time=sec, quotas=quota_state, besteffort_round=True), **extra)
        self.empty_scheduler = Scheduler(platform, SchedulerOptions(job_security_time=sec), **extra)
        for scheduler in (self.scheduler, self.besteffort_scheduler):
            scheduler.keep_between_rounds = incremental
        """Places one job alone, to tell jobs that can never fit."""
        self.absent = {r.id for r in platform.resources if r.state == "Absent"}
        """Resources whose jobs wait (OAR3 launches no job on an Absent resource)."""
        self.first_upto = min((r.available_upto for r in platform.resources), default=2**31 - 1)

    # -- public API ---------------------------------------------------------------------
    def run(self, workload: Workload | Iterable[WorkloadJob], *, until: int | None = None,
            progress: Progress | None = None, stop: Callable[[], bool] | None = None,
            checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: float = 60.0,
            resume: bool = False, on_close: Callable[[JobRecord], None] | None = None) -> SimulationResult:
        """Simulate ``workload`` until every job is done (or until time ``until``).

        Interrupted runs keep what they did: ``stop()`` is asked between two
        instants of simulated time (the command line's Ctrl-C sets it); when
        it says yes the run ends there (``result.interrupted``; jobs running
        then are ``running``, jobs waiting ``not_started``).  ``checkpoint``:
        a file the run's state is saved to every ``checkpoint_every`` seconds
        of wall time and when stopped; ``resume=True`` starts from that file
        (same workload and simulator, or a :class:`ConfigError`).
        ``on_close(record)`` is called as each job ends (records written as
        the run goes).
        """
        if not isinstance(workload, Workload):
            workload = Workload(jobs=list(workload))
        self._check_queues(workload)
        run = _Run.restore(self, workload, checkpoint) if resume else _Run(self, workload, progress)
        run.progress, run.on_close = progress, on_close
        run.loop(until, stop=stop, checkpoint=checkpoint, every=checkpoint_every)
        return run.result()

    def fingerprint(self, workload: Workload) -> dict[str, Any]:
        """What a checkpoint must match to be resumed, by name: the code that wrote it (the package
        version, the checkpoint format), the jobs, the platform, the configuration and the options."""
        import hashlib

        from oarsched import __version__

        digest = hashlib.sha256()
        for job in workload.jobs:
            digest.update(f"{job.id},{job.submit},{job.runtime},{job.walltime},{job.request},{job.queue};".encode())
        config = sorted((k, str(v)) for k, v in self.config.values.items())
        return {"oarsched version": __version__, "checkpoint format": CHECKPOINT_FORMAT,
                "workload": digest.hexdigest(),
                "platform": (len(self.platform.resources), tuple(self.platform.rids.tolist()[:64])),
                "configuration": hashlib.sha256(repr(config).encode()).hexdigest(),
                "options": (self.backfilling, self.period, self.requeue_besteffort, self.max_resubmissions,
                            tuple(self.queue_order))}

    def _check_queues(self, workload: Workload) -> None:
        for job in workload.jobs:
            if job.queue not in self.queues:
                raise ConfigError(f"job {job.id} is in queue {job.queue!r} which is not defined "
                                  f"(queues: {', '.join(self.queue_order)}); define it with queues={{...}} "
                                  "or --queues NAME=PRIORITY,...")


_CODE = ("oarsched version", "checkpoint format")
"""The fingerprint's parts naming the code that wrote a checkpoint."""


def _check_fingerprint(path: str, saved: Any, expected: dict[str, Any]) -> None:
    """A clear :class:`ConfigError` naming what differs when a checkpoint is not of this run and this code."""
    if not isinstance(saved, dict) or not all(k in saved for k in _CODE):
        raise ConfigError(f"{path}: the checkpoint was written by another oarsched (before checkpoint format "
                          f"{CHECKPOINT_FORMAT}, which this one reads): run the simulation again without resuming")
    if any(saved[k] != expected[k] for k in _CODE):
        raise ConfigError(f"{path}: the checkpoint was written by oarsched {saved['oarsched version']} (checkpoint "
                          f"format {saved['checkpoint format']}); this is oarsched {expected['oarsched version']} "
                          f"(checkpoint format {expected['checkpoint format']}): run the simulation again without "
                          "resuming")
    differs = [k for k in expected if saved.get(k) != expected[k]]
    if differs:
        raise ConfigError(f"{path}: the checkpoint is of another workload, platform or configuration "
                          f"({', '.join(differs)} {'differs' if len(differs) == 1 else 'differ'}): resume with the "
                          "same arguments as the interrupted run")


def _config(config: OarConfig | Mapping[str, Any] | None) -> OarConfig:
    if config is None:
        return OarConfig.from_mapping({"SCHEDULER_JOB_SECURITY_TIME": 0})
    if isinstance(config, OarConfig):
        return config
    return OarConfig.from_mapping(dict(config))


def _quota_state(quotas: Any, config: OarConfig, platform: Platform):
    from oarsched.engine.quotas import QuotaState

    if quotas is not None:
        return QuotaState.from_rules(quotas, platform)
    settings = config.quotas_settings()
    return None if settings is None else QuotaState.from_settings(settings, platform)


class _Run:
    """One simulation: the event queue and the jobs' states."""

    def __init__(self, sim: Simulator, workload: Workload, progress: Progress | None) -> None:
        self.sim = sim
        self.workload = workload
        self.progress = progress
        self.jobs: dict[int, _SimJob] = {}
        for spec in workload.jobs:
            self.jobs[spec.id] = _SimJob(spec=spec)
        self.next_id = max(self.jobs, default=0) + 1
        """The id of the next resubmission (after every workload id and every id issued)."""
        self.waiting: dict[str, dict[int, _SimJob]] = {q: {} for q in sim.queue_order}
        self.running: dict[int, _SimJob] = {}
        self.new_reservations: dict[str, dict[int, _SimJob]] = {q: {} for q in sim.queue_order}  # toSchedule
        self.reserved: dict[int, ScheduledJob] = {}  # accepted reservations not started yet
        self.reserved_gantt: dict[int, GanttJob] = {}  # the same, as the meta round sees them
        self.besteffort: dict[int, BesteffortJob] = {}  # running besteffort jobs
        self.runs: list[Run] = []
        self.rounds = 0
        self.full_rounds = 0
        self.planned: dict[int, Assignment] = {}  # the last plan of the waiting jobs
        self.planned_as: dict[int, ScheduledJob] = {}  # the same, as the engine sees them (made once)
        self.plan_valid = False  # nothing happened since that plan that could change it
        self.fresh: list[_SimJob] = []  # jobs queued since that plan
        self.on_close: Callable[[JobRecord], None] | None = None
        self.interrupted_at: int | None = None
        self.kept_by: tuple[tuple[str, ...], Round] | None = None  # the group and the round holding the plan
        self.done = 0
        self.events: list[tuple[int, int, int, Any]] = []
        self.seq = 0
        self.wake_generation = 0
        self.fits_cache: dict[tuple, str] = {}
        self.rid_objs: list[int] = sim.platform.rids.tolist()
        """One int object per resource id, shared by every job's resource list (memory)."""
        self.need_cache: dict[int, int] = {}
        self.accounting = _Accounting(sim.accounting_window, sim.config.fairsharing_window_size
                                      if needs_accounting(sim.config) else 0)
        for spec in workload.jobs:
            self.push(spec.submit, _SUBMIT, spec.id)
        if sim.period and workload.jobs:
            self.push(workload.jobs[0].submit, _TICK, None)

    # -- events --------------------------------------------------------------------------
    def push(self, time: int, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (time, kind, self.seq, payload))

    def loop(self, until: int | None, *, stop: Callable[[], bool] | None = None,
             checkpoint: str | os.PathLike[str] | None = None, every: float = 60.0) -> None:
        import time

        saved = time.monotonic()
        while self.events:
            now = self.events[0][0]
            if until is not None and now > until:
                break
            if stop is not None and stop():
                self.interrupted_at = now
                if checkpoint is not None:
                    self.save(checkpoint)
                until = now - 1  # what is running then keeps running; the rest never started
                break
            if self.handle_instant(now):
                self.schedule(now)
            if self.progress is not None:
                self.progress(self.done, len(self.jobs))
            if checkpoint is not None and time.monotonic() - saved >= every:
                self.save(checkpoint)
                saved = time.monotonic()
        self.finish(until)

    # -- checkpoints ---------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("sim", "progress", "on_close", "workload"):
            state.pop(name, None)
        state["kept_by"] = None  # slot sets stay in memory: a resumed run builds them again
        return state

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fingerprint, then the run's state (atomically: a crash while writing keeps the previous
        checkpoint).  Two pickles: the fingerprint is read, and checked, before the state."""
        import pickle

        target = os.fspath(path)
        with open(target + ".tmp", "wb") as fh:
            pickle.dump(self.sim.fingerprint(self.workload), fh, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(target + ".tmp", target)

    @classmethod
    def restore(cls, sim: Simulator, workload: Workload, path: str | os.PathLike[str] | None) -> _Run:
        import pickle

        if path is None:
            raise ConfigError("resuming needs the checkpoint file the interrupted run wrote")
        try:
            with open(path, "rb") as fh:
                _check_fingerprint(os.fspath(path), pickle.load(fh), sim.fingerprint(workload))
                run = pickle.load(fh)
        except OSError as exc:
            raise ConfigError(f"{os.fspath(path)}: cannot read the checkpoint: {exc.strerror or exc}") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, ImportError) as exc:
            raise ConfigError(f"{os.fspath(path)}: not a simulation checkpoint ({exc})") from None
        if not isinstance(run, _Run):
            raise ConfigError(f"{os.fspath(path)}: not a simulation checkpoint (no run state after its fingerprint)")
        run.sim, run.workload = sim, workload
        run.interrupted_at = None
        return run

    def handle_instant(self, now: int) -> bool:
        """Handle every event at ``now``; True when a scheduling round is due."""
        due = False
        while self.events and self.events[0][0] == now:
            _, kind, _, payload = heapq.heappop(self.events)
            if kind == _END:
                job_id, run_no = payload
                job = self.jobs[job_id]
                if job.state == "running" and job.run_no == run_no:
                    self.end(job, now)
                    self.plan_valid = False
                    due = True
            elif kind == _SUBMIT:
                self.submit(self.jobs[payload], now)
                due = True
            elif kind in (_REQUEUE, _AR_START):
                self.plan_valid = False
                due = True
            elif kind == _TICK:
                due = True
                if self.sim.period and (self.events or self.running or self.reserved):
                    self.push(now + self.sim.period, _TICK, None)
            elif kind == _WAKE:
                due = due or payload == self.wake_generation
        return due

    # -- job life ------------------------------------------------------------------------
    def submit(self, job: _SimJob, now: int) -> None:
        job.job = _engine_job(job.spec)
        if job.spec.reservation is not None:  # accepted or refused by the next meta round (toSchedule)
            job.state = "to_schedule"
            self.new_reservations[job.spec.queue][job.id] = job
            self.plan_valid = False
            return
        why = self.never_fits(job, now)
        if why:
            self.close(job, "rejected", why)
            return
        job.state = "waiting"
        self.waiting[job.spec.queue][job.id] = job
        self.fresh.append(job)

    def never_fits(self, job: _SimJob, now: int) -> str:
        """Why the job can never be placed, even on the empty platform ("" when it can).

        Cached by request shape; the walltime is part of the key only when it
        reaches a resource's ``available_upto``.
        """
        if "inner" in job.spec.types:
            return ""
        sec = self.sim.config.job_security_time
        reaches_upto = now + job.spec.walltime + sec >= self.sim.first_upto
        key = (tuple((m.walltime if reaches_upto else 0, tuple((tuple(g.levels), g.property) for g in m.groups))
                     for m in job.engine.moldables), job.engine.properties)
        if key not in self.fits_cache:
            probe = Job(id=job.id, moldables=job.engine.moldables, properties=job.engine.properties, queue=job.spec.queue)
            result = self.sim.empty_scheduler.schedule([probe], now)
            if job.id in result.errors:
                why = result.errors[job.id]
            elif job.id in result.assignments:
                why = ""
            else:
                why = "never fits the platform, even empty: " + result.unscheduled.get(job.id, "no place")
            self.fits_cache[key] = why
        return self.fits_cache[key]

    def start(self, job: _SimJob, now: int, resources: list[int], moldable_id: int, walltime: int) -> None:
        self.waiting[job.spec.queue].pop(job.id, None)
        self.planned.pop(job.id, None)
        self.planned_as.pop(job.id, None)
        self.reserved.pop(job.id, None)
        self.reserved_gantt.pop(job.id, None)
        job.state = "running"
        job.start = now
        job.resources = resources
        job.moldable_id = moldable_id
        job.run_no += 1
        job.scheduled = ScheduledJob(
            id=job.id, start_time=now, walltime=walltime, resources=np.asarray(resources, dtype=np.int64),
            moldable_id=moldable_id,
            types=job.engine.types, user=job.spec.user, project=job.spec.project, queue=job.spec.queue,
            name=job.spec.name, state="Running")
        self.running[job.id] = job
        if job.spec.besteffort:
            self.besteffort[job.id] = BesteffortJob(job.id, resources)
        self.push(now + min(job.spec.runtime, walltime), _END, (job.id, job.run_no))

    def end(self, job: _SimJob, now: int) -> None:
        walltime = now - _started(job)
        killed = job.spec.runtime > walltime
        self.release(job, now, "killed" if killed else "completed")
        self.account(job, now)
        self.close(job, "killed" if killed else "completed",
                   f"walltime {walltime}s reached before the run time {job.spec.runtime}s" if killed else "")

    def preempt(self, job: _SimJob, now: int, by: int | None) -> None:
        """Kill a running besteffort job; resubmit it when asked to (see the module docstring)."""
        self.release(job, now, "preempted")
        self.account(job, now)
        job.preemptions += 1
        reason = f"preempted at {now} by job {by}" if by is not None else f"preempted at {now}"
        if not (self.sim.requeue_besteffort or job.requeues):
            self.close(job, "preempted", reason)
        elif self.sim.max_resubmissions is not None and job.preemptions > self.sim.max_resubmissions:
            self.close(job, "preempted", f"{reason}, not resubmitted: resubmitted {self.sim.max_resubmissions} "
                                         "times already (max_resubmissions)")
        else:
            job.resubmitted_as = self.next_id
            self.close(job, "preempted", f"{reason}, resubmitted as job {self.next_id}")
            self.resubmit(job, now)

    def resubmit(self, job: _SimJob, now: int) -> None:
        """Submit a copy of a preempted job, as OAR3's ``resubmit_job``: a new id, the same submission time."""
        spec = dataclasses.replace(job.spec, id=self.next_id, types=dict(job.spec.types))
        self.next_id += 1
        copy = self.jobs[spec.id] = _SimJob(spec=spec, resubmit_of=job.id, preemptions=job.preemptions)
        self.submit(copy, now)
        self.push(now, _REQUEUE, spec.id)

    def release(self, job: _SimJob, now: int, outcome: str) -> None:
        self.plan_valid = False
        started = _started(job)
        self.running.pop(job.id, None)
        self.besteffort.pop(job.id, None)
        job.end = now
        self.runs.append(Run(job.id, started, now, tuple(job.resources), outcome))

    def close(self, job: _SimJob, status: str, reason: str) -> None:
        job.state = "done"
        job.job = None
        job.status = status
        job.reason = reason
        self.done += 1
        if self.on_close is not None:
            self.on_close(self.record(job))

    # -- the round -----------------------------------------------------------------------
    def scheduled_now(self) -> list[ScheduledJob]:
        """Running jobs and accepted reservations, as the engine sees jobs already in the gantt."""
        return [j.scheduled for j in self.running.values() if j.scheduled is not None] + list(self.reserved.values())

    def schedule(self, now: int) -> None:
        """Meta rounds at ``now`` until one ends normally (OAR3's exit 0).

        A round that kills besteffort jobs launches nothing (exit 2), one that
        accepts a reservation starting now asks for another (exit 1): Almighty
        runs kao again at once, so does the simulation, at the same instant.
        """
        for _ in range(len(self.besteffort) + 3):
            if self.meta_round(now) == EXIT_OK:
                return

    def meta_round(self, now: int) -> int:
        """One meta-scheduler round at ``now`` (kao's, :class:`_SimRound`): plan, reservations, launches, kills."""
        planning = any(self.waiting.values())
        if not (planning or any(self.new_reservations.values()) or self.reserved):
            self.fresh = []
            return EXIT_OK
        extend = planning and self.can_extend()
        rnd = _SimRound(self, now, extend)
        if planning:
            self.rounds += 1
            self.full_rounds += not extend
        d = rnd.run()
        if planning and not extend:
            self.planned = dict(d.placed)
            self.planned_as = {}
            self.plan_valid = self.sim.extendable and len(d.placed) == sum(map(len, self.waiting.values()))
        self.fresh = []
        self.reservations(now, d)
        if d.exit_code == EXIT_BESTEFFORT_KILL:
            checkpointed = set(d.checkpointed)
            for be in d.killed:
                if be.id not in checkpointed:
                    by = next((c.id for c in rnd.candidates if not set(be.resources).isdisjoint(c.resources)), None)
                    self.preempt(self.jobs[be.id], now, by=by)
        else:
            self.launch(now, d)
        self.wake(now, d)
        return d.exit_code

    def reservations(self, now: int, d: MetaDecisions) -> None:
        """New reservations accepted or refused; accepted ones expired, or pushed to wait for resources."""
        for job_id, message in d.refused.items():
            job = self.jobs[job_id]
            self.new_reservations[job.spec.queue].pop(job_id)
            why = f"reservation refused: {message}"
            if message == "This advance reservation cannot run":
                why += f": its resources are not free at {max(now, job.spec.reservation or 0)}"
            self.close(job, "rejected", why)
        for job_id, g in d.accepted.items():
            job = self.jobs[job_id]
            self.new_reservations[job.spec.queue].pop(job_id)
            job.state = "reserved"
            job.reserved_start = g.start_time
            self.reserved_gantt[job_id] = g
            self.reserved[job_id] = job.scheduled = ScheduledJob(
                id=job_id, start_time=g.start_time, walltime=job.spec.walltime, resources=g.resources,
                moldable_id=g.moldable_id, types=job.engine.types, user=job.spec.user, project=job.spec.project,
                queue=job.spec.queue, name=job.spec.name, state="Waiting")
            self.plan_valid = False  # the plan was made before it
            self.push_reservation(g.start_time, job_id, now)
        for job_id in d.expired:
            self.reserved.pop(job_id, None)
            self.reserved_gantt.pop(job_id, None)
            self.close(self.jobs[job_id], "rejected", f"reservation expired at {now} and couldn't be started")
        for job_id, g in d.reservations.items():
            old = self.reserved_gantt.get(job_id)
            if old is not None and (old.start_time, old.resources) != (g.start_time, g.resources):
                self.reserved_gantt[job_id] = g
                s = self.reserved[job_id]
                s.start_time, s.resources = g.start_time, g.resources
                self.plan_valid = False
                self.push_reservation(g.start_time, job_id, now)

    def push_reservation(self, start: int, job_id: int, now: int) -> None:
        """Wake at a reservation's start, and when the besteffort jobs in its way are killed."""
        self.push(start, _AR_START, job_id)
        if self.sim.kill_duration and start - self.sim.kill_duration > now:
            self.push(start - self.sim.kill_duration, _AR_START, job_id)

    def launch(self, now: int, d: MetaDecisions) -> None:
        """Start the jobs the round launches (a late reservation keeps its end: its walltime shrinks)."""
        platform, rid_objs, sec = self.sim.platform, self.rid_objs, self.sim.config.job_security_time
        for g in d.launched:
            job = self.jobs[g.id]
            a = d.placed.get(g.id)
            roids = a.roids if a is not None else platform.roids(g.resources, schedulable_only=False)
            walltime = job.spec.walltime if g.reservation != "Scheduled" else min(job.spec.walltime, g.walltime - sec)
            self.start(job, now, [rid_objs[i] for i in roids.tolist()], g.moldable_id, walltime)

    def wake(self, now: int, d: MetaDecisions) -> None:
        """The next round: the first planned start (earlier by the kill duration, to kill besteffort jobs)."""
        kd = self.sim.kill_duration
        later = [a.start_time for a in d.placed.values() if a.start_time > now]
        self.wake_generation += 1
        if later:
            first = min(later)
            if kd:
                first = min(s - kd if s - kd > now else s for s in later)
            self.push(first, _WAKE, self.wake_generation)

    def schedule_group(self, rnd: _SimRound, queues: list[str], now: int) -> None:
        """A queue group's jobs placed in the round's shared slot sets (conservative) or by EASY."""
        waiting: dict[int, _SimJob] = {}
        for queue in queues:
            waiting.update(self.waiting[queue])
        if not waiting:
            return
        jobs = sorted(self.waiting_jobs(waiting), key=lambda j: j.id)
        if self.sim.backfilling == "easy":
            scheduler = self.sim.besteffort_scheduler if queues == ["besteffort"] else self.sim.scheduler
            held = self.scheduled_now() + [self.as_scheduled(self.jobs[jid], a, a.start_time, "Waiting")
                                           for jid, a in rnd.decisions.placed.items()]
            result = self.schedule_easy(scheduler, jobs, queues, now, held)
            outcome = RoundOutcome(result, jobs)
            rnd.meta.round.add_scheduled(self.as_scheduled(self.jobs[jid], a, a.start_time, "Waiting")
                                         for jid, a in result.assignments.items())
        else:
            outcome = rnd.meta.schedule_group(jobs, self.round_options(queues, now))
            self.kept_by = (tuple(queues), rnd.meta.round) if self.sim.extendable else None
        for job_id, why in (*outcome.skipped.items(), *outcome.result.unscheduled.items()):
            waiting[job_id].reason = why  # a job skipped by the screen (dependency cycle) keeps waiting
        for job_id, error in outcome.result.errors.items():
            job = waiting[job_id]
            self.waiting[job.spec.queue].pop(job_id)
            self.close(job, "rejected", error)
        rnd.record(outcome)

    def can_extend(self) -> bool:
        """Whether a full round now would keep the last plan and only place the jobs queued since.

        True when nothing but submissions (and wake-ups) happened since that
        plan, every waiting job had a place in it, no reservation waits to be
        accepted, and each new job comes last in the FIFO order of its queue
        group (a higher id), in a group with no older job waiting in a group
        of lower priority, depends on no job, and no round cap cuts the group:
        the earlier jobs then see the same platform, the same jobs before
        them, and get the same places (a plan made at an earlier time holds
        for any later time before its first start, which is when the next
        round is woken).
        """
        if not (self.sim.extendable and self.plan_valid) or any(self.new_reservations.values()):
            return False
        fresh_ids = {j.id for j in self.fresh}
        cap = self.sim.max_jobs
        seen_fresh = False
        for group in self.sim.groups:
            waiting = [jid for q in group for jid in self.waiting[q]]
            new = [j for j in self.fresh if j.spec.queue in group and j.id in self.waiting[j.spec.queue]]
            older = [jid for jid in waiting if jid not in fresh_ids]
            if older and seen_fresh:
                return False
            if new and (any(j.spec.depends for j in new) or (older and min(j.id for j in new) < max(older))
                        or (cap is not None and len(waiting) > cap)):
                return False
            seen_fresh = seen_fresh or bool(new)
        return True

    def extend_plan(self, now: int) -> dict[int, Assignment]:
        """The last plan, with the jobs queued since placed after it (see :meth:`can_extend`).

        With one queue group waiting, the last round (whose slot sets hold the
        whole plan) is continued at ``now``; otherwise a round is built from
        the running jobs and the plan.
        """
        groups = [tuple(g) for g in self.sim.groups if any(self.waiting[q] for q in g)]
        kept = self.kept_by if self.kept_by is not None and groups == [self.kept_by[0]] else None
        scheduled: list[ScheduledJob] = []
        if kept is None:
            for jid, a in self.planned.items():
                if jid not in self.planned_as:
                    self.planned_as[jid] = self.as_scheduled(self.jobs[jid], a, a.start_time, "Waiting")
            scheduled = self.scheduled_now() + list(self.planned_as.values())
        self.kept_by = None
        for group in groups:
            new = sorted((j for j in self.fresh if j.spec.queue in group and j.state == "waiting"), key=lambda j: j.id)
            if not new:
                continue
            skipped: dict[int, str] = {}
            jobs = screen([j.engine for j in new], skipped)  # as a full round screens them
            for job_id, why in skipped.items():
                self.jobs[job_id].reason = why
                self.plan_valid = False
            if kept is not None:  # the last round's slot sets hold the plan: place the new jobs in them
                result = kept[1].place_more(jobs, now)
                self.kept_by = kept
            else:
                scheduler = self.sim.besteffort_scheduler if group == ("besteffort",) else self.sim.scheduler
                rnd = Round(scheduler, now, scheduled, round_ids=[j.id for j in jobs])
                for job in jobs:
                    rnd.place(job)
                result = rnd.result
                self.kept_by = (group, rnd) if len(groups) == 1 and rnd.quotas is None else None
            for job_id, why in result.unscheduled.items():
                self.jobs[job_id].reason = why
                self.plan_valid = False
            for job_id, error in result.errors.items():
                queue = self.jobs[job_id].spec.queue
                self.close(self.waiting[queue].pop(job_id), "rejected", error)
            for job_id, a in result.assignments.items():
                self.planned[job_id] = a
                if kept is None:
                    self.planned_as[job_id] = self.as_scheduled(self.jobs[job_id], a, a.start_time, "Waiting")
                    scheduled.append(self.planned_as[job_id])
        return dict(self.planned)

    def schedule_easy(self, scheduler: Scheduler, waiting: list[Job], queues: list[str], now: int,
                      scheduled: list[ScheduledJob]) -> ScheduleResult:
        """EASY backfilling: in order, start what can start now; only the first job that cannot is reserved.

        The jobs are ordered, capped and screened as a round does.  Until that
        first job (the head), EASY and conservative backfilling decide alike,
        so one conservative pass places the jobs before it; the jobs after it
        are tried one by one against the head's reservation only, and not at
        all once no resource is free now.
        """
        out = ScheduleResult()
        options = self.round_options(queues, now)
        jobs, _karma = ordered_jobs(waiting, options)
        if options.max_jobs is not None:
            jobs = jobs[:options.max_jobs]
        skipped: dict[int, str] = {}
        jobs = screen(jobs, skipped)
        out.unscheduled.update(skipped)
        held = list(scheduled)
        result = scheduler.schedule(jobs, now, held)
        head_at = len(jobs)
        for i, job in enumerate(jobs):
            a = result.assignments.get(job.id)
            if a is None:
                self._easy_unplaced(out, result, job.id)
                continue
            out.assignments[job.id] = a
            held.append(self.as_scheduled(self.jobs[job.id], a, a.start_time, "Waiting"))
            if a.start_time > now:
                head_at = i
                break
        free = self._free_now(held, now)
        for job in jobs[head_at + 1:]:
            if free < self._easy_need(job):
                out.unscheduled[job.id] = "EASY backfilling: fewer than the resources it needs are free now"
                continue
            result = scheduler.schedule([job], now, held)
            a = result.assignments.get(job.id)
            if a is None:
                self._easy_unplaced(out, result, job.id)
            elif a.start_time > now:
                out.unscheduled[job.id] = f"EASY backfilling: would delay job {jobs[head_at].id}, the first in line"
            else:
                out.assignments[job.id] = a
                held.append(self.as_scheduled(self.jobs[job.id], a, a.start_time, "Waiting"))
                free -= len(a.resources)
        return out

    @staticmethod
    def _easy_unplaced(out: ScheduleResult, result: ScheduleResult, job_id: int) -> None:
        if job_id in result.errors:
            out.errors[job_id] = result.errors[job_id]
        else:
            out.unscheduled[job_id] = result.unscheduled.get(job_id, "no place")

    def _free_now(self, held: list[ScheduledJob], now: int) -> int:
        """Schedulable resources no held job occupies at ``now``."""
        busy: set[int] = set()
        for s in held:
            if s.start_time <= now:
                busy.update(s.resources)
        roid_of = self.sim.platform.roid_of
        schedulable = self.sim.platform.schedulable
        return int(schedulable.sum()) - sum(1 for rid in busy if rid in roid_of and schedulable[roid_of[rid]])

    def _easy_need(self, job: Job) -> int:
        """A lower bound of the resources the job needs now (0 when unknown or when it may share them)."""
        if "timesharing" in job.types:
            return 0
        if job.id not in self.need_cache:
            from oarsched.sim.formats import requested_resources

            self.need_cache[job.id] = requested_resources(self.jobs[job.id].spec.request)
        return self.need_cache[job.id]

    def waiting_jobs(self, waiting: dict[int, _SimJob]) -> list[Job]:
        """The queue's waiting jobs, with their dependencies' states."""
        for job in waiting.values():
            if job.spec.depends:
                job.engine.dependencies = [self.dependency(d) for d in job.spec.depends]
        return [j.engine for j in waiting.values()]

    def round_options(self, queues: list[str], now: int) -> RoundOptions:
        """A queue group's round: the policy's order, capped; no never-fit check (done at submission)."""
        return RoundOptions(now=now, queues=list(queues), ordering=self.sim.sorting,
                            accounting=lambda _start, at: self.accounting_list(at), max_jobs=self.sim.max_jobs,
                            max_explained=0)

    def dependency(self, job_id: int) -> Dependency:
        dep = self.jobs[job_id]
        while dep.resubmitted_as is not None:  # a dependency on a resubmitted job is on its resubmission
            dep = self.jobs[dep.resubmitted_as]
            job_id = dep.id
        if dep.state in ("pending", "waiting", "to_schedule", "reserved"):
            return Dependency(job_id, "Waiting")
        if dep.state == "running":
            return Dependency(job_id, "Running")
        if dep.status == "completed":
            return Dependency(job_id, "Terminated", 0)
        return Dependency(job_id, "Error")

    def as_scheduled(self, job: _SimJob, a: Assignment, start: int, state: str) -> ScheduledJob:
        return ScheduledJob(id=job.id, start_time=start, walltime=job.spec.walltime, resources=a.rids,
                            moldable_id=a.moldable_id, types=job.engine.types, user=job.spec.user,
                            project=job.spec.project, queue=job.spec.queue, name=job.spec.name, state=state)

    # -- accounting ----------------------------------------------------------------------
    def account(self, job: _SimJob, now: int) -> None:
        """Add the job's USED and ASKED consumption (only when the ordering policy reads accounting)."""
        if needs_accounting(self.sim.config):
            self.accounting.add(job.spec, len(job.resources), _started(job), now)

    def accounting_list(self, now: int) -> list[AccountingRow]:
        return self.accounting.rows(now)

    # -- the end -------------------------------------------------------------------------
    def finish(self, until: int | None) -> None:
        """Give a status to the jobs the simulation leaves unfinished."""
        for job in self.jobs.values():
            if job.state == "running" and until is not None:
                job.status = "running"
                job.end = None
                self.runs.append(Run(job.id, _started(job), until, tuple(job.resources), "running"))
            elif job.state != "done":
                job.status = "not_started"
                job.start = job.end = None
                if job.state == "pending":
                    job.reason = "not submitted before the end of the simulation"
                elif job.state in ("reserved", "to_schedule"):
                    job.reason = f"reservation starting at {job.reserved_start}, after the end of the simulation"

    def record(self, job: _SimJob) -> JobRecord:
        spec = job.spec
        started = job.start is not None
        return JobRecord(
            id=spec.id, submit=spec.submit, walltime=spec.walltime, status=job.status,
            start=job.start, end=job.end if started else None,
            resources=job.resources if started else [], user=spec.user, queue=spec.queue,
            reservation=spec.reservation is not None, besteffort=spec.besteffort,
            preemptions=job.preemptions, reason=job.reason, resubmit_of=job.resubmit_of,
            resubmitted_as=job.resubmitted_as,
        )

    def result(self) -> SimulationResult:
        return SimulationResult(records=[self.record(job) for job in self.jobs.values()], runs=self.runs,
                                platform=self.sim.platform, workload=self.workload, rounds=self.rounds,
                                full_rounds=self.full_rounds, skipped=list(self.workload.skipped),
                                config=self.sim.config, interrupted_at=self.interrupted_at)


class _SimRound(MemoryRound):
    """kao's meta round (:class:`~oarsched.engine.meta.MemoryRound`) on the simulation's state.

    Every step is the engine's, in OAR3's order, but the placement of a
    queue group's jobs: the simulator places them in the round's shared slot
    sets as kao does (or by EASY), or continues its last plan when a full
    round would give the same one (:meth:`_Run.can_extend`).
    """

    def __init__(self, run: _Run, now: int, extend: bool) -> None:
        sim = run.sim
        accepted: dict[str, list[GanttJob]] = {}
        for job_id, g in run.reserved_gantt.items():
            accepted.setdefault(run.jobs[job_id].spec.queue, []).append(g)
        state = MetaState(
            now=now, scheduled=(), groups=[[(q, "Active") for q in group] for group in sim.groups], waiting={},
            new_reservations={q: [(j.engine, j.spec.reservation or 0) for j in jobs.values()]
                              for q, jobs in run.new_reservations.items() if jobs},
            accepted=accepted, besteffort=list(run.besteffort.values()), kill_duration=sim.kill_duration,
            reservation_timeout=sim.reservation_timeout)
        super().__init__(sim.scheduler, state, lambda queues: run.round_options(queues, now))
        self.run_, self.extend, self.extended = run, extend, False
        self.candidates: list[GanttJob] = []

    @property
    def meta(self) -> MetaRound:
        if self._meta is None:  # the gantt: running jobs and accepted reservations
            self._meta = MetaRound(self.search, self.now, self.run_.scheduled_now())
        return self._meta

    def schedule_group(self, queues: list[str]) -> None:
        if not self.extend:
            self.run_.schedule_group(self, queues, self.now)
        elif not self.extended:  # the whole plan, continued, at the first group
            self.extended = True
            self.decisions.placed.update(self.run_.extend_plan(self.now))

    def launch_candidates(self) -> list[GanttJob]:
        self.candidates = super().launch_candidates()
        return self.candidates

    def absent(self) -> set[int]:
        return self.run_.sim.absent


class _Accounting:
    """OAR's ``accounting`` table for the karma, kept in windows and handed over pre-summed.

    A job's consumption is cut in aligned windows of ``window`` seconds as
    ``oaraccounting`` does: ``USED`` = resources x seconds held, ``ASKED`` =
    resources x walltime.  The karma (:func:`~oarsched.policies.sorting.compute_karma`)
    only sums the rows of windows that started at most
    ``SCHEDULER_FAIRSHARING_WINDOW_SIZE`` (``horizon``) ago and are closed
    (``window_stop < now``; ``<= now`` for the per-user sums).  The closed
    windows are therefore folded, as the clock passes them, into one sum per
    (user, project, queue, type) -- and taken out again when they leave the
    horizon --; :meth:`rows` hands these sums over as rows dated ``now - 1``,
    with the rows of the window ending exactly at ``now``: the same integer
    sums as the full table, at a cost that does not grow with the simulation.
    Rounds' ``now`` never decreases.
    """

    def __init__(self, window: int, horizon: int) -> None:
        self.window = window
        self.horizon = horizon
        self.windows: dict[int, dict[tuple[str, str, str, str], int]] = {}
        self.closed: dict[tuple[str, str, str, str], int] = {}
        self.fold_from: int | None = None  # windows starting before it are in ``closed`` (or expired)
        self.expire_from: int | None = None  # windows starting before it are forgotten
        self._cache: tuple[int, int, list[AccountingRow]] | None = None
        self._version = 0

    def add(self, spec: WorkloadJob, nb_resources: int, start: int, stop: int) -> None:
        for ctype, end in (("USED", stop), ("ASKED", start + spec.walltime)):
            key = (spec.user, spec.project, spec.queue, ctype)
            for w_start, _w_stop, seconds in _windows(start, end, self.window):
                if self.expire_from is not None and w_start < self.expire_from:
                    continue
                sums = self.windows.setdefault(w_start, {})
                sums[key] = sums.get(key, 0) + seconds * nb_resources
                if self.fold_from is not None and w_start < self.fold_from:
                    self.closed[key] = self.closed.get(key, 0) + seconds * nb_resources
        self._version += 1

    def rows(self, now: int) -> list[AccountingRow]:
        """Rows giving, for the karma at ``now``, the sums of every window row."""
        if self._cache is not None and self._cache[:2] == (now, self._version):
            return self._cache[2]
        oldest = now - self.horizon
        if self.fold_from is None or self.expire_from is None:
            self.fold_from = self.expire_from = min([(oldest // self.window) * self.window, *self.windows])
        fold_from, expire_from = self.fold_from, self.expire_from
        while fold_from + self.window - 1 < now:
            self._merge(self.windows.get(fold_from, {}), +1)
            fold_from += self.window
        while expire_from < oldest:
            sums = self.windows.pop(expire_from, {})
            if expire_from < fold_from:
                self._merge(sums, -1)
            expire_from += self.window
        self.fold_from, self.expire_from = fold_from, expire_from
        rows = [AccountingRow(now - 1, now - 1, *key, c) for key, c in sorted(self.closed.items()) if c]
        ending_now = self.windows.get(fold_from) if fold_from + self.window - 1 == now else None
        if ending_now and fold_from >= oldest:
            rows += [AccountingRow(fold_from, now, *key, c) for key, c in ending_now.items()]
        self._cache = (now, self._version, rows)
        return rows

    def _merge(self, sums: dict[tuple[str, str, str, str], int], sign: int) -> None:
        for key, consumption in sums.items():
            self.closed[key] = self.closed.get(key, 0) + sign * consumption


def _started(job: _SimJob) -> int:
    """Start of the job's current (or last) run."""
    if job.start is None:
        raise AssertionError(f"job {job.id} has no start")  # never: only started jobs get here
    return job.start


def _engine_job(spec: WorkloadJob) -> Job:
    return Job(id=spec.id, walltime=spec.walltime, request=spec.request, user=spec.user, project=spec.project,
               name=spec.name, queue=spec.queue, types=dict(spec.types), properties=spec.properties,
               submission_time=spec.submit)


def _windows(start: int, stop: int, size: int) -> list[tuple[int, int, int]]:
    """``(window_start, window_stop, seconds)`` of ``[start, stop)`` cut in aligned windows of ``size`` s."""
    out = []
    w_start = (start // size) * size
    while stop > start:
        w_stop = w_start + size - 1
        seconds = (stop - start) if stop <= w_stop else (w_stop - start + 1)
        out.append((w_start, w_stop, seconds))
        w_start = w_stop + 1
        start = w_start
    return out


def simulate(workload: Workload | Iterable[WorkloadJob] | str | os.PathLike[str], platform: Platform, *,
             config: OarConfig | Mapping[str, Any] | None = None, queues: Mapping[str, int] | None = None,
             quotas: Any = None, period: int | None = None, requeue_besteffort: bool = False,
             until: int | None = None, progress: Progress | None = None, plugins: Any = None,
             backfilling: str = "conservative", incremental: bool = True,
             max_resubmissions: int | None = MAX_RESUBMISSIONS) -> SimulationResult:
    """Replay ``workload`` (jobs, a :class:`Workload` or a file path) on ``platform``.

    See :class:`Simulator` for the options and the module docstring for what
    is simulated.  Deterministic: the same inputs give the same records.
    """
    if isinstance(workload, (str, os.PathLike)):
        workload = load_workload(workload)
    sim = Simulator(platform, config=config, queues=queues, quotas=quotas, period=period,
                    requeue_besteffort=requeue_besteffort, plugins=plugins, backfilling=backfilling,
                    incremental=incremental, max_resubmissions=max_resubmissions)
    return sim.run(workload, until=until, progress=progress)
