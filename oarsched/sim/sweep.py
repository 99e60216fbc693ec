"""Sweeps: many traces x policies, one independent task per run, results gathered in one table.

A sweep is a list of tasks, ``(trace, policy)`` in a fixed order (traces
first, then policies, as given).  Each task is a separate process that
simulates one trace under one policy and writes, in ``out_dir``:

* ``<trace stem>/<policy>.json``: the metrics (every scalar, per user, per queue) and how long it took;
* ``<trace stem>/<policy>.csv``: the per-job records (written as jobs end), with a
  checkpoint beside it while running.

A task whose ``.json`` exists is done and skipped; an interrupted one resumes
from its checkpoint: a sweep is restarted with the same command.  Tasks run
over the machine's cores (``processes``), or one at a time by number
(``task=K``, 0-based) so that an existing engine fans them out -- an OAR or
Slurm job array, Dask... (see ``docs/simulation-sweeps.md``) -- and
:func:`gather` puts the results in one table.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oarsched.errors import UsageError

__all__ = ["SweepTask", "gather", "run_task", "sweep_tasks", "sweep"]

COLUMNS = ("jobs", "completed", "rejected", "mean_wait", "p95_wait", "mean_bounded_slowdown", "utilization",
           "makespan", "fairness")


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: a trace under a policy, and where its results go."""

    trace: str
    policy: str
    out_dir: str

    @property
    def stem(self) -> Path:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.policy)
        return Path(self.out_dir) / Path(self.trace).stem / slug

    @property
    def done(self) -> bool:
        return self.stem.with_suffix(".json").exists()


def sweep_tasks(traces: Sequence[str], policies: Sequence[str], out_dir: str) -> list[SweepTask]:
    """The tasks of a sweep, numbered by their position (trace-major)."""
    if not traces or not policies:
        raise UsageError("a sweep needs at least one trace and one policy")
    return [SweepTask(t, p, out_dir) for t in traces for p in policies]


def run_task(task: SweepTask, platform: str | None = None, security_time: int | None = 60) -> str:
    """Simulate one task (resuming it when a checkpoint is there); the path of its metrics file."""
    import time

    from oarsched.oar.config import OarConfig
    from oarsched.sim import load_workload, platform_from_spec
    from oarsched.sim.policies import parse_policy, run_policy
    from oarsched.sim.records import RecordJournal, write_records

    workload = load_workload(task.trace)
    plat = platform_from_spec(platform) if platform else _header_platform(workload, task.trace)
    base = OarConfig.from_mapping({} if security_time is None else {"SCHEDULER_JOB_SECURITY_TIME": security_time})
    task.stem.parent.mkdir(parents=True, exist_ok=True)
    records = str(task.stem.with_suffix(".csv"))
    checkpoint = records + ".checkpoint"
    resume = os.path.exists(checkpoint)
    journal = RecordJournal(records, append=resume)
    t0 = time.perf_counter()
    try:
        result, _ = run_policy(workload, plat, parse_policy(task.policy), base,
                               run_options={"checkpoint": checkpoint, "resume": resume, "on_close": journal.add})
    finally:
        journal.close()
    write_records(result.records, records)
    metrics = result.metrics()
    data = {"trace": task.trace, "policy": task.policy, "resources": result.resources,
            "seconds": round(time.perf_counter() - t0, 3), "rounds": result.rounds,
            "metrics": metrics.as_dict()}
    target = task.stem.with_suffix(".json")
    target.with_suffix(".json.tmp").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(target.with_suffix(".json.tmp"), target)
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    return str(target)


def _header_platform(workload, source: str):
    from oarsched.sim import platform_from_spec

    try:
        procs = int(workload.header.get("MaxProcs", "0").split()[0])
        nodes = int(workload.header.get("MaxNodes", "0").split()[0])
    except (ValueError, IndexError):
        procs = nodes = 0
    if procs <= 0:
        raise UsageError(f"{source}: no SWF MaxProcs header: give the platform (--platform SPEC)")
    if 0 < nodes < procs and procs % nodes == 0:
        return platform_from_spec(f"network_address={nodes}/core={procs // nodes}")
    return platform_from_spec(f"resource_id={procs}")


def _run(args: tuple[SweepTask, str | None, int | None]) -> str:
    return run_task(*args)


def sweep(tasks: Sequence[SweepTask], *, processes: int = 1, platform: str | None = None,
          security_time: int | None = 60) -> list[str]:
    """Run the tasks not done yet, ``processes`` at a time (one process per run); their metrics files."""
    todo = [t for t in tasks if not t.done]
    if processes <= 1 or len(todo) <= 1:
        return [run_task(t, platform, security_time) for t in todo]
    with ProcessPoolExecutor(max_workers=processes) as pool:
        return list(pool.map(_run, [(t, platform, security_time) for t in todo]))


def gather(tasks: Sequence[SweepTask]) -> str:
    """One table: a row per run (done ones; the others are listed as pending)."""
    width = max([12, *(len(f"{Path(t.trace).stem}:{t.policy}") for t in tasks)])
    lines = [f"{'run':<{width}} " + " ".join(f"{c:>12}" for c in COLUMNS) + f" {'seconds':>9}"]
    from oarsched.sim.metrics import show_value

    for task in tasks:
        name = f"{Path(task.trace).stem}:{task.policy}"
        if not task.done:
            lines.append(f"{name:<{width}} (not run yet)")
            continue
        data: dict[str, Any] = json.loads(task.stem.with_suffix(".json").read_text(encoding="utf-8"))
        m = data["metrics"]
        lines.append(f"{name:<{width}} " + " ".join(f"{show_value(m[c]):>12}" for c in COLUMNS)
                     + f" {data['seconds']:>9.2f}")
    return "\n".join(lines)
