"""Scheduling metrics of a simulation, and the side-by-side comparison of two runs.

Definitions (``wait = start - submit``, ``run = end - start``, times in seconds):

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
* **jobs per hour**: jobs that ended (completed, killed or preempted) per hour of makespan.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from oarsched.sim.records import JobRecord, Run

__all__ = ["DEFAULT_BOUND", "Comparison", "Metrics", "compare", "compute_metrics"]

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

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def format(self) -> str:
        """A two-column text table."""
        return "\n".join(f"{name:<22} {_show(value)}" for name, value in self.as_dict().items())


def compute_metrics(records: Sequence[JobRecord], resources: int, *, runs: Iterable[Run] | None = None,
                    bound: int = DEFAULT_BOUND) -> Metrics:
    """Metrics of ``records`` on a platform of ``resources`` schedulable resources.

    ``runs`` (every stretch a job held resources) gives the exact busy time;
    without them each record's last run is used (preempted-then-requeued
    besteffort runs are then missed).
    """
    if resources <= 0:
        raise ValueError(f"resources must be positive, got {resources}")
    if bound <= 0:
        raise ValueError(f"the bounded-slowdown threshold must be positive, got {bound}")
    count = _count_statuses(records)
    batch = [r for r in records if r.start is not None and not r.reservation]
    waits = np.array([r.start - r.submit for r in batch if r.start is not None], dtype=float)
    spans = [(r.end - r.submit, r.end - r.start) for r in batch if r.start is not None and r.end is not None]
    turnaround = np.array([t for t, _ in spans], dtype=float)
    runs_s = np.array([run for _, run in spans], dtype=float)
    slowdown = turnaround / np.maximum(runs_s, 1.0)
    bounded = np.maximum(1.0, turnaround / np.maximum(runs_s, float(bound)))
    makespan = _makespan(records)
    if runs is None:
        runs = [Run(r.id, r.start, r.end, tuple(r.resources), r.status) for r in records
                if r.start is not None and r.end is not None]  # the last run of each record
    busy = sum((run.end - run.start) * len(run.resources) for run in runs)
    finished = count["completed"] + count["killed"] + count["preempted"]
    return Metrics(
        jobs=len(records), started=sum(1 for r in records if r.start is not None), **count,
        mean_wait=_stat(np.mean, waits), median_wait=_stat(np.median, waits),
        p95_wait=_stat(lambda a: np.percentile(a, 95), waits), max_wait=_stat(np.max, waits),
        mean_slowdown=_stat(np.mean, slowdown), mean_bounded_slowdown=_stat(np.mean, bounded),
        max_bounded_slowdown=_stat(np.max, bounded),
        utilization=busy / (resources * makespan) if makespan > 0 else 0.0,
        makespan=makespan, jobs_per_hour=finished * 3600.0 / makespan if makespan > 0 else 0.0,
        resources=resources, bound=bound,
    )


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


def _show(value: float) -> str:
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
        for f in fields(Metrics):
            va, vb = getattr(self.a, f.name), getattr(self.b, f.name)
            out.append((f.name, va, vb, vb - va))
        return out

    def format(self) -> str:
        """A text table: metric, A, B, B - A and B / A."""
        na, nb = self.names
        width = max(12, len(na), len(nb))
        lines = [f"{'metric':<22} {na:>{width}} {nb:>{width}} {'B - A':>12} {'B / A':>8}",
                 f"{'':<22} {'(A)':>{width}} {'(B)':>{width}}"]
        for name, va, vb, diff in self.rows():
            ratio = f"{vb / va:.3g}" if va else "-"
            lines.append(f"{name:<22} {_show(va):>{width}} {_show(vb):>{width}} {_show(diff):>12} {ratio:>8}")
        lines.append(f"jobs started in both: {self.common_jobs}; in {nb} vs {na}: {self.earlier_in_b} earlier, "
                     f"{self.later_in_b} later, {self.same_start} at the same time")
        return "\n".join(lines)


def compare(a: Sequence[JobRecord], b: Sequence[JobRecord], resources: int, *,
            names: tuple[str, str] = ("A", "B"), bound: int = DEFAULT_BOUND,
            runs_a: Iterable[Run] | None = None, runs_b: Iterable[Run] | None = None,
            resources_b: int | None = None) -> Comparison:
    """Compare two runs of (usually) the same workload on ``resources`` resources.

    ``resources_b``: the size of B's platform when it differs (utilization of B).
    """
    starts_a = {r.id: r.start for r in a if r.start is not None}
    starts_b = {r.id: r.start for r in b if r.start is not None}
    common = starts_a.keys() & starts_b.keys()
    return Comparison(
        a=compute_metrics(a, resources, runs=runs_a, bound=bound),
        b=compute_metrics(b, resources_b or resources, runs=runs_b, bound=bound),
        names=names, common_jobs=len(common),
        earlier_in_b=sum(1 for j in common if starts_b[j] < starts_a[j]),
        later_in_b=sum(1 for j in common if starts_b[j] > starts_a[j]),
        same_start=sum(1 for j in common if starts_b[j] == starts_a[j]),
    )
