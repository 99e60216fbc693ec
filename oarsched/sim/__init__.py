"""Trace-driven simulation with oarsched's scheduler, and scheduling metrics.

>>> from oarsched import Platform
>>> from oarsched.sim import WorkloadJob, simulate
>>> platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
>>> jobs = [WorkloadJob(id=1, submit=0, runtime=100, walltime=200, request="core=8"),
...         WorkloadJob(id=2, submit=10, runtime=50, walltime=60, request="core=2")]
>>> result = simulate(jobs, platform)
>>> [(r.id, r.start, r.end, r.status) for r in result.records]
[(1, 0, 100, 'completed'), (2, 100, 150, 'completed')]
>>> result.metrics().mean_wait
45.0

* :mod:`oarsched.sim.workload` -- SWF, JSON and CSV workloads (:func:`load_workload`);
* :mod:`oarsched.sim.simulator` -- the event loop (:func:`simulate`, :class:`Simulator`);
* :mod:`oarsched.sim.records` -- per-job outcomes, saved as CSV or JSON;
* :mod:`oarsched.sim.metrics` -- wait, slowdown, utilization, comparison of two runs;
* :mod:`oarsched.sim.platforms` -- platforms from a spec, a JSON file or an OAR3 database;
* :mod:`oarsched.sim.policies` -- policies by name (fifo, fairshare, sjf, best-fit, easy, conf=FILE)
  and several of them on one trace side by side (:func:`~oarsched.sim.policies.compare_policies`);
* :mod:`oarsched.sim.formats` -- Batsim's ``out_jobs.csv``/``out_schedule.csv`` and SWF outputs;
* :mod:`oarsched.sim.sweep` -- traces x policies as independent, resumable tasks, one table;
* :mod:`oarsched.sim.synthetic` -- synthetic traces shaped like the Parallel Workloads Archive's.
"""
from __future__ import annotations

from oarsched.sim.metrics import DEFAULT_BOUND, Comparison, Metrics, compare, compute_metrics
from oarsched.sim.platforms import (
    load_platform,
    platform_from_db,
    platform_from_spec,
    queues_from_db,
)
from oarsched.sim.records import JobRecord, RecordsError, Run, read_records, write_records
from oarsched.sim.simulator import DEFAULT_QUEUES, SimulationResult, Simulator, simulate
from oarsched.sim.workload import (
    Workload,
    WorkloadError,
    WorkloadJob,
    load_workload,
    read_csv,
    read_json,
    read_swf,
)

__all__ = [
    "DEFAULT_BOUND", "DEFAULT_QUEUES", "Comparison", "JobRecord", "Metrics", "RecordsError", "Run",
    "SimulationResult", "Simulator", "Workload", "WorkloadError", "WorkloadJob", "compare", "compute_metrics",
    "load_platform", "load_workload", "platform_from_db", "platform_from_spec", "queues_from_db", "read_csv",
    "read_json", "read_records", "read_swf", "simulate", "write_records",
]
