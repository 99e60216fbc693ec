"""A simulation written in the formats other tools read: Batsim's CSV outputs and SWF.

* :func:`write_batsim_jobs` -- Batsim's ``out_jobs.csv``, one row per job, as
  ``evalys.jobset.JobSet.from_csv`` loads it: ``job_id, workload_name,
  submission_time, requested_number_of_resources, requested_time, success,
  final_state, starting_time, execution_time, finish_time, waiting_time,
  turnaround_time, stretch, allocated_resources, consumed_energy, metadata``.
  ``allocated_resources`` is Batsim's machine intervals (``"0-3 8-9"``): the
  platform's 0-based order indices (Batsim numbers machines from 0 in
  platform order).  Jobs that never ran (rejected, not started) are written
  with ``success`` 0 and empty times, as Batsim writes rejected jobs (-1
  times); ``final_state`` is ``COMPLETED_SUCCESSFULLY``,
  ``COMPLETED_WALLTIME_REACHED``, ``COMPLETED_KILLED`` (preempted) or
  ``REJECTED``.  ``metadata`` carries the user and the queue.
* :func:`write_batsim_schedule` -- Batsim's ``out_schedule.csv``: one row of
  aggregate figures (makespan, mean/max waiting, turnaround, slowdown...).
* :func:`write_swf` -- the run as a Standard Workload Format trace: the
  submit, wait and run time each job really had, with a header giving the
  platform size, so that the output is itself a trace other simulators replay.
* :func:`write_workload_swf` -- a workload (e.g. a synthetic one) as an SWF
  trace to simulate: processors requested, requested and run times.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from oarsched.model.job import JobError, parse_request
from oarsched.sim.records import JobRecord, format_ranges

__all__ = ["BATSIM_JOB_COLUMNS", "BATSIM_SCHEDULE_COLUMNS", "write_batsim_jobs", "write_batsim_schedule",
           "write_swf", "write_workload_swf"]

BATSIM_JOB_COLUMNS = (
    "job_id", "workload_name", "submission_time", "requested_number_of_resources", "requested_time", "success",
    "final_state", "starting_time", "execution_time", "finish_time", "waiting_time", "turnaround_time", "stretch",
    "allocated_resources", "consumed_energy", "metadata",
)

BATSIM_SCHEDULE_COLUMNS = (
    "batsim_version", "consumed_joules", "makespan", "max_slowdown", "max_stretch", "max_turnaround_time",
    "max_waiting_time", "mean_slowdown", "mean_stretch", "mean_turnaround_time", "mean_waiting_time",
    "nb_computing_machines", "nb_grouped_switches", "nb_jobs", "nb_jobs_finished", "nb_jobs_killed",
    "nb_jobs_rejected", "nb_jobs_success", "nb_machine_switches", "scheduling_time", "simulation_time",
    "success_rate",
)

_FINAL_STATES = {"completed": "COMPLETED_SUCCESSFULLY", "killed": "COMPLETED_WALLTIME_REACHED",
                 "preempted": "COMPLETED_KILLED", "rejected": "REJECTED", "not_started": "REJECTED",
                 "running": "COMPLETED_KILLED"}

# SWF status field: 1 completed, 0 failed, 5 cancelled
_SWF_STATUS = {"completed": 1, "killed": 0, "preempted": 0, "running": 0, "rejected": 5, "not_started": 5}


def intervals(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 8, 9]`` -> ``"0-3 8-9"`` (Batsim's and procset's interval text)."""
    return format_ranges(indices, sep=" ")


def requested_resources(request: str) -> int:
    """Resources a request names when every level is a count (``switch=1/core=4`` -> 4; groups add up).

    A level's count multiplies those below it only for the leaf level; a
    request with ``ALL``/``BEST`` keywords counts as 0 (unknown until placed).
    """
    try:
        groups = parse_request(request)
    except JobError:
        return 0
    total = 0
    for group in groups:
        counts = [n for _, n in group.levels]
        if any(n < 0 for n in counts):
            return 0
        product = 1
        for n in counts:
            product *= n
        total += product
    return total


def _job_rows(result, workload_name: str):
    roid_of = result.platform.roid_of
    for r in result.records:
        spec = _spec(result, r.id)
        asked = requested_resources(spec.request) if spec is not None else 0
        requested = len(r.resources) if r.start is not None else asked
        ran = r.start is not None and r.end is not None
        metadata = f"user={r.user};queue={r.queue}"
        row = {"job_id": r.id, "workload_name": workload_name, "submission_time": r.submit,
               "requested_number_of_resources": requested or asked, "requested_time": r.walltime,
               "success": 1 if r.status == "completed" else 0, "final_state": _FINAL_STATES[r.status],
               "consumed_energy": -1, "metadata": metadata}
        if ran:
            execution = r.end - r.start
            turnaround = r.end - r.submit
            row.update(starting_time=r.start, execution_time=execution, finish_time=r.end,
                       waiting_time=r.start - r.submit, turnaround_time=turnaround,
                       stretch=turnaround / max(execution, 1),
                       allocated_resources=intervals([roid_of[rid] for rid in r.resources if rid in roid_of]))
        else:
            row.update(starting_time=-1, execution_time=-1, finish_time=-1, waiting_time=-1,
                       turnaround_time=-1, stretch=-1, allocated_resources="")
        yield row


def write_batsim_jobs(result, path: str | os.PathLike[str], workload_name: str = "w0") -> str:
    """Write ``result`` (a SimulationResult) as Batsim's ``out_jobs.csv`` (see the module docstring)."""
    target = os.fspath(path)
    with open(target, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=BATSIM_JOB_COLUMNS)
        writer.writeheader()
        for row in _job_rows(result, workload_name):
            writer.writerow(row)
    return target


def write_batsim_schedule(result, path: str | os.PathLike[str], simulation_time: float = 0.0) -> str:
    """Write Batsim's ``out_schedule.csv``: one row of aggregate figures of ``result``."""
    rows = [r for r in _job_rows(result, "w0") if r["starting_time"] != -1]
    metrics = result.metrics()

    def stat(key: str, func) -> float:
        values = [float(r[key]) for r in rows]
        return func(values) if values else 0.0

    def mean(values):
        return sum(values) / len(values)

    nb_jobs = len(result.records)
    success = sum(1 for r in result.records if r.status == "completed")
    data = {
        "batsim_version": "oarsched", "consumed_joules": 0, "makespan": metrics.makespan,
        "max_slowdown": stat("stretch", max), "max_stretch": stat("stretch", max),
        "max_turnaround_time": stat("turnaround_time", max), "max_waiting_time": stat("waiting_time", max),
        "mean_slowdown": stat("stretch", mean), "mean_stretch": stat("stretch", mean),
        "mean_turnaround_time": stat("turnaround_time", mean), "mean_waiting_time": stat("waiting_time", mean),
        "nb_computing_machines": result.resources, "nb_grouped_switches": 0, "nb_jobs": nb_jobs,
        "nb_jobs_finished": len(rows), "nb_jobs_killed": metrics.killed + metrics.preempted,
        "nb_jobs_rejected": metrics.rejected, "nb_jobs_success": success, "nb_machine_switches": 0,
        "scheduling_time": round(simulation_time, 6), "simulation_time": round(simulation_time, 6),
        "success_rate": success / nb_jobs if nb_jobs else 0.0,
    }
    target = os.fspath(path)
    with open(target, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=BATSIM_SCHEDULE_COLUMNS)
        writer.writeheader()
        writer.writerow(data)
    return target


def _spec(result, job_id: int):
    """The workload job a record runs (a resubmission's is the job it resubmits); None when unknown."""
    try:
        return result.workload_job(job_id)
    except KeyError:
        return None


def write_swf(result, path: str | os.PathLike[str]) -> str:
    """Write the simulated run as an SWF trace (actual wait and run times; users and queues numbered)."""
    users = _numbering(r.user for r in result.records)
    queues = _numbering(r.queue for r in result.records)
    records: list[JobRecord] = sorted(result.records, key=lambda r: (r.submit, r.id))
    target = os.fspath(path)
    with open(target, "w", encoding="utf-8") as fh:
        fh.write("; Version: 2.2\n; Computer: oarsched simulation\n")
        fh.write(f"; MaxJobs: {len(records)}\n; MaxRecords: {len(records)}\n")
        fh.write(f"; MaxProcs: {result.resources}\n")
        fh.write("; Note: users and queues are numbered in order of first appearance: "
                 + ", ".join(f"{n}={name or '-'}" for name, n in users.items()) + " / "
                 + ", ".join(f"{n}={name}" for name, n in queues.items()) + "\n")
        for r in records:
            spec = _spec(result, r.id)
            asked = requested_resources(spec.request) if spec is not None else len(r.resources)
            ran = r.start is not None and r.end is not None
            fields = [r.id, r.submit, r.start - r.submit if ran else -1, r.end - r.start if ran else -1,  # type: ignore[operator]  # ran: start and end are set
                      len(r.resources) if ran else -1, -1, -1, asked or len(r.resources) or -1, r.walltime, -1,
                      _SWF_STATUS[r.status], users[r.user], -1, -1, queues[r.queue], -1, -1, -1]
            fh.write(" ".join(str(f) for f in fields) + "\n")
    return target


def _numbering(names) -> dict[str, int]:
    """Names numbered from 1 in order of first appearance."""
    out: dict[str, int] = {}
    for name in names:
        if name not in out:
            out[name] = len(out) + 1
    return out


def write_workload_swf(workload, path: str | os.PathLike[str]) -> str:
    """Write a workload as an SWF trace (its header's ``MaxNodes``/``MaxProcs`` kept).

    A request of whole nodes (``network_address=N``) becomes ``N x
    MaxProcs / MaxNodes`` processors; users named ``u<number>`` keep their number.
    """
    header = dict(workload.header)
    per_node = 1
    try:
        per_node = max(1, int(header.get("MaxProcs", 0)) // max(1, int(header.get("MaxNodes", 0))))
    except ValueError:
        pass
    users = _numbering(j.user for j in workload.jobs)
    target = os.fspath(path)
    with open(target, "w", encoding="utf-8") as fh:
        fh.write("; Version: 2.2\n")
        for key, value in header.items():
            fh.write(f"; {key}: {value}\n")
        for job in workload.jobs:
            procs = requested_resources(job.request)
            if job.request.split("=")[0].strip() in ("network_address", "nodes", "host"):
                procs *= per_node
            user = int(job.user[1:]) if job.user[:1] == "u" and job.user[1:].isdigit() else users[job.user]
            fields = [job.id, job.submit, -1, job.runtime, procs, -1, -1, procs, job.walltime, -1, 1, user, -1, -1,
                      1, -1, -1, -1]
            fh.write(" ".join(str(f) for f in fields) + "\n")
    return target
