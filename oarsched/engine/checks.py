"""Invariants of a schedule, checked after the fact.

Used by the property tests and available to researchers who want to audit a
result: no two exclusive jobs on one resource at the same time, every job on
resources its request and constraints allow, never before ``now``, never
before the end of what it depends on.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from oarsched.engine import reference
from oarsched.engine.scheduler import ScheduledJob, ScheduleResult, _placeholder, _ts_key
from oarsched.model.job import ALLOW, PLACEHOLDER, Job
from oarsched.model.platform import Platform


def _shares(a, b) -> bool:
    """Whether two jobs may legitimately use the same resource at the same time."""
    ta, tb = _ts_key(a), _ts_key(b)
    if ta is not None and ta == tb:
        return True
    pa, na = _placeholder(a.types)
    pb, nb = _placeholder(b.types)
    if {pa, pb} == {PLACEHOLDER, ALLOW} and na == nb:
        return True
    return "container" in a.types or "container" in b.types or "inner" in a.types or "inner" in b.types


def overlaps(platform: Platform, jobs: Sequence[Job], result: ScheduleResult,
             scheduled: Iterable[ScheduledJob] = (), security_time: int = 0) -> list[str]:
    """Pairs of jobs using one resource at the same time without being allowed to share it."""
    spans = []  # (job-like, start, end, resource ids)
    by_id = {j.id: j for j in jobs}
    for a in result.assignments.values():
        spans.append((by_id[a.job_id], a.start_time, a.start_time + a.walltime - 1, set(a.resources)))
    for s in scheduled:
        spans.append((s, s.start_time, s.start_time + s.walltime + security_time + s.suspended_time - 1, set(s.resources)))
    problems = []
    for i in range(len(spans)):
        ja, sa, ea, ra = spans[i]
        for k in range(i + 1, len(spans)):
            jb, sb, eb, rb = spans[k]
            if sa <= eb and sb <= ea and ra & rb and not _shares(ja, jb):
                problems.append(f"jobs {ja.id} and {jb.id} both use {sorted(ra & rb)[:5]} during [{max(sa, sb)}, {min(ea, eb)}]")
    return problems


def request_violations(platform: Platform, jobs: Sequence[Job], result: ScheduleResult, now: int,
                       constraints=None) -> list[str]:
    """Jobs placed before ``now``, on non-schedulable resources, or not as their request says.

    The shape check applies to single-group moldables with positive counts:
    the matcher run on exactly the allocated resources must take them all.
    ``constraints(job, group) -> bitset`` checks the property constraints too.
    """
    from oarsched._core import bitset

    levels = {lbl: [frozenset(int(x) for x in b) for b in platform.level(lbl)] for lbl in platform.hierarchy_labels}
    by_id = {j.id: j for j in jobs}
    problems = []
    for a in result.assignments.values():
        job = by_id[a.job_id]
        if a.start_time < now:
            problems.append(f"job {job.id} starts at {a.start_time} < now {now}")
        roids = {platform.roid_of[r] for r in a.resources}
        if any(not platform.schedulable[r] for r in roids):
            problems.append(f"job {job.id} uses a resource that is not schedulable")
        mld = next((m for m in job.moldables if m.id == a.moldable_id), None)
        if mld is None:
            problems.append(f"job {job.id}: unknown moldable {a.moldable_id}")
            continue
        if constraints is not None:
            allowed = set()
            for g in mld.groups:
                allowed |= {int(x) for x in bitset.to_indices(constraints(job, g))}
            if not roids <= allowed:
                problems.append(f"job {job.id} uses resources outside its constraints")
        if len(mld.groups) == 1 and all(n > 0 for _, n in mld.groups[0].levels):
            group = [(mld.groups[0].levels, roids)]
            got = reference.find_request(set(roids), group, levels)
            if got != roids:
                problems.append(f"job {job.id}: resources do not form {mld.groups[0].levels}")
    return problems


def dependency_violations(jobs: Sequence[Job], result: ScheduleResult) -> list[str]:
    """Jobs starting before the end of a waiting job they depend on, or placed while it was not."""
    problems = []
    for job in jobs:
        a = result.assignments.get(job.id)
        if a is None:
            continue
        for dep in job.dependencies:
            if dep.state != "Waiting":
                continue
            d = result.assignments.get(dep.job_id)
            if d is None:
                problems.append(f"job {job.id} placed although job {dep.job_id} it depends on is not")
            elif a.start_time < d.start_time + d.walltime:
                problems.append(f"job {job.id} starts at {a.start_time} before job {dep.job_id} ends")
    return problems
