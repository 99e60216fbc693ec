"""One scheduling round: OAR3's kamelot over the compiled core.

Data flows one way: a :class:`~oarsched.model.platform.Platform`, the waiting
jobs in scheduling order and the jobs already in the gantt go in; a
:class:`ScheduleResult` (start time, moldable and resources of each placed
job) comes out.  Reading a database and writing the decisions back are the
adapter's business (:mod:`oarsched.oar`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple, Sequence

import numpy as np

from oarsched._core import bitset
from oarsched._core.hierarchy import Hierarchy, Request
from oarsched.engine.constraints import GroupConstraints
from oarsched.engine.slots import (
    MAX_TIME,
    Occupation,
    SlotSet,
    give,
    insert_jobs,
    new_slot_set,
    occupy,
    share_extension,
)
from oarsched.errors import JobError, OarschedError
from oarsched.model.job import NO_PLACEHOLDER, Job, ResourceGroup, placeholder_of, timesharing_of
from oarsched.model.platform import Platform

if TYPE_CHECKING:
    from oarsched.plugins.registry import PluginRegistry

log = logging.getLogger("oarsched.engine")

# Job types that OAR3 turns into job attributes: they are not "types" for quotas.
ATTRIBUTE_TYPES = frozenset({"timesharing", "placeholder", "allow", "assign", "find", "no_quotas"})


@dataclass
class ScheduledJob:
    """A job already in the gantt: running, an accepted reservation, or placed by a higher-priority queue.

    ``walltime`` is the moldable's walltime as stored (the engine adds the job
    security time and ``suspended_time``).  ``resources`` are resource ids.
    """

    id: int
    start_time: int
    walltime: int
    resources: Sequence[int]
    moldable_id: int = 0
    types: dict[str, str] = field(default_factory=dict)
    user: str = ""
    project: str = ""
    queue: str = "default"
    name: str = ""
    state: str = "Running"
    suspended_time: int = 0


@dataclass(eq=False)
class _Held:
    """What the scheduler keeps of a ScheduledJob object between rounds (see ``Scheduler._held``)."""

    job: ScheduledJob
    res: np.ndarray
    nb_default: int
    key: tuple | None = None
    occupation: Occupation | None = None


@dataclass
class Assignment:
    """Where and when a job runs."""

    job_id: int
    moldable_id: int
    start_time: int
    walltime: int
    """Walltime as reserved: the moldable's walltime plus the job security time."""
    runs: np.ndarray = field(repr=False)
    """The resources as runs of consecutive order indices (``(n, 2)``, inclusive): a few bytes per job."""
    rid_of: np.ndarray = field(repr=False)
    """The platform's resource id of each order index."""

    @property
    def res(self) -> np.ndarray:
        """The resources as a bitset over order indices (computed on each access)."""
        return bitset.from_runs(self.runs, self.rid_of.shape[0])

    @property
    def roids(self) -> np.ndarray:
        """Order indices of the resources (computed on each access: large jobs are not kept expanded)."""
        return bitset.runs_to_indices(self.runs)

    @property
    def rids(self) -> np.ndarray:
        """Resource ids, in resource order (as OAR writes them); computed on each access."""
        return self.rid_of[self.roids]

    @property
    def resources(self) -> list[int]:
        """Resource ids, in resource order."""
        return self.rids.tolist()

    @property
    def nb_resources(self) -> int:
        return int((self.runs[:, 1] - self.runs[:, 0]).sum() + self.runs.shape[0])

    def __repr__(self) -> str:
        return (f"Assignment(job_id={self.job_id}, moldable_id={self.moldable_id}, start_time={self.start_time}, "
                f"walltime={self.walltime}, resources={self.resources})")

    @property
    def end_time(self) -> int:
        """Last second reserved (inclusive)."""
        return self.start_time + self.walltime - 1


@dataclass
class ScheduleResult:
    """Decisions of one round."""

    assignments: dict[int, Assignment] = field(default_factory=dict)
    unscheduled: dict[int, str] = field(default_factory=dict)
    """Job id -> why it got no place this round."""
    errors: dict[int, str] = field(default_factory=dict)
    """Job id -> what is wrong with it (the job was skipped, the round went on)."""

    def __getitem__(self, job_id: int) -> Assignment:
        return self.assignments[job_id]

    def __contains__(self, job_id: int) -> bool:
        return job_id in self.assignments

    def __len__(self) -> int:
        return len(self.assignments)


@dataclass
class SchedulerOptions:
    """Knobs of a round (OAR3's config keys in brackets)."""

    job_security_time: int = 0
    """[SCHEDULER_JOB_SECURITY_TIME] seconds added to every walltime (OAR3's oar.conf default is 60;
    the drop-in reads it from oar.conf, the library default is 0 so that walltimes are exact)."""
    besteffort_round: bool = False
    """True when scheduling the besteffort queue alone: placed besteffort jobs then occupy resources."""
    use_cache: bool = True
    """Start the window search of a request where the same request was last placed (never changes results)."""
    quotas: object = None
    """An :class:`oarsched.engine.quotas.QuotaState`, or None when quotas are off."""


ConstraintResolver = Callable[[Job, ResourceGroup], np.ndarray]


class CompiledMoldable(NamedTuple):
    """A moldable ready for the window search."""

    id: int
    walltime: int
    """W: the moldable's walltime plus the job security time."""
    request: Request
    cache_key: tuple
    groups: list[tuple[list[tuple[str, int]], np.ndarray]]
    """``(levels, constraint bitset)`` of each resource group (what find plugins see)."""


class Scheduler:
    """Schedules jobs on a platform; one instance can run several rounds.

    ``plugins`` resolves the ``find=``/``assign=`` job types
    (:class:`oarsched.plugins.PluginRegistry`); by default the entry points
    ``oar.find_func``/``oar.assign_func``, looked up on the first job that
    names one.  Jobs without such types never touch the plugin machinery.
    """

    def __init__(self, platform: Platform, options: SchedulerOptions | None = None,
                 constraints: ConstraintResolver | None = None, plugins: "PluginRegistry | None" = None) -> None:
        self.platform = platform
        self.options = options or SchedulerOptions()
        self.nbits = platform.size
        self.hierarchy = Hierarchy(self.nbits, {lbl: platform.block_ids(lbl) for lbl in platform.hierarchy_labels})
        self.schedulable = bitset.from_mask(platform.schedulable)
        self.default_set = bitset.from_mask(platform.default_type)
        self._leaving = self._resources_leaving()
        self.suspendable = bitset.from_mask(platform.suspendable)
        self._resolve = constraints or GroupConstraints(platform)
        self.plugins = plugins
        # Work kept between rounds for callers that schedule the same objects again (the simulator):
        # compiled requests per Job, resource bitsets per ScheduledJob; keyed by identity, each entry
        # holding its object (so the id cannot be reused), pruned to the objects of the latest round.
        self._compiled: dict[int, tuple[Job, list[CompiledMoldable]]] = {}
        self._held: dict[int, _Held] = {}
        self.keep_between_rounds = True
        """False forgets that work at every round (to measure what it saves)."""
        self.kept: dict[str, SlotSet] | None = None
        """The slot sets of the last ``schedule(..., keep=True)``, extended by :meth:`schedule_more`."""

    def plugin_registry(self) -> "PluginRegistry":
        """The registry of find/assign plugins (the entry points unless one was given)."""
        if self.plugins is None:
            from oarsched.plugins.registry import PluginRegistry

            self.plugins = PluginRegistry()
        return self.plugins

    def _compile(self, job: Job) -> list[CompiledMoldable]:
        """The job's moldables, compiled once per Job object; W includes the security time."""
        cached = self._compiled.get(id(job))
        if cached is not None and cached[0] is job:
            return cached[1]
        compiled = self._compile_now(job)
        self._compiled[id(job)] = (job, compiled)
        return compiled

    def _compile_now(self, job: Job) -> list[CompiledMoldable]:
        sec = self.options.job_security_time
        out = []
        if not job.moldables:
            raise JobError(job.id, "no moldable description")
        for mld in job.moldables:
            if mld.walltime is None or int(mld.walltime) <= 0:
                raise JobError(job.id, f"moldable {mld.id}: walltime must be positive, got {mld.walltime!r}")
            if not mld.groups:
                raise JobError(job.id, f"moldable {mld.id}: no resource group")
            groups = []
            key_parts = []
            for grp in mld.groups:
                for label, _ in grp.levels:
                    if not self.platform.has_level(label):
                        raise JobError(job.id, f"unknown hierarchy level {label!r} "
                                       f"(HIERARCHY_LABELS: {','.join(self.platform.hierarchy_labels)})")
                cons = self._resolve(job, grp)
                groups.append((grp.levels, cons))
                key_parts.append((tuple(grp.levels), cons.tobytes()))
            w = int(mld.walltime) + sec
            out.append(CompiledMoldable(mld.id, w, Request(self.hierarchy, groups), (w, tuple(key_parts)), groups))
        return out

    # -- the round ----------------------------------------------------------------------
    def schedule(self, jobs: Sequence[Job], now: int, scheduled: Iterable[ScheduledJob] = (), *,
                 keep: bool = False) -> ScheduleResult:
        """Place ``jobs`` (in this order) after the jobs already ``scheduled``, from ``now`` on.

        ``keep``: keep the round's slot sets for :meth:`schedule_more`.
        """
        quotas = self.options.quotas
        if quotas is not None:
            quotas.now = now
        slot_sets = {"default": new_slot_set(self.nbits, now, self.schedulable.copy(), quotas=quotas)}
        self._block_available_upto(slot_sets["default"], quotas)
        self._insert_scheduled(slot_sets, list(scheduled), now, quotas)
        if not self.keep_between_rounds:
            self._compiled, self._held = {}, {}
        if len(self._compiled) > 2 * len(jobs) + 1000:
            self._compiled = {id(j): self._compiled[id(j)] for j in jobs if id(j) in self._compiled}
        self.kept = slot_sets if keep and quotas is None else None
        return self._place(jobs, slot_sets, quotas, -1)

    def schedule_more(self, jobs: Sequence[Job], now: int) -> ScheduleResult:
        """Place ``jobs`` from ``now`` on, after the jobs of the last round kept (``schedule(..., keep=True)``).

        The same decisions as a round at ``now`` given the jobs placed since
        (in the kept slot sets) as ``scheduled``, provided no job was
        removed and no job reserved up to ``now`` or before ended since
        (the caller's promise: the simulator calls it only then).  The slots
        before ``now`` are simply not searched.
        """
        if self.kept is None:
            raise ValueError("schedule_more: no round kept (schedule(..., keep=True) first, without quotas)")
        return self._place(jobs, self.kept, None, now)

    def _place(self, jobs: Sequence[Job], slot_sets, quotas, floor: int) -> ScheduleResult:
        result = ScheduleResult()
        placed: dict[int, tuple[int, int]] = {}  # job id -> (start, W), for dependencies
        round_ids = {j.id for j in jobs}
        for job in jobs:
            try:
                self._schedule_job(job, slot_sets, placed, round_ids, result, quotas, floor)
            except JobError as exc:
                log.error("%s; job skipped", exc)
                result.errors[job.id] = exc.message
                result.unscheduled[job.id] = exc.message
            except OarschedError as exc:
                log.error("job %s: %s; job skipped", job.id, exc)
                result.errors[job.id] = str(exc)
                result.unscheduled[job.id] = str(exc)
        return result

    def _block_available_upto(self, ss: SlotSet, quotas) -> None:
        """Resources leave the platform at their ``available_upto``: a pseudo job holds them from then on."""
        pseudo = [
            Occupation(start_time=t, walltime=MAX_TIME - t, resources=res,
                       quota_job=_PseudoQuotaJob() if quotas is not None else None, nb_default=nb_default)
            for t, res, nb_default in self._leaving
        ]
        insert_jobs(ss, pseudo, quotas)

    def _resources_leaving(self) -> list[tuple[int, np.ndarray, int]]:
        """``(available_upto, resources, default-type count)`` per distinct time, computed once per platform."""
        by_time: dict[int, list[int]] = {}
        for roid, r in enumerate(self.platform.resources):
            if self.platform.schedulable[roid]:
                by_time.setdefault(int(r.available_upto), []).append(roid)
        leaving = []
        for t in sorted(by_time):
            res = bitset.from_indices(by_time[t], self.nbits)
            leaving.append((t, res, bitset.count(res & self.default_set)))
        return leaving

    def _insert_scheduled(self, slot_sets: dict[str, SlotSet], scheduled: list[ScheduledJob], now: int, quotas) -> None:
        sec = self.options.job_security_time
        per_set: dict[str, list[Occupation]] = {"default": []}
        held: dict[int, _Held] = {}
        for job in sorted(scheduled, key=lambda j: (j.start_time, j.id)):
            is_be = "besteffort" in job.types
            if is_be and not self.options.besteffort_round:
                continue
            entry = self._held_entry(job, held)
            res = entry.res
            if job.state == "Suspended":
                res = res & ~self.suspendable
            w = int(job.walltime) + sec + int(job.suspended_time)
            if "container" in job.types:
                name = job.types["container"] or str(job.id)
                inner = slot_sets.get(name)
                if inner is None:
                    inner = slot_sets[name] = new_slot_set(self.nbits, 1, bitset.empty(self.nbits), quotas=quotas)
                give(inner, Occupation(start_time=max(job.start_time, now), walltime=w - sec, resources=res))
            set_name = job.types.get("inner", "default") if "inner" in job.types else "default"
            key = (job.start_time, w, job.state, quotas is not None)
            if entry.occupation is None or entry.key != key:
                entry.key = key
                entry.occupation = self._occupation(job, job.start_time, w, res, quotas,
                                                    entry.nb_default if res is entry.res else None)
            per_set.setdefault(set_name, []).append(entry.occupation)
        self._held = held
        for name, ss in slot_sets.items():
            if name in per_set:
                insert_jobs(ss, per_set[name], quotas)

    def _held_entry(self, job: ScheduledJob, held: dict[int, _Held]) -> _Held:
        """A scheduled job's resource bitset and occupation, computed once per ScheduledJob object."""
        entry = self._held.get(id(job))
        if entry is None or entry.job is not job:
            res = bitset.from_indices(self.platform.roids(job.resources), self.nbits)
            entry = _Held(job, res, bitset.count(res & self.default_set))
        held[id(job)] = entry
        return entry

    def _occupation(self, job, start: int, w: int, res: np.ndarray, quotas, nb_default: int | None = None) -> Occupation:
        ts_key = _ts_key(job)
        ph, ph_name = placeholder_of(job.types)
        counts = quotas is not None and "container" not in job.types
        if nb_default is None:
            nb_default = bitset.count(res & self.default_set)
        return Occupation(
            start_time=start, walltime=w, resources=res, ts_key=ts_key, ph=ph, ph_name=ph_name,
            quota_job=_QuotaView.of(job) if counts else None, nb_default=nb_default, job_id=job.id,
        )

    def _min_start(self, job: Job, placed: dict[int, tuple[int, int]], round_ids: set[int]) -> int | str:
        """Earliest start allowed by dependencies, -1 for none, or the reason the job must wait."""
        min_start = -1
        for dep in job.dependencies:
            if dep.state == "Error":
                continue
            if dep.state == "Waiting":
                if dep.job_id not in round_ids:
                    return f"depends on waiting job {dep.job_id} that is not scheduled in this round"
                if dep.job_id not in placed:
                    return f"depends on job {dep.job_id} that has no place yet"
                start, w = placed[dep.job_id]
                min_start = max(min_start, start + w)
            elif dep.state == "Terminated" and (dep.exit_code in (0, None)):
                continue
            else:
                return f"depends on job {dep.job_id} in state {dep.state}" + (
                    f" (exit code {dep.exit_code})" if dep.state == "Terminated" else "")
        return min_start

    def _schedule_job(self, job: Job, slot_sets, placed, round_ids, result: ScheduleResult, quotas,
                      floor: int = -1) -> None:
        min_start = self._min_start(job, placed, round_ids)
        if isinstance(min_start, str):
            result.unscheduled[job.id] = min_start
            return
        min_start = max(min_start, floor)
        set_name = job.types["inner"] if "inner" in job.types else "default"
        ss = slot_sets.get(set_name)
        if ss is None:
            raise JobError(job.id, f"container {set_name!r} has no slot set (not placed or unknown)")
        moldables = self._compile(job)
        types = job.types
        if "find" in types or "assign" in types:
            from oarsched.plugins.runtime import choose

            choice = choose(self, ss, job, moldables, min_start, quotas)
        else:
            choice = self._choose_moldable(ss, job, moldables, min_start, quotas)
        if choice is None or isinstance(choice, str):
            result.unscheduled[job.id] = choice or "no suitable resources and time window"
            return
        mld_id, w, start, res = choice
        occ = self._occupation(job, start, w, res, quotas)
        occupy(ss, occ, quotas)
        result.assignments[job.id] = Assignment(
            job_id=job.id, moldable_id=mld_id, start_time=start, walltime=w, runs=bitset.to_runs(res),
            rid_of=self.platform.rids,
        )
        placed[job.id] = (start, w)
        if "container" in job.types:
            self._open_container(job, slot_sets, start, w, res, quotas)

    def _open_container(self, job: Job, slot_sets, start: int, w: int, res: np.ndarray, quotas) -> None:
        sec = self.options.job_security_time
        name = job.types["container"] or str(job.id)
        inner = slot_sets.get(name)
        if inner is not None:
            give(inner, Occupation(start_time=start, walltime=w - sec, resources=res))
        else:
            slot_sets[name] = new_slot_set(self.nbits, start, res.copy(), end=start + w - sec, quotas=quotas)

    def _choose_moldable(self, ss: SlotSet, job: Job, moldables: list[CompiledMoldable], min_start: int, quotas,
                         find_window=None):
        """Earliest-finishing moldable, ties to the first (OAR3).

        ``find_window`` replaces :meth:`_find_window` (a find plugin's search).
        """
        find = find_window or self._find_window
        best = None
        for mld in moldables:
            found = find(ss, job, mld, min_start, quotas)
            if found is None:
                continue
            start, res = found
            w = mld.walltime
            finish = start + w - 1
            if best is None or finish < best[0]:
                best = (finish, mld.id, w, start, res)
        if best is None:
            return None
        return best[1], best[2], best[3], best[4]

    def _start_slot(self, ss: SlotSet, min_start: int) -> int:
        """First slot to scan from a dependency's end: the job never starts before ``min_start``."""
        sid = ss.slot_id_at(min_start)
        if sid == 0:
            return 0 if min_start < ss.begin else -1
        b, e, _, _ = ss.slot(sid)
        if b < min_start:
            # split so that a slot begins at min_start; the earlier part keeps the id (cache stays valid)
            _, sid = ss.split_at_after(sid, min_start)
        return sid

    def _find_window(self, ss: SlotSet, job: Job, mld: CompiledMoldable, min_start: int, quotas):
        """First window where the compiled request fits, from ``min_start`` (-1: the start or the cache)."""
        w, request, key = mld.walltime, mld.request, mld.cache_key
        ts_key = _ts_key(job)
        ph, ph_name = placeholder_of(job.types)
        cacheable = self.options.use_cache and ts_key is None and ph == NO_PLACEHOLDER
        if min_start < 0:
            start_sid = ss.cache.get(key, 0) if cacheable else 0
        else:
            start_sid = self._start_slot(ss, min_start)
            if start_sid < 0:
                return None
        ext = share_extension(ss, ts_key, ph, ph_name)
        with_quotas = quotas is not None and not job.no_quotas
        if with_quotas:
            found = quotas.find_window(ss, start_sid, w, request, ext, _QuotaView.of(job), self.default_set)
        else:
            found = ss.find_first(start_sid, w, request, ext)
        if found is None:
            return None
        sl, _sr, res = found
        if cacheable and min_start < 0 and not with_quotas:
            ss.cache[key] = sl
        return ss.slot(sl)[0], res


@dataclass
class _QuotaView:
    """What quota counters read of a job: queue, project, user and its OAR types (first one counts)."""

    queue: str
    project: str
    user: str
    types: dict

    @classmethod
    def of(cls, job) -> "_QuotaView":
        types = {k: v for k, v in job.types.items() if k not in ATTRIBUTE_TYPES}
        return cls(queue=job.queue, project=job.project, user=job.user, types=types)


def _PseudoQuotaJob() -> _QuotaView:
    # OAR3 counts the available_upto pseudo jobs as a job of user "" in queue default (T5)
    return _QuotaView(queue="default", project="", user="", types={})


def _ts_key(job) -> tuple[str, str] | None:
    """Timesharing key: ``timesharing=user,name`` shares with jobs of the same user and name."""
    ts = timesharing_of(job.types) if job.types else None
    if ts is None:
        return None
    return (job.user if ts[0] == "user" else "*", job.name if ts[1] == "name" else "*")

