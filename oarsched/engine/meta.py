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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from oarsched._core import bitset
from oarsched.engine.result import Assignment, ScheduledJob
from oarsched.engine.round import Round, RoundOptions, RoundOutcome, run_round
from oarsched.engine.search import Search
from oarsched.engine.slots import occupy, share_extension
from oarsched.errors import OarschedError
from oarsched.model.job import Job, placeholder_of, timesharing_key

EXIT_OK, EXIT_RESERVATION_NOW, EXIT_BESTEFFORT_KILL = 0, 1, 2
"""The round's exit status, as Almighty reads it: 1 an acknowledged reservation starts now (run again),
2 besteffort jobs must be killed first (nothing launched; the next round launches)."""


class MetaRound:
    """The slot sets of one meta round, shared by every queue group and by new reservations.

    Besteffort jobs already in the gantt do not occupy resources, except for
    the group made of the besteffort queue alone (OAR3's ``filter_besteffort``):
    other queues may be placed over them, which then kills them.
    """

    def __init__(self, search: Search, now: int, scheduled: Sequence[ScheduledJob]) -> None:
        self.search = search
        self.now = now
        self.scheduled = list(scheduled)
        self.round = Round(search, now, self.scheduled)
        self._besteffort_added = False

    def schedule_group(self, jobs: Sequence[Job], options: RoundOptions) -> RoundOutcome:
        """Order, cap, screen and place a queue group's waiting jobs into the shared slot sets."""
        if list(options.queues) == ["besteffort"] and not self._besteffort_added:
            self.round.add_scheduled(j for j in self.scheduled if "besteffort" in j.types)
            self._besteffort_added = True
        return run_round(self.search.platform, jobs, (), options, into=self.round)

    def fit_reservation(self, job: Job, start: int) -> tuple[int, int, np.ndarray] | None:
        """Resources for a new advance reservation at ``start`` (first moldable only, as OAR3).

        The window is ``[start, start + walltime]`` of the default slot set,
        free resources plus what a timesharing/``allow`` job may share; quotas
        (when on) must admit it.  Returns ``(moldable id, W, resources)`` or None.
        """
        search = self.search
        compiled = search.compile(job)[0]
        w = compiled.walltime
        ss = self.round.slot_sets["default"]
        sl, sr = ss.get_encompassing_slots(start, start + w - search.options.job_security_time)
        ph, ph_name = placeholder_of(job.types)
        avail = ss.window_free(sl, sr, share_extension(ss, timesharing_key(job), ph, ph_name))
        res = compiled.request.find(avail)
        if res is None:
            return None
        quotas = search.quotas
        if quotas is not None and not quotas.admits_window(ss, sl, sr, w, job, res, search.default_set):
            return None
        return compiled.id, w, res

    def occupy_reservation(self, job: Job, start: int, w: int, res: np.ndarray) -> None:
        """An accepted reservation takes its resources in the shared slot sets."""
        occupy(self.round.slot_sets["default"], self.search.occupation(job, start, w, res), self.search.quotas)


    def decide_reservation(self, job: Job, start: int) -> ReservationVerdict:
        """A new reservation asked for ``start``: too old (its whole walltime is past), refused (no room),
        or accepted, then holding its resources in the shared slot sets.  A start in the past moves to now."""
        if self.now >= start + int(job.moldables[0].walltime or 0) + self.search.options.job_security_time:
            return ReservationVerdict(start, TOO_OLD)
        start = max(start, self.now)
        fit = self.fit_reservation(job, start)
        if fit is None:
            return ReservationVerdict(start, CANNOT_RUN)
        mld_id, w, res = fit
        self.occupy_reservation(job, start, w, res)
        return ReservationVerdict(start, None, mld_id, w, res)


TOO_OLD = "Reservation too old"
CANNOT_RUN = "This advance reservation cannot run"


@dataclass(frozen=True)
class ReservationVerdict:
    """What a meta round decides for a new reservation (:meth:`MetaRound.decide_reservation`)."""

    start: int
    refusal: str | None
    """``TOO_OLD`` or ``CANNOT_RUN``; None when accepted."""
    moldable_id: int = 0
    walltime: int = 0
    resources: np.ndarray | None = None


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
    checkpoint: int = 0
    """Seconds of grace after the first checkpoint signal (0: not checkpointable)."""


def besteffort_to_kill(candidates: Iterable[GanttJob], besteffort: Iterable[BesteffortJob]) -> list[BesteffortJob]:
    """Besteffort jobs holding a resource of a job about to start, in the order OAR3 finds them.

    OAR3 maps each resource to the *last* candidate claiming it and walks the
    resources in order of first claim.  Its timesharing exemption
    (``is_timesharing_for_two_jobs``) never applies: the job types it reads
    have the ``timesharing`` type turned into an attribute, so a besteffort
    job is killed even when both jobs share (``meta_be_kill_03`` records it).
    """
    by_rid: dict[int, BesteffortJob] = {}
    for be in besteffort:
        for rid in be.resources:
            by_rid[rid] = be
    claims: dict[int, GanttJob] = {}
    for job in candidates:
        for rid in job.resources:
            claims[rid] = job
    kill: dict[int, BesteffortJob] = {}
    for rid, job in claims.items():
        holder = by_rid.get(rid)
        if holder is not None and holder.id != job.id:
            kill.setdefault(holder.id, holder)
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


def duration_to_sql(seconds: int) -> str:
    """OAR's ``h:m:s`` form of a duration, unpadded (``0:29:0``); ``signed`` adds ``+``/``-``."""
    h, rest = divmod(abs(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m}:{s}"


def duration_to_sql_signed(seconds: int) -> str:
    return ("+" if seconds > 0 else "-" if seconds < 0 else "") + duration_to_sql(seconds)


def cut_message_walltime(message: str, walltime: int) -> str:
    """Every ``W=h:m:s`` of a message rewritten to the new walltime (OAR3's unpadded form)."""
    return _HMS.sub(f"W={duration_to_sql(walltime)}", message)


_RES_COUNT = re.compile(r"R=\d+")


def reduce_message_resources(message: str, n: int) -> str:
    return _RES_COUNT.sub(f"R={n}", message)


class Oar3ResourceIndex:
    """OAR3's resource indirection, as its accepted-reservation checks see resources.

    A resource's index (roid) is its position in resource order; only Alive
    and Absent resources are indexed, every other resource maps to index 0
    and index 0 maps back to resource 0 unless the first resource is Alive or
    Absent (trap T8).  Kept for parity where the corpus records its effects.
    """

    def __init__(self, ordered: Sequence[tuple[int, str]]) -> None:
        self._roid = {rid: pos for pos, (rid, state) in enumerate(ordered) if state in ("Alive", "Absent")}
        self._rid = {pos: rid for rid, pos in self._roid.items()}
        self.available = set(self._roid.values())
        self.available_rids = set(self._roid)

    def roids(self, rids: Iterable[int]) -> set[int]:
        return {self._roid.get(r, 0) for r in rids}

    def rids(self, roids: Iterable[int]) -> list[int]:
        return sorted(self._rid.get(o, 0) for o in roids)


@dataclass
class ReservationStatus:
    """What to do with an accepted reservation near its start (OAR3's ``handle_waiting_reservation_jobs``)."""

    action: str
    """``expire``, ``push`` (gantt start to now+1), ``reduce`` (drop missing resources), or ``none``."""
    kept_rids: list[int] = field(default_factory=list)
    """``reduce``: the only gantt resource rows OAR3 keeps (trap M8: it inverts the deletion)."""
    nb_resources: int = 0
    """``reduce``: the resource count written into the message."""


def reservation_status(job: GanttJob, now: int, index: Oar3ResourceIndex, timeout: int) -> ReservationStatus:
    """Expired, waiting for its resources, or started without some of them."""
    if now > job.start_time + job.walltime:
        return ReservationStatus("expire")
    res = index.roids(job.resources)
    avail = res & index.available
    if job.start_time >= now:
        return ReservationStatus("none")
    if not avail:
        return ReservationStatus("push")
    if job.start_time + timeout > now:
        # OAR3 crashes on this path (M13); it means to wait for the missing resources (real states,
        # not the index that folds every missing resource onto index 0)
        return ReservationStatus("push" if not index.available_rids.issuperset(job.resources) else "none")
    missing = res - avail
    return ReservationStatus("reduce", kept_rids=index.rids(missing), nb_resources=len(res) - len(missing))


def resource_count(bits: np.ndarray) -> int:
    return bitset.count(bits)


# -- the round, in OAR3's order ------------------------------------------------------------------

class MetaSteps(Protocol):
    """The steps of a meta round, on a database (``oarsched-kao``) or in memory (:class:`MemoryRound`)."""

    def before_group(self, queues: list[str]) -> None: ...

    def schedule_group(self, queues: list[str]) -> None: ...

    def check_accepted_reservations(self, queue: str) -> None: ...

    def check_new_reservations(self, queue: str) -> None: ...

    def launch_candidates(self) -> list[GanttJob]: ...

    def kill_besteffort(self, kills: list[BesteffortJob]) -> None: ...

    def launch(self, jobs: list[GanttJob]) -> None: ...


def run_meta_round(steps: MetaSteps, groups: Sequence[Sequence[tuple[str, str]]],
                   besteffort: Sequence[BesteffortJob], now: int, absent: Callable[[], set[int]]) -> bool:
    """OAR3's ``meta_schedule`` order, the one both kao and the simulator follow.  True: besteffort kills.

    Queue groups (``[(queue, state), ...]``, higher priority first): each
    group's active queues are scheduled together, then each queue's accepted
    and new reservations are checked.  Then the jobs starting by ``now`` plus
    the kill duration are looked at: if besteffort jobs hold their resources,
    those are killed and nothing is launched (the next round does); else the
    jobs starting now on no Absent resource are launched.
    """
    for group in groups:
        queues = [name for name, _ in group]
        steps.before_group(queues)
        active = [name for name, state in group if state == "Active"]
        if not active:
            continue
        steps.schedule_group(active)
        for queue in active:
            steps.check_accepted_reservations(queue)
            steps.check_new_reservations(queue)
    candidates = steps.launch_candidates()
    kills = besteffort_to_kill(candidates, besteffort) if candidates and besteffort else []
    if kills:
        steps.kill_besteffort(kills)
        return True
    steps.launch(jobs_to_launch(candidates, now, absent()) if candidates else [])
    return False


@dataclass
class MetaState:
    """What a meta round starts from, in memory (what kao reads from the database)."""

    now: int
    scheduled: Sequence[ScheduledJob]
    """The gantt as rebuilt: running and suspended jobs (besteffort ones included), accepted reservations."""
    groups: Sequence[Sequence[tuple[str, str]]]
    """``[(queue, state), ...]`` per priority, higher first (``state``: ``Active`` or ``notActive``)."""
    waiting: Mapping[str, Sequence[Job]]
    """Each queue's waiting jobs (not reservations)."""
    new_reservations: Mapping[str, Sequence[tuple[Job, int]]] = field(default_factory=dict)
    """Each queue's new advance reservations (``toSchedule``) and the start they ask for."""
    accepted: Mapping[str, Sequence[GanttJob]] = field(default_factory=dict)
    """Each queue's accepted reservations not started yet, with their gantt entry."""
    besteffort: Sequence[BesteffortJob] = ()
    """The besteffort jobs of the gantt (running ones)."""
    kill_duration: int = 0
    """``SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION``."""
    reservation_timeout: int = 300
    """``RESERVATION_WAITING_RESOURCES_TIMEOUT``."""
    first_checkpoints: Mapping[int, int] = field(default_factory=dict)
    """Besteffort job id -> date of its first CHECKPOINT event."""


@dataclass
class MetaDecisions:
    """A meta round's decisions (what kao writes to the database)."""

    exit_code: int = EXIT_OK
    placed: dict[int, Assignment] = field(default_factory=dict)
    """Every waiting job the queue groups placed (now or later)."""
    outcomes: list[RoundOutcome] = field(default_factory=list)
    """Each scheduled group's outcome (reasons, errors), in order."""
    accepted: dict[int, GanttJob] = field(default_factory=dict)
    """New reservations accepted: their gantt entry (moldable, start, W, resource ids)."""
    refused: dict[int, str] = field(default_factory=dict)
    """New reservations refused: the job's message."""
    reservations: dict[int, GanttJob] = field(default_factory=dict)
    """The accepted reservations the round started from, as it leaves them (pushed, reduced); not launched."""
    expired: list[int] = field(default_factory=list)
    """Accepted reservations too late to start (they go to Error)."""
    launched: list[GanttJob] = field(default_factory=list)
    """Jobs to launch, by id (a late reservation starts now, its W shortened)."""
    killed: list[BesteffortJob] = field(default_factory=list)
    """Besteffort jobs in the way, in OAR3's order (checkpointed ones included)."""
    checkpointed: list[int] = field(default_factory=list)
    """The killed ones only asked to checkpoint this round."""


class MemoryRound:
    """One meta round in memory: :func:`run_meta_round`'s steps on a :class:`MetaState`.

    ``options(queues)`` gives the round options of a queue group (ordering,
    accounting, cap).  Subclasses may place a group's jobs otherwise
    (:meth:`schedule_group`); every other step is kao's.
    """

    def __init__(self, search: Search, state: MetaState, options: Callable[[list[str]], RoundOptions]) -> None:
        self.search = search
        self.state = state
        self.now = state.now
        self.options = options
        self.decisions = MetaDecisions()
        self.reservations = {g.id: GanttJob(g.id, g.moldable_id, g.start_time, g.walltime, list(g.resources),
                                            "Scheduled")
                             for ars in state.accepted.values() for g in ars}
        self._meta: MetaRound | None = None

    @property
    def meta(self) -> MetaRound:
        """The round's shared slot sets, built on first use."""
        if self._meta is None:
            self._meta = MetaRound(self.search, self.now, self.state.scheduled)
        return self._meta

    def run(self) -> MetaDecisions:
        d = self.decisions
        if run_meta_round(self, self.state.groups, self.state.besteffort, self.now, self.absent):
            d.exit_code = EXIT_BESTEFFORT_KILL
        elif any(g.start_time - 1 <= self.now for g in d.accepted.values()):
            d.exit_code = EXIT_RESERVATION_NOW
        d.reservations = self.reservations
        return d

    # -- the steps ---------------------------------------------------------------------------
    def before_group(self, queues: list[str]) -> None:
        return None

    def schedule_group(self, queues: list[str]) -> None:
        jobs = sorted((j for q in queues for j in self.state.waiting.get(q, ())), key=lambda j: j.id)
        if jobs:
            self.record(self.meta.schedule_group(jobs, self.options(queues)))

    def record(self, outcome: RoundOutcome) -> None:
        """A group's outcome: its placements join the round's gantt."""
        self.decisions.outcomes.append(outcome)
        self.decisions.placed.update(outcome.result.assignments)

    def check_accepted_reservations(self, queue: str) -> None:
        ars = [self.reservations[g.id] for g in self.state.accepted.get(queue, ())]
        if not ars:
            return
        index = Oar3ResourceIndex([(r.id, r.state) for r in self.search.platform.resources])
        for ar in sorted(ars, key=lambda g: (g.start_time, g.id)):
            status = reservation_status(ar, self.now, index, self.state.reservation_timeout)
            if status.action == "expire":
                del self.reservations[ar.id]
                self.decisions.expired.append(ar.id)
            elif status.action == "push":
                ar.start_time = self.now + 1
            elif status.action == "reduce":
                ar.resources = list(status.kept_rids)

    def check_new_reservations(self, queue: str) -> None:
        d = self.decisions
        for job, start in sorted(self.state.new_reservations.get(queue, ()), key=lambda js: js[0].id):
            try:
                v = self.meta.decide_reservation(job, start)
            except OarschedError as exc:  # a malformed job is refused, not fatal
                d.refused[job.id] = str(exc)
                continue
            if v.refusal is not None or v.resources is None:
                d.refused[job.id] = v.refusal or CANNOT_RUN
                continue
            rids = self.search.platform.rids[bitset.to_indices(v.resources)]
            d.accepted[job.id] = GanttJob(job.id, v.moldable_id, v.start, v.walltime,
                                          sorted(int(r) for r in rids), "Scheduled")

    def launch_candidates(self) -> list[GanttJob]:
        by = self.now + self.state.kill_duration
        jobs = [g for g in self.reservations.values() if g.start_time <= by]
        jobs += [GanttJob(jid, a.moldable_id, a.start_time, a.walltime, a.resources)
                 for jid, a in self.decisions.placed.items() if a.start_time <= by]
        return launch_candidates(jobs, self.now, self.state.kill_duration)

    def kill_besteffort(self, kills: list[BesteffortJob]) -> None:
        d = self.decisions
        for be in kills:
            if checkpoint_first(be, self.state.first_checkpoints.get(be.id), self.now):
                d.checkpointed.append(be.id)
            d.killed.append(be)

    def launch(self, jobs: list[GanttJob]) -> None:
        for job in jobs:
            if job.reservation == "Scheduled" and job.start_time < self.now:
                job = GanttJob(job.id, job.moldable_id, self.now, late_walltime(job.walltime, job.start_time, self.now),
                               job.resources, job.reservation)
            self.reservations.pop(job.id, None)
            self.decisions.launched.append(job)

    def absent(self) -> set[int]:
        return {r.id for r in self.search.platform.resources if r.state == "Absent"}


# -- energy saving -------------------------------------------------------------------------------

def nodes_to_halt(idle_since: dict[str, int | None], next_start: dict[str, int | None],
                  last_wakeup: dict[str, int | None], now: int, idle_time: int, sleep_time: int) -> list[str]:
    """Idle nodes worth switching off (OAR's ``nodes_energy_saving``).

    A node is halted when its last job ended more than ``idle_time`` ago, its
    next predicted job (if any) leaves it ``sleep_time`` to sleep, and it was
    not woken up within ``idle_time``.
    """
    limit = now - idle_time
    out = []
    for node, last_job in idle_since.items():
        if (last_job or 0) >= limit:
            continue
        nxt = next_start.get(node)
        if nxt is not None and nxt - sleep_time <= now:
            continue
        woke = last_wakeup.get(node)
        if woke is None or woke < limit:
            out.append(node)
    return out


# -- walltime change requests ----------------------------------------------------------------------

@dataclass
class WalltimeRequest:
    """A running job's pending walltime change (``walltime_change`` row) and what it is granted."""

    job_id: int
    queue: str
    start_time: int
    walltime: int
    """The stored walltime (security time excluded)."""
    pending: int
    force: bool = False
    delay_next_jobs: bool = False
    granted: int = 0
    granted_with_force: int = 0
    granted_with_delay_next_jobs: int = 0
    suspended: int = 0
    """Seconds the job spent suspended (they do not count in its walltime)."""

    @property
    def end(self) -> int:
        return self.start_time + self.walltime + self.suspended


@dataclass
class WalltimeGrant:
    """The outcome of one request this round: the new walltime and the request's new counters."""

    fit: int
    walltime: int
    pending: int
    granted: int
    granted_with_force: int
    granted_with_delay_next_jobs: int
    message: str


def walltime_grant(req: WalltimeRequest, now: int, apply_time: int, increment: int,
                   possible_end: Callable[[int, int], int]) -> WalltimeGrant | None:
    """How much of a pending walltime change is granted now (OAR's ``process_walltime_change_requests``).

    An extension waits until ``apply_time`` seconds before the job's end
    (unless forced), is granted by steps of at most ``increment`` (unless
    forced), and only up to ``possible_end(from, to)``: the last second
    before the next job predicted on the job's resources.  A reduction is
    granted at once, down to the time already used.  None: nothing this round.
    """
    fit = req.pending
    if fit > 0:
        if not req.force:
            if apply_time > 0 and req.end - apply_time - now > 0:
                return None
            if 0 < increment < fit:
                fit = increment
        fit = possible_end(req.end, req.end + fit) - req.end
        if fit <= 0:
            return None
    elif fit < 0:
        remaining = req.end - now
        if remaining < -fit:
            fit = -remaining
    new_walltime = req.walltime + fit
    new_pending = req.pending - fit
    message = "walltime changed: {} (granted: {}/pending: {}{}{})".format(
        duration_to_sql(new_walltime), duration_to_sql_signed(fit), duration_to_sql_signed(new_pending),
        "/force" if req.force else "", "/delay next jobs" if req.delay_next_jobs else "")
    return WalltimeGrant(
        fit=fit, walltime=new_walltime, pending=new_pending, granted=req.granted + fit,
        granted_with_force=req.granted_with_force + (fit if req.force and fit > 0 else 0),
        granted_with_delay_next_jobs=req.granted_with_delay_next_jobs + (fit if req.delay_next_jobs and fit > 0
                                                                         else 0),
        message=message)


def per_queue_value(raw, queue: str, walltime: int) -> int:
    """``WALLTIME_CHANGE_APPLY_TIME`` / ``WALLTIME_INCREMENT``: a number, or a per-queue mapping
    (``{"default": 600, "_": 0.1}``, ``_`` for the other queues); a float up to 1 is a share of ``walltime``."""
    import ast

    value = raw
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return 0
        value = ast.literal_eval(text)
        if isinstance(value, dict):
            value = value.get(queue, value.get("_", 0))
    if isinstance(value, float) and value <= 1.0:
        return int(walltime * value)
    return int(value or 0)
