"""Kept plans and kept work between rounds give the records of a full replan at every event.

Each trace is simulated twice: ``incremental=False`` replans every waiting
job from scratch at every event (the reference), the default keeps the
last plan when nothing but submissions happened and keeps compiled
requests and running jobs' resource sets.  Records, runs and round counts
must be identical, on traces with early ends, bursts of submissions at
one instant, besteffort jobs killed (and requeued), reservations, several
queues, ids out of submission order, dependencies and a round cap.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarsched.sim import Workload, WorkloadJob, platform_from_spec, simulate
from oarsched.sim.synthetic import synthetic_workload

PLATFORM = "switch=2/network_address=4/core=4"


def same_outcome(jobs, platform, **options):
    full = simulate(jobs, platform, incremental=False, **options)
    kept = simulate(jobs, platform, **options)
    assert kept.records == full.records
    assert kept.runs == full.runs
    assert kept.rounds == full.rounds
    return kept, full


def bursty_trace(n: int, seed: int, *, besteffort: float = 0.0, reservations: float = 0.0,
                 admin: float = 0.0, shuffle_ids: bool = False, depends: float = 0.0) -> Workload:
    """Bursts of jobs at one instant, run times mostly shorter than walltimes, some at exactly the walltime."""
    rng = random.Random(seed)
    jobs, t = [], 0
    ids = list(range(1, n + 1))
    if shuffle_ids:
        rng.shuffle(ids)
    for k in range(n):
        if rng.random() < 0.6:
            t += rng.randrange(0, 400)  # often 0: a burst
        walltime = rng.choice((60, 300, 900, 1800))
        runtime = rng.choice((walltime, walltime // 2, rng.randrange(1, walltime + 1), walltime + 100))
        queue = "default"
        if rng.random() < besteffort:
            queue = "besteffort"
        elif rng.random() < admin:
            queue = "admin"
        request = rng.choice(("core=1", "core=3", "network_address=1", "core=8", "switch=1", "network_address=3"))
        reservation = t + rng.randrange(0, 2000) if queue != "besteffort" and rng.random() < reservations else None
        deps = (rng.choice(jobs).id,) if jobs and rng.random() < depends else ()
        jobs.append(WorkloadJob(id=ids[k], submit=t, runtime=runtime, walltime=walltime, request=request,
                                queue=queue, user=f"u{rng.randrange(3)}", reservation=reservation, depends=deps))
    return Workload(jobs=jobs)


@pytest.mark.parametrize("seed", range(6))
def test_bursts_and_early_ends(seed):
    kept, full = same_outcome(bursty_trace(150, seed), platform_from_spec(PLATFORM))
    assert kept.full_rounds < full.full_rounds  # plans were kept, not only recomputed
    assert any(r.status == "killed" for r in kept.records) and any(r.end < r.start + 60 for r in kept.records
                                                                  if r.end is not None)


@pytest.mark.parametrize("requeue", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_besteffort_kills_reservations_and_queues(seed, requeue):
    trace = bursty_trace(150, 100 + seed, besteffort=0.25, reservations=0.05, admin=0.1)
    kept, _ = same_outcome(trace, platform_from_spec(PLATFORM), requeue_besteffort=requeue)
    assert any(r.preemptions for r in kept.records) or any(r.status == "preempted" for r in kept.records)


@pytest.mark.parametrize("seed", range(3))
def test_ids_out_of_submission_order_dependencies_and_a_cap(seed):
    trace = bursty_trace(120, 200 + seed, shuffle_ids=True, depends=0.1)
    same_outcome(trace, platform_from_spec(PLATFORM))
    same_outcome(trace, platform_from_spec(PLATFORM), config={"SCHEDULER_JOB_SECURITY_TIME": 60,
                                                              "MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND": 5})


def test_security_time_periodic_rounds_and_other_policies():
    trace = synthetic_workload(300, nodes=8, cores_per_node=4, load=0.9, seed=9, users=3)
    platform = platform_from_spec("switch=2/network_address=4/core=4")
    same_outcome(trace, platform, config={"SCHEDULER_JOB_SECURITY_TIME": 60}, period=600)
    same_outcome(trace, platform, config={"JOB_PRIORITY": "FAIRSHARE", "SCHEDULER_JOB_SECURITY_TIME": 60})
    same_outcome(trace, platform, backfilling="easy")


job_strategy = st.tuples(st.integers(0, 600), st.integers(0, 700), st.integers(1, 600), st.integers(1, 8),
                         st.sampled_from(["default", "default", "besteffort", "admin"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(job_strategy, min_size=1, max_size=30), st.booleans(), st.integers(0, 120))
def test_random_traces(specs, requeue, security_time):
    jobs = [WorkloadJob(id=i + 1, submit=s, runtime=r, walltime=w, request=f"core={n}", queue=q)
            for i, (s, r, w, n, q) in enumerate(specs)]
    same_outcome(jobs, platform_from_spec("network_address=2/core=4"), requeue_besteffort=requeue,
                 config={"SCHEDULER_JOB_SECURITY_TIME": security_time})


def test_a_reservation_accepted_after_the_plan_moves_the_planned_jobs():
    """J2 is planned at 100; the admin reservation J3 accepted at 50 for 101 takes the platform: J2 goes after it.

    The admin queue's reservations are checked before the default queue is planned (OAR3's round); in the
    default queue itself, J2's place (planned first) refuses the reservation.
    """
    platform = platform_from_spec("resource_id=4")
    jobs = [WorkloadJob(id=1, submit=0, runtime=100, walltime=100, request="resource_id=4"),
            WorkloadJob(id=2, submit=10, runtime=100, walltime=100, request="resource_id=4"),
            WorkloadJob(id=3, submit=50, runtime=100, walltime=100, request="resource_id=4", reservation=101,
                        queue="admin"),
            WorkloadJob(id=4, submit=60, runtime=10, walltime=10, request="resource_id=1")]
    kept, _ = same_outcome(jobs, platform)
    starts = {r.id: r.start for r in kept.records}
    assert starts == {1: 0, 2: 201, 3: 101, 4: 301}
    assert kept.check() == []
    jobs[2].queue = "default"
    kept, _ = same_outcome(jobs, platform)
    assert {r.id: r.start for r in kept.records} == {1: 0, 2: 100, 3: None, 4: 200}
    assert "not free at 101" in kept.record(3).reason
