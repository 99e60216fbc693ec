"""The interactive Gantt chart: one self-contained HTML page, written to a file or served live.

The page (``gantt_page.html`` beside this module) holds its data as JSON and
its script inline: it opens from disk with no network.  Time zooms with the
mouse wheel and pans by dragging; hovering a job shows its id, user, queue,
request, start and end and resources; jobs are filtered by user and queue,
coloured by state, user, queue or job; rows are the platform's resources in
scheduling order, labelled and separated by the hierarchy level chosen
(switch, node...).  :func:`serve_gantt` serves the same page over HTTP on
127.0.0.1 with its data at ``data.json``, recomputed at each request, and
the page reloads it every ``refresh`` seconds (``oarsched gantt --db
oar.conf --serve`` for a live OAR3 database).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib import resources as importlib_resources
from typing import Any

import numpy as np

__all__ = ["gantt_data", "gantt_page", "serve_gantt", "write_gantt_html"]


def gantt_data(chart, *, start: int | None = None, end: int | None = None, live: int = 0,
               colour_by: str = "state") -> dict[str, Any]:
    """What the page draws: rows (resources with their hierarchy values), jobs with their row runs."""
    from oarsched.sim.records import format_ranges
    from oarsched.viz.gantt import row_runs, time_range

    platform = chart.platform
    levels = [lbl for lbl in platform.hierarchy_labels if lbl != "resource_id"] + ["resource_id"]
    rows = [[_plain(r.value(lbl)) for lbl in levels] for r in platform.resources]
    t0, t1 = time_range(chart, start, end)
    jobs, dropped = [], []
    for job in chart.jobs:
        if job.end <= t0 or job.start >= t1:
            continue
        roids = np.sort(platform.roids(job.resources, schedulable_only=False))
        if roids.size == 0:
            dropped.append(job.id)
            continue
        jobs.append({"id": job.id, "start": job.start, "end": job.end, "kind": job.kind, "user": job.user,
                     "queue": job.queue, "request": job.request, "name": job.name, "nb": int(roids.size),
                     "resources": format_ranges(int(r) for r in job.resources),
                     "boxes": [list(b) for b in row_runs(roids)]})
    chart.skipped = dropped
    values = {key: sorted({j[key] for j in jobs}) for key in ("user", "queue", "kind")}
    relative = chart.epoch == 0 and t1 < 1e9
    return {"title": chart.title, "now": chart.now, "t0": t0, "t1": t1, "epoch": chart.epoch, "tz": chart.tz,
            "relative": relative, "levels": levels, "rows": rows, "jobs": jobs, "values": values,
            "dropped": len(dropped), "live": live, "colour": "kind" if colour_by == "state" else colour_by}


def gantt_page(chart, *, start: int | None = None, end: int | None = None, live: int = 0,
               colour_by: str = "state") -> str:
    """The page's HTML text with the chart's data inside (``colour_by``: the colouring it opens with)."""
    template = importlib_resources.files("oarsched.viz").joinpath("gantt_page.html").read_text(encoding="utf-8")
    payload = json.dumps(gantt_data(chart, start=start, end=end, live=live, colour_by=colour_by),
                         separators=(",", ":"))
    return template.replace("__GANTT_DATA__", payload.replace("</", "<\\/"))


def write_gantt_html(chart, path: str | os.PathLike[str], *, start: int | None = None,
                     end: int | None = None, colour_by: str = "state") -> str:
    """Write the self-contained page to ``path``."""
    from oarsched.viz.gantt import GanttError

    target = os.fspath(path)
    try:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(gantt_page(chart, start=start, end=end, colour_by=colour_by))
    except OSError as exc:
        raise GanttError(f"{target}: cannot write it: {exc.strerror or exc}") from None
    return target


def serve_gantt(make_chart: Callable[[], Any], *, host: str = "127.0.0.1", port: int = 8000, refresh: int = 10,
                ready: Callable[[Any], None] | None = None) -> None:
    """Serve the page at ``http://host:port/`` with fresh data at ``/data.json`` until interrupted.

    ``make_chart()`` is called for every page and every data request (a new
    look at the database each time).  ``ready(server)`` is called once the
    socket listens (tests use it to learn the port and stop the server).
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?")[0]
            if path in ("/", "/index.html"):
                body, kind = gantt_page(make_chart(), live=refresh).encode(), "text/html; charset=utf-8"
            elif path == "/data.json":
                body, kind = json.dumps(gantt_data(make_chart(), live=refresh)).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise here
            return

    server = ThreadingHTTPServer((host, port), Handler)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float)) else str(value)
