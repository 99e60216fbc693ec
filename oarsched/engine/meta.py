"""The meta-scheduler's in-memory decisions (OAR3's ``kao`` round), free of SQL.

One round shares one set of slot sets between every queue group (queues of
equal priority are scheduled together, higher priority first), then decides
on the jobs whose time has come: which reservations are accepted, which jobs
start now, which besteffort jobs must be killed first.  The database adapter
(:mod:`oarsched.oar.kao`) reads the inputs and writes these decisions; the
simulator can run the same round in memory.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from oarsched._core import bitset
from oarsched.engine.scheduler import Scheduler, ScheduledJob, ScheduleResult
from oarsched.engine.slots import SlotSet, occupy, share_extension
from oarsched.model.job import Job, placeholder_of, timesharing_of


class MetaRound:
    """The slot sets of one meta round, shared by every queue group and by new reservations.

    Besteffort jobs already in the gantt do not occupy resources, except for
    the group made of the besteffort queue alone (OAR3's ``filter_besteffort``):
    other queues may be placed over them, which then kills them.
    """

    def __init__(self, scheduler: Scheduler, now: int, scheduled: Sequence[ScheduledJob]) -> None:
        self.scheduler = scheduler
        self.now = now
        self.scheduled = list(scheduled)
        self.slot_sets: dict[str, SlotSet] = scheduler.new_slot_sets(now, self.scheduled)
        self._besteffort_added = False

    def schedule_group(self, jobs: Sequence[Job], queues: Sequence[str]) -> ScheduleResult:
        """Place a queue group's waiting jobs (already ordered) into the shared slot sets."""
        if list(queues) == ["besteffort"] and not self._besteffort_added:
            self.scheduler.occupy_scheduled(
                self.slot_sets, [j for j in self.scheduled if "besteffort" in j.types], self.now)
            self._besteffort_added = True
        return self.scheduler.place(jobs, self.slot_sets)

    def fit_reservation(self, job: Job, start: int) -> tuple[int, int, np.ndarray] | None:
        """Resources for a new advance reservation at ``start`` (first moldable only, as OAR3).

        The window is ``[start, start + walltime]`` of the default slot set,
        free resources plus what a timesharing/``allow`` job may share; quotas
        (when on) must admit it.  Returns ``(moldable id, W, resources)`` or None.
        """
        sched = self.scheduler
        compiled = sched._compile(job)[0]
        w = compiled.walltime
        ss = self.slot_sets["default"]
        sl, sr = ss.get_encompassing_slots(start, start + w - sched.options.job_security_time)
        ts = timesharing_of(job.types) if job.types else None
        ts_key = None if ts is None else (job.user if ts[0] == "user" else "*", job.name if ts[1] == "name" else "*")
        ph, ph_name = placeholder_of(job.types)
        ext = share_extension(ss, ts_key, ph, ph_name)
        avail = ss.window_free(sl, sr, ext)
        res = compiled.request.find(avail)
        if res is None:
            return None
        quotas = sched.options.quotas
        if quotas is not None and not quotas.admits_window(ss, sl, sr, w, job, res, sched.default_set):
            return None
        return compiled.id, w, res

    def occupy_reservation(self, job: Job, start: int, w: int, res: np.ndarray) -> None:
        """An accepted reservation takes its resources in the shared slot sets."""
        sched = self.scheduler
        occupy(self.slot_sets["default"], sched._occupation(job, start, w, res, sched.options.quotas),
               sched.options.quotas)


# -- jobs whose start has come ----------------------------------------------------------------

@dataclass
class GanttJob:
    """A waiting job with a gantt prediction (launch candidates and accepted reservations)."""

    id: int
    moldable_id: int
    start_time: int
    walltime: int
    """W: stored walltime plus the job security time."""
    resources: list[int] = field(default_factory=list)
    reservation: str = "None"


def launch_candidates(jobs: Iterable[GanttJob], now: int, kill_duration: int) -> list[GanttJob]:
    """Jobs starting by ``now + kill_duration``: besteffort jobs in their way are killed (OAR3)."""
    return sorted((j for j in jobs if j.start_time <= now + kill_duration), key=lambda j: j.id)


def jobs_to_launch(candidates: Iterable[GanttJob], now: int, absent: set[int]) -> list[GanttJob]:
    """Candidates starting now none of whose resources is Absent."""
    return [j for j in candidates if j.start_time <= now and absent.isdisjoint(j.resources)]


@dataclass
class BesteffortJob:
    """A besteffort job in the gantt (running, or an accepted reservation)."""

    id: int
    resources: list[int]
    user: str = ""
    name: str = ""
    types: dict[str, str] = field(default_factory=dict)
    checkpoint: int = 0


def timesharing_compatible(be: BesteffortJob, user: str, name: str, types: dict[str, str]) -> bool:
    """OAR3's ``is_timesharing_for_two_jobs`` (trap M20: the second job's spec is only half checked)."""
    if "timesharing" not in be.types or "timesharing" not in types:
        return False
    spec1, spec2 = be.types["timesharing"], types["timesharing"]
    if spec1 == "*,*" and spec2 == "*,*":
        return True
    if be.user == user and be.name == name:
        return True
    if spec1 == "user,*" and spec2 == "user,*" and be.user == user:
        return True
    if be.name == name and spec1 == "*,name":
        return True
    return False


@dataclass
class Candidate:
    """What the kill decision reads of a job about to start."""

    id: int
    resources: list[int]
    user: str = ""
    name: str = ""
    types: dict[str, str] = field(default_factory=dict)


def besteffort_to_kill(candidates: Iterable[Candidate], besteffort: Iterable[BesteffortJob]) -> list[BesteffortJob]:
    """Besteffort jobs holding a resource of a job about to start (unless they may share it), in order found."""
    by_rid: dict[int, BesteffortJob] = {}
    for be in besteffort:
        for rid in be.resources:
            by_rid[rid] = be
    kill: dict[int, BesteffortJob] = {}
    for job in candidates:
        for rid in job.resources:
            be = by_rid.get(rid)
            if be is None or be.id in kill or be.id == job.id:
                continue
            if not timesharing_compatible(be, job.user, job.name, job.types):
                kill[be.id] = be
    return list(kill.values())


def checkpoint_first(be: BesteffortJob, first_checkpoint: int | None, now: int) -> bool:
    """A checkpointable besteffort job is asked to checkpoint before being killed.

    OAR2's rule (OAR3 crashes here, M10): signal it when it has no CHECKPOINT
    event yet or its grace period (``checkpoint`` seconds from the first one)
    is still running; kill it afterwards.
    """
    return be.checkpoint > 0 and (first_checkpoint is None or now <= first_checkpoint + be.checkpoint)


# -- accepted reservations -----------------------------------------------------------------------

def late_walltime(w: int, start: int, now: int) -> int:
    """A reservation launched late keeps its end: the walltime (W, security time included) shrinks."""
    return w - (now - start)


_HMS = re.compile(r"W=\d+:\d+:\d+")


def cut_message_walltime(message: str, walltime: int) -> str:
    """Every ``W=h:m:s`` of a message rewritten to the new walltime (OAR3's unpadded form)."""
    h, rest = divmod(walltime, 3600)
    m, s = divmod(rest, 60)
    return _HMS.sub(f"W={h}:{m}:{s}", message)


_RES_COUNT = re.compile(r"R=\d+")


def reduce_message_resources(message: str, n: int) -> str:
    return _RES_COUNT.sub(f"R={n}", message)


@dataclass
class ReservationStatus:
    """What to do with an accepted reservation whose start is near (OAR3's ``handle_waiting_reservation_jobs``)."""

    action: str
    """``expire``, ``push`` (gantt start to now+1), ``reduce`` (drop missing resources), or ``none``."""
    missing: list[int] = field(default_factory=list)


def reservation_status(job: GanttJob, now: int, available: set[int], timeout: int) -> ReservationStatus:
    """Expired, waiting for resources, or started without some of them (missing resources dropped)."""
    if now > job.start_time + job.walltime:
        return ReservationStatus("expire")
    present = [r for r in job.resources if r in available]
    if job.start_time < now:
        if not present:
            return ReservationStatus("push")
        missing = [r for r in job.resources if r not in available]
        if missing:
            if now < job.start_time + timeout:
                return ReservationStatus("push", missing)
            return ReservationStatus("reduce", missing)
    return ReservationStatus("none")


def resource_count(bits: np.ndarray) -> int:
    return bitset.count(bits)
