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

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The public names, each from the module that owns it.  They are imported on first use (PEP 562), so
# that ``import oarsched.oar.kao_client`` (the ``oarsched-kao`` command talking to a resident server)
# stays a standard-library-only start.  The compiled core comes with the first of them.
_EXPORTS = {
    "oarsched.engine.scheduler": ("Assignment", "ScheduledJob", "Scheduler", "ScheduleResult",
                                  "SchedulerOptions", "schedule"),
    "oarsched.errors": ("ConfigError", "DatabaseError", "JobError", "OarschedError", "PlatformError",
                        "PropertyError"),
    "oarsched.model.job": ("ALL", "BEST", "HALF_BEST", "Dependency", "Job", "Moldable", "ResourceGroup",
                           "parse_request"),
    "oarsched.model.platform": ("MAX_TIME", "Platform", "Resource"),
}
_OWNER = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_OWNER)

if TYPE_CHECKING:  # the same names for type checkers (tests/test_import_graph.py keeps the two lists equal)
    from oarsched.engine.scheduler import (  # noqa: F401
        Assignment,
        ScheduledJob,
        Scheduler,
        ScheduleResult,
        SchedulerOptions,
        schedule,
    )
    from oarsched.errors import (  # noqa: F401
        ConfigError,
        DatabaseError,
        JobError,
        OarschedError,
        PlatformError,
        PropertyError,
    )
    from oarsched.model.job import (  # noqa: F401
        ALL,
        BEST,
        HALF_BEST,
        Dependency,
        Job,
        Moldable,
        ResourceGroup,
        parse_request,
    )
    from oarsched.model.platform import MAX_TIME, Platform, Resource  # noqa: F401


def __getattr__(name: str):
    module = _OWNER.get(name)
    if module is None:
        raise AttributeError(f"module 'oarsched' has no attribute {name!r}")
    import_module("oarsched._core")  # a missing build fails here, with its hint
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_OWNER))
