"""What find and assign plugins receive and return, in oarsched's own types.

A job asks for a plugin with the OAR job types ``find=NAME[:arg...][:key=value...]``
and ``assign=NAME[:arg...][:key=value...]``; ``NAME`` is an entry point of
the group ``oar.find_func`` or ``oar.assign_func``.  The ``:``-fields without
``=`` are passed as positional string arguments, the ``key=value`` fields as
keyword string arguments (OAR3's convention).

**find** functions replace the resource matcher, window by window::

    @find_function
    def contiguous(window: Window, *args: str, **kwargs: str) -> Resources | None: ...

The engine walks the job's time windows in time order (for each moldable) and
calls the function with one :class:`Window` each time: the resources free
during the whole window, the job's resource groups, the platform.  The
function returns the order indices it takes (an int array or any iterable of
ints) or ``None``/an empty collection to move on to the next window.  The
first window where it returns resources (and the quotas admit them) wins.

**assign** functions replace the whole placement of a job::

    @assign_function
    def start_now(ctx: AssignContext, *args: str, **kwargs: str) -> Placement | None: ...

They get an :class:`AssignContext`: the job, its moldables, the earliest start
allowed, a view of the slot set, and the engine's window search as a service
(:meth:`AssignContext.first_fit`, :meth:`AssignContext.default`).  They return
a :class:`Placement` (moldable, start time, order indices) or ``None`` to leave
the job unscheduled this round.  The engine checks the placement and applies
it: a plugin never mutates the slot set.

Resources are always given as *order indices*: positions in
``platform.resources`` (the scheduling order, OAR3's ``SCHEDULER_RESOURCE_ORDER``),
as sorted ``int64`` arrays.  ``platform.rids[indices]`` gives resource ids.

Whatever a plugin returns is checked before use (see :mod:`oarsched.engine.plugin_runtime`):
resources outside the window's free set or outside the job's property
constraints, a placement overlapping other jobs, exceeding the quotas or
starting too early, a value of the wrong type, or an exception, are reported
as a :class:`PluginError` naming the plugin and the job, and the job is left
unscheduled this round; the round goes on.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence, Union

import numpy as np

from oarsched._core import bitset
from oarsched.errors import JobError

if TYPE_CHECKING:
    from oarsched._core.hierarchy import Hierarchy, Request
    from oarsched.model.job import Job
    from oarsched.model.platform import Platform

__all__ = [
    "AssignContext", "AssignFunction", "FindFunction", "GroupRequest", "MoldableRequest",
    "Placement", "PluginError", "Resources", "SlotView", "Window",
    "assign_function", "find_function", "indices_to_set", "set_to_indices",
]

FIND_GROUP = "oar.find_func"
"""Entry-point group of find functions (OAR3's name)."""
ASSIGN_GROUP = "oar.assign_func"
"""Entry-point group of assign functions (OAR3's name)."""

Resources = Union[np.ndarray, Sequence[int], Iterable[int]]
"""What a find function may return: order indices (an int array, a list, a range, a set...)."""

_KIND_ATTR = "__oarsched_plugin__"


class PluginError(JobError):
    """A plugin could not be loaded, raised, or returned something unusable, for one job."""

    def __init__(self, job_id: int | None, kind: str, name: str, problem: str) -> None:
        self.kind = kind
        self.plugin = name
        self.problem = problem
        super().__init__(job_id, f"{kind} plugin {name!r} {problem}")


# ----------------------------------------------------------------------- bitset <-> indices
def set_to_indices(bs: np.ndarray) -> np.ndarray:
    """Sorted order indices of a bitset (the engine's uint64 words)."""
    return bitset.to_indices(bs)


def indices_to_set(indices: np.ndarray, nbits: int) -> np.ndarray:
    """The bitset of valid order indices (``0 <= i < nbits``, checked by the caller)."""
    mask = np.zeros(nbits, dtype=bool)
    mask[indices] = True
    return bitset.from_mask(mask)


# ----------------------------------------------------------------------- the job's request
@dataclass(eq=False)
class GroupRequest:
    """One resource group of a moldable (a ``+``-separated part of ``oarsub -l``).

    ``levels`` are the hierarchy levels top to bottom with their counts
    (``[("network_address", 2), ("core", 4)]``; ALL/BEST/HALF_BEST are -1/-2/-3).
    ``allowed`` are the order indices the group may use: the schedulable
    resources its property expressions select (type ``default`` when it has
    none).  A find function must stay within them.
    """

    levels: tuple[tuple[str, int], ...]
    allowed_set: np.ndarray = field(repr=False)
    """``allowed`` as a bitset (the engine's form)."""
    _allowed: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def allowed(self) -> np.ndarray:
        """Order indices this group may use (sorted)."""
        if self._allowed is None:
            self._allowed = set_to_indices(self.allowed_set)
        return self._allowed


@dataclass(eq=False)
class MoldableRequest:
    """One moldable of the job: its id, its walltime as reserved and its resource groups."""

    id: int
    walltime: int
    """Seconds reserved: the moldable's walltime plus the job security time."""
    groups: tuple[GroupRequest, ...]
    request: "Request" = field(repr=False)
    """The compiled request of all groups (the default matcher's input)."""
    hierarchy: "Hierarchy" = field(repr=False)
    _group_requests: dict = field(default_factory=dict, init=False, repr=False)

    @functools.cached_property
    def allowed_set(self) -> np.ndarray:
        """Union of the groups' ``allowed`` sets (bitset)."""
        out = self.groups[0].allowed_set.copy()
        for grp in self.groups[1:]:
            out |= grp.allowed_set
        return out

    def group_request(self, index: int) -> "Request":
        """The compiled matcher of one group alone."""
        req = self._group_requests.get(index)
        if req is None:
            from oarsched._core.hierarchy import Request

            grp = self.groups[index]
            req = self._group_requests[index] = Request(self.hierarchy, [(list(grp.levels), grp.allowed_set)])
        return req


# ----------------------------------------------------------------------- find
class Window:
    """One time window offered to a find function.

    The window starts at :attr:`start_time` and lasts the moldable's
    :attr:`walltime`; :attr:`free` are the resources free during all of it
    (with the resources a timesharing or ``allow`` job may share).
    """

    __slots__ = ("job", "moldable", "start_time", "begins_slot_set", "platform", "free_set", "_free")

    def __init__(self, job: "Job", moldable: MoldableRequest, start_time: int, begins_slot_set: bool,
                 platform: "Platform", free_set: np.ndarray) -> None:
        self.job = job
        """The job being placed (``job.types``, ``job.user``... are there)."""
        self.moldable = moldable
        """The moldable being tried."""
        self.start_time = start_time
        """When the job would start in this window."""
        self.begins_slot_set = begins_slot_set
        """True when the window starts at the beginning of the slot set (now, for most jobs): OAR3's
        ``beginning_slotset``."""
        self.platform = platform
        """Resources in scheduling order (``platform.resources[i]`` is order index ``i``) and hierarchy."""
        self.free_set = free_set
        """:attr:`free` as a bitset (the engine's form; do not modify)."""
        self._free: np.ndarray | None = None

    @property
    def groups(self) -> tuple[GroupRequest, ...]:
        """The moldable's resource groups."""
        return self.moldable.groups

    @property
    def walltime(self) -> int:
        """Seconds reserved (walltime plus security time)."""
        return self.moldable.walltime

    @property
    def free(self) -> np.ndarray:
        """Order indices free during the whole window (sorted int64 array)."""
        if self._free is None:
            self._free = set_to_indices(self.free_set)
        return self._free

    def candidates(self, group: GroupRequest | int = 0) -> np.ndarray:
        """Order indices a group may take in this window: free and allowed (sorted)."""
        grp = self.groups[group] if isinstance(group, int) else group
        return set_to_indices(self.free_set & grp.allowed_set)

    def blocks(self, label: str) -> list[np.ndarray]:
        """The blocks of a hierarchy level (arrays of order indices), in block order."""
        return self.platform.level(label)

    def default_match(self, available: Resources | None = None) -> np.ndarray | None:
        """What oarsched's own matcher takes for all groups, in ``available`` (default: :attr:`free`).

        Returns sorted order indices, or None when the request does not fit.
        """
        return self._run(self.moldable.request, available)

    def match(self, group: GroupRequest | int, available: Resources | None = None) -> np.ndarray | None:
        """What oarsched's own matcher takes for one group, in ``available`` (default: :attr:`free`)."""
        index = group if isinstance(group, int) else self.groups.index(group)
        return self._run(self.moldable.group_request(index), available)

    def _run(self, request: "Request", available: Resources | None) -> np.ndarray | None:
        if available is None:
            avail = self.free_set
        else:
            avail = indices_to_set(checked_indices(available, self.platform.size), self.platform.size)
        found = request.find(avail)
        return None if found is None else set_to_indices(found)

    def __repr__(self) -> str:
        return (f"Window(job={self.job.id}, moldable={self.moldable.id}, start_time={self.start_time}, "
                f"walltime={self.walltime}, free={bitset.count(self.free_set)} resources)")


class FindFunction(Protocol):
    """``find(window, *args, **kwargs) -> order indices | None``."""

    def __call__(self, window: Window, /, *args: str, **kwargs: str) -> Resources | None: ...


# ----------------------------------------------------------------------- assign
@dataclass(frozen=True, eq=False)
class Placement:
    """An assign function's decision: which moldable, when, on which resources (order indices)."""

    moldable_id: int
    start_time: int
    roids: Resources
    """Order indices of the resources (positions in ``platform.resources``)."""


@dataclass(frozen=True, eq=False)
class SlotView:
    """One slot of the slot set: ``[begin, end]`` (inclusive) and the resources free all along it."""

    begin: int
    end: int
    free_set: np.ndarray = field(repr=False)

    @property
    def free(self) -> np.ndarray:
        """Order indices free during the whole slot (sharing included), sorted."""
        return set_to_indices(self.free_set)


class _SearchService(Protocol):
    """What :class:`AssignContext` delegates to (implemented by the runtime)."""

    def first_fit(self, moldable: MoldableRequest, earliest: int | None, latest: int | None,
                  find: "FindFunction | None") -> Placement | None: ...

    def default(self) -> Placement | None: ...

    def check(self, placement: Placement) -> str | None: ...

    def slots(self) -> list[SlotView]: ...

    def free_between(self, start: int, end: int) -> np.ndarray | None: ...


class AssignContext:
    """What an assign function receives: the job, its moldables, the slot set and the window search."""

    def __init__(self, job: "Job", moldables: Sequence[MoldableRequest], min_start: int, earliest: int,
                 begin: int, end: int, platform: "Platform", service: _SearchService) -> None:
        self.job = job
        """The job to place."""
        self.moldables = tuple(moldables)
        """Its moldables, in the job's order."""
        self.min_start = min_start
        """Earliest start the job's dependencies allow, -1 when none (OAR3's ``min_start_time``)."""
        self.earliest = earliest
        """Earliest start allowed: the slot set's beginning or ``min_start``, whichever is later."""
        self.begin = begin
        """Beginning of the slot set (now, or the container's start for an inner job)."""
        self.end = end
        """End of the slot set (inclusive)."""
        self.platform = platform
        """Resources in scheduling order and their hierarchy."""
        self._service = service

    def moldable(self, moldable_id: int) -> MoldableRequest:
        """A moldable by id (KeyError when the job has none of that id)."""
        for mld in self.moldables:
            if mld.id == moldable_id:
                return mld
        raise KeyError(f"job {self.job.id} has no moldable {moldable_id}")

    def first_fit(self, moldable: MoldableRequest | int | None = None, *, earliest: int | None = None,
                  latest: int | None = None, find: FindFunction | None = None) -> Placement | None:
        """The first window (in time order) where a moldable fits, as the engine searches it.

        ``moldable``: a moldable or its id; None tries every moldable and keeps
        the earliest finishing one (ties to the first), as the scheduler does.
        The search starts at ``earliest`` (default and minimum: :attr:`earliest`)
        and gives up past ``latest`` (a start time; default: no limit).
        ``find`` replaces the matcher (default: the job's own ``find=`` plugin,
        else oarsched's compiled matcher).  Quotas, timesharing and
        placeholders apply as for any job.
        """
        if moldable is None:
            best: Placement | None = None
            best_end = 0
            for mld in self.moldables:
                found = self._service.first_fit(mld, earliest, latest, find)
                if found is not None and (best is None or found.start_time + mld.walltime < best_end):
                    best, best_end = found, found.start_time + mld.walltime
            return best
        mld = self.moldable(moldable) if isinstance(moldable, int) else moldable
        return self._service.first_fit(mld, earliest, latest, find)

    def default(self) -> Placement | None:
        """The placement the scheduler would choose without the assign plugin (``find=`` included)."""
        return self._service.default()

    def check(self, placement: Placement) -> str | None:
        """Why a placement would be refused (overlap, constraints, quotas, too early...), or None."""
        return self._service.check(placement)

    def slots(self) -> list[SlotView]:
        """The slots of the slot set, in time order (what the job may use in each: sharing included)."""
        return self._service.slots()

    def free_between(self, start: int, end: int) -> np.ndarray:
        """Order indices free during the whole of ``[start, end]`` (inclusive); empty outside the slot set."""
        found = self._service.free_between(start, end)
        return np.empty(0, np.int64) if found is None else found

    def __repr__(self) -> str:
        return (f"AssignContext(job={self.job.id}, moldables={[m.id for m in self.moldables]}, "
                f"earliest={self.earliest})")


class AssignFunction(Protocol):
    """``assign(ctx, *args, **kwargs) -> Placement | None``."""

    def __call__(self, ctx: AssignContext, /, *args: str, **kwargs: str) -> Placement | None: ...


# ----------------------------------------------------------------------- decorators
def find_function(func: Callable[..., Any]) -> FindFunction:
    """Mark ``func(window, *args, **kwargs)`` as an oarsched find function.

    Functions registered under ``oar.find_func`` without this mark are taken
    to have OAR3's signature and are called through the ProcSet adapter
    (:func:`oarsched.plugins.oar3.adapt_find`).
    """
    return _mark(func, "find", Window)


def assign_function(func: Callable[..., Any]) -> AssignFunction:
    """Mark ``func(ctx, *args, **kwargs)`` as an oarsched assign function (see :func:`find_function`)."""
    return _mark(func, "assign", AssignContext)


def plugin_kind(func: Any) -> str | None:
    """``"find"``, ``"assign"`` for marked functions, None for others (OAR3-style)."""
    return getattr(func, _KIND_ATTR, None)


def _mark(func: Callable[..., Any], kind: str, first: type) -> Any:
    @functools.wraps(func)
    def plugin(arg: Any, /, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(arg, first):
            raise TypeError(f"{func.__qualname__} is an oarsched {kind} function: it takes a "
                            f"{first.__name__}, got {type(arg).__name__} "
                            "(OAR3's own scheduler cannot call it)")
        return func(arg, *args, **kwargs)

    setattr(plugin, _KIND_ATTR, kind)
    return plugin


# ----------------------------------------------------------------------- result checking
def checked_indices(value: Any, nbits: int) -> np.ndarray:
    """Order indices from a plugin's value, sorted and unique; TypeError/ValueError when it is not that."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu" or value.ndim != 1:
            raise TypeError(f"an array of {value.dtype} with shape {value.shape}, "
                            "expected a 1-D integer array")
        arr = value.astype(np.int64, copy=False)
    elif isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise TypeError(f"a {type(value).__name__}, expected order indices "
                        "(an int array or a sequence of ints)")
    else:
        items = list(value)
        for x in items:
            if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
                raise TypeError(f"a {type(value).__name__} holding {x!r} ({type(x).__name__}), "
                                "expected order indices (ints)")
        arr = np.array(items, dtype=np.int64)
    if arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1])):  # sorted and unique already: the usual case
        arr = np.unique(arr)
    if arr.size and (arr[0] < 0 or arr[-1] >= nbits):
        bad = int(arr[0] if arr[0] < 0 else arr[-1])
        raise ValueError(f"order index {bad} out of range 0..{nbits - 1}")
    return arr
