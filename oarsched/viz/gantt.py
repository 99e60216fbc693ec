"""Gantt charts of schedules: what an OAR3 database holds, a library result, or a simulation.

Resources run down the vertical axis in scheduling order, grouped by the
hierarchy (a thick line between switches, a thin one between nodes); time
runs left to right.  Each job is one box per contiguous run of rows it
holds (a job's resources need not be contiguous), labelled with its id when
the box is big enough to hold the label.  Kinds are told apart by colour
and hatch, with a legend; a dashed red line marks "now".

Readable at scale: up to ``max_rows`` rows (default 150) one row per
resource; beyond, one row per node (``network_address`` or ``host``), and
beyond that rows of consecutive resources.  Non-schedulable resources
(Dead, Suspected) are shaded.

Three ways in, one way out:

* :func:`gantt_from_db` -- the ``gantt_jobs_predictions`` rows of an OAR3
  database (running jobs, accepted reservations, decisions of the last round);
* :func:`gantt_from_result` -- a :class:`~oarsched.engine.scheduler.ScheduleResult`
  with its platform, jobs and already-scheduled jobs;
* :func:`gantt_from_simulation` -- a :class:`~oarsched.sim.SimulationResult`
  or records read back from a file;

then :func:`draw_gantt` writes SVG or PNG (by the file's extension) with
matplotlib's Agg renderer (no display needed), and :func:`gantt_figure`
returns the matplotlib figure for a notebook.

In the SVG, every box is a group whose id is ``job-<id>-<n>``, every label
``label-<id>`` and the now line ``now``: charts can be checked or styled.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from oarsched.errors import OarschedError
from oarsched.model.platform import Platform

__all__ = [
    "KINDS", "GanttChart", "GanttError", "GanttJob", "draw_gantt", "gantt_figure", "gantt_from_db",
    "gantt_from_result", "gantt_from_simulation", "load_schedule_json", "save_schedule_json",
]

KINDS: dict[str, tuple[str, str, str]] = {
    # kind: (legend text, face colour, hatch)
    "running": ("running", "#4c72b0", ""),
    "scheduled": ("planned (waiting)", "#dd8452", ""),
    "completed": ("completed", "#4c72b0", ""),
    "killed": ("killed at walltime", "#c44e52", ""),
    "reservation": ("advance reservation", "#55a868", "///"),
    "besteffort": ("besteffort", "#a0a0a0", "..."),
    "preempted": ("besteffort, preempted", "#a0a0a0", "xxx"),
}
"""Job kinds, how the legend calls them, their colour and hatch."""

RUNNING_STATES = frozenset({"Running", "toLaunch", "Launching", "Finishing", "Suspended", "Resuming"})
NODE_LABELS = ("network_address", "host")
MAX_LABEL_CHARS = 8
MAX_HEIGHT = 24.0
"""Inches; taller charts aggregate rows instead."""


class GanttError(OarschedError):
    """A chart cannot be drawn (no matplotlib, an unreadable schedule file...)."""


@dataclass
class GanttJob:
    """One box (or several, when its resources are not contiguous): ``[start, end)`` on ``resources`` (ids)."""

    id: int
    start: int
    end: int
    resources: Sequence[int]
    kind: str = "scheduled"
    label: str = ""
    user: str = ""
    queue: str = ""
    request: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GanttError(f"job {self.id}: unknown kind {self.kind!r} (known: {', '.join(KINDS)})")
        if not self.label:
            self.label = str(self.id)


@dataclass
class GanttChart:
    """What a chart shows: the platform's resources, the jobs, the current time and a title."""

    platform: Platform
    jobs: list[GanttJob]
    now: int | None = None
    title: str = ""
    start: int | None = None
    """Left end of the time window shown (default: the first box, or now)."""
    end: int | None = None
    """Right end of the time window shown (default: the last box end)."""
    skipped: list[int] = field(default_factory=list)
    """Jobs not drawn because none of their resources is on the platform."""
    epoch: int = 0
    """Seconds added to the chart's times to get Unix time (an SWF trace's ``UnixStartTime``)."""
    tz: str = "UTC"
    """IANA time zone the date axis is written in (an SWF trace's ``TimeZoneString`` when it is one)."""


# ---------------------------------------------------------------------------- sources

def gantt_from_result(platform: Platform, result, jobs: Iterable[Any] = (), scheduled: Iterable[Any] = (),
                      now: int | None = None, title: str = "") -> GanttChart:
    """A library round: ``result`` (a ScheduleResult) over ``scheduled`` (ScheduledJob) at ``now``.

    Placed jobs are ``scheduled`` (``besteffort`` for that type) and span their
    reserved walltime (security time included).  An already-scheduled job is
    ``running`` when its state is a running one (or it started before
    ``now``), ``besteffort`` for that type, otherwise an accepted
    ``reservation`` (or an earlier queue's decision).
    """
    types = {j.id: j.types for j in jobs}
    boxes = []
    by_id = {j.id: j for j in jobs}
    for s in scheduled:
        boxes.append(GanttJob(s.id, s.start_time, s.start_time + int(s.walltime), list(s.resources),
                              _scheduled_kind(s, now), user=s.user or "", queue=s.queue or "", name=s.name or ""))
    for a in result.assignments.values():
        kind = "besteffort" if "besteffort" in types.get(a.job_id, {}) else "scheduled"
        job = by_id.get(a.job_id)
        boxes.append(GanttJob(a.job_id, a.start_time, a.start_time + a.walltime, a.resources, kind,
                              user=getattr(job, "user", "") or "", queue=getattr(job, "queue", "") or "",
                              name=getattr(job, "name", "") or ""))
    return GanttChart(platform, boxes, now=now, title=title)


def _scheduled_kind(s, now: int | None, reservations: frozenset[int] | None = None) -> str:
    """Kind of an already-scheduled job; without ``reservations`` known, a job not running is one."""
    if "besteffort" in s.types:
        return "besteffort"
    if reservations is not None:
        if s.id in reservations:
            return "reservation"
        return "running" if s.state in RUNNING_STATES else "scheduled"
    if s.state in RUNNING_STATES or (now is not None and s.start_time < now):
        return "running"
    return "reservation"


def gantt_from_db(db, config, now: int, title: str = "") -> GanttChart:
    """What the gantt tables of an OAR3 database hold (``db``: OarDatabase, ``config``: OarConfig)."""
    from oarsched.oar.readers import read_platform, reservation_ids

    with db.engine.connect() as conn:
        platform = read_platform(db, conn, config)
        scheduled = db.read_scheduled_jobs(conn, now)
        reservations = reservation_ids(db, conn)
    boxes = [GanttJob(s.id, s.start_time, s.start_time + int(s.walltime) + config.job_security_time,
                      list(s.resources), _scheduled_kind(s, now, reservations), user=s.user or "",
                      queue=s.queue or "", name=s.name or "") for s in scheduled]
    return GanttChart(platform, boxes, now=now, title=title or f"gantt at {_date(now)}")


def gantt_from_simulation(result, platform: Platform | None = None, *, start: int | None = None,
                          end: int | None = None, title: str = "") -> GanttChart:
    """Every run of a simulation (a SimulationResult, or a list of JobRecord) between ``start`` and ``end``.

    Without ``platform`` (records read from a file), the rows are the
    resource ids the records name, without hierarchy.
    """
    from oarsched.sim.records import JobRecord, Run, workload_ids

    epoch, tz, requests = 0, "UTC", {}
    if hasattr(result, "runs"):
        records, runs = result.records, result.runs
        platform = platform or result.platform
        epoch, tz = trace_clock(result.workload.header)
        requests = {j.id: j.request for j in result.workload.jobs}
    else:
        records = list(result)
        runs = [Run(r.id, r.start, r.end, tuple(r.resources), r.status) for r in records
                if r.start is not None and r.end is not None]
    by_id: dict[int, JobRecord] = {r.id: r for r in records}
    origin = workload_ids(records)  # a resubmission's request is its workload job's
    if platform is None:
        platform = _flat_platform(rid for run in runs for rid in run.resources)
    boxes = []
    for run in runs:
        if run.end is None or (start is not None and run.end <= start) or (end is not None and run.start >= end):
            continue
        rec = by_id.get(run.job_id)
        boxes.append(GanttJob(run.job_id, run.start, run.end, run.resources, _run_kind(run.outcome, rec),
                              user=rec.user if rec else "", queue=rec.queue if rec else "",
                              request=requests.get(origin.get(run.job_id, run.job_id), "")))
    return GanttChart(platform, boxes, now=None, title=title, start=start, end=end, epoch=epoch, tz=tz)


def trace_clock(header: dict[str, str]) -> tuple[int, str]:
    """``(UnixStartTime, time zone)`` of an SWF header: ``(0, "UTC")`` when absent.

    ``TimeZoneString`` is used when it is an IANA name (``Europe/Paris``);
    an abbreviation such as ``CEST`` names no rule, and UTC is kept.
    """
    from zoneinfo import ZoneInfo

    try:
        epoch = int(header.get("UnixStartTime", "0").split()[0])
    except (ValueError, IndexError):
        epoch = 0
    tz = header.get("TimeZoneString", "").strip() or "UTC"
    try:
        ZoneInfo(tz)
    except (ValueError, OSError, KeyError):
        tz = "UTC"
    return epoch, tz


def _run_kind(outcome: str, record) -> str:
    if outcome == "preempted":
        return "preempted"
    if record is not None and record.besteffort:
        return "besteffort"
    if record is not None and record.reservation:
        return "reservation"
    return "killed" if outcome == "killed" else "completed"


def _flat_platform(rids: Iterable[int]) -> Platform:
    from oarsched.model.platform import Resource

    ids = sorted({int(r) for r in rids}) or [1]
    return Platform([Resource(id=i) for i in ids], ["resource_id"])


# ----------------------------------------------------------------- schedule as JSON

def save_schedule_json(path: str | os.PathLike[str], platform: Platform, result, jobs: Iterable[Any] = (),
                       scheduled: Iterable[Any] = (), now: int | None = None) -> None:
    """Save a library round for ``oarsched gantt --result``: the platform and the boxes of :func:`gantt_from_result`.

    Format: ``{"now": T, "platform": {"hierarchy_labels": [...], "resources":
    [{"id", "state", "type", "available_upto", <properties>}]}, "jobs": [{"id",
    "start", "end", "resources", "kind"}]}`` (``platform`` is the form
    :func:`oarsched.sim.platforms.platform_from_json` reads).
    """
    chart = gantt_from_result(platform, result, jobs, scheduled, now)
    data = {
        "now": now,
        "platform": {
            "hierarchy_labels": platform.hierarchy_labels,
            "resources": [{"id": r.id, "state": r.state, "type": r.type, "available_upto": r.available_upto,
                           **{k: _jsonable(v) for k, v in r.properties.items()}} for r in platform.resources],
        },
        "jobs": [{"id": j.id, "start": j.start, "end": j.end, "resources": [int(x) for x in j.resources],
                  "kind": j.kind} for j in chart.jobs],
    }
    Path(path).write_text(json.dumps(data) + "\n", encoding="utf-8")


def load_schedule_json(path: str | os.PathLike[str]) -> GanttChart:
    """Read a file written by :func:`save_schedule_json`."""
    from oarsched.errors import PlatformError
    from oarsched.jsonfile import read_json_file
    from oarsched.sim.platforms import platform_from_data

    source = os.fspath(path)
    data = read_json_file(source, GanttError)
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or "platform" not in data:
        raise GanttError(f"{source}: expected an object with 'platform' and 'jobs' (see save_schedule_json)")
    try:
        platform = platform_from_data(data["platform"], f"{source}, platform")
    except PlatformError as exc:
        raise GanttError(str(exc)) from None
    boxes = []
    for i, item in enumerate(data["jobs"]):
        try:
            boxes.append(GanttJob(int(item["id"]), int(item["start"]), int(item["end"]),
                                  [int(r) for r in item["resources"]], str(item.get("kind", "scheduled"))))
        except (KeyError, TypeError, ValueError) as exc:
            raise GanttError(f"{source}, job entry {i + 1}: {exc.__class__.__name__}: {exc}") from None
    now = data.get("now")
    return GanttChart(platform, boxes, now=int(now) if now is not None else None)


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


# ------------------------------------------------------------------------------ rows

@dataclass
class _Rows:
    """How resources map to rows, and how rows are grouped and labelled."""

    row_of: np.ndarray  # order index -> row
    pos: np.ndarray  # order index -> top of its band within its row (a row shared by k resources: k bands)
    band: np.ndarray  # order index -> band height (1 / resources in its row)
    count: int
    unit: str  # "resource", "node" or "block of N resources"
    group_bounds: list[int]  # rows where a new top-level group starts
    node_bounds: list[int]  # rows where a new node starts (resource rows only)
    ticks: list[tuple[float, str]]
    dead_rows: list[int]


def _layout(platform: Platform, max_rows: int) -> _Rows:
    resources = platform.resources
    n = len(resources)
    node_label = next((lbl for lbl in NODE_LABELS if any(lbl in r.properties for r in resources)), None)
    nodes = _runs([r.value(node_label) for r in resources]) if node_label else None
    group_label = _group_label(platform, node_label)
    groups = _runs([r.value(group_label) for r in resources]) if group_label else None
    if n <= max_rows:
        row_of = np.arange(n)
        unit = "resource"
    elif nodes is not None and len(nodes) <= max_rows:
        row_of = np.repeat(np.arange(len(nodes)), [e - s for s, e, _ in nodes])
        unit = "node"
    else:
        size = math.ceil(n / max_rows)
        row_of = np.arange(n) // size
        unit = f"block of {size} resources"
    count = int(row_of[-1]) + 1 if n else 0
    group_bounds = sorted({int(row_of[s]) for s, _, _ in groups[1:]}) if groups else []
    node_bounds = sorted({int(row_of[s]) for s, _, _ in nodes[1:]}) if nodes and unit == "resource" else []
    ticks = _ticks(row_of, nodes, groups, node_label, group_label)
    dead_rows = sorted({int(row_of[i]) for i in range(n) if not platform.schedulable[i]}
                       - {int(row_of[i]) for i in range(n) if platform.schedulable[i]})
    sizes = np.bincount(row_of, minlength=count) if n else np.zeros(0, dtype=np.int64)
    first = np.concatenate(([0], np.cumsum(sizes)[:-1])) if n else sizes
    band = 1.0 / sizes[row_of] if n else np.zeros(0)
    pos = row_of + (np.arange(n) - first[row_of]) * band if n else np.zeros(0)
    return _Rows(row_of, pos, band, count, unit, group_bounds, node_bounds, ticks, dead_rows)


def _runs(values: list[Any]) -> list[tuple[int, int, Any]]:
    """Maximal runs of equal consecutive values: ``(first index, end index, value)``."""
    out: list[tuple[int, int, Any]] = []
    for i, v in enumerate(values):
        if out and out[-1][2] == v:
            out[-1] = (out[-1][0], i + 1, v)
        else:
            out.append((i, i + 1, v))
    return out


def _group_label(platform: Platform, node_label: str | None) -> str | None:
    """The level just above nodes: fewer blocks than nodes, more than one, each node inside one block."""
    node_values = [r.value(node_label) for r in platform.resources] if node_label else None
    n_nodes = len(set(map(str, node_values))) if node_values else len(platform.resources)
    best = None
    for label in platform.hierarchy_labels:
        if label in ("resource_id", node_label):
            continue
        values = [str(r.value(label)) for r in platform.resources]
        k = len(set(values))
        if not 1 < k < n_nodes:
            continue
        if node_values is not None:
            inside: dict[str, str] = {}
            if any(inside.setdefault(str(nv), v) != v for nv, v in zip(node_values, values)):
                continue
        if best is None or k > best[0]:
            best = (k, label)
    return best[1] if best else None


def _ticks(row_of: np.ndarray, nodes, groups, node_label: str | None, group_label: str | None,
           max_ticks: int = 64) -> list[tuple[float, str]]:
    """Axis labels: one per node when they fit, else one per group, else a few resource positions.

    A bare number is prefixed with its level (``switch 3``).
    """
    for runs, label in ((nodes, node_label), (groups, group_label)):
        if runs and len(runs) <= max_ticks:
            return [((row_of[s] + row_of[e - 1]) / 2.0, _tick_name(label, v)) for s, e, v in runs]
    step = max(1, len(row_of) // 10)
    return [(float(row_of[i]), f"#{i}") for i in range(0, len(row_of), step)]


def _tick_name(label: str | None, value: Any) -> str:
    text = str(value)
    return f"{label} {text}" if label and not any(c.isalpha() for c in text) else text


def row_runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``(first row, count)`` of a sorted array of distinct rows."""
    if rows.size == 0:
        return []
    breaks = np.nonzero(np.diff(rows) != 1)[0]
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [rows.size - 1]))
    return [(int(rows[s]), int(rows[e] - rows[s] + 1)) for s, e in zip(starts, ends)]


# ---------------------------------------------------------------------------- drawing

COLOUR_BY = ("state", "user", "queue", "job")
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
MAX_LEGEND = 20


def gantt_figure(chart: GanttChart, *, max_rows: int = 150, width: float = 14.0,
                 start: int | None = None, end: int | None = None, colour_by: str = "state",
                 compress_idle: int | None = None):
    """The chart as a matplotlib :class:`~matplotlib.figure.Figure` (Agg canvas, no display).

    ``colour_by``: ``state`` (the job kinds), ``user``, ``queue`` or ``job``;
    the legend says which.  ``compress_idle``: idle stretches (no job) longer
    than that many seconds are cut down to that length and marked.
    """
    if colour_by not in COLOUR_BY:
        raise GanttError(f"colour by {colour_by!r}: choose one of {', '.join(COLOUR_BY)}")
    Figure, FigureCanvasAgg, Rectangle, Patch, Line2D = load_matplotlib()
    rows = _layout(chart.platform, max_rows)
    height = min(MAX_HEIGHT, max(4.0, 1.6 + rows.count * (0.13 if rows.unit == "resource" else 0.2)))
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.1 if height > 6 else 0.16, 0.72, 0.8))
    t0, t1 = time_range(chart, start, end)
    clock = _TimeMap.idle_cut(chart.jobs, t0, t1, compress_idle)
    x0, x1 = clock(t0), clock(t1)
    ax.set_xlim(x0, x1)
    ax.set_ylim(rows.count, 0)
    _draw_background(ax, rows, Rectangle, x0, x1)
    px_per_s = ax.bbox.width / max(x1 - x0, 1)
    px_per_row = ax.bbox.height / max(rows.count, 1)
    kinds_seen = set()
    colours = _colours(chart.jobs, colour_by)
    labelled: dict[int, list[tuple[float, float]]] = {}
    chart.skipped = []
    for job in chart.jobs:
        roids = chart.platform.roids(job.resources, schedulable_only=False)
        if roids.size == 0:
            chart.skipped.append(job.id)
            continue
        if job.end <= t0 or job.start >= t1:
            continue
        kinds_seen.add(job.kind)
        face = _shade(KINDS[job.kind][1], job.id) if colour_by == "state" else colours[_colour_key(job, colour_by)]
        _draw_job(ax, job, rows, roids, Rectangle, px_per_s, px_per_row, labelled, face,
                  (clock(max(job.start, t0)), clock(min(job.end, t1))))
    for cut_at, idle in clock.cuts:
        ax.axvline(cut_at, color="#888888", linestyle=(0, (1, 2)), linewidth=1.2, gid="idle-cut", zorder=6)
        ax.text(cut_at, -0.2, f"{_duration(idle)} idle", ha="center", va="bottom", fontsize=7, color="#555555",
                clip_on=False)
    if chart.now is not None:
        ax.axvline(clock(chart.now), color="#d62728", linestyle="--", linewidth=1.4, gid="now", zorder=5)
    _decorate(ax, chart, rows, t0, t1, clock)
    if colour_by == "state":
        handles = [Patch(facecolor=KINDS[k][1], hatch=KINDS[k][2], edgecolor="black", linewidth=0.4,
                         label=KINDS[k][0]) for k in KINDS if k in kinds_seen]
    else:
        names = list(colours)
        handles = [Patch(facecolor=colours[n], edgecolor="black", linewidth=0.4, label=str(n) or "-")
                   for n in names[:MAX_LEGEND]]
        if len(names) > MAX_LEGEND:
            handles.append(Patch(facecolor="white", edgecolor="white", label=f"... {len(names) - MAX_LEGEND} more"))
    if chart.now is not None:
        handles.append(Line2D([0], [0], color="#d62728", linestyle="--", label="now"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                  title=f"colour: {colour_by}", title_fontsize=8)
    return fig


def _colour_key(job: GanttJob, colour_by: str) -> Any:
    return job.id if colour_by == "job" else getattr(job, colour_by, "")


def _colours(jobs: Sequence[GanttJob], colour_by: str) -> dict[Any, str]:
    """One palette colour per user, queue or job (in sorted order, cycling past 20)."""
    if colour_by == "state":
        return {}
    keys = sorted({_colour_key(j, colour_by) for j in jobs}, key=lambda k: (str(type(k)), k))
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


@dataclass
class _TimeMap:
    """Chart time -> x: the identity, or with idle stretches cut down (``cuts``: ``(x, idle seconds)``)."""

    breaks: list[tuple[float, float]] = field(default_factory=list)  # (time, x) knots, increasing
    cuts: list[tuple[float, float]] = field(default_factory=list)

    def __call__(self, t: float) -> float:
        if not self.breaks:
            return t
        times, xs = zip(*self.breaks)
        return float(np.interp(t, times, xs, left=t - times[0] + xs[0], right=t - times[-1] + xs[-1]))

    def inverse(self, x: float) -> float:
        if not self.breaks:
            return x
        times, xs = zip(*self.breaks)
        return float(np.interp(x, xs, times, left=x - xs[0] + times[0], right=x - xs[-1] + times[-1]))

    def segments(self, x0: float, x1: float) -> list[tuple[float, float]]:
        """Stretches of x drawn at true scale (between the cuts)."""
        edges = [x0] + [c for c, _ in self.cuts] + [x1]
        return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]

    @classmethod
    def idle_cut(cls, jobs: Sequence[GanttJob], t0: float, t1: float, longer_than: int | None) -> "_TimeMap":
        if not longer_than:
            return cls()
        spans = sorted((max(j.start, t0), min(j.end, t1)) for j in jobs if j.end > t0 and j.start < t1)
        knots: list[tuple[float, float]] = [(t0, t0)]
        cuts = []
        removed = 0.0
        busy_until = t0
        for a, b in spans + [(t1, t1)]:
            gap = a - busy_until
            if gap > longer_than:
                keep = longer_than
                knots.append((busy_until + keep / 2, busy_until + keep / 2 - removed))
                removed += gap - keep
                knots.append((a - keep / 2, a - keep / 2 - removed))
                cuts.append((busy_until + keep / 2 - (removed - (gap - keep)), gap))
            busy_until = max(busy_until, b)
        knots.append((t1, t1 - removed))
        return cls(knots, cuts)


def time_range(chart: GanttChart, start: int | None, end: int | None) -> tuple[float, float]:
    """The time span a chart shows: ``start``/``end`` when given, else the chart's, else its jobs' (2% padded)."""
    starts = [j.start for j in chart.jobs] + ([chart.now] if chart.now is not None else [])
    ends = [j.end for j in chart.jobs] + ([chart.now] if chart.now is not None else [])
    start = start if start is not None else chart.start
    end = end if end is not None else chart.end
    t0 = start if start is not None else (min(starts) if starts else 0)
    t1 = end if end is not None else (max(ends) if ends else t0 + 3600)
    if t1 <= t0:
        t1 = t0 + 60
    pad = (t1 - t0) * 0.02
    return (t0 - pad if start is None else t0), (t1 + pad if end is None else t1)


def _draw_background(ax, rows: _Rows, Rectangle, t0: float, t1: float) -> None:
    for r in rows.dead_rows:
        ax.add_patch(Rectangle((t0, r), t1 - t0, 1, facecolor="#eeeeee", edgecolor="none", zorder=0))
    for b in rows.node_bounds:
        ax.axhline(b, color="#dddddd", linewidth=0.5, zorder=1)
    for b in rows.group_bounds:
        ax.axhline(b, color="#555555", linewidth=1.2, zorder=1)


def _draw_job(ax, job: GanttJob, rows: _Rows, roids: np.ndarray, Rectangle, px_per_s: float,
              px_per_row: float, labelled: dict[int, list[tuple[float, float]]], face: str,
              x: tuple[float, float]) -> None:
    """The job's boxes, and its label in the tallest one when it fits and overlaps no other label.

    On a row shared by several resources (a node, a block) the job covers only
    the bands of the resources it holds: eight one-core jobs on a node are
    eight thin boxes, not one.
    """
    hatch = KINDS[job.kind][2]
    x0, x1 = x
    biggest = (0.0, 0.0)
    for k, (top, height) in enumerate(_bands(np.unique(roids), rows)):
        rect = Rectangle((x0, top), x1 - x0, height, facecolor=face, hatch=hatch, edgecolor="black",
                         linewidth=0.4 if height >= 0.5 else 0.15, alpha=0.85, gid=f"job-{job.id}-{k}", zorder=2)
        ax.add_patch(rect)
        if height > biggest[1]:
            biggest = (top, height)
    top, height = biggest
    text = job.label[:MAX_LABEL_CHARS]
    width_px = (x1 - x0) * px_per_s
    height_px = height * px_per_row
    if width_px < 7 * len(text) + 4 or height_px < 9:
        return
    centre = x0 + (x1 - x0) / 2
    half = (3.5 * len(text) + 2) / px_per_s
    line = int(top + height / 2)
    if any(a < centre + half and centre - half < b for a, b in labelled.get(line, ())):
        return
    labelled.setdefault(line, []).append((centre - half, centre + half))
    size = max(6.0, min(10.0, height_px * 0.6))
    ax.text(centre, top + height / 2, text, ha="center", va="center", fontsize=size, gid=f"label-{job.id}",
            zorder=4, clip_on=True)


def _bands(roids: np.ndarray, rows: _Rows) -> list[tuple[float, float]]:
    """``(top, height)`` of each run of adjacent bands the resources ``roids`` (sorted) cover."""
    out: list[tuple[float, float]] = []
    for i in roids:
        top, h = float(rows.pos[i]), float(rows.band[i])
        if out and abs(out[-1][0] + out[-1][1] - top) < 1e-9:
            out[-1] = (out[-1][0], out[-1][1] + h)
        else:
            out.append((top, h))
    return out


def _shade(colour: str, job_id: int) -> str:
    """The kind's colour, a little lighter or darker by job id, so that neighbouring jobs stand apart."""
    factor = (0.82, 0.94, 1.06, 1.18)[(job_id * 2654435761) % 4]
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{min(255, int(c * factor)):02x}" for c in rgb)


def _decorate(ax, chart: GanttChart, rows: _Rows, t0: float, t1: float, clock: _TimeMap) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ax.set_yticks([y + 0.5 for y, _ in rows.ticks])
    ax.set_yticklabels([name for _, name in rows.ticks], fontsize=7)
    ax.set_ylabel(f"resources (one row per {rows.unit})")
    epoch = chart.epoch != 0 or t0 > 1e9
    zone = _zone(chart.tz)
    origin = chart.now if chart.now is not None else (
        chart.start if chart.start is not None else min((j.start for j in chart.jobs), default=t0))
    x0, x1 = clock(t0), clock(t1)
    step = _tick_step(x1 - x0)
    ticks = []
    for a, b in clock.segments(x0, x1):
        ta, tb = clock.inverse(a), clock.inverse(b)
        shift = (_utc_offset(ta + chart.epoch, zone) + chart.epoch) if epoch else -origin
        first = math.ceil((ta + shift) / step) * step - shift
        ticks += [clock(t) for t in np.arange(first, tb + 1e-9, step)]
    room = (x1 - x0) * 0.05  # labels closer than this to a cut or to each other would collide
    kept: list[float] = []
    for x in ticks:
        if all(abs(x - c) >= room for c, _ in clock.cuts) and (not kept or x - kept[-1] >= room):
            kept.append(x)
    ax.xaxis.set_major_locator(FixedLocator(kept))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _pos: _time_text(clock.inverse(x) + chart.epoch, epoch, origin + chart.epoch, zone)))
    since = "now" if chart.now is not None else f"t={origin:g} s"
    ax.set_xlabel(f"time ({chart.tz})" if epoch else f"time (h:mm from {since})")
    ax.grid(axis="x", color="#cccccc", linewidth=0.4)
    if chart.title:
        ax.set_title(chart.title, pad=14 if clock.cuts else 6)


def _zone(name: str):
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        return timezone.utc


def _utc_offset(t: float, zone) -> float:
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


TICK_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)


def _tick_step(span: float, max_ticks: int = 12) -> float:
    """A round time step (a minute, 5 minutes... a day, a week) giving at most ``max_ticks`` ticks."""
    for step in TICK_STEPS:
        if span / step <= max_ticks:
            return step
    return TICK_STEPS[-1] * math.ceil(span / (TICK_STEPS[-1] * max_ticks))


def _time_text(x: float, epoch: bool, origin: float, zone=timezone.utc) -> str:
    if epoch:
        return datetime.fromtimestamp(x, zone).strftime("%m-%d %H:%M")
    minutes = round((x - origin) / 60.0)
    sign = "-" if minutes < 0 else ""
    return f"{sign}{abs(minutes) // 60}:{abs(minutes) % 60:02d}"


def _date(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def draw_gantt(chart: GanttChart, path: str | os.PathLike[str], *, max_rows: int = 150, width: float = 14.0,
               start: int | None = None, end: int | None = None, dpi: int = 100, colour_by: str = "state",
               compress_idle: int | None = None) -> str:
    """Write ``chart`` to ``path``: SVG for ``.svg``, PNG for ``.png`` (``.html``: :func:`oarsched.viz.draw_gantt`)."""
    target = os.fspath(path)
    fmt = Path(target).suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise GanttError(f"{target}: the chart is written as SVG, PNG or an interactive HTML page: "
                         "name it .svg, .png or .html")
    load_matplotlib()
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "hatch.linewidth": 0.5}):
        fig = gantt_figure(chart, max_rows=max_rows, width=width, start=start, end=end, colour_by=colour_by,
                           compress_idle=compress_idle)
        try:
            fig.savefig(target, format=fmt, dpi=dpi)
        except OSError as exc:
            raise GanttError(f"{target}: cannot write it: {exc.strerror or exc}") from None
    return target


def load_matplotlib():
    """The matplotlib classes the charts draw with (a GanttError naming the ``viz`` extra when it is missing)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch, Rectangle
    except ImportError:
        raise GanttError('Gantt charts need matplotlib: pip install "oarsched[viz]"') from None
    return Figure, FigureCanvasAgg, Rectangle, Patch, Line2D
