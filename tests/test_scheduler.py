"""The scheduling round of the engine: OAR3's semantics and the invariants of any schedule."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarsched import (
    Dependency,
    Job,
    Moldable,
    Platform,
    Resource,
    ResourceGroup,
    ScheduledJob,
    schedule,
)
from oarsched.engine.checks import dependency_violations, overlaps, request_violations
from oarsched.engine.scheduler import Scheduler, SchedulerOptions
from tests.strategies import LEVEL_CHAINS, nested_platforms


def eight_resources(**extra):
    """Resource ids 1-8 on two nodes of four (the reference's worked example)."""
    res = [Resource(id=i, properties={"network_address": "n1" if i <= 4 else "n2", **extra}) for i in range(1, 9)]
    return Platform(res, ["resource_id", "network_address"])


def test_worked_example_backfilling():
    platform = eight_resources()
    jobs = [
        Job(id=1, walltime=100, request="network_address=1"),
        Job(id=2, walltime=50, request="network_address=2"),
        Job(id=3, walltime=30, request="network_address=1/resource_id=2"),
    ]
    r = schedule(platform, jobs, now=1000)
    assert (r[1].start_time, r[1].resources) == (1000, [1, 2, 3, 4])
    assert (r[2].start_time, r[2].resources) == (1100, [1, 2, 3, 4, 5, 6, 7, 8])
    assert (r[3].start_time, r[3].resources) == (1000, [5, 6])


def test_security_time_is_added_to_walltimes():
    platform = eight_resources()
    jobs = [Job(id=1, walltime=100, request="resource_id=8"), Job(id=2, walltime=100, request="resource_id=1")]
    r = schedule(platform, jobs, now=0, job_security_time=60)
    assert r[1].walltime == 160 and r[2].start_time == 160


def test_moldable_earliest_finish_wins_ties_to_first():
    platform = eight_resources()
    busy = ScheduledJob(id=99, start_time=0, walltime=1000, resources=[1, 2, 3, 4])
    job = Job(id=1, moldables=[
        Moldable(1, 500, [ResourceGroup([("resource_id", 8)])]),   # waits until 1000: ends 1499
        Moldable(2, 1400, [ResourceGroup([("resource_id", 4)])]),  # now: ends 1399
        Moldable(3, 1400, [ResourceGroup([("resource_id", 2)])]),  # same end: the first wins
    ])
    r = schedule(platform, [job], now=0, scheduled=[busy])
    assert r[1].moldable_id == 2 and r[1].start_time == 0 and r[1].resources == [5, 6, 7, 8]


def test_running_jobs_and_available_upto():
    res = [Resource(id=i, properties={"network_address": "n"}) for i in range(1, 5)]
    res[3].available_upto = 500  # resource 4 leaves at 500
    platform = Platform(res, ["resource_id", "network_address"])
    running = ScheduledJob(id=50, start_time=-100, walltime=300, resources=[1])  # ends at 199
    jobs = [Job(id=1, walltime=1000, request="resource_id=3"), Job(id=2, walltime=100, request="resource_id=4")]
    r = schedule(platform, jobs, now=0, scheduled=[running])
    assert (r[1].start_time, r[1].resources) == (200, [1, 2, 3])
    assert 2 not in r  # four resources are never all available again after 500
    assert "no suitable" in r.unscheduled[2]


def test_dead_and_suspected_resources_are_never_used():
    res = [Resource(id=i, state=s, properties={"network_address": "n"})
           for i, s in enumerate(["Alive", "Dead", "Suspected", "Absent"], start=1)]
    platform = Platform(res, ["resource_id", "network_address"])
    r = schedule(platform, [Job(id=1, walltime=10, request="resource_id=2")], now=0)
    assert r[1].resources == [1, 4]


def test_dependencies():
    platform = eight_resources()
    jobs = [
        Job(id=1, walltime=100, request="resource_id=1"),
        Job(id=2, walltime=10, request="resource_id=1", dependencies=[Dependency(1)]),
        Job(id=3, walltime=10, request="resource_id=1", dependencies=[Dependency(4)]),  # later in the order
        Job(id=4, walltime=10, request="resource_id=1"),
        Job(id=5, walltime=10, request="resource_id=1", dependencies=[Dependency(77, "Terminated", 0)]),
        Job(id=6, walltime=10, request="resource_id=1", dependencies=[Dependency(78, "Terminated", 3)]),
        Job(id=7, walltime=10, request="resource_id=1", dependencies=[Dependency(79, "Error")]),
        Job(id=8, walltime=10, request="resource_id=1", dependencies=[Dependency(80, "Running")]),
    ]
    r = schedule(platform, jobs, now=0)
    assert r[2].start_time == 100
    assert 3 not in r and 6 not in r and 8 not in r
    assert r[5].start_time == 0 and r[7].start_time == 0


def test_dependency_end_inside_a_slot_is_respected():
    platform = eight_resources()
    jobs = [
        Job(id=1, walltime=100, request="resource_id=1"),
        Job(id=2, walltime=30, request="resource_id=1"),
        Job(id=3, walltime=10, request="resource_id=1", dependencies=[Dependency(2)]),
    ]
    r = schedule(platform, jobs, now=0)
    assert r[2].start_time == 0
    assert r[3].start_time == 30


def test_container_and_inner_jobs():
    platform = eight_resources()
    jobs = [
        Job(id=1, walltime=1000, request="network_address=1", types={"container": ""}),
        Job(id=2, walltime=400, request="resource_id=4", types={"inner": "1"}),
        Job(id=3, walltime=400, request="resource_id=2", types={"inner": "1"}),
        Job(id=4, walltime=900, request="resource_id=1", types={"inner": "1"}),
        Job(id=5, walltime=10, request="resource_id=1", types={"inner": "42"}),
    ]
    r = schedule(platform, jobs, now=0)
    assert r[1].resources == [1, 2, 3, 4]
    assert r[2].start_time == 0 and r[2].resources == [1, 2, 3, 4]
    assert r[3].start_time == 400 and set(r[3].resources) <= {1, 2, 3, 4}
    assert 4 not in r  # 900 s from 800 would overrun the container
    assert 5 not in r and "container" in r.errors[5]


def test_timesharing_shares_only_with_the_same_key():
    platform = eight_resources()
    jobs = [
        Job(id=1, walltime=100, request="resource_id=8", user="a", types={"timesharing": "*,*"}),
        Job(id=2, walltime=100, request="resource_id=8", user="b", types={"timesharing": "*,*"}),
        Job(id=3, walltime=100, request="resource_id=8", user="a", types={"timesharing": "user,*"}),
        Job(id=4, walltime=100, request="resource_id=8", user="a", types={"timesharing": "user,*"}),
        Job(id=5, walltime=100, request="resource_id=8", user="b", types={"timesharing": "user,*"}),
        Job(id=6, walltime=100, request="resource_id=8"),
    ]
    r = schedule(platform, jobs, now=0)
    assert r[1].start_time == r[2].start_time == 0
    assert r[3].start_time == r[4].start_time == 100
    assert r[5].start_time == 200
    assert r[6].start_time == 300


def test_placeholder_and_allow():
    platform = eight_resources()
    jobs = [
        Job(id=1, walltime=1000, request="network_address=1", types={"placeholder": "p"}),
        Job(id=2, walltime=100, request="resource_id=6"),
        Job(id=3, walltime=100, request="resource_id=6", types={"allow": "p"}),
        Job(id=4, walltime=100, request="resource_id=3", types={"allow": "q"}),
    ]
    r = schedule(platform, jobs, now=0)
    assert r[1].start_time == 0
    assert r[2].start_time == 1000
    assert r[3].start_time == 0  # 4 free + 4 of the placeholder
    assert r[4].start_time == 100


def test_besteffort_scheduled_jobs_are_ignored_except_in_besteffort_round():
    platform = eight_resources()
    be = ScheduledJob(id=9, start_time=0, walltime=1000, resources=list(range(1, 9)), types={"besteffort": ""})
    job = Job(id=1, walltime=10, request="resource_id=1")
    assert schedule(platform, [job], now=0, scheduled=[be])[1].start_time == 0
    assert schedule(platform, [job], now=0, scheduled=[be], besteffort_round=True)[1].start_time == 1000


def test_bad_jobs_are_reported_and_skipped():
    platform = eight_resources()
    jobs = [
        Job(id=1, walltime=10, request="cpu=1"),
        Job(id=2, moldables=[]),
        Job(id=3, moldables=[Moldable(3, 0, [ResourceGroup([("resource_id", 1)])])]),
        Job(id=4, walltime=10, request="resource_id=9"),
        Job(id=5, walltime=10, request="resource_id=1"),
    ]
    r = schedule(platform, jobs, now=0)
    assert "unknown hierarchy level 'cpu'" in r.errors[1]
    assert "no moldable" in r.errors[2]
    assert "walltime" in r.errors[3]
    assert 4 in r.unscheduled and 4 not in r.errors
    assert r[5].start_time == 0


# -- properties over random platforms and workloads --------------------------------------------------
@st.composite
def workloads(draw):
    platform = draw(nested_platforms())
    now = draw(st.integers(0, 1000))
    jobs = []
    n = draw(st.integers(1, 12))
    for jid in range(1, n + 1):
        chain = draw(st.sampled_from(LEVEL_CHAINS))
        levels = [(lbl, draw(st.integers(1, 2))) for lbl in chain]
        deps = []
        if jid > 1 and draw(st.integers(0, 4)) == 0:
            deps = [Dependency(draw(st.integers(1, n)))]
        types = {}
        if draw(st.integers(0, 5)) == 0:
            types["timesharing"] = draw(st.sampled_from(["*,*", "user,*"]))
        jobs.append(Job(id=jid, user=draw(st.sampled_from(["a", "b"])),
                        moldables=[Moldable(jid, draw(st.integers(1, 500)), [ResourceGroup(levels)])],
                        dependencies=deps, types=types))
    running = []
    owner = [draw(st.integers(-1, 2)) for _ in platform.resources]  # disjoint resources per running job
    for k in range(3):
        res = [r.id for r, o in zip(platform.resources, owner) if o == k]
        if res:
            running.append(ScheduledJob(id=1000 + k, start_time=now - draw(st.integers(0, 300)),
                                        walltime=draw(st.integers(1, 900)), resources=res))
    sec = draw(st.sampled_from([0, 1, 60]))
    return platform, jobs, running, now, sec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_schedule_invariants(w):
    platform, jobs, running, now, sec = w
    r = schedule(platform, jobs, now=now, scheduled=running, job_security_time=sec)
    assert overlaps(platform, jobs, r, running, security_time=sec) == []
    assert request_violations(platform, jobs, r, now) == []
    assert dependency_violations(jobs, r) == []
    assert set(r.assignments) | set(r.unscheduled) == {j.id for j in jobs}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_cache_does_not_change_decisions(w):
    platform, jobs, running, now, sec = w

    def run(use_cache):
        opts = SchedulerOptions(job_security_time=sec, use_cache=use_cache)
        r = Scheduler(platform, opts).schedule(jobs, now, running)
        return {j: (a.moldable_id, a.start_time, a.resources) for j, a in r.assignments.items()}

    assert run(True) == run(False)


def test_timesharing_job_past_the_calendar_horizon_sees_the_split_slots():
    """Calendar splits made during a timesharing job's search must not hand out busy resources."""
    res = [Resource(id=i, properties={"network_address": "n"}) for i in range(1, 5)]
    platform = Platform(res, ["resource_id", "network_address"])
    now = 1700006400  # a Wednesday, UTC
    day = 86400
    busy = ScheduledJob(id=99, start_time=now, walltime=20 * day, resources=[1, 2, 3, 4])
    rules = {"periodical": [["* * * *", "open", ""]], "open": {"*,*,*,*": [-1, -1, -1]}}
    job = Job(id=1, walltime=3600, request="resource_id=2", types={"timesharing": "*,*"})
    r = schedule(platform, [job], now=now, scheduled=[busy], quotas=rules)
    assert r[1].start_time == now + 20 * day
