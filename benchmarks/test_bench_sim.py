"""Simulation speed: the simulator as it was (a full replan at every event) beside today's, in one run.

Run with ``python -m pytest benchmarks/test_bench_sim.py --benchmark-enable`` (add ``-m slow`` for the
50,000-job case; without ``--benchmark-enable`` each case runs once, as a test).  ``replan`` is the
simulator with nothing kept between rounds (``incremental=False``: every waiting job replanned and
every request compiled at every event, the algorithm of the simulator before plans were kept); ``kept``
is the default.  Both give the same records (checked here on every case).  The scale figures of the
README (50,000 and 200,000 jobs on 4,096 cores, time and peak memory, each run in a fresh process) are
made by ``python -m benchmarks.sim_scale``.

The synthetic traces (:func:`oarsched.sim.synthetic.synthetic_workload`) are deterministic: Poisson
arrivals sized for 85 % offered load, core and node requests, exponential run times (mean 30 min) and
walltimes over-estimated 1x to 3x, as in real traces.
"""
from __future__ import annotations

import pytest

from oarsched.sim import load_workload, platform_from_spec, simulate
from oarsched.sim.synthetic import synthetic_workload
from tests.conftest import shared_dir

SIZES = {  # jobs: (platform spec, nodes, cores per node)
    2000: ("switch=8/network_address=16/core=8", 128, 8),
    10000: ("switch=16/network_address=32/core=8", 512, 8),
    50000: ("switch=16/network_address=32/core=8", 512, 8),
}
CONFIG = {"SCHEDULER_JOB_SECURITY_TIME": 60}


def _run_once(benchmark, func):
    return benchmark.pedantic(func, rounds=1, iterations=1, warmup_rounds=0)


_reference: dict[int, list] = {}


@pytest.mark.parametrize("n_jobs", [pytest.param(2000, marks=pytest.mark.quick), 10000,
                                    pytest.param(50000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("mode", ["replan", "kept"])
def test_bench_fifo(benchmark, n_jobs, mode):
    spec, nodes, per_node = SIZES[n_jobs]
    trace = synthetic_workload(n_jobs, nodes=nodes, cores_per_node=per_node)
    platform = platform_from_spec(spec)
    result = _run_once(benchmark, lambda: simulate(trace, platform, config=CONFIG, incremental=mode == "kept"))
    m = result.metrics()
    assert m.completed + m.killed == n_jobs
    assert 0.5 < m.utilization <= 1.0
    outcome = [(r.id, r.start, r.end, tuple(r.resources)) for r in result.records]
    if n_jobs in _reference:
        assert outcome == _reference[n_jobs]  # the other mode gave the same records
    _reference[n_jobs] = outcome
    benchmark.extra_info.update(rounds=result.rounds, full_rounds=result.full_rounds,
                                utilization=round(m.utilization, 3), mean_wait=round(m.mean_wait, 1))


def test_bench_fairshare_with_besteffort(benchmark):
    trace = synthetic_workload(2000, seed=2)
    for job in trace.jobs[::10]:
        job.queue, job.types = "besteffort", {"besteffort": ""}
    platform = platform_from_spec(SIZES[2000][0])
    config = {"JOB_PRIORITY": "FAIRSHARE", "SCHEDULER_JOB_SECURITY_TIME": 60, "ACCOUNTING_WINDOW": 3600}
    result = _run_once(benchmark, lambda: simulate(trace, platform, config=config, requeue_besteffort=True))
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
