"""Simulation speed: thousands of jobs replayed on a thousand-core platform.

Run with ``python -m pytest benchmarks/test_bench_sim.py --benchmark-enable``
(without ``--benchmark-enable`` each case runs once, as a test).

The synthetic workloads are deterministic: Poisson arrivals sized for about
85 % offered load on 1,024 cores (8 switches x 16 nodes x 8 cores), job
sizes from 1 core to 32 nodes, exponential run times (mean 30 min) and
walltimes over-estimated 1x to 3x, as in real traces.
"""
from __future__ import annotations

import random

import pytest

from oarsched.sim import WorkloadJob, load_workload, platform_from_spec, simulate
from tests.conftest import shared_dir

PLATFORM = "switch=8/network_address=16/core=8"
CORES = 1024
CORE_REQUESTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
NODE_REQUESTS = (1, 2, 4, 8, 16, 32)
MEAN_RUNTIME = 1800


def synthetic_workload(n: int, *, load: float = 0.85, seed: int = 1) -> list[WorkloadJob]:
    """``n`` jobs offering about ``load`` of the platform (see the module docstring)."""
    rng = random.Random(seed)
    mean_cores = (sum(CORE_REQUESTS) / len(CORE_REQUESTS) + 8 * sum(NODE_REQUESTS) / len(NODE_REQUESTS)) / 2
    mean_gap = mean_cores * MEAN_RUNTIME / (CORES * load)
    jobs, t = [], 0
    for i in range(1, n + 1):
        t += int(rng.expovariate(1 / mean_gap))
        runtime = int(rng.expovariate(1 / MEAN_RUNTIME)) + 1
        walltime = int(runtime * rng.uniform(1.0, 3.0)) + 60
        if rng.random() < 0.5:
            request = f"resource_id={rng.choice(CORE_REQUESTS)}"
        else:
            request = f"network_address={rng.choice(NODE_REQUESTS)}"
        jobs.append(WorkloadJob(id=i, submit=t, runtime=runtime, walltime=walltime, request=request,
                                user=f"u{rng.randrange(20)}"))
    return jobs


def _run_once(benchmark, func):
    return benchmark.pedantic(func, rounds=1, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("n_jobs", [2000, 5000])
def test_bench_fifo(benchmark, n_jobs):
    jobs = synthetic_workload(n_jobs)
    platform = platform_from_spec(PLATFORM)
    result = _run_once(benchmark, lambda: simulate(jobs, platform))
    m = result.metrics()
    assert m.completed == n_jobs
    assert 0.5 < m.utilization <= 1.0
    benchmark.extra_info.update(rounds=result.rounds, utilization=round(m.utilization, 3),
                                mean_wait=round(m.mean_wait, 1))


def test_bench_fairshare_with_besteffort(benchmark):
    jobs = synthetic_workload(2000, seed=2)
    for job in jobs[::10]:
        job.queue, job.types = "besteffort", {"besteffort": ""}
    platform = platform_from_spec(PLATFORM)
    config = {"JOB_PRIORITY": "FAIRSHARE", "SCHEDULER_JOB_SECURITY_TIME": 60, "ACCOUNTING_WINDOW": 3600}
    result = _run_once(benchmark, lambda: simulate(jobs, platform, config=config, requeue_besteffort=True))
    assert {r.status for r in result.records} <= {"completed", "killed"}
    benchmark.extra_info.update(rounds=result.rounds, preemptions=sum(r.preemptions for r in result.records))


def test_bench_swf_sample(benchmark):
    shared = shared_dir()
    if shared is None:
        pytest.skip("the shared traces (../shared or $OARSCHED_SHARED) are not here")
    workload = load_workload(shared / "traces" / "gofree_sample_1.swf")
    platform = platform_from_spec("network_address=8/core=12")
    result = benchmark(lambda: simulate(workload, platform))
    assert result.metrics().completed == 446
