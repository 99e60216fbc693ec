"""Workload readers: SWF field mapping, JSON/CSV forms, errors naming the line and the field."""
from __future__ import annotations

import json

import pytest

from oarsched.errors import JobError
from oarsched.sim import WorkloadError, WorkloadJob, load_workload, read_csv, read_json, read_swf
from oarsched.sim.workload import Workload
from tests.conftest import require_shared

HEADER = "; Version: 2\n; MaxProcs: 64\n; UnixStartTime: 1000\n;\n"


def swf_line(job=1, submit=0, wait=-1, run=100, alloc=4, req=4, req_time=600, status=1, user=3, group=2,
             queue=1) -> str:
    fields = [job, submit, wait, run, alloc, -1, -1, req, req_time, -1, status, user, group, -1, queue, -1, -1, -1]
    return " ".join(str(f) for f in fields)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_swf_fields_are_mapped(tmp_path):
    path = write(tmp_path, "t.swf", HEADER + swf_line(job=7, submit=30, run=120, req=8, req_time=3600, user=5,
                                                      group=9, queue=2) + "\n")
    w = read_swf(path, queue_names={2: "admin"})
    (job,) = w.jobs
    assert (job.id, job.submit, job.runtime, job.walltime, job.request) == (7, 30, 120, 3600, "resource_id=8")
    assert (job.user, job.project, job.queue) == ("u5", "g9", "admin")
    assert w.header["MaxProcs"] == "64" and w.header["UnixStartTime"] == "1000"


def test_swf_fallbacks_allocated_processors_and_run_time(tmp_path):
    path = write(tmp_path, "t.swf", swf_line(req=-1, alloc=16, req_time=-1, run=50, user=-1, group=-1, queue=4))
    (job,) = read_swf(path, level="core").jobs
    assert job.request == "core=16"
    assert job.walltime == 50  # no requested time: the run time
    assert (job.user, job.project, job.queue) == ("", "default", "default")


def test_swf_zero_run_time_gets_a_one_second_walltime(tmp_path):
    (job,) = read_swf(write(tmp_path, "t.swf", swf_line(run=0, req_time=-1))).jobs
    assert (job.runtime, job.walltime) == (0, 1)


def test_swf_jobs_that_never_ran_are_skipped_with_their_line(tmp_path):
    text = "\n".join([HEADER.strip(), swf_line(job=1), swf_line(job=2, run=-1, status=5),
                      swf_line(job=3, run=-1, status=0), swf_line(job=4, req=-1, alloc=-1),
                      swf_line(job=5, run=30, status=5)])
    w = read_swf(write(tmp_path, "t.swf", text))
    assert [j.id for j in w.jobs] == [1, 5]  # a cancelled job that ran is simulated
    assert [(line, jid) for line, jid, _ in w.skipped] == [(6, 2), (7, 3), (8, 4)]
    assert "cancelled" in w.skipped[0][2] and "status 0" in w.skipped[1][2]
    assert "processor" in w.skipped[2][2]


@pytest.mark.parametrize("line, message", [
    ("1 2 3", "line 5: expected 18 fields, got 3"),
    (swf_line().replace(" 600 ", " 6x0 ", 1), "line 5: field 9 (requested time): '6x0' is not a number"),
    (swf_line(submit=-5), "line 5: field 2 (submit time): '-5' is negative"),
    (swf_line().replace(" 100 ", " nan ", 1), "line 5: field 4 (run time): 'nan' is not a finite number"),
])
def test_swf_malformed_line_names_line_and_field(tmp_path, line, message):
    path = write(tmp_path, "t.swf", HEADER + line + "\n")
    with pytest.raises(WorkloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_swf(path)


def test_swf_duplicated_job_number(tmp_path):
    path = write(tmp_path, "t.swf", swf_line(job=3) + "\n" + swf_line(job=3) + "\n")
    with pytest.raises(WorkloadError, match="line 2: job number 3 already on line 1"):
        read_swf(path)


def test_real_swf_sample():
    shared = require_shared()
    w = load_workload(shared / "traces" / "gofree_sample_1.swf")
    assert len(w.jobs) == 448 and not w.skipped
    assert w.header["MaxProcs"] == "352"
    assert all(j.walltime == 7200 for j in w.jobs)
    assert w.jobs == sorted(w.jobs, key=lambda j: (j.submit, j.id))
    assert max(j.request for j in w.jobs if j.request != "resource_id=1") in ("resource_id=288", "resource_id=336")


def test_json_list_and_object_forms(tmp_path):
    jobs = [{"id": 2, "submit": 5, "runtime": 10, "walltime": "0:1:0", "request": "network_address=2/core=4",
             "user": "alice", "types": ["timesharing=*,*"], "depends": [1]},
            {"id": 1, "submit": 0, "runtime": 20}]
    for data in (jobs, {"jobs": jobs}):
        w = read_json(write(tmp_path, "w.json", json.dumps(data)))
        assert [j.id for j in w.jobs] == [1, 2]  # submission order
        one, two = w.jobs
        assert (one.walltime, one.request) == (20, "resource_id=1")
        assert (two.walltime, two.types, two.depends) == (60, {"timesharing": "*,*"}, (1,))


def test_jsonl_errors_name_the_line(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"id": 1, "submit": 0, "runtime": 3}\n\n{"id": 2, "submit": "x", "runtime": 3}\n')
    with pytest.raises(WorkloadError, match=r"w.jsonl, line 3: field 'submit': 'x' is not an integer"):
        read_json(path)


@pytest.mark.parametrize("entry, message", [
    ({"id": 1, "submit": 0}, "missing field(s) 'runtime'"),
    ({"id": 1, "submit": 0, "runtime": 1, "wall": 3}, "unknown field(s) 'wall'"),
    ({"id": 1, "submit": 0, "runtime": 1, "walltime": 0}, "field 'walltime': walltime must be > 0"),
    ({"id": 1, "submit": 0, "runtime": 1, "request": "core=x"}, "field 'request'"),
    ({"id": 1, "submit": 0, "runtime": 1, "types": 3}, "field 'types': expected a list of text"),
    ({"id": 1, "submit": 0, "runtime": 1, "reservation": 10, "queue": "besteffort"}, "cannot be besteffort"),
])
def test_json_entry_errors_name_entry_and_field(tmp_path, entry, message):
    path = write(tmp_path, "w.json", json.dumps([{"id": 9, "submit": 0, "runtime": 1}, entry]))
    with pytest.raises(WorkloadError, match="entry 2: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        read_json(path)


def test_csv_form(tmp_path):
    text = ("id,submit,runtime,walltime,request,user,queue,types,depends,reservation\n"
            "1,0,100,200,core=2,alice,default,,,\n"
            "2,10,50,,,bob,besteffort,idempotent;deploy,1,\n"
            "3,20,60,60,core=1,carol,default,,,500\n")
    w = read_csv(write(tmp_path, "w.csv", text))
    one, two, three = w.jobs
    assert (one.request, one.walltime, one.user) == ("core=2", 200, "alice")
    assert two.types == {"idempotent": "", "deploy": "", "besteffort": ""} and two.depends == (1,)
    assert two.walltime == 50 and two.queue == "besteffort"
    assert three.reservation == 500


def test_csv_errors(tmp_path):
    with pytest.raises(WorkloadError, match="line 1: missing column.*runtime"):
        read_csv(write(tmp_path, "a.csv", "id,submit\n1,2\n"))
    with pytest.raises(WorkloadError, match="b.csv, line 3: field 'runtime': '-' is not an integer"):
        read_csv(write(tmp_path, "b.csv", "id,submit,runtime\n1,0,5\n2,0,-\n"))
    with pytest.raises(WorkloadError, match="c.csv, line 2: more values than header columns"):
        read_csv(write(tmp_path, "c.csv", "id,submit,runtime\n1,0,5,7\n"))


def test_workload_checks_ids_and_dependencies():
    with pytest.raises(WorkloadError, match="job 1: duplicated job id"):
        Workload([WorkloadJob(1, 0, 1, 1), WorkloadJob(1, 5, 1, 1)])
    with pytest.raises(WorkloadError, match=r"job 2: field 'depends': unknown job ids \[7\]"):
        Workload([WorkloadJob(1, 0, 1, 1), WorkloadJob(2, 0, 1, 1, depends=(7,))])


def test_besteffort_queue_and_type_are_coupled():
    assert WorkloadJob(1, 0, 1, 1, queue="besteffort").types == {"besteffort": ""}
    assert WorkloadJob(2, 0, 1, 1, types=["besteffort"]).queue == "besteffort"
    with pytest.raises(JobError, match="runtime must be >= 0"):
        WorkloadJob(3, 0, -1, 1)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(WorkloadError, match="unknown workload form"):
        load_workload(tmp_path / "w.txt")
    with pytest.raises(WorkloadError, match="cannot read it"):
        load_workload(tmp_path / "none.swf")
