"""Gantt charts: the drawn SVG is parsed (boxes, labels, now line, legend), PNGs are measured."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

from oarsched import Job, Platform, ScheduledJob, schedule
from oarsched.cli import main
from oarsched.sim import WorkloadJob, simulate
from oarsched.viz import (
    GanttChart,
    GanttError,
    GanttJob,
    draw_gantt,
    gantt_from_db,
    gantt_from_result,
    gantt_from_simulation,
    load_schedule_json,
    save_schedule_json,
)

SVG = "{http://www.w3.org/2000/svg}"


def svg_ids(path) -> list[str]:
    return [el.get("id") for el in ET.parse(path).iter() if el.get("id")]


def boxes_by_job(path) -> Counter:
    """Number of boxes drawn per job id."""
    return Counter(int(m.group(1)) for i in svg_ids(path) if (m := re.fullmatch(r"job-(\d+)-\d+", i)))


def texts(path) -> list[str]:
    return ["".join(el.itertext()).strip() for el in ET.parse(path).iter(f"{SVG}text")]


@pytest.fixture
def library_round():
    platform = Platform.from_hierarchy({"switch": 2, "network_address": 4, "core": 8})
    jobs = [Job(id=1, walltime=3600, request="network_address=2/core=4"),
            Job(id=2, walltime=600, request="switch=1/network_address=4"),
            Job(id=3, walltime=1800, request="core=60"),
            Job(id=4, walltime=1800, request="core=6", types={"besteffort": ""})]
    scheduled = [ScheduledJob(id=99, start_time=-600, walltime=1200, resources=range(57, 65), state="Running"),
                 ScheduledJob(id=98, start_time=3000, walltime=1200, resources=range(1, 17), state="Waiting")]
    result = schedule(platform, jobs, now=0, scheduled=scheduled)
    return platform, result, jobs, scheduled


def test_result_chart_svg_content(library_round, tmp_path):
    platform, result, jobs, scheduled = library_round
    chart = gantt_from_result(platform, result, jobs, scheduled, now=0, title="a round")
    kinds = {j.id: j.kind for j in chart.jobs}
    assert kinds == {99: "running", 98: "reservation", 1: "scheduled", 2: "scheduled", 3: "scheduled",
                     4: "besteffort"}
    path = draw_gantt(chart, tmp_path / "round.svg")
    boxes = boxes_by_job(path)
    # job 1 holds 4 cores on each of 2 nodes: two runs of rows, two boxes
    rids = result[1].resources
    assert len(rids) == 8 and rids[3] + 1 < rids[4]
    assert boxes == {1: 2, 2: 1, 3: 1, 4: 1, 98: 1, 99: 1}
    ids = svg_ids(path)
    assert "now" in ids
    assert {f"label-{j}" for j in (1, 2, 3, 98, 99)} <= set(ids)
    words = texts(path)
    for legend in ("running", "planned (waiting)", "advance reservation", "besteffort", "now", "a round"):
        assert legend in words
    assert "node-1" in words and "one row per resource" in " ".join(words)


def test_small_boxes_are_not_labelled(tmp_path):
    platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
    chart = GanttChart(platform, [GanttJob(1, 0, 36000, [1, 2, 3, 4]), GanttJob(2, 0, 10, [5])], now=0)
    ids = svg_ids(draw_gantt(chart, tmp_path / "c.svg"))
    assert "label-1" in ids and "label-2" not in ids and "job-2-0" in ids


def test_simulation_chart(tmp_path):
    platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
    jobs = [WorkloadJob(1, 0, 1000, 2000, "core=8", queue="besteffort"), WorkloadJob(2, 100, 500, 600, "core=4"),
            WorkloadJob(3, 0, 900, 600, "core=2", reservation=2000), WorkloadJob(4, 150, 900, 600, "core=4")]
    result = simulate(jobs, platform, requeue_besteffort=True)
    chart = gantt_from_simulation(result, title="sim")
    assert Counter(j.kind for j in chart.jobs) == {"preempted": 1, "besteffort": 1, "completed": 1, "killed": 1,
                                                   "reservation": 1}
    path = draw_gantt(chart, tmp_path / "sim.svg")
    assert boxes_by_job(path) == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}  # job 1 ran, then its resubmission 5
    assert "now" not in svg_ids(path)
    words = texts(path)
    assert {"besteffort, preempted", "killed at walltime", "advance reservation"} <= set(words)
    # 2 and 4 ended by 750; the reservation runs at 2000; besteffort job 1's resubmission 5 runs after it
    window = gantt_from_simulation(result, start=1500, end=3000)
    assert sorted(j.id for j in window.jobs) == [3, 5]
    assert next(j.request for j in window.jobs if j.id == 5) == "core=8"  # its workload job's request


def test_records_without_platform_use_flat_rows(tmp_path):
    from oarsched.sim.records import JobRecord

    records = [JobRecord(id=1, submit=0, walltime=10, status="completed", start=0, end=10, resources=[3, 4, 9])]
    chart = gantt_from_simulation(records)
    assert [r.id for r in chart.platform.resources] == [3, 4, 9]
    assert boxes_by_job(draw_gantt(chart, tmp_path / "flat.svg")) == {1: 1}  # 3, 4, 9 are consecutive rows


def test_large_platform_aggregates_rows_per_node(tmp_path):
    platform = Platform.from_hierarchy({"switch": 4, "network_address": 32, "core": 16})  # 2048 resources
    rng = np.random.default_rng(0)
    jobs = []
    for i in range(300):
        node = int(rng.integers(0, 128))
        start = int(rng.integers(0, 86400))
        jobs.append(GanttJob(i + 1, start, start + int(rng.integers(600, 7200)),
                             list(range(node * 16 + 1, node * 16 + 1 + int(rng.integers(1, 17))))))
    jobs.append(GanttJob(1000, 0, 86400, [1, 2, 16 * 64 + 1], kind="reservation"))  # nodes 1 and 65
    chart = GanttChart(platform, jobs, now=3600)
    path = draw_gantt(chart, tmp_path / "big.svg")
    boxes = boxes_by_job(path)
    assert len(boxes) == 301 and boxes[1000] == 2 and sum(boxes.values()) == 302
    words = " ".join(texts(path))
    assert "one row per node" in words and "switch 1" in words  # 128 nodes: labelled by switch
    labels = [i for i in svg_ids(path) if i.startswith("label-")]
    assert 0 < len(labels) < 301  # only boxes big enough are labelled
    chart_blocks = GanttChart(platform, jobs[:5], now=0)
    assert "block of" in " ".join(texts(draw_gantt(chart_blocks, tmp_path / "b.svg", max_rows=50)))


def test_png_is_drawn(library_round, tmp_path):
    from PIL import Image

    platform, result, jobs, scheduled = library_round
    path = draw_gantt(gantt_from_result(platform, result, jobs, scheduled, now=0), tmp_path / "c.png",
                      width=10, dpi=80)
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert image.shape[1] == 800  # 10 in x 80 dpi
    planned = np.all(np.abs(image - [0xdd, 0x84, 0x52]) < 40, axis=2).mean()
    assert 0.05 < planned < 0.9  # the orange of planned jobs covers a good part of the picture
    assert image.std() > 20


def test_schedule_json_round_trip(library_round, tmp_path, capsys):
    platform, result, jobs, scheduled = library_round
    saved = tmp_path / "round.json"
    save_schedule_json(saved, platform, result, jobs, scheduled, now=0)
    chart = load_schedule_json(saved)
    assert chart.now == 0 and chart.platform.size == 64
    assert sorted((j.id, j.kind) for j in chart.jobs) == sorted(
        (j.id, j.kind) for j in gantt_from_result(platform, result, jobs, scheduled, now=0).jobs)
    out = tmp_path / "round.svg"
    assert main(["gantt", "--result", str(saved), "-o", str(out), "--title", "saved"]) == 0
    assert boxes_by_job(out)[1] == 2 and "saved" in texts(out)
    (tmp_path / "bad.json").write_text('{"jobs": []}')
    with pytest.raises(GanttError, match="expected an object with 'platform' and 'jobs'"):
        load_schedule_json(tmp_path / "bad.json")


def test_demo_database_chart(tmp_path):
    from oarsched.oar import demo
    from oarsched.oar.config import OarConfig
    from oarsched.oar.db import OarDatabase

    db_path = tmp_path / "oar.sqlite"
    info = demo.build_demo_db(db_path)
    conf = tmp_path / "oar.conf"
    conf.write_text(demo.demo_oar_conf(db_path))
    config = OarConfig.load(conf)
    chart = gantt_from_db(OarDatabase(config.sqlalchemy_url()), config, info["now"])
    kinds = {j.id: j.kind for j in chart.jobs}
    assert {kinds[j] for j in info["running"]} == {"running"}
    assert {kinds[j] for j in info["reservations"]} == {"reservation"}
    out = tmp_path / "db.svg"
    assert main(["gantt", "--db", str(conf), "--now", str(info["now"]), "-o", str(out)]) == 0
    assert set(boxes_by_job(out)) == set(kinds) and "now" in svg_ids(out)


@pytest.fixture
def restore_logging():
    """The demo sets up the ``oarsched`` logger (no propagation): give later tests' caplog its records back."""
    import logging

    from oarsched.oar import config

    logger = logging.getLogger("oarsched")
    saved = (list(logger.handlers), logger.level, logger.propagate, list(config._installed_handlers))
    yield
    for handler in logger.handlers:
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    config._installed_handlers[:] = saved[3]


def test_demo_writes_the_chart(tmp_path, capsys, restore_logging):
    assert main(["demo", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"gantt chart: {tmp_path / 'gantt.svg'}" in out
    boxes = boxes_by_job(tmp_path / "gantt.svg")
    assert len(boxes) >= 10 and "now" in svg_ids(tmp_path / "gantt.svg")


def test_unknown_kind_and_format(tmp_path):
    with pytest.raises(GanttError, match="unknown kind 'done'"):
        GanttJob(1, 0, 1, [1], kind="done")
    chart = GanttChart(Platform.from_hierarchy({"resource_id": 2}, leaf="resource_id"), [GanttJob(1, 0, 5, [1, 7])])
    with pytest.raises(GanttError, match="name it .svg, .png or .html"):
        draw_gantt(chart, tmp_path / "c.jpg")
    outside = GanttChart(chart.platform, [GanttJob(2, 0, 5, [42])])
    draw_gantt(outside, tmp_path / "c.svg")
    assert outside.skipped == [2]


# ------------------------------------------------------------- partly used nodes, colours, dates, idle

def _rects(path) -> dict[str, tuple[float, float, float, float]]:
    """SVG box id -> (x, y, width, height) of its path's bounding box."""
    out = {}
    for g in ET.parse(path).iter(f"{SVG}g"):
        gid = g.get("id", "")
        if not gid.startswith("job-"):
            continue
        d = next(g.iter(f"{SVG}path")).get("d")
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
        xs, ys = nums[0::2], nums[1::2]
        out[gid] = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    return out


def test_partly_used_nodes_stack_jobs_in_the_node_band(tmp_path):
    """Past max_rows, a node row is split in one band per core: eight one-core jobs are eight thin boxes."""
    platform = Platform.from_hierarchy({"network_address": 4, "core": 8})
    jobs = [GanttJob(i, 0, 100 + i, [i]) for i in range(1, 9)]  # the 8 cores of node 1
    jobs.append(GanttJob(9, 0, 100, list(range(9, 13))))  # half of node 2
    chart = GanttChart(platform, jobs)
    path = draw_gantt(chart, tmp_path / "nodes.svg", max_rows=10)
    assert "one row per node" in " ".join(texts(path))
    rects = _rects(path)
    assert boxes_by_job(path) == {i: 1 for i in range(1, 10)}
    heights = [rects[f"job-{i}-0"][3] for i in range(1, 9)]
    assert max(heights) == pytest.approx(min(heights), rel=0.02)
    tops = sorted(rects[f"job-{i}-0"][1] for i in range(1, 9))
    assert all(b - a == pytest.approx(heights[0], rel=0.02) for a, b in zip(tops, tops[1:]))  # stacked, no overlap
    assert rects["job-9-0"][3] == pytest.approx(4 * heights[0], rel=0.02)  # half the node's band


def test_colour_by_user_with_its_legend(tmp_path):
    platform = Platform.from_hierarchy({"network_address": 2, "core": 2})
    jobs = [GanttJob(1, 0, 10, [1], user="ann"), GanttJob(2, 0, 10, [2], user="bob"),
            GanttJob(3, 10, 20, [1], user="ann")]
    path = draw_gantt(GanttChart(platform, jobs), tmp_path / "users.svg", colour_by="user")
    words = texts(path)
    assert "colour: user" in words and "ann" in words and "bob" in words

    def fill(gid):
        g = next(g for g in ET.parse(path).iter(f"{SVG}g") if g.get("id") == gid)
        return re.search(r"fill: *(#[0-9a-f]{6})", next(g.iter(f"{SVG}path")).get("style")).group(1)

    assert fill("job-1-0") == fill("job-3-0") != fill("job-2-0")
    with pytest.raises(GanttError, match="colour by 'colour'"):
        draw_gantt(GanttChart(platform, jobs), tmp_path / "x.svg", colour_by="colour")


def test_date_axis_in_the_trace_time_zone(tmp_path):
    from oarsched.sim import Workload
    from oarsched.viz.gantt import trace_clock

    assert trace_clock({"UnixStartTime": "1297186490", "TimeZoneString": "Europe/Paris"}) == \
        (1297186490, "Europe/Paris")
    assert trace_clock({"UnixStartTime": "1297186490", "TimeZoneString": "CEST"}) == (1297186490, "UTC")
    platform = Platform.from_hierarchy({"resource_id": 2}, leaf="resource_id")
    workload = Workload(jobs=[WorkloadJob(id=1, submit=0, runtime=7200, walltime=7200)],
                        header={"UnixStartTime": "1700000000", "TimeZoneString": "Europe/Paris"})
    chart = gantt_from_simulation(simulate(workload, platform))
    assert (chart.epoch, chart.tz) == (1700000000, "Europe/Paris")
    words = texts(draw_gantt(chart, tmp_path / "dates.svg"))
    # 1700000000 is 2023-11-14 22:13:20 UTC, 23:13:20 in Paris: ticks on the hour, in Paris time
    assert "time (Europe/Paris)" in words and "11-14 23:30" in words and "11-15 00:30" in words


def test_idle_stretches_compressed_on_request(tmp_path):
    platform = Platform.from_hierarchy({"resource_id": 2}, leaf="resource_id")
    jobs = [GanttJob(1, 0, 600, [1]), GanttJob(2, 86400 * 3, 86400 * 3 + 600, [2])]
    plain = _rects(draw_gantt(GanttChart(platform, jobs), tmp_path / "plain.svg"))
    path = draw_gantt(GanttChart(platform, jobs), tmp_path / "cut.svg", compress_idle=600)
    cut = _rects(path)
    assert "idle-cut" in svg_ids(path) and any("idle" in w for w in texts(path))
    # the 3-day gap no longer dwarfs the jobs: each job is far wider than before
    assert cut["job-1-0"][2] > 20 * plain["job-1-0"][2] and cut["job-2-0"][2] > 20 * plain["job-2-0"][2]
    assert cut["job-1-0"][0] < cut["job-2-0"][0]
