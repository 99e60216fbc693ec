"""Slot sets with OAR3's job bookkeeping around the compiled core.

The compiled :class:`~oarsched._core.slotset.SlotSet` knows slots and free
resources.  This module adds what a placed job leaves in the slots it spans:
timesharing and placeholder sets, and quota counters, and builds the per-slot
extensions a timesharing or ``allow`` job may use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from oarsched._core.slotset import SlotSet
from oarsched.model.job import ALLOW, NO_PLACEHOLDER, PLACEHOLDER, QuotaView
from oarsched.model.platform import MAX_TIME

if TYPE_CHECKING:
    from oarsched.engine.quotas import QuotaState

__all__ = ["MAX_TIME", "Occupation", "SlotSet", "new_slot_set", "occupy", "give", "insert_jobs", "share_extension"]


@dataclass
class Occupation:
    """A job as the slot set sees it: a time span, resources and sharing keys.

    ``walltime`` includes the job security time.  ``ts_key`` is the
    timesharing key ``(user, name)`` (``*`` where the job shares with any),
    ``ph`` the placeholder kind and ``ph_name`` its name.  ``quota_job`` is the
    job as quota counters read it or None when the job does not count
    (containers, or quotas off).
    """

    start_time: int
    walltime: int
    resources: np.ndarray
    ts_key: tuple[str, str] | None = None
    ph: int = NO_PLACEHOLDER
    ph_name: str = ""
    quota_job: QuotaView | None = None
    nb_default: int = 0
    job_id: int = 0


def new_slot_set(nbits: int, begin: int, free: np.ndarray, end: int = MAX_TIME,
                 quotas: QuotaState | None = None) -> SlotSet:
    """A slot set of one slot ``[begin, end]``; with quotas, its slots carry counters."""
    ss = SlotSet(nbits, begin, end, free)
    if quotas is not None:
        quotas.prepare(ss)
    return ss


def occupy(ss: SlotSet, job: Occupation, quotas: QuotaState | None = None) -> tuple[int, int]:
    """Take the job's resources out of the slots it spans (OAR3's ``split_slots``)."""
    sl, sr = ss.get_encompassing_slots(job.start_time, job.start_time + job.walltime - 1)
    return _occupy_in(ss, sl, sr, job, quotas)


def _occupy_in(ss: SlotSet, sl: int, sr: int, job: Occupation, quotas: QuotaState | None = None) -> tuple[int, int]:
    sl, sr = ss.split_slots(sl, sr, job.start_time, job.walltime, job.resources, True)
    if job.ts_key is not None or job.ph != NO_PLACEHOLDER:
        for sid in ss.ids(sl, sr):
            _sub_extras(ss, sid, job, None)
    if quotas is not None and job.quota_job is not None:
        _count_in(ss, sl, sr, job, job.quota_job, quotas)
    return sl, sr


def _count_in(ss: SlotSet, sl: int, sr: int, job: Occupation, quota_job: QuotaView, quotas: QuotaState) -> None:
    """Count the job in the quota counters of the slots ``sl..sr`` (its keys computed once)."""
    counters_of = ss.quotas
    keys = quotas.counted_keys(quota_job)
    nb, work = job.nb_default, job.nb_default * job.walltime
    for sid in ss.ids(sl, sr):
        counters = counters_of[sid]
        if counters is not None:
            counters.add_keys(keys, nb, work)


def _sub_extras(ss: SlotSet, sid: int, job: Occupation, quotas: QuotaState | None) -> None:
    """Record the job's timesharing and placeholder sets in slot ``sid`` (and, given ``quotas``, count it)."""
    res = job.resources
    if job.ts_key is not None:
        ts = ss.ts[sid] or {}
        prev = ts.get(job.ts_key)
        ts[job.ts_key] = res.copy() if prev is None else (prev | res)
        ss.ts[sid] = ts
    if job.ph == ALLOW:
        ph = ss.ph[sid]
        if ph and job.ph_name in ph:
            ph = dict(ph)
            ph[job.ph_name] = ph[job.ph_name] & ~res
            ss.ph[sid] = ph
    elif job.ph == PLACEHOLDER:
        ph = dict(ss.ph[sid] or {})
        prev = ph.get(job.ph_name)
        ph[job.ph_name] = res.copy() if prev is None else (prev | res)
        ss.ph[sid] = ph
    if quotas is not None and job.quota_job is not None and ss.quotas[sid] is not None:
        ss.quotas[sid].update(job.quota_job, job.nb_default, job.walltime)


def give(ss: SlotSet, job: Occupation) -> None:
    """Add a container's resources to an inner slot set over the container's span."""
    if job.start_time + job.walltime < ss.begin or job.start_time > ss.end:
        return
    sl, sr = ss.get_encompassing_slots(job.start_time, job.start_time + job.walltime - 1)
    sl, sr = ss.split_slots(sl, sr, job.start_time, job.walltime, job.resources, False)
    ss.add_free(sl, sr, job.resources)


def insert_jobs(ss: SlotSet, jobs: list[Occupation], quotas: QuotaState | None = None) -> None:
    """Subtract already placed jobs, in start-time order (OAR3's ``split_slots_jobs``).

    Jobs entirely before the slot set (``start + walltime < begin``) or after
    it are skipped; a job ending exactly at the slot set's beginning still
    blocks its first second (OAR3's one-second rule).
    """
    first = 0
    for job in sorted(jobs, key=lambda j: j.start_time):
        if job.start_time + job.walltime < ss.begin or job.start_time > ss.end:
            continue
        sl, sr = ss.get_encompassing_slots(job.start_time, job.start_time + job.walltime - 1, first)
        first = sl
        sl, sr = _occupy_in(ss, sl, sr, job, quotas)
        first = sl


def share_extension(ss: SlotSet, ts_key: tuple[str, str] | None, ph: int, ph_name: str) -> np.ndarray | None:
    """Per-slot resources a timesharing or ``allow`` job may use besides the free ones.

    A timesharing job shares the resources of placed timesharing jobs with the
    same key; an ``allow`` job uses the resources reserved by placeholders of
    its name.  Returns an array indexed by slot id, or None when the job
    shares nothing.
    """
    if ts_key is None and ph != ALLOW:
        return None
    # zero pages cost nothing until written: only the rows of slots that share something are touched
    ext = np.zeros((ss.last_id + 1, max(1, ss.nwords)), dtype=np.uint64)
    if ts_key is not None:
        for sid, ts in enumerate(ss.ts[: ss.last_id + 1]):
            if ts and ts_key in ts:
                ext[sid] |= ts[ts_key]
    if ph == ALLOW:
        for sid, phs in enumerate(ss.ph[: ss.last_id + 1]):
            if phs and ph_name in phs:
                ext[sid] |= phs[ph_name]
    return ext
