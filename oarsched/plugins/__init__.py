"""Extension points of the scheduler: find, assign and sorting plugins.

A job chooses a plugin with the OAR job types ``find=NAME[:args]`` (replace the
resource matcher, window by window) and ``assign=NAME[:args]`` (replace the
whole placement); a queue's order comes from a sorting plugin with
``JOB_PRIORITY="CUSTOM"`` and ``CUSTOM_JOB_SORTING=NAME``.  ``NAME`` is an entry
point of the groups OAR3 uses: ``oar.find_func``, ``oar.assign_func``,
``oar.jobs_sorting_func``.

>>> import numpy as np
>>> from oarsched import Job, Platform, Scheduler
>>> from oarsched.plugins import PluginRegistry, find_function
>>> @find_function
... def last_ones(window, n="1"):
...     free = window.candidates(0)
...     return free[-int(n):] if free.size >= int(n) else None
>>> platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
>>> sched = Scheduler(platform, plugins=PluginRegistry(find={"last": last_ones}))
>>> result = sched.schedule([Job(id=1, walltime=60, request="core=2", types=["find=last:2"])], now=0)
>>> result[1].resources
[7, 8]

See ``docs/plugins.md`` for the full API.
"""
from oarsched.plugins.api import (
    ASSIGN_GROUP,
    FIND_GROUP,
    AssignContext,
    AssignFunction,
    FindFunction,
    GroupRequest,
    MoldableRequest,
    Placement,
    PluginError,
    Resources,
    SlotView,
    Window,
    assign_function,
    find_function,
)
from oarsched.plugins.registry import PluginCall, PluginRegistry, parse_plugin_call

__all__ = [
    "ASSIGN_GROUP", "FIND_GROUP", "SORTING_GROUP",
    "AssignContext", "AssignFunction", "FindFunction", "GroupRequest", "MoldableRequest", "Placement",
    "PluginCall", "PluginError", "PluginRegistry", "Resources", "SlotView", "Window",
    "assign_function", "find_function", "parse_plugin_call",
]

SORTING_GROUP = "oar.jobs_sorting_func"
"""Entry-point group of CUSTOM sorting functions (see :mod:`oarsched.policies.sorting`)."""
