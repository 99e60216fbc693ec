"""``oarsched simulate`` and ``oarsched gantt`` on the command line."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from oarsched.cli import main
from oarsched.sim import read_records

CSV = ("id,submit,runtime,walltime,request,user,queue\n"
       "1,0,60,100,resource_id=2,alice,default\n"
       "2,10,100,100,resource_id=4,bob,default\n"
       "3,20,30,50,resource_id=2,carol,default\n")


@pytest.fixture
def workload(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(CSV)
    return path


def test_simulate_prints_metrics_and_writes_records(workload, tmp_path, capsys):
    out = tmp_path / "records.csv"
    assert main(["simulate", str(workload), "--platform", "resource_id=4", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "3 jobs (0 entries skipped) on 4 resources" in text
    assert "mean_wait              16.67" in text
    assert [(r.id, r.start, r.end) for r in read_records(out)] == [(1, 0, 60), (2, 60, 160), (3, 20, 50)]


def test_simulate_json_and_compare(workload, tmp_path, capsys):
    first = tmp_path / "a.json"
    assert main(["simulate", str(workload), "--platform", "resource_id=4", "--out", str(first)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(workload), "--platform", "resource_id=8", "--compare", str(first),
                 "--compare-resources", "4"]) == 0
    text = capsys.readouterr().out
    assert "this run" in text and "a.json" in text and "2 earlier" not in text
    assert "in a.json vs this run: 0 earlier, 1 later, 2 at the same time" in text
    assert main(["simulate", str(workload), "--platform", "resource_id=4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"]["makespan"] == 160 and data["rounds"] >= 3


def test_simulate_config_queues_and_gantt(workload, tmp_path, capsys):
    conf = tmp_path / "oar.conf"
    conf.write_text('SCHEDULER_JOB_SECURITY_TIME="0"\nJOB_PRIORITY="FIFO"\n')
    chart = tmp_path / "run.svg"
    assert main(["simulate", str(workload), "--platform", "network_address=2/core=4", "--config", str(conf),
                 "--queues", "default=1", "--period", "30", "--gantt", str(chart)]) == 0
    assert f"gantt chart: {chart}" in capsys.readouterr().out
    ids = {g.get("id") for g in ET.parse(chart).iter() if g.get("id", "").startswith("job-")}
    assert {i.split("-")[1] for i in ids} == {"1", "2", "3"}


def test_simulate_on_a_demo_database(tmp_path, capsys):
    from oarsched.oar import demo

    db_path = tmp_path / "oar.sqlite"
    demo.build_demo_db(db_path)
    conf = tmp_path / "oar.conf"
    conf.write_text(demo.demo_oar_conf(db_path))
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps([{"id": 1, "submit": 0, "runtime": 10, "request": "network_address=2",
                                     "queue": "admin"},
                                    {"id": 2, "submit": 0, "runtime": 10, "request": "core=4",
                                     "queue": "besteffort"}]))
    assert main(["simulate", str(workload), "--db", str(conf), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"]["completed"] == 2 and data["metrics"]["resources"] == 63  # one core is Dead


@pytest.mark.parametrize("args, message", [
    (["--platform", "core=x"], "'core=x' is not LABEL=COUNT"),
    ([], "give the platform with --platform SPEC or --db OAR_CONF"),
    (["--platform", "resource_id=4", "--queues", "default"], "--queues: cannot read 'default'"),
    (["--platform", "resource_id=4", "--queues", "admin=1"], "job 1 is in queue 'default' which is not defined"),
    (["--platform", "resource_id=4", "--swf-level", "core"], "apply to SWF workloads only"),
])
def test_simulate_errors_are_one_line(workload, capsys, args, message):
    assert main(["simulate", str(workload), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oarsched: error:") and message in err and err.count("\n") == 1


def test_simulate_bad_workload_names_the_line(tmp_path, capsys):
    path = tmp_path / "bad.swf"
    path.write_text("; header\n1 0 -1 10 4 -1 -1 4 100 -1 1 1 1 -1 1 -1 -1\n")
    assert main(["simulate", str(path), "--platform", "resource_id=4"]) == 1
    assert "bad.swf, line 2: expected 18 fields, got 17" in capsys.readouterr().err


def test_gantt_from_records_and_errors(workload, tmp_path, capsys):
    records = tmp_path / "r.csv"
    assert main(["simulate", str(workload), "--platform", "resource_id=4", "--out", str(records)]) == 0
    chart = tmp_path / "c.png"
    assert main(["gantt", "--sim", str(records), "-o", str(chart), "--platform", "resource_id=4"]) == 0
    assert "3 jobs drawn" in capsys.readouterr().out and chart.stat().st_size > 1000
    assert main(["gantt", "--sim", str(records), "--db", "x", "-o", str(chart)]) == 1
    assert "give one schedule" in capsys.readouterr().err
    assert main(["gantt", "--sim", str(records), "-o", str(tmp_path / "c.pdf")]) == 1
    assert "name it .svg, .png or .html" in capsys.readouterr().err


def test_progress_bar_on_request(workload, capsys):
    assert main(["simulate", str(workload), "--platform", "resource_id=4", "--progress"]) == 0
    assert "simulating" in capsys.readouterr().err


def test_gantt_html_page_and_serve_usage(workload, tmp_path, capsys):
    records = tmp_path / "r.csv"
    assert main(["simulate", str(workload), "--platform", "resource_id=4", "--out", str(records),
                 "--gantt", str(tmp_path / "run.html"), "--from", "0", "--to", "100"]) == 0
    page = (tmp_path / "run.html").read_text()
    assert '"jobs":[' in page and "<script" in page and "src=" not in page  # self-contained
    assert main(["gantt", "--sim", str(records), "-o", str(tmp_path / "c.html")]) == 0
    assert "3 jobs drawn" in capsys.readouterr().out
    assert main(["gantt", "--sim", str(records), "--serve"]) == 1
    assert "--serve draws a live OAR3 database" in capsys.readouterr().err
    assert main(["gantt", "--sim", str(records)]) == 1
    assert "give the chart file with -o CHART" in capsys.readouterr().err


def test_simulate_resubmits_preempted_besteffort_jobs(tmp_path, capsys):
    trace = tmp_path / "be.csv"
    trace.write_text("id,submit,runtime,walltime,request,user,queue\n"
                     "1,0,1000,2000,resource_id=4,alice,besteffort\n"
                     "2,100,50,60,resource_id=2,bob,default\n")
    out = tmp_path / "records.csv"
    command = ["simulate", str(trace), "--platform", "resource_id=4", "--requeue-besteffort", "--out", str(out),
               "--no-progress"]
    assert main(command) == 0
    assert [(r.id, r.status, r.start, r.resubmit_of, r.resubmitted_as) for r in read_records(out)] == [
        (1, "preempted", 0, None, 3), (2, "completed", 100, None, None), (3, "completed", 150, 1, None)]
    assert main([*command, "--max-resubmissions", "0"]) == 0
    assert [(r.id, r.status, r.resubmitted_as) for r in read_records(out)] == [
        (1, "preempted", None), (2, "completed", None)]
    capsys.readouterr()
    assert main([*command, "--max-resubmissions", "-1"]) != 0
    assert "max_resubmissions must be >= 0" in capsys.readouterr().err
