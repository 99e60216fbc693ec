"""Quotas and property constraints in the round: the checker, hand-made cases, hypothesis properties.

* :func:`oarsched.engine.checks.quota_violations` finds what it must (over
  the limit next to a job of the round, jobs there before the round, the
  ``available_upto`` pseudo-jobs) and nothing OAR3 allows (jobs governed by
  another rule, separate counters per slot set);
* a round with quotas never breaks its rules' resources and jobs limits, and
  keeps the invariants of any round (no overlap, requests honoured);
* what adding quotas does to start times: a job may start *earlier* with
  quotas (a job ahead of it was held back, or a moldable alternative won a
  tie), so the property that holds is about the first job whose outcome
  differs: with quotas it is unscheduled or finishes later (single moldable:
  starts later);
* property constraints (``network_address IN (...)``, ``core <= k``...)
  built from the platform's own values are honoured, and any job whose
  request fits the platform under its constraints gets a place.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarsched import Job, Moldable, Platform, Resource, ResourceGroup, ScheduledJob, schedule
from oarsched.engine.checks import overlaps, quota_violations, request_violations
from oarsched.engine.constraints import GroupConstraints
from tests.strategies import LEVEL_CHAINS, nested_platforms

USERS = ["alice", "bob", "carol"]
PROJECTS = ["default", "p1", "p2"]
QUEUES = ["default", "night"]
TYPE_SETS = [{}, {}, {"yop": ""}, {"big": ""}, {"big": "", "yop": ""},
             {"timesharing": "*,*"}, {"timesharing": "*,*", "yop": ""}]
# rule key fields: '*' and '/' (more often: specific values make mostly dead ends), values jobs use
RULE_FIELDS = tuple(["*", "*", "/", "/"] + values
                    for values in (["default", "night"], ["p1"], ["yop", "big"], ["alice"]))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def node(n: int = 4, **extra) -> Platform:
    """Resource ids 1..n on one node."""
    return Platform([Resource(id=i, properties={"network_address": "n1", **extra}) for i in range(1, n + 1)],
                    ["resource_id", "network_address"])


def one(jid: int, user: str, nb: int, walltime: int = 100, **kw) -> Job:
    return Job(id=jid, user=user, walltime=walltime, request=f"resource_id={nb}", **kw)


PER_USER_4 = {"quotas": {"*,*,*,/": [4, -1, -1]}}


# ---------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------


def test_checker_reports_a_round_without_quotas_over_the_limit():
    platform = node(8)
    jobs = [one(1, "alice", 4), one(2, "alice", 4), one(3, "bob", 4, walltime=10)]
    free = schedule(platform, jobs, now=0)
    assert free[1].start_time == free[2].start_time == 0
    problems = quota_violations(platform, jobs, free, PER_USER_4)
    assert len(problems) == 1
    assert "*,*,*,/" in problems[0] and "counter *,*,*,alice" in problems[0]
    assert "8 resources > 4 during [0, 99]" in problems[0] and "[1, 2]" in problems[0]
    bounded = schedule(platform, jobs, now=0, quotas=PER_USER_4)
    assert bounded[2].start_time == 100
    assert quota_violations(platform, jobs, bounded, PER_USER_4) == []


def test_checker_jobs_limit():
    platform = node(8)
    rules = {"quotas": {"*,*,*,*": [-1, 2, -1]}}
    jobs = [one(j, u, 1) for j, u in ((1, "alice"), (2, "bob"), (3, "carol"))]
    problems = quota_violations(platform, jobs, schedule(platform, jobs, now=0), rules)
    assert len(problems) == 1 and "3 jobs > 2" in problems[0]
    bounded = schedule(platform, jobs, now=0, quotas=rules)
    assert bounded[3].start_time == 100 and quota_violations(platform, jobs, bounded, rules) == []


def test_jobs_governed_by_another_rule_may_exceed_a_shared_counter():
    # alice's rule has no limit; her job still counts under *,*,*,* (bob's rule) and OAR3 lets it
    # through: not a violation of what the engine guarantees
    platform = node(8)
    rules = {"quotas": {"*,*,*,*": [4, -1, -1], "*,*,*,alice": [-1, -1, -1]}}
    jobs = [one(1, "bob", 4), one(2, "alice", 4)]
    r = schedule(platform, jobs, now=0, quotas=rules)
    assert r[1].start_time == r[2].start_time == 0
    assert quota_violations(platform, jobs, r, rules) == []
    # the other order: bob's job sees alice's in the counter and waits
    r = schedule(platform, jobs[::-1], now=0, quotas=rules)
    assert r[1].start_time == 100 and quota_violations(platform, jobs, r, rules) == []


def test_jobs_before_the_round_count():
    platform = node(8)
    running = ScheduledJob(id=9, start_time=-50, walltime=150, resources=[5, 6, 7, 8], user="alice")
    jobs = [one(1, "alice", 4)]
    problems = quota_violations(platform, jobs, schedule(platform, jobs, now=0, scheduled=[running]),
                                PER_USER_4, scheduled=[running])
    assert len(problems) == 1 and "during [0, 99]" in problems[0]
    bounded = schedule(platform, jobs, now=0, scheduled=[running], quotas=PER_USER_4)
    assert bounded[1].start_time == 100
    assert quota_violations(platform, jobs, bounded, PER_USER_4, scheduled=[running]) == []


def test_security_time_extends_jobs_before_the_round():
    platform = node(8)
    running = ScheduledJob(id=9, start_time=0, walltime=100, resources=[5, 6, 7, 8], user="alice")
    jobs = [one(1, "alice", 4, walltime=10)]
    r = schedule(platform, jobs, now=0, scheduled=[running], job_security_time=5, quotas=PER_USER_4)
    assert r[1].start_time == 105
    assert quota_violations(platform, jobs, r, PER_USER_4, scheduled=[running], security_time=5) == []
    # the same placement would break the quota if the running job were seen 5 s longer
    assert quota_violations(platform, jobs, r, PER_USER_4, scheduled=[running], security_time=10) != []


def test_besteffort_jobs_before_the_round_count_only_in_a_besteffort_round():
    platform = node(8)
    be = ScheduledJob(id=9, start_time=0, walltime=100, resources=[5, 6, 7, 8], user="alice",
                      types={"besteffort": ""})
    jobs = [one(1, "alice", 4)]
    r = schedule(platform, jobs, now=0, scheduled=[be], quotas=PER_USER_4)
    assert r[1].start_time == 0
    assert quota_violations(platform, jobs, r, PER_USER_4, scheduled=[be]) == []
    assert quota_violations(platform, jobs, r, PER_USER_4, scheduled=[be], besteffort_round=True) != []
    r = schedule(platform, jobs, now=0, scheduled=[be], quotas=PER_USER_4, besteffort_round=True)
    assert r[1].start_time == 100
    assert quota_violations(platform, jobs, r, PER_USER_4, scheduled=[be], besteffort_round=True) == []


def test_suspended_job_counts_as_a_job_without_resources():
    # a Suspended job gives its (suspendable, here default) resources back but is still a job
    platform = node(8)
    suspended = ScheduledJob(id=9, start_time=0, walltime=100, resources=[1, 2, 3, 4], user="alice",
                             state="Suspended")
    rules = {"quotas": {"*,*,*,/": [4, 1, -1]}}
    jobs = [one(1, "alice", 4, walltime=10), one(2, "bob", 4, walltime=10)]
    r = schedule(platform, jobs, now=0, scheduled=[suspended], quotas=rules)
    assert r[2].start_time == 0 and r[1].start_time == 100
    assert quota_violations(platform, jobs, r, rules, scheduled=[suspended]) == []
    free = schedule(platform, jobs, now=0, scheduled=[suspended])
    problems = quota_violations(platform, jobs, free, rules, scheduled=[suspended])
    assert len(problems) == 1 and "2 jobs > 1" in problems[0]


def test_available_upto_pseudo_jobs_count_everywhere():
    # resource 4 leaves at 50: OAR3 counts the pseudo-job holding it as a job (user '') under *,*,*,*
    res = [Resource(id=i, properties={"network_address": "n1"}) for i in range(1, 5)]
    res[3].available_upto = 50
    platform = Platform(res, ["resource_id", "network_address"])
    rules = {"quotas": {"*,*,*,*": [3, -1, -1]}}
    jobs = [one(1, "alice", 3)]
    problems = quota_violations(platform, jobs, schedule(platform, jobs, now=0), rules)
    assert len(problems) == 1 and "4 resources > 3 during [50, 99]" in problems[0]
    assert 1 not in schedule(platform, jobs, now=0, quotas=rules)


def test_each_slot_set_has_its_own_counters():
    platform = node(8)
    jobs = [Job(id=1, user="alice", walltime=200, request="resource_id=4", types={"container": ""}),
            one(2, "alice", 4),
            one(3, "alice", 4, types={"inner": "1"})]
    r = schedule(platform, jobs, now=0, quotas=PER_USER_4)
    assert r[2].start_time == r[3].start_time == 0
    assert quota_violations(platform, jobs, r, PER_USER_4) == []


def test_checker_refuses_calendars():
    rules = {"periodical": [["* * * *", "all", ""]], "all": {"*,*,*,*": [1, -1, -1]}}
    jobs = [one(1, "alice", 1)]
    r = schedule(node(), jobs, now=0)
    with pytest.raises(ValueError, match="without a calendar"):
        quota_violations(node(), jobs, r, rules)


# ---------------------------------------------------------------------------
# What quotas do to start times (hand-made counter-examples of the naive property)
# ---------------------------------------------------------------------------


def test_quotas_can_let_a_later_job_start_earlier():
    platform = node(4)
    jobs = [one(1, "alice", 4), one(2, "bob", 4)]
    rules = {"quotas": {"*,*,*,alice": [0, -1, -1]}}
    assert schedule(platform, jobs, now=0)[2].start_time == 100
    bounded = schedule(platform, jobs, now=0, quotas=rules)
    assert 1 not in bounded and bounded[2].start_time == 0


def test_quotas_can_let_a_moldable_job_start_earlier_never_finish_earlier():
    # two alternatives finishing together: the first wins without quotas; with quotas it is refused
    # and the second, longer one starts earlier (same finish)
    platform = node(4)
    running = ScheduledJob(id=9, start_time=0, walltime=50, resources=[1, 2], user="zed")
    job = Job(id=1, user="alice", moldables=[Moldable(1, 50, [ResourceGroup([("resource_id", 4)])]),
                                             Moldable(2, 100, [ResourceGroup([("resource_id", 2)])])])
    free = schedule(platform, [job], now=0, scheduled=[running])
    bounded = schedule(platform, [job], now=0, scheduled=[running],
                       quotas={"quotas": {"*,*,*,/": [2, -1, -1]}})
    assert (free[1].moldable_id, free[1].start_time) == (1, 50)
    assert (bounded[1].moldable_id, bounded[1].start_time) == (2, 0)
    assert bounded[1].end_time == free[1].end_time


# ---------------------------------------------------------------------------
# Random workloads and rules
# ---------------------------------------------------------------------------


@st.composite
def limits(draw) -> list:
    resources = draw(st.one_of(st.just(-1), st.integers(0, 8), st.sampled_from(["ALL", "0.5*ALL"])))
    jobs = draw(st.one_of(st.just(-1), st.integers(0, 2)))
    return [resources, jobs, -1]


@st.composite
def rule_sets(draw) -> dict:
    """OAR3 quotas JSON without calendar: a few keys mixing values, '*' and '/'."""
    quotas = {}
    for _ in range(draw(st.integers(1, 4))):
        key = ",".join(draw(st.sampled_from(field)) for field in RULE_FIELDS)
        quotas[key] = draw(limits())
    rules: dict = {"quotas": quotas}
    job_types = draw(st.lists(st.sampled_from(["yop", "big"]), unique=True, max_size=2))
    if job_types:
        rules["job_types"] = job_types
    return rules


@st.composite
def one_group(draw) -> list[ResourceGroup]:
    """A single resource group over a random chain of levels."""
    chain = draw(st.sampled_from(LEVEL_CHAINS))
    return [ResourceGroup([(lbl, draw(st.integers(1, 2))) for lbl in chain])]


@st.composite
def quota_jobs(draw, n_max: int = 12) -> list[Job]:
    """Jobs of a few users, projects, queues and types, some moldable, some containers and inner jobs."""
    jobs: list[Job] = []
    containers: list[int] = []
    for jid in range(1, draw(st.integers(1, n_max)) + 1):
        kind = draw(st.sampled_from(["plain"] * 6 + ["container", "inner"]))
        types = dict(draw(st.sampled_from(TYPE_SETS)))
        if kind == "container":
            types = {"container": ""}
            containers.append(jid)
        elif kind == "inner" and containers:
            types["inner"] = str(draw(st.sampled_from(containers)))
        moldables = [Moldable(jid * 10 + k, draw(st.integers(1, 400)), draw(one_group()))
                     for k in range(draw(st.sampled_from([1, 1, 1, 2])))]
        jobs.append(Job(id=jid, moldables=moldables, user=draw(st.sampled_from(USERS)),
                        project=draw(st.sampled_from(PROJECTS)), queue=draw(st.sampled_from(QUEUES)),
                        types=types))
    return jobs


@st.composite
def leaving_platforms(draw) -> Platform:
    """A random platform where a few resources may leave (``available_upto``) during the round."""
    platform = draw(nested_platforms(max_switches=2, max_nodes=3, max_cores=4))
    resources = platform.resources
    for r in resources:
        if draw(st.integers(0, 9)) == 0:
            r.available_upto = draw(st.integers(0, 2000))
    return Platform(resources, platform.hierarchy_labels)


@st.composite
def quota_workloads(draw):
    platform = draw(leaving_platforms())
    jobs, rules = draw(quota_jobs()), draw(rule_sets())
    return platform, jobs, rules, draw(st.integers(0, 1000)), draw(st.sampled_from([0, 60]))


@SETTINGS
@given(quota_workloads())
def test_quotas_hold_in_any_round(w):
    platform, jobs, rules, now, sec = w
    r = schedule(platform, jobs, now=now, quotas=rules, job_security_time=sec)
    assert quota_violations(platform, jobs, r, rules, security_time=sec) == []
    assert overlaps(platform, jobs, r, security_time=sec) == []
    assert request_violations(platform, jobs, r, now) == []
    assert set(r.assignments) | set(r.unscheduled) == {j.id for j in jobs}


@st.composite
def running_jobs(draw, platform: Platform, now: int) -> list[ScheduledJob]:
    """Up to three jobs running at ``now`` on disjoint resources, of the users the rules know."""
    owner = [draw(st.integers(-1, 2)) for _ in platform.resources]
    running = []
    for k in range(3):
        res = [r.id for r, o in zip(platform.resources, owner) if o == k]
        if res:
            running.append(ScheduledJob(
                id=1000 + k, start_time=now - draw(st.integers(0, 300)), walltime=draw(st.integers(1, 900)),
                resources=res, user=draw(st.sampled_from(USERS)), project=draw(st.sampled_from(PROJECTS)),
                types=dict(draw(st.sampled_from(TYPE_SETS)))))
    return running


@SETTINGS
@given(st.data())
def test_quotas_hold_next_to_jobs_already_running(data):
    platform, jobs, rules, now, sec = data.draw(quota_workloads())
    running = data.draw(running_jobs(platform, now))
    r = schedule(platform, jobs, now=now, quotas=rules, scheduled=running, job_security_time=sec)
    assert quota_violations(platform, jobs, r, rules, scheduled=running, security_time=sec) == []
    assert overlaps(platform, jobs, r, running, security_time=sec) == []


def outcome(result, jid: int):
    a = result.assignments.get(jid)
    return None if a is None else (a.moldable_id, a.start_time, a.resources)


@SETTINGS
@given(quota_workloads())
def test_first_job_quotas_change_is_held_back(w):
    """Up to the first job whose outcome differs, both rounds are identical; that job, with quotas,
    is unscheduled or finishes later (and, with a single moldable, starts later)."""
    platform, jobs, rules, now, sec = w
    free = schedule(platform, jobs, now=now, job_security_time=sec)
    bounded = schedule(platform, jobs, now=now, quotas=rules, job_security_time=sec)
    for job in jobs:
        if outcome(free, job.id) == outcome(bounded, job.id):
            continue
        assert job.id in free, f"job {job.id} placed only with quotas"
        if job.id in bounded:
            assert bounded[job.id].end_time > free[job.id].end_time or (
                bounded[job.id].end_time == free[job.id].end_time
                and bounded[job.id].moldable_id != free[job.id].moldable_id)
            if len(job.moldables) == 1:
                assert bounded[job.id].start_time > free[job.id].start_time
        break


@SETTINGS
@given(quota_workloads())
def test_rules_no_job_can_reach_change_nothing(w):
    platform, jobs, _rules, now, sec = w
    huge = {"quotas": {"*,*,*,*": [10_000, 10_000, -1], "*,*,*,/": [10_000, 10_000, -1]}}

    def decisions(**kw):
        r = schedule(platform, jobs, now=now, job_security_time=sec, **kw)
        return {j: outcome(r, j) for j in r.assignments}, dict(r.unscheduled)

    assert decisions(quotas=huge) == decisions()


# ---------------------------------------------------------------------------
# Property constraints built from the platform's own values
# ---------------------------------------------------------------------------


def quoted(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


@st.composite
def group_property(draw, platform: Platform) -> str:
    nodes = sorted({r.properties["network_address"] for r in platform.resources})
    switches = sorted({r.properties["switch"] for r in platform.resources})
    cores = sorted(r.properties["core"] for r in platform.resources)
    kind = draw(st.sampled_from(["none", "nodes", "core", "switch", "switch-and-core", "not-node"]))
    if kind == "nodes":
        chosen = draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True))
        return f"network_address IN ({quoted(chosen)})"
    if kind == "core":
        return f"core <= {draw(st.sampled_from(cores))}"
    if kind == "switch":
        return f"switch = '{draw(st.sampled_from(switches))}'"
    if kind == "switch-and-core":
        return f"switch = '{draw(st.sampled_from(switches))}' AND core > {draw(st.sampled_from(cores))}"
    if kind == "not-node":
        return f"network_address NOT IN ({quoted([draw(st.sampled_from(nodes))])})"
    return ""


@st.composite
def constrained_workloads(draw):
    platform = draw(nested_platforms(max_switches=3, max_nodes=3, max_cores=4))
    jobs = []
    for jid in range(1, draw(st.integers(1, 10)) + 1):
        grps = []
        for _ in range(draw(st.integers(1, 2))):
            chain = draw(st.sampled_from(LEVEL_CHAINS))
            grps.append(ResourceGroup([(lbl, draw(st.integers(1, 2))) for lbl in chain],
                                      property=draw(group_property(platform))))
        job_property = draw(st.sampled_from(["", "", draw(group_property(platform))]))
        jobs.append(Job(id=jid, moldables=[Moldable(jid, draw(st.integers(1, 300)), grps)],
                        properties=job_property))
    return platform, jobs, draw(st.integers(0, 1000))


@SETTINGS
@given(constrained_workloads())
def test_property_constraints_are_honoured(w):
    platform, jobs, now = w
    r = schedule(platform, jobs, now=now)
    assert r.errors == {}
    assert request_violations(platform, jobs, r, now, constraints=GroupConstraints(platform)) == []
    assert overlaps(platform, jobs, r) == []


@SETTINGS
@given(constrained_workloads())
def test_a_job_fitting_the_platform_always_gets_a_place(w):
    """Without quotas nor resources leaving, every job waits at worst until the others are over."""
    platform, jobs, now = w
    r = schedule(platform, jobs, now=now)
    for job in jobs:
        alone = schedule(platform, [job], now=now)
        assert (job.id in r) == (job.id in alone), r.unscheduled.get(job.id)
