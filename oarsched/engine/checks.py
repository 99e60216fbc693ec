"""Invariants of a schedule, checked after the fact.

Used by the property tests and available to researchers who want to audit a
result: no two exclusive jobs on one resource at the same time, every job on
resources its request and constraints allow, never before ``now``, never
before the end of what it depends on, and within the quotas' resources and
jobs limits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from oarsched.engine import reference
from oarsched.engine.result import ScheduledJob, ScheduleResult
from oarsched.model.job import (
    ALLOW,
    AVAILABLE_UPTO_JOB,
    PLACEHOLDER,
    Job,
    placeholder_of,
    quota_view,
    timesharing_key,
)
from oarsched.model.platform import MAX_TIME, Platform
from oarsched.quotas import QuotasConfig, RuleKey, counted_keys


def _shares(a, b) -> bool:
    """Whether two jobs may legitimately use the same resource at the same time."""
    ta, tb = timesharing_key(a), timesharing_key(b)
    if ta is not None and ta == tb:
        return True
    pa, na = placeholder_of(a.types)
    pb, nb = placeholder_of(b.types)
    if {pa, pb} == {PLACEHOLDER, ALLOW} and na == nb:
        return True
    return "container" in a.types or "container" in b.types or "inner" in a.types or "inner" in b.types


def overlaps(platform: Platform, jobs: Sequence[Job], result: ScheduleResult,
             scheduled: Iterable[ScheduledJob] = (), security_time: int = 0) -> list[str]:
    """Pairs of jobs using one resource at the same time without being allowed to share it."""
    spans: list[tuple[Any, int, int, set[int]]] = []  # (job-like, start, end, resource ids)
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


# -- quotas ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _QuotaSpan:
    """A job as the quota counters of one slot set see it."""

    job_id: int
    slot_set: str
    """``default``, or the container name of an inner job (each slot set has its own counters)."""
    start: int
    end: int
    """Last second counted (inclusive)."""
    nb_default: int
    """Resources of type ``default`` it holds (what the resources counter adds)."""
    view: Any
    """What the counters read of the job: queue, project, user and types (attribute types removed)."""


def quota_violations(platform: Platform, jobs: Sequence[Job], result: ScheduleResult,
                     rules: Mapping[str, Any] | QuotasConfig, scheduled: Iterable[ScheduledJob] = (),
                     security_time: int = 0, *, besteffort_round: bool = False) -> list[str]:
    """Instants where the jobs a quota rule governs hold more resources, or are more jobs, than it allows.

    ``rules`` is OAR3's quotas JSON as a dict (as given to
    :func:`oarsched.schedule`) or a :class:`~oarsched.quotas.QuotasConfig`;
    only rules without a calendar are supported, and only the two
    instantaneous limits (resources, jobs) are checked, not resource-time.

    OAR3 checks a job against the one rule its lookup finds (greedy descent
    queue, project, first type, user; :meth:`Rules.find
    <oarsched.quotas.Rules.find>`): the rule's counter key ``K`` (``/``
    replaced by the job's value) holds every job whose counted keys include
    ``K``, and the job is admitted when that counter plus itself stays within
    the limit over its whole span.  The guarantee that follows, and what this
    function checks, is: for each slot set, rule and counter key ``K``, at
    every instant where a job placed in ``result`` and governed by that rule
    with key ``K`` runs, the jobs placed in ``result`` governed by it, plus
    the jobs there before the round (``scheduled``, and the pseudo-jobs
    holding resources after their ``available_upto``) counted under ``K``,
    stay within the rule's limits (each job weighted by how many times its
    counted keys repeat ``K``, as OAR3's counters do).

    Jobs placed in the round but governed by another rule are left out: they
    may push ``K``'s counter past its limit afterwards (say ``*,*,*,*`` limits
    everybody together and ``*,*,*,alice`` lets alice's jobs through: hers
    still count under ``*,*,*,*``), and OAR3 does not prevent it.  So are
    ``no_quotas`` jobs (counted, never checked) and containers (never counted).
    ``scheduled`` and ``security_time`` are as for :func:`overlaps`;
    ``besteffort_round`` as for the round (besteffort jobs in ``scheduled``
    only count in a besteffort round).
    """
    config = _quotas_config(rules, platform)
    before = _spans_before_round(platform, list(scheduled), security_time, besteffort_round)
    groups: dict[tuple[str, RuleKey | None, tuple], list[_QuotaSpan]] = {}
    limits_of: dict[tuple[str, RuleKey | None, tuple], tuple[int, int, int]] = {}
    for span in _spans_of_round(platform, jobs, result):
        limits, rule_key, counter_key = config.default_rules.find(span.view)
        if limits is None or (limits[0] < 0 and limits[1] < 0):
            continue
        if not _repeats(span, counter_key, config):
            continue  # a counter nobody increments (type not in job_types, '/' type): never limits
        key = (span.slot_set, rule_key, counter_key)
        groups.setdefault(key, []).append(span)
        limits_of[key] = limits
    problems = []
    for key, members in groups.items():
        others = [s for s in before if s.slot_set == key[0]]
        problems += _group_violations(members, others, key, limits_of[key], config)
    return problems


def _quotas_config(rules: Mapping[str, Any] | QuotasConfig, platform: Platform) -> QuotasConfig:
    config = rules if isinstance(rules, QuotasConfig) else QuotasConfig.from_dict(
        rules, nb_resources_all=platform.nb_default_not_dead)
    if config.calendar is not None:
        raise ValueError("quota_violations checks rules without a calendar; "
                         "these have periodical/oneshot entries")
    return config


def _nb_default(platform: Platform, roids: Iterable[int]) -> int:
    return sum(1 for i in roids if platform.default_type[i])


def _slot_set_of(job) -> str:
    return job.types.get("inner", "default")


def _spans_of_round(platform: Platform, jobs: Sequence[Job], result: ScheduleResult) -> list[_QuotaSpan]:
    """The jobs placed in the round that the quotas check: neither containers nor ``no_quotas``."""
    by_id = {j.id: j for j in jobs}
    spans = []
    for a in result.assignments.values():
        job = by_id[a.job_id]
        if "container" in job.types or job.no_quotas:
            continue
        spans.append(_QuotaSpan(job.id, _slot_set_of(job), a.start_time, a.start_time + a.walltime - 1,
                                _nb_default(platform, a.roids.tolist()), quota_view(job)))
    return spans


def _spans_before_round(platform: Platform, scheduled: list[ScheduledJob], security_time: int,
                        besteffort_round: bool) -> list[_QuotaSpan]:
    """What the counters hold before the round: jobs already placed and the ``available_upto`` pseudo-jobs."""
    spans = []
    leaving: dict[int, list[int]] = {}
    for roid, r in enumerate(platform.resources):
        if platform.schedulable[roid]:
            leaving.setdefault(int(r.available_upto), []).append(roid)
    for t, roids in leaving.items():
        spans.append(_QuotaSpan(0, "default", t, MAX_TIME - 1, _nb_default(platform, roids),
                                AVAILABLE_UPTO_JOB))
    kept = [s for s in scheduled if besteffort_round or "besteffort" not in s.types]
    # inner slot sets that exist before the round: those of the containers already placed
    sets = {"default"} | {s.types["container"] or str(s.id) for s in kept if "container" in s.types}
    for s in kept:
        if "container" in s.types or _slot_set_of(s) not in sets:
            continue
        roids = platform.roids(s.resources).tolist()
        if s.state == "Suspended":
            roids = [i for i in roids if not platform.suspendable[i]]
        end = s.start_time + int(s.walltime) + security_time + int(s.suspended_time) - 1
        spans.append(_QuotaSpan(s.id, _slot_set_of(s), s.start_time, end,
                                _nb_default(platform, roids), quota_view(s)))
    return spans


def _repeats(span: _QuotaSpan, counter_key: tuple, config: QuotasConfig) -> int:
    """How many times the job's counted keys include ``counter_key`` (1, or more with repeated types)."""
    return sum(1 for k in counted_keys(span.view, config.job_types) if k == counter_key)


def _group_violations(members: list[_QuotaSpan], others: list[_QuotaSpan], key: tuple,
                      limits: tuple[int, int, int], config: QuotasConfig) -> list[str]:
    """Sweep the events of one rule's jobs; check the limits wherever one of its placed jobs runs."""
    set_name, rule_key, counter_key = key
    events: dict[int, list[int]] = {}  # time -> [resources delta, jobs delta, placed members delta]
    for span, member in [(s, 1) for s in members] + [(s, 0) for s in others]:
        n = _repeats(span, counter_key, config)
        if not n:
            continue
        for t, sign in ((span.start, 1), (span.end + 1, -1)):
            delta = events.setdefault(t, [0, 0, 0])
            delta[0] += sign * n * span.nb_default
            delta[1] += sign * n
            delta[2] += sign * member
    problems = []
    nb_res = nb_jobs = active = 0
    times = sorted(events)
    for i, t in enumerate(times):
        d_res, d_jobs, d_active = events[t]
        nb_res, nb_jobs, active = nb_res + d_res, nb_jobs + d_jobs, active + d_active
        if not active:
            continue
        until = times[i + 1] - 1  # a member runs, so its end event comes later
        for limit, value, what in ((limits[0], nb_res, "resources"), (limits[1], nb_jobs, "jobs")):
            if limit > -1 and value > limit:
                running = sorted(s.job_id for s in members if s.start <= t <= s.end)
                problems.append(
                    f"quota rule {','.join(rule_key)} (counter {','.join(map(str, counter_key))}, "
                    f"slot set {set_name}): {value} {what} > {limit} during [{t}, {until}] "
                    f"(jobs {running} of the round)")
    return problems
