"""The window search over one platform: compiled requests, first fit, the moldable choice.

A :class:`Search` holds what does not change from one round to the next (the
hierarchy, the platform's resource sets, the options); its methods are the
engine's public search API, used by :class:`~oarsched.engine.round.Round` and
by the plugin runtime (:mod:`oarsched.engine.plugin_runtime`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, NamedTuple, Protocol, Sequence

import numpy as np

from oarsched._core import bitset
from oarsched._core.hierarchy import Hierarchy, Request
from oarsched.engine.constraints import GroupConstraints
from oarsched.engine.quotas import QuotaState
from oarsched.engine.slots import Occupation, SlotSet, share_extension
from oarsched.errors import JobError
from oarsched.model.job import (
    NO_PLACEHOLDER,
    Job,
    ResourceGroup,
    placeholder_of,
    quota_view,
    timesharing_key,
)
from oarsched.model.platform import Platform

if TYPE_CHECKING:
    from oarsched.plugins.registry import PluginRegistry


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
    quotas: QuotaState | None = None
    """The quotas of the rounds, or None when quotas are off."""


ConstraintResolver = Callable[[Job, ResourceGroup], np.ndarray]


@dataclass(eq=False)
class Held:
    """What a search keeps of a ScheduledJob object between rounds (see ``Search.held``)."""

    job: object
    res: np.ndarray
    nb_default: int
    key: tuple | None = None
    occupation: Occupation | None = None


class CompiledMoldable(NamedTuple):
    """A moldable ready for the window search."""

    id: int
    walltime: int
    """W: the moldable's walltime plus the job security time."""
    request: Request
    cache_key: tuple
    groups: list[tuple[list[tuple[str, int]], np.ndarray]]
    """``(levels, constraint bitset)`` of each resource group (what find plugins see)."""


Found = tuple[int, np.ndarray]
"""``(start, resources bitset)`` of a window search."""

Choice = tuple[int, int, int, np.ndarray]
"""``(moldable_id, W, start, resources bitset)``: the placement of a job."""


class WindowFinder(Protocol):
    """A window search for one moldable (the compiled one, or a find plugin's)."""

    def __call__(self, ss: SlotSet, job: Job, mld: CompiledMoldable, min_start: int) -> Found | None: ...


class Search:
    """The search of a platform's resources and time, shared by the rounds run on it.

    ``plugins`` resolves the ``find=``/``assign=`` job types
    (:class:`oarsched.plugins.PluginRegistry`); by default the entry points
    ``oar.find_func``/``oar.assign_func``, looked up on the first job that
    names one.  Jobs without such types never touch the plugin machinery.
    """

    def __init__(self, platform: Platform, options: SchedulerOptions | None = None,
                 constraints: ConstraintResolver | None = None, plugins: PluginRegistry | None = None) -> None:
        self.platform = platform
        self.options = options or SchedulerOptions()
        self.nbits = platform.size
        self.hierarchy = Hierarchy(self.nbits, {lbl: platform.block_ids(lbl) for lbl in platform.hierarchy_labels})
        self.schedulable = bitset.from_mask(platform.schedulable)
        self.default_set = bitset.from_mask(platform.default_type)
        self.leaving = self._resources_leaving()
        self.suspendable = bitset.from_mask(platform.suspendable)
        self.constraints = constraints or GroupConstraints(platform)
        self.plugins = plugins
        # Work kept between rounds for callers that schedule the same objects again (the simulator):
        # compiled requests per Job, resource sets and occupations per ScheduledJob; keyed by identity,
        # each entry holding its object (so the id cannot be reused), pruned to the latest round's objects.
        self.keep_between_rounds = True
        """False forgets that work at every round (to measure what it saves)."""
        self._compiled: dict[int, tuple[Job, list[CompiledMoldable]]] = {}
        self.held: dict[int, Held] = {}

    @property
    def quotas(self) -> QuotaState | None:
        return self.options.quotas

    def plugin_registry(self) -> PluginRegistry:
        """The registry of find/assign plugins (the entry points unless one was given)."""
        if self.plugins is None:
            from oarsched.plugins.registry import PluginRegistry

            self.plugins = PluginRegistry()
        return self.plugins

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

    def new_round(self, round_ids: set[int]) -> None:
        """What a round starting now keeps of the previous ones (the compiled requests of its jobs)."""
        if not self.keep_between_rounds:
            self._compiled, self.held = {}, {}
        elif len(self._compiled) > 2 * len(round_ids) + 1000:
            self._compiled = {k: v for k, v in self._compiled.items() if v[0].id in round_ids}

    def held_entry(self, job, held: dict[int, Held]) -> Held:
        """A scheduled job's resource set (and, filled by the round, its occupation), once per object."""
        entry = self.held.get(id(job))
        if entry is None or entry.job is not job:
            res = bitset.from_indices(self.platform.roids(job.resources), self.nbits)
            entry = Held(job, res, bitset.count(res & self.default_set))
        held[id(job)] = entry
        return entry

    def compile(self, job: Job) -> list[CompiledMoldable]:
        """The job's moldables, compiled once per Job object; W includes the security time."""
        cached = self._compiled.get(id(job))
        if cached is not None and cached[0] is job:
            return cached[1]
        compiled = self._compile(job)
        self._compiled[id(job)] = (job, compiled)
        return compiled

    def _compile(self, job: Job) -> list[CompiledMoldable]:
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
                cons = self.constraints(job, grp)
                groups.append((grp.levels, cons))
                key_parts.append((tuple(grp.levels), cons.tobytes()))
            w = int(mld.walltime) + sec
            out.append(CompiledMoldable(mld.id, w, Request(self.hierarchy, groups), (w, tuple(key_parts)), groups))
        return out

    def occupation(self, job, start: int, w: int, res: np.ndarray, nb_default: int | None = None) -> Occupation:
        """A job (waiting or placed) as the slot set records it: span, resources, sharing keys, quota view."""
        ph, ph_name = placeholder_of(job.types)
        counts = self.quotas is not None and "container" not in job.types
        if nb_default is None:
            nb_default = bitset.count(res & self.default_set)
        return Occupation(
            start_time=start, walltime=w, resources=res, ts_key=timesharing_key(job), ph=ph, ph_name=ph_name,
            quota_job=quota_view(job) if counts else None, nb_default=nb_default, job_id=job.id,
        )

    # -- the search API (also what plugins run on) ---------------------------------------------
    def choose_moldable(self, ss: SlotSet, job: Job, moldables: Sequence[CompiledMoldable], min_start: int,
                        find_window: WindowFinder | None = None) -> Choice | None:
        """Earliest-finishing moldable, ties to the first (OAR3).

        ``find_window`` replaces :meth:`find_window` (a find plugin's search).
        """
        find = find_window or self.find_window
        best = None
        for mld in moldables:
            found = find(ss, job, mld, min_start)
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

    def start_slot(self, ss: SlotSet, min_start: int) -> int:
        """First slot to scan from a dependency's end: the job never starts before ``min_start``."""
        sid = ss.slot_id_at(min_start)
        if sid == 0:
            return 0 if min_start < ss.begin else -1
        b, e, _, _ = ss.slot(sid)
        if b < min_start:
            # split so that a slot begins at min_start; the earlier part keeps the id (cache stays valid)
            _, sid = ss.split_at_after(sid, min_start)
        return sid

    def find_window(self, ss: SlotSet, job: Job, mld: CompiledMoldable, min_start: int) -> Found | None:
        """First window where the compiled request fits, from ``min_start`` (-1: the start or the cache).

        Returns ``(start, resources bitset)`` or None.
        """
        w, request, key = mld.walltime, mld.request, mld.cache_key
        ts_key = timesharing_key(job)
        ph, ph_name = placeholder_of(job.types)
        cacheable = self.options.use_cache and ts_key is None and ph == NO_PLACEHOLDER
        if min_start < 0:
            start_sid = ss.cache.get(key, 0) if cacheable else 0
        else:
            start_sid = self.start_slot(ss, min_start)
            if start_sid < 0:
                return None
        ext = share_extension(ss, ts_key, ph, ph_name)
        quotas = self.quotas if not job.no_quotas else None
        with_quotas = quotas is not None
        if quotas is not None:
            found = quotas.find_window(ss, start_sid, w, request, ext, quota_view(job), self.default_set)
        else:
            found = ss.find_first(start_sid, w, request, ext)
        if found is None:
            return None
        sl, _sr, res = found
        if cacheable and min_start < 0 and not with_quotas:
            ss.cache[key] = sl
        return ss.slot(sl)[0], res
