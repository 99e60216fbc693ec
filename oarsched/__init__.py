"""oarsched: OAR3's kamelot scheduler with a compiled core, as a drop-in and as a library.

>>> from oarsched import Platform, Job, schedule
>>> platform = Platform.from_hierarchy({"switch": 2, "network_address": 4, "core": 8})
>>> jobs = [Job(id=1, walltime=3600, request="network_address=2/core=4"),
...         Job(id=2, walltime=600, request="switch=1/network_address=4")]
>>> result = schedule(platform, jobs, now=0)
>>> result[1].start_time, result[1].resources
(0, [1, 2, 3, 4, 9, 10, 11, 12])
"""
from __future__ import annotations

from typing import Iterable, Sequence

from oarsched import _core  # noqa: F401  (fails with a build hint when the core is missing)
from oarsched.engine.scheduler import (
    Assignment,
    ScheduledJob,
    Scheduler,
    ScheduleResult,
    SchedulerOptions,
)
from oarsched.errors import (
    ConfigError,
    DatabaseError,
    JobError,
    OarschedError,
    PlatformError,
    PropertyError,
)
from oarsched.model.job import (
    ALL,
    BEST,
    HALF_BEST,
    Dependency,
    Job,
    Moldable,
    ResourceGroup,
    parse_request,
)
from oarsched.model.platform import MAX_TIME, Platform, Resource

__version__ = "0.1.0"

__all__ = [
    "ALL", "BEST", "HALF_BEST", "MAX_TIME",
    "Assignment", "ConfigError", "DatabaseError", "Dependency", "Job", "JobError", "Moldable",
    "OarschedError", "Platform", "PlatformError", "PropertyError", "Resource", "ResourceGroup",
    "ScheduleResult", "ScheduledJob", "Scheduler", "SchedulerOptions", "parse_request", "schedule",
]


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
