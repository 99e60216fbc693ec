"""Plugins shipped with oarsched (registered as entry points under OAR3's group names).

=========================  ==========================  ==================================================
job type / config          entry point                 what it does
=========================  ==========================  ==================================================
``find=contiguous``        ``oar.find_func``           each resource group on consecutive order indices
``find=best_fit[:LEVEL]``  ``oar.find_func``           each group inside the fullest block of ``LEVEL``
                                                       (default ``network_address``) that can hold it
``assign=start_now[:S]``   ``oar.assign_func``         start within ``S`` seconds (default 0) of the
                                                       earliest allowed start, or not this round
``CUSTOM_JOB_SORTING=      ``oar.jobs_sorting_func``   shortest walltime first, with an optional
shortest_job_first``                                   starvation guard
=========================  ==========================  ==================================================
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from oarsched.plugins.api import AssignContext, Placement, Window, assign_function, find_function

__all__ = ["assign_start_now", "find_best_fit", "find_contiguous", "sort_shortest_job_first"]


# ----------------------------------------------------------------------------- contiguous
@find_function
def find_contiguous(window: Window) -> np.ndarray | None:
    """Each resource group on one run of consecutive order indices, or nothing in this window.

    The free resources a group may use are cut into runs of consecutive order
    indices (consecutive resource ids with the default resource order,
    ``resource_id ASC``); runs are tried in order, and in each the default
    matcher chooses, so ``network_address=2/core=4`` gets the first cores of
    two nodes only when that makes one run.
    """
    taken = []
    for index in range(len(window.groups)):
        found = _contiguous_group(window, index)
        if found is None:
            return None
        taken.append(found)
    return np.unique(np.concatenate(taken))


def _contiguous_group(window: Window, index: int) -> np.ndarray | None:
    cand = window.candidates(index)
    if cand.size == 0:
        return None
    need = window.moldable.group_request(index).min_resources[0]
    cuts = np.nonzero(np.diff(cand) != 1)[0]
    for lo, hi in zip(np.concatenate(([0], cuts + 1)), np.concatenate((cuts, [cand.size - 1]))):
        if hi - lo + 1 < need:
            continue
        found = window.match(index, cand[lo: hi + 1])
        if found is not None and found[-1] - found[0] + 1 == found.size:
            return found
    return None


# ----------------------------------------------------------------------------- best fit
@find_function
def find_best_fit(window: Window, level: str = "network_address") -> np.ndarray | None:
    """Each resource group packed into the fullest block of ``level`` that can hold it.

    Blocks (nodes by default) are tried from the one with the fewest
    candidate resources to the one with the most, ties in block order; a
    group that fits in no single block is matched by the default matcher over
    the whole window.  Small jobs fill fragmented nodes first and leave whole
    nodes to the jobs that need them.
    """
    platform = window.platform
    if not platform.has_level(level):
        raise ValueError(f"best_fit: unknown hierarchy level {level!r} "
                         f"(HIERARCHY_LABELS: {', '.join(platform.hierarchy_labels)})")
    block_of = platform.block_ids(level)
    taken = []
    for index in range(len(window.groups)):
        cand = window.candidates(index)
        found = _fullest_block_fit(window, index, cand, block_of)
        if found is None:
            found = window.match(index, cand)
        if found is None:
            return None
        taken.append(found)
    return np.unique(np.concatenate(taken))


def _fullest_block_fit(window: Window, index: int, cand: np.ndarray,
                       block_of: np.ndarray) -> np.ndarray | None:
    blocks = block_of[cand]
    inside = blocks >= 0
    cand, blocks = cand[inside], blocks[inside]
    if cand.size == 0:
        return None
    counts = np.bincount(blocks)
    need = window.moldable.group_request(index).min_resources[0]
    usable = np.nonzero(counts >= max(1, need))[0]
    for block in usable[np.argsort(counts[usable], kind="stable")]:
        found = window.match(index, cand[blocks == block])
        if found is not None:
            return found
    return None


# ----------------------------------------------------------------------------- start now
@assign_function
def assign_start_now(ctx: AssignContext, within: str = "0") -> Placement | None:
    """Start at the earliest allowed time (plus ``within`` seconds of slack), or stay waiting.

    The job is placed as the scheduler would place it (earliest finishing
    moldable, the job's ``find=`` plugin if any) but only in a window starting
    at most ``within`` seconds after :attr:`AssignContext.earliest`; otherwise
    it gets no place this round and reserves nothing in the future, so it
    never blocks later jobs with a reservation.
    """
    slack = int(within)
    if slack < 0:
        raise ValueError(f"start_now: the slack must be >= 0 seconds, got {within!r}")
    return ctx.first_fit(latest=ctx.earliest + slack)


# ----------------------------------------------------------------------------- sorting
def sort_shortest_job_first(queues: Sequence[str], now: int, job_ids: Sequence[int], jobs: Mapping[int, Any],
                            config: str | None, platform: Any) -> list[int]:
    """Shortest walltime first (a job's shortest moldable), ties in the given (FIFO) order.

    ``CUSTOM_JOB_SORTING_CONFIG`` may be a JSON object ``{"max_wait": S}``:
    jobs submitted ``S`` seconds ago or more go first, in the given order, so
    long jobs are not starved.  (OAR3's sorting signature: ``jobs`` maps ids
    to :class:`~oarsched.model.job.Job`; ``platform`` is unused.)
    """
    max_wait = _max_wait(config)

    def key(job_id: int) -> tuple[int, float]:
        job = jobs[job_id]
        starved = max_wait is not None and now - job.submission_time >= max_wait
        shortest = min((m.walltime for m in job.moldables), default=math.inf)
        return (0, 0.0) if starved else (1, float(shortest))

    return sorted(job_ids, key=key)


def _max_wait(config: str | None) -> float | None:
    if not config or not config.strip():
        return None
    data = json.loads(config)
    if not isinstance(data, dict):
        raise ValueError("shortest_job_first: CUSTOM_JOB_SORTING_CONFIG must be a JSON object, "
                         f"got {config!r}")
    value = data.get("max_wait")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"shortest_job_first: max_wait must be a number of seconds >= 0, got {value!r}")
    return float(value)
