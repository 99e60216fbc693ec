"""One scheduling round: OAR3's kamelot over the compiled core.

Data flows one way: a :class:`~oarsched.model.platform.Platform`, the waiting
jobs in scheduling order and the jobs already in the gantt go in; a
:class:`ScheduleResult` (start time, moldable and resources of each placed
job) comes out.  Reading a database and writing the decisions back are the
adapter's business (:mod:`oarsched.oar`).

:class:`Scheduler` places jobs in the order given; the whole pipeline
(ordering, cap, screening, deadline) is :func:`oarsched.engine.round.run_round`.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from oarsched.engine.result import Assignment, ScheduledJob, ScheduleResult
from oarsched.engine.round import Round
from oarsched.engine.search import CompiledMoldable, ConstraintResolver, SchedulerOptions, Search
from oarsched.model.job import ATTRIBUTE_TYPES, Job
from oarsched.model.platform import Platform

__all__ = [
    "ATTRIBUTE_TYPES", "Assignment", "CompiledMoldable", "ConstraintResolver", "ScheduledJob", "ScheduleResult",
    "Scheduler", "SchedulerOptions", "schedule",
]


class Scheduler(Search):
    """Schedules jobs on a platform; one instance can run several rounds.

    ``plugins`` resolves the ``find=``/``assign=`` job types
    (:class:`oarsched.plugins.PluginRegistry`); by default the entry points
    ``oar.find_func``/``oar.assign_func``, looked up on the first job that
    names one.  Jobs without such types never touch the plugin machinery.
    """

    def schedule(self, jobs: Sequence[Job], now: int, scheduled: Iterable[ScheduledJob] = ()) -> ScheduleResult:
        """Place ``jobs`` (in this order) after the jobs already ``scheduled``, from ``now`` on."""
        rnd = Round(self, now, scheduled, round_ids=[j.id for j in jobs])
        for job in jobs:
            rnd.place(job)
        return rnd.result


def schedule(
    platform: Platform,
    jobs: Sequence[Job],
    now: int = 0,
    *,
    scheduled: Iterable[ScheduledJob] = (),
    job_security_time: int = 0,
    quotas=None,
    besteffort_round: bool = False,
) -> ScheduleResult:
    """Schedule ``jobs`` in the given order on ``platform`` from ``now`` on.

    ``scheduled`` are jobs already placed (running jobs, reservations).
    ``quotas`` is a rules dict in OAR3's quotas JSON form, or a
    :class:`oarsched.quotas.QuotasConfig`.  Returns a
    :class:`ScheduleResult`: ``result[job_id].start_time``, ``.resources``...
    """
    quota_state = None
    if quotas is not None:
        from oarsched.engine.quotas import QuotaState

        quota_state = QuotaState.from_rules(quotas, platform)
    options = SchedulerOptions(job_security_time=job_security_time, quotas=quota_state,
                               besteffort_round=besteffort_round)
    return Scheduler(platform, options).schedule(list(jobs), now, scheduled)
