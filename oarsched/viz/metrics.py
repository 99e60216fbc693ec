"""Plots of simulation metrics: utilization and queue length over time, per-user slowdown, one line per run."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oarsched.sim.metrics import DEFAULT_BOUND, timeline

__all__ = ["plot_results"]


def plot_results(results: Mapping[str, Any], path: str | os.PathLike[str], *, bound: int = DEFAULT_BOUND,
                 width: float = 12.0, bins: int = 200) -> str:
    """Write a three-panel figure (SVG or PNG by extension) comparing ``results`` ({name: SimulationResult})."""
    from oarsched.viz.gantt import GanttError, load_matplotlib

    target = os.fspath(path)
    fmt = Path(target).suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise GanttError(f"{target}: the plot is written as SVG or PNG: name it .svg or .png")
    Figure, FigureCanvasAgg, *_ = load_matplotlib()
    fig = Figure(figsize=(width, 9), dpi=100)
    FigureCanvasAgg(fig)
    util_ax, queue_ax, user_ax = fig.subplots(3, 1)
    users: list[str] = []
    per_run = {}
    for name, result in results.items():
        starts, utilization, queue = timeline(result.records, result.resources, result.runs).averaged(bins)
        hours = (starts - (starts[0] if starts.size else 0)) / 3600.0
        util_ax.step(hours, utilization, where="post", label=name, linewidth=0.9)
        queue_ax.step(hours, queue, where="post", label=name, linewidth=0.9)
        per_run[name] = result.metrics(bound).by_user
        users += [u for u in per_run[name] if u not in users]
    users.sort(key=lambda u: (len(u), u))
    util_ax.set_ylabel(f"utilization\n(mean over {bins} bins)")
    util_ax.set_ylim(0, 1.05)
    queue_ax.set_ylabel("jobs waiting\n(mean per bin)")
    queue_ax.set_xlabel("hours from the first event")
    width_bar = 0.8 / max(len(results), 1)
    for k, (name, groups) in enumerate(per_run.items()):
        xs = [i + k * width_bar for i in range(len(users))]
        user_ax.bar(xs, [groups[u].mean_bounded_slowdown if u in groups else 0 for u in users], width_bar,
                    label=name)
    user_ax.set_xticks([i + 0.4 - width_bar / 2 for i in range(len(users))])
    user_ax.set_xticklabels([u or "-" for u in users], rotation=60, fontsize=7)
    user_ax.set_ylabel(f"mean bounded slowdown\n(per user, bound {bound} s)")
    for ax in (util_ax, queue_ax, user_ax):
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(color="#dddddd", linewidth=0.4)
    fig.tight_layout()
    try:
        fig.savefig(target, format=fmt)
    except OSError as exc:
        raise GanttError(f"{target}: cannot write it: {exc.strerror or exc}") from None
    return target
