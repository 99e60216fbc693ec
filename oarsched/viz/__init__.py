"""Pictures of schedules: Gantt charts (:mod:`oarsched.viz.gantt`, needs matplotlib)."""
from __future__ import annotations

from oarsched.viz.gantt import (
    KINDS,
    GanttChart,
    GanttError,
    GanttJob,
    draw_gantt,
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
