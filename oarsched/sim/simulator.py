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
  starts even when no other event happens then).
* **A round** is OAR's meta-scheduler: queues from the highest priority to
  the lowest, each scheduled by :class:`~oarsched.engine.scheduler.Scheduler`
  with its waiting jobs ordered by the configured policy
  (:func:`~oarsched.policies.sorting.order_jobs`: FIFO, FAIRSHARE,
  MULTIFACTOR, CUSTOM plugins) and capped at
  ``MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND``; running jobs, accepted
  reservations and the decisions of the queues scheduled before are passed as
  :class:`~oarsched.engine.scheduler.ScheduledJob`.  Then the jobs placed at
  the current time start; jobs placed in the future are **not** started or
  kept: the next round plans them again (as OAR does).
* **Advance reservations** (a job with a ``reservation`` start time) are
  checked when submitted, against the running jobs and the reservations
  already accepted: accepted when the engine can place them exactly at their
  start (a start in the past becomes the submission time), otherwise
  ``rejected``.  An accepted reservation holds its resources in every later
  round and starts at its time.
* **Besteffort** jobs (queue or type ``besteffort``): the rounds of the other
  queues do not see them (OAR's rule: their resources look free); the
  besteffort queue's round sees everything.  When a job of another queue (or
  a reservation) starts on resources a besteffort job holds, that besteffort
  job is killed at that instant (status ``preempted``).  OAR needs one more
  meta-scheduler round to launch the job once the kill is done; the
  simulation starts it at once.  With ``requeue_besteffort=True``, or for a
  job of type ``idempotent`` (OAR resubmits those), the preempted job goes
  back to its queue with its original submit time (its record counts the
  ``preemptions``; every run is kept in :attr:`SimulationResult.runs`).
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
* The job security time is ``SCHEDULER_JOB_SECURITY_TIME`` of the
  configuration given; without a configuration it is 0 (as in the library's
  :func:`oarsched.schedule`) so that hand-computed schedules are exact.
"""
from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oarsched.engine.round import RoundOptions, run_round
from oarsched.engine.scheduler import Assignment, ScheduledJob, Scheduler, SchedulerOptions
from oarsched.errors import ConfigError
from oarsched.model.job import Dependency, Job
from oarsched.model.platform import Platform
from oarsched.oar.config import OarConfig
from oarsched.policies.sorting import AccountingRow, needs_accounting
from oarsched.sim.metrics import DEFAULT_BOUND, Comparison, Metrics, compare, compute_metrics
from oarsched.sim.records import JobRecord, Run, write_records
from oarsched.sim.workload import Workload, WorkloadJob, load_workload

__all__ = ["DEFAULT_QUEUES", "SimulationResult", "Simulator", "simulate"]

log = logging.getLogger("oarsched.sim")

DEFAULT_QUEUES: dict[str, int] = {"admin": 10, "default": 2, "besteffort": 0}
"""OAR's stock queues and priorities."""

DEFAULT_ACCOUNTING_WINDOW = 86400

Progress = Callable[[int, int], None]
"""``progress(jobs_done, jobs_total)``, called after each instant of simulated time."""

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
    skipped: list[tuple[int, int | None, str]] = field(default_factory=list)
    """Workload entries left out before simulating: ``(line, job id, reason)``."""

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

        specs = {j.id: j for j in self.workload.jobs}
        problems = []
        for r in self.records:
            if r.start is not None and r.start < r.submit:
                problems.append(f"job {r.id} starts at {r.start} before its submission at {r.submit}")
            if r.start is not None and r.end is not None and r.end < r.start:
                problems.append(f"job {r.id} ends at {r.end} before its start at {r.start}")
        spans = []
        for run in self.runs:
            spec = specs[run.job_id]
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
    job: Job
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

    @property
    def id(self) -> int:
        return self.spec.id

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
    """

    def __init__(self, platform: Platform, *, config: OarConfig | Mapping[str, Any] | None = None,
                 queues: Mapping[str, int] | None = None, quotas: Any = None, period: int | None = None,
                 requeue_besteffort: bool = False, plugins: Any = None) -> None:
        self.platform = platform
        self.config = _config(config)
        self.config.validate()
        self.queues = dict(DEFAULT_QUEUES if queues is None else queues)
        if not self.queues:
            raise ConfigError("a simulation needs at least one queue")
        self.queue_order = sorted(self.queues, key=lambda q: -self.queues[q])
        if period is not None and period <= 0:
            raise ConfigError(f"the scheduling period must be positive, got {period}")
        self.period = period
        self.requeue_besteffort = requeue_besteffort
        self.max_jobs = self.config.max_jobs_per_round
        self.sorting = self.config.sorting_settings()
        self.accounting_window = int(self.config.get("ACCOUNTING_WINDOW", DEFAULT_ACCOUNTING_WINDOW) or
                                     DEFAULT_ACCOUNTING_WINDOW)
        quota_state = _quota_state(quotas, self.config, platform)
        sec = self.config.job_security_time
        extra = {} if plugins is None else {"plugins": plugins}
        options = SchedulerOptions(job_security_time=sec, quotas=quota_state)
        self.scheduler = Scheduler(platform, options, **extra)
        self.besteffort_scheduler = Scheduler(
            platform, SchedulerOptions(job_security_time=sec, quotas=quota_state, besteffort_round=True), **extra)
        self.empty_scheduler = Scheduler(platform, SchedulerOptions(job_security_time=sec), **extra)
        """Places one job alone, to tell jobs that can never fit."""
        self.first_upto = min((r.available_upto for r in platform.resources), default=2**31 - 1)

    # -- public API ---------------------------------------------------------------------
    def run(self, workload: Workload | Iterable[WorkloadJob], *, until: int | None = None,
            progress: Progress | None = None) -> SimulationResult:
        """Simulate ``workload`` until every job is done (or until time ``until``)."""
        if not isinstance(workload, Workload):
            workload = Workload(jobs=list(workload))
        self._check_queues(workload)
        run = _Run(self, workload, progress)
        run.loop(until)
        return run.result()

    def _check_queues(self, workload: Workload) -> None:
        for job in workload.jobs:
            if job.queue not in self.queues:
                raise ConfigError(f"job {job.id} is in queue {job.queue!r} which is not defined "
                                  f"(queues: {', '.join(self.queue_order)}); define it with queues={{...}} "
                                  "or --queues NAME=PRIORITY,...")


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
            self.jobs[spec.id] = _SimJob(spec=spec, job=_engine_job(spec))
        self.waiting: dict[str, dict[int, _SimJob]] = {q: {} for q in sim.queue_order}
        self.running: dict[int, _SimJob] = {}
        self.reserved: dict[int, ScheduledJob] = {}  # accepted reservations not started yet
        self.besteffort_on: dict[int, int] = {}  # resource id -> running besteffort job id
        self.runs: list[Run] = []
        self.rounds = 0
        self.done = 0
        self.events: list[tuple[int, int, int, Any]] = []
        self.seq = 0
        self.wake_generation = 0
        self.fits_cache: dict[tuple, str] = {}
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

    def loop(self, until: int | None) -> None:
        while self.events:
            now = self.events[0][0]
            if until is not None and now > until:
                break
            if self.handle_instant(now):
                self.schedule(now)
            if self.progress is not None:
                self.progress(self.done, len(self.jobs))
        self.finish(until)

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
                    due = True
            elif kind == _SUBMIT:
                self.submit(self.jobs[payload], now)
                due = True
            elif kind in (_REQUEUE, _AR_START):
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
        if job.spec.reservation is not None:
            self.reserve(job, now)
            return
        why = self.never_fits(job, now)
        if why:
            self.close(job, "rejected", why)
            return
        job.state = "waiting"
        self.waiting[job.spec.queue][job.id] = job

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
                     for m in job.job.moldables), job.job.properties)
        if key not in self.fits_cache:
            probe = Job(id=job.id, moldables=job.job.moldables, properties=job.job.properties, queue=job.spec.queue)
            result = self.sim.empty_scheduler.schedule([probe], now)
            if job.id in result.errors:
                why = result.errors[job.id]
            elif job.id in result.assignments:
                why = ""
            else:
                why = "never fits the platform, even empty: " + result.unscheduled.get(job.id, "no place")
            self.fits_cache[key] = why
        return self.fits_cache[key]

    def reserve(self, job: _SimJob, now: int) -> None:
        """Accept an advance reservation if its slot is free now, else reject it."""
        start = max(job.spec.reservation or 0, now)
        result = self.sim.scheduler.schedule([job.job], start, self.scheduled_now())
        a = result.assignments.get(job.id)
        if a is None or a.start_time != start:
            why = result.errors.get(job.id) or f"reservation refused: its resources are not free at {start}"
            self.close(job, "rejected", why)
            return
        job.state = "reserved"
        job.reserved_start = start
        job.scheduled = self.as_scheduled(job, a, start, "Waiting")
        self.reserved[job.id] = job.scheduled
        self.push(start, _AR_START, job.id)

    def start(self, job: _SimJob, now: int, resources: list[int], moldable_id: int) -> None:
        self.waiting[job.spec.queue].pop(job.id, None)
        self.reserved.pop(job.id, None)
        job.state = "running"
        job.start = now
        job.resources = resources
        job.moldable_id = moldable_id
        job.run_no += 1
        job.scheduled = ScheduledJob(
            id=job.id, start_time=now, walltime=job.spec.walltime, resources=resources, moldable_id=moldable_id,
            types=job.job.types, user=job.spec.user, project=job.spec.project, queue=job.spec.queue,
            name=job.spec.name, state="Running")
        self.running[job.id] = job
        if job.spec.besteffort:
            for rid in resources:
                self.besteffort_on[rid] = job.id
        self.push(now + min(job.spec.runtime, job.spec.walltime), _END, (job.id, job.run_no))

    def end(self, job: _SimJob, now: int) -> None:
        killed = job.spec.runtime > job.spec.walltime
        self.release(job, now, "killed" if killed else "completed")
        self.account(job, now)
        self.close(job, "killed" if killed else "completed",
                   f"walltime {job.spec.walltime}s reached before the run time {job.spec.runtime}s" if killed else "")

    def preempt(self, job: _SimJob, now: int, by: int) -> None:
        """Kill a running besteffort job; requeue it when asked to."""
        self.release(job, now, "preempted")
        self.account(job, now)
        job.preemptions += 1
        job.reason = f"preempted at {now} by job {by}"
        if self.sim.requeue_besteffort or job.requeues:
            job.state = "waiting"
            self.waiting[job.spec.queue][job.id] = job
            self.push(now, _REQUEUE, job.id)
        else:
            self.close(job, "preempted", job.reason)

    def release(self, job: _SimJob, now: int, outcome: str) -> None:
        started = _started(job)
        self.running.pop(job.id, None)
        if job.spec.besteffort:
            for rid in job.resources:
                if self.besteffort_on.get(rid) == job.id:
                    del self.besteffort_on[rid]
        job.end = now
        self.runs.append(Run(job.id, started, now, tuple(job.resources), outcome))

    def close(self, job: _SimJob, status: str, reason: str) -> None:
        job.state = "done"
        job.status = status
        job.reason = reason
        self.done += 1

    # -- the round -----------------------------------------------------------------------
    def scheduled_now(self) -> list[ScheduledJob]:
        """Running jobs and accepted reservations, as the engine sees jobs already in the gantt."""
        return [j.scheduled for j in self.running.values() if j.scheduled is not None] + list(self.reserved.values())

    def schedule(self, now: int) -> None:
        """One meta-scheduler round at ``now``: plan every queue, then start what is due now."""
        decisions: dict[int, Assignment] = {}
        if any(self.waiting.values()):
            self.rounds += 1
            decisions = self.plan(now)
        self.launch(now, decisions)
        later = [a.start_time for a in decisions.values() if a.start_time > now]
        self.wake_generation += 1
        if later:
            self.push(min(later), _WAKE, self.wake_generation)

    def plan(self, now: int) -> dict[int, Assignment]:
        scheduled = self.scheduled_now()
        decisions: dict[int, Assignment] = {}
        for queue in self.sim.queue_order:
            waiting = self.waiting[queue]
            if not waiting:
                continue
            scheduler = self.sim.besteffort_scheduler if queue == "besteffort" else self.sim.scheduler
            outcome = run_round(self.sim.platform, self.waiting_jobs(waiting), scheduled,
                                self.round_options(queue, now), search=scheduler)
            result = outcome.result
            for job_id, why in (*outcome.skipped.items(), *result.unscheduled.items()):
                waiting[job_id].reason = why  # a job skipped by the screen (dependency cycle) keeps waiting
            for job_id, error in result.errors.items():
                job = waiting.pop(job_id)
                self.close(job, "rejected", error)
            for job_id, a in result.assignments.items():
                decisions[job_id] = a
                scheduled.append(self.as_scheduled(self.jobs[job_id], a, a.start_time, "Waiting"))
        return decisions

    def waiting_jobs(self, waiting: dict[int, _SimJob]) -> list[Job]:
        """The queue's waiting jobs, with their dependencies' states."""
        for job in waiting.values():
            if job.spec.depends:
                job.job.dependencies = [self.dependency(d) for d in job.spec.depends]
        return [j.job for j in waiting.values()]

    def round_options(self, queue: str, now: int) -> RoundOptions:
        """The queue's round: the policy's order, capped; no never-fit check (done at submission)."""
        return RoundOptions(now=now, queues=[queue], ordering=self.sim.sorting,
                            accounting=lambda _start, at: self.accounting_list(at), max_jobs=self.sim.max_jobs,
                            max_explained=0)

    def dependency(self, job_id: int) -> Dependency:
        dep = self.jobs[job_id]
        if dep.state in ("pending", "waiting", "reserved"):
            return Dependency(job_id, "Waiting")
        if dep.state == "running":
            return Dependency(job_id, "Running")
        if dep.status == "completed":
            return Dependency(job_id, "Terminated", 0)
        return Dependency(job_id, "Error")

    def launch(self, now: int, decisions: dict[int, Assignment]) -> None:
        """Start the reservations due and the jobs placed at ``now``; kill the besteffort jobs in their way."""
        starting = [(self.jobs[s.id], s.resources, s.moldable_id) for s in list(self.reserved.values())
                    if s.start_time <= now]
        starting += [(self.jobs[jid], a.resources, a.moldable_id) for jid, a in decisions.items()
                     if a.start_time <= now]
        for job, resources, _ in starting:
            if not job.spec.besteffort:
                victims = sorted({self.besteffort_on[r] for r in resources if r in self.besteffort_on})
                for victim in victims:
                    self.preempt(self.jobs[victim], now, by=job.id)
        for job, resources, moldable_id in starting:
            self.start(job, now, list(resources), moldable_id)

    def as_scheduled(self, job: _SimJob, a: Assignment, start: int, state: str) -> ScheduledJob:
        return ScheduledJob(id=job.id, start_time=start, walltime=job.spec.walltime, resources=a.resources,
                            moldable_id=a.moldable_id, types=job.job.types, user=job.spec.user,
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
            elif job.state != "done" and job.preemptions:
                job.status = "preempted"  # requeued, never restarted: keeps its last run
            elif job.state != "done":
                job.status = "not_started"
                job.start = job.end = None
                if job.state == "pending":
                    job.reason = "not submitted before the end of the simulation"
                elif job.state == "reserved":
                    job.reason = f"reservation starting at {job.reserved_start}, after the end of the simulation"

    def result(self) -> SimulationResult:
        records = []
        for job in self.jobs.values():
            spec = job.spec
            started = job.start is not None
            records.append(JobRecord(
                id=spec.id, submit=spec.submit, walltime=spec.walltime, status=job.status,
                start=job.start, end=job.end if started else None,
                resources=list(job.resources) if started else [], user=spec.user, queue=spec.queue,
                reservation=spec.reservation is not None, besteffort=spec.besteffort,
                preemptions=job.preemptions, reason=job.reason,
            ))
        return SimulationResult(records=records, runs=self.runs, platform=self.sim.platform, workload=self.workload,
                                rounds=self.rounds, skipped=list(self.workload.skipped))


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
             until: int | None = None, progress: Progress | None = None, plugins: Any = None) -> SimulationResult:
    """Replay ``workload`` (jobs, a :class:`Workload` or a file path) on ``platform``.

    See :class:`Simulator` for the options and the module docstring for what
    is simulated.  Deterministic: the same inputs give the same records.
    """
    if isinstance(workload, (str, os.PathLike)):
        workload = load_workload(workload)
    sim = Simulator(platform, config=config, queues=queues, quotas=quotas, period=period,
                    requeue_besteffort=requeue_besteffort, plugins=plugins)
    return sim.run(workload, until=until, progress=progress)
