"""Scheduling metrics of a simulation, and the side-by-side comparison of two runs.

Definitions (``wait = start - submit``, ``run = end - start``, times in seconds).
A job is a **workload job**: a besteffort job preempted and resubmitted (see
:mod:`oarsched.sim.records`) is a chain of records, and its figures are its
last record's -- whose ``submit`` is the workload job's, as OAR3 copies the
submission time to the resubmission: its wait runs from the workload job's
submission to the start of its last run --; every run of the chain counts in
the busy time.

* **wait** statistics (mean, median, 95th percentile -- linear interpolation,
  as :func:`numpy.percentile` --, max) are taken over the jobs that started,
  **advance reservations excluded** (their start is chosen by the user);
* **slowdown** ``(wait + run) / run``, with ``run`` floored at 1 s so that a
  job of null run time does not divide by zero;
* **bounded slowdown** ``max(1, (wait + run) / max(run, bound))`` with
  ``bound`` = 10 s by default (Feitelson et al.'s usual threshold, which keeps
  very short jobs from dominating the mean);
  both slowdowns are averaged over the started, non-reservation jobs that
  ended;
* **makespan**: from the first submission to the last end;
* **utilization**: resource-seconds held by jobs (every run, preempted
  besteffort runs included) divided by ``resources x makespan``, where
  ``resources`` is the number of schedulable resources -- at most 1 since jobs
  never share a resource (timesharing jobs excepted);
* **jobs per hour**: jobs that ended (completed, killed or preempted) per hour of makespan;
* **status counts** (``completed``, ``preempted``...): each workload job's final status
  (a job preempted then resubmitted counts as its resubmission ends);
* **per group** (:func:`group_metrics`, ``Metrics.by_user`` / ``by_queue``):
  jobs, mean wait, mean stretch (the slowdown) and mean bounded slowdown of
  each user or queue;
* **fairness**: Jain's index ``(sum x)^2 / (n sum x^2)`` of the users' mean
  bounded slowdowns -- 1 when every user is slowed down alike, ``1/n`` when
  one user bears it all (1 with a single user);
* **over time** (:func:`timeline`): utilization and queue length (jobs
  submitted and not yet started; a resubmission is queued from its
  predecessor's preemption) as step functions of time.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from oarsched.sim.records import JobRecord, Run, final_records, workload_ids

__all__ = ["DEFAULT_BOUND", "Comparison", "GroupMetrics", "Metrics", "Timeline", "compare", "compute_metrics",
           "group_metrics", "jain_index", "timeline"]

DEFAULT_BOUND = 10
"""Bounded-slowdown threshold in seconds."""


@dataclass(frozen=True)
class Metrics:
    """Figures of one simulation (see the module docstring for the definitions)."""

    jobs: int
    started: int
    completed: int
    killed: int
    preempted: int
    rejected: int
    not_started: int
    mean_wait: float
    median_wait: float
    p95_wait: float
    max_wait: float
    mean_slowdown: float
    mean_bounded_slowdown: float
    max_bounded_slowdown: float
    utilization: float
    makespan: int
    jobs_per_hour: float
    resources: int
    bound: int = DEFAULT_BOUND
    fairness: float = 1.0
    """Jain's index of the users' mean bounded slowdowns."""
    by_user: dict[str, GroupMetrics] = field(default_factory=dict, compare=False)
    by_queue: dict[str, GroupMetrics] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scalars(self) -> dict[str, float | int]:
        """The single-number metrics (what tables put side by side)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _GROUPED}

    def format(self) -> str:
        """A two-column text table, then the per-user and per-queue figures."""
        lines = [f"{name:<22} {show_value(value)}" for name, value in self.scalars().items()]
        for title, groups in (("user", self.by_user), ("queue", self.by_queue)):
            if len(groups) > 1:
                lines += ["", format_groups(title, groups)]
        return "\n".join(lines)


_GROUPED = ("by_user", "by_queue")


@dataclass(frozen=True)
class GroupMetrics:
    """Figures of one user's (or queue's) jobs that started (reservations excluded)."""

    jobs: int
    mean_wait: float
    mean_stretch: float
    mean_bounded_slowdown: float


def format_groups(title: str, groups: dict[str, GroupMetrics]) -> str:
    """A text table of per-group figures."""
    lines = [f"{title:<14} {'jobs':>7} {'mean_wait':>12} {'mean_stretch':>13} {'mean_bsld':>10}"]
    for name, g in sorted(groups.items()):
        lines.append(f"{name or '-':<14} {g.jobs:>7} {show_value(g.mean_wait):>12} {show_value(g.mean_stretch):>13} "
                     f"{show_value(g.mean_bounded_slowdown):>10}")
    return "\n".join(lines)


def group_metrics(records: Sequence[JobRecord], key: str, bound: int = DEFAULT_BOUND) -> dict[str, GroupMetrics]:
    """Per-group figures of the workload jobs, grouping records by ``key`` (``"user"`` or ``"queue"``)."""
    grouped: dict[str, list[tuple[float, float, float]]] = {}
    for r in final_records(records):
        if r.start is None or r.end is None or r.reservation:
            continue
        run = r.end - r.start
        turnaround = r.end - r.submit
        grouped.setdefault(getattr(r, key), []).append(
            (r.start - r.submit, turnaround / max(run, 1), max(1.0, turnaround / max(run, bound))))
    out = {}
    for name, values in grouped.items():
        arr = np.array(values, dtype=float)
        out[name] = GroupMetrics(len(values), float(arr[:, 0].mean()), float(arr[:, 1].mean()),
                                 float(arr[:, 2].mean()))
    return out


def jain_index(values: Iterable[float]) -> float:
    """Jain's fairness index of ``values`` (1 for none or one value)."""
    arr = np.array(list(values), dtype=float)
    if arr.size <= 1 or not np.any(arr):
        return 1.0
    return float(arr.sum() ** 2 / (arr.size * np.square(arr).sum()))


@dataclass(frozen=True)
class Timeline:
    """Step functions: ``utilization[i]`` and ``queue[i]`` hold from ``times[i]`` to ``times[i + 1]``."""

    times: np.ndarray
    utilization: np.ndarray
    queue: np.ndarray

    def averaged(self, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(bin starts, mean utilization, mean queue length)`` over ``bins`` equal time bins (time-weighted)."""
        if self.times.size < 2:
            return self.times.astype(float), self.utilization.astype(float), self.queue.astype(float)
        edges = np.linspace(float(self.times[0]), float(self.times[-1]), bins + 1)
        out = []
        for values in (self.utilization, self.queue):
            area = np.concatenate(([0.0], np.cumsum(values[:-1] * np.diff(self.times))))
            at_edges = np.interp(edges, self.times.astype(float), area)
            out.append(np.diff(at_edges) / np.diff(edges))
        return edges[:-1], out[0], out[1]


def timeline(records: Sequence[JobRecord], resources: int, runs: Iterable[Run] | None = None) -> Timeline:
    """Utilization (busy resources / ``resources``) and queue length over time."""
    if runs is None:
        runs = [Run(r.id, r.start, r.end, tuple(r.resources), r.status) for r in records
                if r.start is not None and r.end is not None]
    busy: dict[int, int] = {}
    for run in runs:
        busy[run.start] = busy.get(run.start, 0) + len(run.resources)
        busy[run.end] = busy.get(run.end, 0) - len(run.resources)
    queued: dict[int, int] = {}
    preempted_at = {r.id: r.end for r in records if r.resubmitted_as is not None}
    for r in records:
        if r.status == "rejected":
            continue
        since = preempted_at.get(r.resubmit_of) if r.resubmit_of is not None else None
        queued_at = r.submit if since is None else since
        queued[queued_at] = queued.get(queued_at, 0) + 1
        if r.start is not None:
            queued[r.start] = queued.get(r.start, 0) - 1
    times = np.array(sorted(busy.keys() | queued.keys()), dtype=np.int64)
    used = np.cumsum([busy.get(int(t), 0) for t in times])
    waiting = np.cumsum([queued.get(int(t), 0) for t in times])
    return Timeline(times, used / float(resources), waiting)


def compute_metrics(records: Sequence[JobRecord], resources: int, *, runs: Iterable[Run] | None = None,
                    bound: int = DEFAULT_BOUND) -> Metrics:
    """Metrics of ``records`` on a platform of ``resources`` schedulable resources.

    ``runs`` (every stretch a job held resources) gives the exact busy time;
    without them each record's run is used (the same, but for the runs still
    going at the ``until`` limit).
    """
    if resources <= 0:
        raise ValueError(f"resources must be positive, got {resources}")
    if bound <= 0:
        raise ValueError(f"the bounded-slowdown threshold must be positive, got {bound}")
    jobs = final_records(records)
    count = _count_statuses(jobs)
    batch = [r for r in jobs if r.start is not None and not r.reservation]
    waits = np.array([r.start - r.submit for r in batch if r.start is not None], dtype=float)
    spans = [(r.end - r.submit, r.end - r.start) for r in batch if r.start is not None and r.end is not None]
    turnaround = np.array([t for t, _ in spans], dtype=float)
    runs_s = np.array([run for _, run in spans], dtype=float)
    slowdown = turnaround / np.maximum(runs_s, 1.0)
    bounded = np.maximum(1.0, turnaround / np.maximum(runs_s, float(bound)))
    makespan = _makespan(records)
    if runs is None:
        runs = [Run(r.id, r.start, r.end, tuple(r.resources), r.status) for r in records
                if r.start is not None and r.end is not None]
    busy = sum((run.end - run.start) * len(run.resources) for run in runs)
    finished = count["completed"] + count["killed"] + count["preempted"]
    by_user = group_metrics(jobs, "user", bound)
    return Metrics(
        jobs=len(jobs), started=sum(1 for r in jobs if r.start is not None), **count,
        mean_wait=_stat(np.mean, waits), median_wait=_stat(np.median, waits),
        p95_wait=_stat(lambda a: np.percentile(a, 95), waits), max_wait=_stat(np.max, waits),
        mean_slowdown=_stat(np.mean, slowdown), mean_bounded_slowdown=_stat(np.mean, bounded),
        max_bounded_slowdown=_stat(np.max, bounded),
        utilization=busy / (resources * makespan) if makespan > 0 else 0.0,
        makespan=makespan, jobs_per_hour=finished * 3600.0 / makespan if makespan > 0 else 0.0,
        resources=resources, bound=bound, fairness=jain_index(g.mean_bounded_slowdown for g in by_user.values()),
        by_user=by_user, by_queue=group_metrics(jobs, "queue", bound),
    )


def _final_starts(records: Sequence[JobRecord]) -> dict[int, int]:
    """``{workload id: start of its last run}`` of the workload jobs that started."""
    origin = workload_ids(records)
    return {origin[r.id]: r.start for r in final_records(records) if r.start is not None}


def _count_statuses(records: Sequence[JobRecord]) -> dict[str, int]:
    names = ("completed", "killed", "preempted", "rejected", "not_started")
    return {name: sum(1 for r in records if r.status == name) for name in names}


def _makespan(records: Sequence[JobRecord]) -> int:
    ends = [r.end for r in records if r.end is not None]
    if not ends:
        return 0
    return max(ends) - min(r.submit for r in records)


def _stat(func, values: np.ndarray) -> float:
    return float(func(values)) if values.size else 0.0


def show_value(value: float) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
    return str(value)


# ----------------------------------------------------------------------- comparison

@dataclass(frozen=True)
class Comparison:
    """Two runs side by side: their metrics, and how the jobs they share moved."""

    a: Metrics
    b: Metrics
    names: tuple[str, str] = ("A", "B")
    common_jobs: int = 0
    earlier_in_b: int = 0
    later_in_b: int = 0
    same_start: int = 0

    def rows(self) -> list[tuple[str, float, float, float]]:
        """``(metric, value in a, value in b, b - a)`` for every metric."""
        out = []
        sa, sb = self.a.scalars(), self.b.scalars()
        for name, va in sa.items():
            out.append((name, va, sb[name], sb[name] - va))
        return out

    def format(self) -> str:
        """A text table: metric, A, B, B - A and B / A."""
        na, nb = self.names
        width = max(12, len(na), len(nb))
        lines = [f"{'metric':<22} {na:>{width}} {nb:>{width}} {'B - A':>12} {'B / A':>8}",
                 f"{'':<22} {'(A)':>{width}} {'(B)':>{width}}"]
        for name, va, vb, diff in self.rows():
            ratio = f"{vb / va:.3g}" if va else "-"
            lines.append(f"{name:<22} {show_value(va):>{width}} {show_value(vb):>{width}} {show_value(diff):>12} {ratio:>8}")
        lines.append(f"jobs started in both: {self.common_jobs}; in {nb} vs {na}: {self.earlier_in_b} earlier, "
                     f"{self.later_in_b} later, {self.same_start} at the same time")
        return "\n".join(lines)


def compare(a: Sequence[JobRecord], b: Sequence[JobRecord], resources: int, *,
            names: tuple[str, str] = ("A", "B"), bound: int = DEFAULT_BOUND,
            runs_a: Iterable[Run] | None = None, runs_b: Iterable[Run] | None = None,
            resources_b: int | None = None) -> Comparison:
    """Compare two runs of (usually) the same workload on ``resources`` resources.

    ``resources_b``: the size of B's platform when it differs (utilization of B).
    Jobs are matched by workload id, and a resubmitted job's start is its last run's.
    """
    starts_a, starts_b = _final_starts(a), _final_starts(b)
    common = starts_a.keys() & starts_b.keys()
    return Comparison(
        a=compute_metrics(a, resources, runs=runs_a, bound=bound),
        b=compute_metrics(b, resources_b or resources, runs=runs_b, bound=bound),
        names=names, common_jobs=len(common),
        earlier_in_b=sum(1 for j in common if starts_b[j] < starts_a[j]),
        later_in_b=sum(1 for j in common if starts_b[j] > starts_a[j]),
        same_start=sum(1 for j in common if starts_b[j] == starts_a[j]),
    )
