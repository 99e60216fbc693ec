"""Running plugins written for OAR3 (``procset`` based) under oarsched.

OAR3 calls a find function as
``find(itvs_avail, hy_res_rqts, hy, beginning_slotset, *args, **kwargs) -> ProcSet``
and an assign function as ``assign(slots_set, job, hy, min_start_time, *args, **kwargs)``,
the latter reporting its decision by setting ``job.start_time``,
``job.moldable_id`` and ``job.res_set`` (and splitting OAR3's slot set).

:func:`adapt_find` is a faithful adapter: the function sees the same values
OAR3 gives it (ProcSets of order indices, the request as
``[(levels, constraints), ...]``, the hierarchy as ``{label: [ProcSet, ...]}``)
and its ProcSet comes back as order indices, checked like any find result.

:func:`adapt_assign` goes as far as a function that only reads the slot set
and the job:

* ``slots_set`` is a read-only copy of the slot set with OAR3's slot
  attributes (``slots[id].b/.e/.prev/.next/.itvs``, ``first()``, ``last()``,
  ``slot_id_at``, ``get_encompassing_slots``, ``traverse_id``,
  ``traverse_with_width``, an empty ``cache``); ``itvs`` already include what
  the job may share (timesharing, ``allow``).  ``split_slots`` records nothing
  and changes nothing: oarsched applies the decision itself.
* ``job`` carries ``id``, ``name``, ``user``, ``project``, ``queue_name``,
  ``types``, ``mld_res_rqts``, ``deps``, ``ts``/``ts_user``/``ts_name``,
  ``ph``/``ph_name``, ``no_quotas``, an empty ``key_cache``; ``find`` is
  False (a job's own find plugin is not offered to an OAR3 assign function).
* The decision is read back from ``job.start_time``/``job.moldable_id``/
  ``job.res_set`` (``job.walltime`` is ignored: the moldable's is used) and
  checked like a native placement.

Not supported: functions that call OAR3's own modules (``oar.kao.scheduling``,
``oar.kao.slot``...), which need OAR3 installed and its real slot set, and
functions that rely on mutating the slot set.  The ``procset`` package is
only needed here (``pip install procset``).
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, Iterator

import numpy as np

from oarsched.model.job import ATTRIBUTE_TYPES
from oarsched.plugins.api import (
    AssignContext,
    MoldableRequest,
    Placement,
    SlotView,
    Window,
    assign_function,
    find_function,
)

__all__ = ["adapt_assign", "adapt_find", "from_procset", "oar3_hierarchy", "oar3_requests", "to_procset"]

_HIERARCHIES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
_REQUESTS: "weakref.WeakKeyDictionary[MoldableRequest, list]" = weakref.WeakKeyDictionary()


def _procset() -> Any:
    try:
        import procset
    except ImportError:
        raise ImportError("is an OAR3-style function and needs the 'procset' package "
                          "(pip install procset)") from None
    return procset


# ----------------------------------------------------------------------- conversions
def to_procset(indices: np.ndarray) -> Any:
    """A ``procset.ProcSet`` of sorted order indices."""
    ProcSet = _procset().ProcSet
    arr = np.asarray(indices, dtype=np.int64)
    if arr.size == 0:
        return ProcSet()
    cuts = np.nonzero(np.diff(arr) != 1)[0]
    lows = arr[np.concatenate(([0], cuts + 1))]
    highs = arr[np.concatenate((cuts, [arr.size - 1]))]
    return ProcSet(*zip(lows.tolist(), highs.tolist()))


def from_procset(value: Any) -> Any:
    """Order indices of a ProcSet (other values are returned as they are, for the engine to check)."""
    procset = _procset()
    if isinstance(value, procset.ProcSet):
        itvs = list(value.intervals())
        if not itvs:
            return None
        return np.concatenate([np.arange(i.inf, i.sup + 1, dtype=np.int64) for i in itvs])
    return value


def oar3_hierarchy(platform: Any) -> dict[str, list[Any]]:
    """OAR3's ``hy``: each hierarchy label's blocks as ProcSets of order indices (cached per platform)."""
    hy = _HIERARCHIES.get(platform)
    if hy is None:
        hy = {label: [to_procset(block) for block in platform.level(label)]
              for label in platform.hierarchy_labels}
        _HIERARCHIES[platform] = hy
    return hy


def oar3_requests(moldable: MoldableRequest) -> list[tuple[list[tuple[str, int]], Any]]:
    """OAR3's ``hy_res_rqts`` of a moldable: ``[(levels, constraints ProcSet), ...]`` (cached)."""
    rqts = _REQUESTS.get(moldable)
    if rqts is None:
        rqts = [(list(g.levels), to_procset(g.allowed)) for g in moldable.groups]
        _REQUESTS[moldable] = rqts
    return rqts


# ----------------------------------------------------------------------- find
def adapt_find(func: Callable[..., Any]) -> Callable[..., Any]:
    """An oarsched find function calling an OAR3 one (ImportError without ``procset``)."""
    _procset()

    @functools.wraps(func)
    def oar3_find(window: Window, *args: str, **kwargs: str) -> Any:
        avail = to_procset(window.free)
        found = func(avail, oar3_requests(window.moldable), oar3_hierarchy(window.platform),
                     window.begins_slot_set, *args, **kwargs)
        return from_procset(found)

    oar3_find.oar3_function = func  # type: ignore[attr-defined]
    return find_function(oar3_find)


# ----------------------------------------------------------------------- assign
class OAR3Slot:
    """A slot as OAR3's code reads it."""

    __slots__ = ("id", "prev", "next", "b", "e", "_view", "_itvs")

    def __init__(self, sid: int, prev: int, nxt: int, view: SlotView) -> None:
        self.id, self.prev, self.next = sid, prev, nxt
        self.b, self.e = view.begin, view.end
        self._view = view
        self._itvs: Any = None

    @property
    def itvs(self) -> Any:
        if self._itvs is None:
            self._itvs = to_procset(self._view.free)
        return self._itvs

    @itvs.setter
    def itvs(self, value: Any) -> None:
        self._itvs = value

    def __repr__(self) -> str:
        return f"OAR3Slot(id={self.id}, b={self.b}, e={self.e})"


class OAR3SlotSet:
    """A read-only copy of the slot set with OAR3's ``SlotSet`` reading methods (ids 1..n in time order)."""

    def __init__(self, views: list[SlotView], begin: int) -> None:
        n = len(views)
        self.slots = {i + 1: OAR3Slot(i + 1, i, i + 2 if i + 1 < n else 0, v) for i, v in enumerate(views)}
        self.begin = begin
        self.last_id = n
        self.cache: dict = {}

    def first(self) -> OAR3Slot | None:
        return self.slots.get(1)

    def last(self) -> OAR3Slot | None:
        return self.slots.get(self.last_id)

    def slot_id_at(self, date: int, starting_id: int = 0) -> int:
        """The slot containing ``date``, 0 when none."""
        sid = starting_id or 1
        while sid:
            slot = self.slots[sid]
            if slot.b > date:
                return 0
            if slot.e >= date:
                return sid
            sid = slot.next
        return 0

    def get_encompassing_slots(self, t_begin: int, t_end: int,
                               first_id: int | None = None) -> tuple[int, int]:
        left = first_id or 1
        while self.slots[left].e < t_begin and self.slots[left].next:
            left = self.slots[left].next
        right = left
        while self.slots[right].e < t_end and self.slots[right].next:
            right = self.slots[right].next
        return left, right

    def traverse_id(self, start: int = 0, end: int = 0) -> Iterator[OAR3Slot]:
        sid = start or 1
        while sid:
            slot = self.slots[sid]
            yield slot
            if sid == end:
                return
            sid = slot.next

    def traverse_with_width(self, width: int, start_id: int = 0,
                            end_id: int = 0) -> Iterator[tuple[OAR3Slot, OAR3Slot]]:
        """``(first, last)`` slots of every window at least ``width`` seconds wide, in time order."""
        for first in self.traverse_id(start_id, end_id):
            for last in self.traverse_id(first.id, end_id):
                if last.e - first.b + 1 >= width:
                    yield first, last
                    break

    def split_slots(self, sid_left: int, sid_right: int, job: Any, sub: bool = True) -> None:
        """No-op: oarsched applies the job's decision itself."""


class OAR3Job:
    """The attributes of OAR3's ``Job`` an assign function reads, and the three it writes."""

    def __init__(self, ctx: AssignContext) -> None:
        job = ctx.job
        self.id = job.id
        self.name = job.name
        self.user = job.user
        self.project = job.project
        self.queue_name = job.queue
        self.submission_time = job.submission_time
        self.types = {k: v for k, v in job.types.items() if k not in ATTRIBUTE_TYPES}
        self.mld_res_rqts = [(m.id, m.walltime, oar3_requests(m)) for m in ctx.moldables]
        self.deps = [(d.job_id, d.state, d.exit_code) for d in job.dependencies]
        ts = job.timesharing
        self.ts = ts is not None
        self.ts_user, self.ts_name = ts if ts is not None else ("", "")
        self.ph, self.ph_name = job.placeholder
        self.no_quotas = job.no_quotas
        self.key_cache: dict = {}
        self.find = False
        self.find_func = None
        self.find_args: list = []
        self.find_kwargs: dict = {}
        self.start_time = -1
        self.moldable_id = -1
        self.res_set = _procset().ProcSet()
        self.walltime: int | None = None


def adapt_assign(func: Callable[..., Any]) -> Callable[..., Any]:
    """An oarsched assign function calling an OAR3 one (ImportError without ``procset``)."""
    _procset()

    @functools.wraps(func)
    def oar3_assign(ctx: AssignContext, *args: str, **kwargs: str) -> Placement | None:
        job = OAR3Job(ctx)
        func(OAR3SlotSet(ctx.slots(), ctx.begin), job, oar3_hierarchy(ctx.platform), ctx.min_start,
             *args, **kwargs)
        if job.start_time is None or job.start_time < 0:
            return None
        resources = from_procset(job.res_set)
        if resources is None:
            return None
        return Placement(job.moldable_id, job.start_time, resources)

    oar3_assign.oar3_function = func  # type: ignore[attr-defined]
    return assign_function(oar3_assign)
