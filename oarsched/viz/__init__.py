"""Pictures of schedules: Gantt charts (:mod:`oarsched.viz.gantt`, needs matplotlib)."""
from __future__ import annotations

import os
from pathlib import Path

from oarsched.viz import gantt
from oarsched.viz.gantt import (
    KINDS,
    GanttChart,
    GanttError,
    GanttJob,
    gantt_figure,
    gantt_from_db,
    gantt_from_result,
    gantt_from_simulation,
    load_schedule_json,
    save_schedule_json,
)

__all__ = [
    "KINDS", "GanttChart", "GanttError", "GanttJob", "draw_gantt", "gantt_figure", "gantt_from_db",
    "gantt_from_result", "gantt_from_simulation", "load_schedule_json", "save_schedule_json",
]


def draw_gantt(chart: GanttChart, path: str | os.PathLike[str], **options) -> str:
    """Write ``chart`` to ``path``: SVG for ``.svg``, PNG for ``.png``, the interactive page for ``.html``.

    ``options`` as for :func:`oarsched.viz.gantt.draw_gantt` (the page takes ``start``, ``end``, ``colour_by``).
    """
    if Path(os.fspath(path)).suffix.lower() == ".html":
        from oarsched.viz.html import write_gantt_html

        return write_gantt_html(chart, path, **{k: v for k, v in options.items() if k in ("start", "end", "colour_by")})
    return gantt.draw_gantt(chart, path, **options)
