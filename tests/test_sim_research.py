"""The researcher's toolkit: Batsim/SWF outputs, per-group and over-time metrics, policies side by side."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from oarsched.cli import main
from oarsched.errors import UsageError
from oarsched.sim import WorkloadJob, load_workload, platform_from_spec, read_swf, simulate
from oarsched.sim.formats import (
    BATSIM_JOB_COLUMNS,
    intervals,
    requested_resources,
    write_batsim_jobs,
    write_batsim_schedule,
    write_swf,
    write_workload_swf,
)
from oarsched.sim.metrics import group_metrics, jain_index, timeline
from oarsched.sim.policies import compare_policies, parse_policy
from oarsched.sim.synthetic import synthetic_workload

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def W(job_id, submit, runtime, walltime, request="resource_id=1", **kw) -> WorkloadJob:
    return WorkloadJob(id=job_id, submit=submit, runtime=runtime, walltime=walltime, request=request, **kw)


@pytest.fixture
def mixed_result():
    """Completed, killed and rejected jobs of two users on 4 resources."""
    platform = platform_from_spec("resource_id=4")
    jobs = [W(1, 0, 60, 100, "resource_id=2", user="alice"), W(2, 10, 100, 100, "resource_id=4", user="bob"),
            W(3, 20, 80, 50, "resource_id=2", user="alice"), W(4, 30, 10, 10, "resource_id=8", user="bob")]
    return simulate(jobs, platform)


# ------------------------------------------------------------------------------ formats

def test_intervals_and_requested_resources():
    assert intervals([9, 0, 1, 2, 3, 8]) == "0-3 8-9" and intervals([5]) == "5" and intervals([]) == ""
    assert requested_resources("switch=1/core=4") == 4
    assert requested_resources("resource_id=3+network_address=2") == 5
    assert requested_resources("core=ALL") == 0


def test_batsim_out_jobs_loads_in_evalys(mixed_result, tmp_path):
    jobset_module = pytest.importorskip("evalys.jobset")
    path = write_batsim_jobs(mixed_result, tmp_path / "out_jobs.csv", workload_name="w")
    with open(path, newline="") as fh:
        rows = {int(r["job_id"]): r for r in csv.DictReader(fh)}
    assert tuple(rows[1]) == BATSIM_JOB_COLUMNS
    assert rows[2]["final_state"] == "COMPLETED_SUCCESSFULLY" and rows[2]["allocated_resources"] == "0-3"
    assert rows[3]["final_state"] == "COMPLETED_WALLTIME_REACHED" and rows[3]["success"] == "0"
    assert rows[4]["final_state"] == "REJECTED" and rows[4]["starting_time"] == "-1"
    assert rows[4]["requested_number_of_resources"] == "8"
    js = jobset_module.JobSet.from_csv(path)
    df = js.df.set_index("jobID")
    for r in mixed_result.records:
        if r.start is None:
            continue
        row = df.loc[str(r.id)]
        assert (row.starting_time, row.finish_time, row.waiting_time) == (r.start, r.end, r.start - r.submit)
        assert len(row.allocated_resources) == len(r.resources) == row.proc_alloc
    assert js.MaxProcs == 4


def test_batsim_out_schedule(mixed_result, tmp_path):
    path = write_batsim_schedule(mixed_result, tmp_path / "out_schedule.csv", simulation_time=1.5)
    with open(path, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    m = mixed_result.metrics()
    assert int(row["makespan"]) == m.makespan and int(row["nb_jobs"]) == 4
    assert int(row["nb_jobs_rejected"]) == 1 and int(row["nb_jobs_killed"]) == 1 and int(row["nb_jobs_success"]) == 2
    assert float(row["mean_waiting_time"]) == pytest.approx(m.mean_wait)


def test_swf_out_replays_as_the_run_went(mixed_result, tmp_path):
    path = write_swf(mixed_result, tmp_path / "run.swf")
    trace = read_swf(path)
    assert trace.header["MaxProcs"] == "4"
    by_id = {j.id: j for j in trace.jobs}
    for r in mixed_result.records:
        if r.start is None:
            assert r.id not in by_id  # never ran: run time -1, skipped on reading
            continue
        assert (by_id[r.id].submit, by_id[r.id].runtime, by_id[r.id].walltime) == (r.submit, r.end - r.start,
                                                                                   r.walltime)
        assert by_id[r.id].request == f"resource_id={len(r.resources)}"


def test_synthetic_trace_written_as_swf_reads_back(tmp_path):
    workload = synthetic_workload(300, nodes=16, cores_per_node=4, seed=3)
    assert workload.header["MaxProcs"] == "64"
    back = read_swf(write_workload_swf(workload, tmp_path / "t.swf"))
    assert [(j.id, j.submit, j.runtime, j.walltime, j.user) for j in back.jobs] == \
        [(j.id, j.submit, j.runtime, j.walltime, j.user) for j in workload.jobs]
    for a, b in zip(workload.jobs, back.jobs):
        n = int(a.request.split("=")[1])
        assert b.request == f"resource_id={n * 4 if a.request.startswith('network_address') else n}"


# ------------------------------------------------------------------------------ metrics

def test_group_metrics_fairness_and_timeline(mixed_result):
    groups = group_metrics(mixed_result.records, "user")
    # alice: job 1 (wait 0, run 60), job 3 (starts 20, killed at 70: wait 0);
    # bob: job 2 (planned at 100, starts when job 3 is killed at 70: wait 60, run 100)
    assert groups["alice"].jobs == 2 and groups["alice"].mean_wait == 0
    assert groups["bob"].mean_wait == 60 and groups["bob"].mean_stretch == pytest.approx(1.6)
    m = mixed_result.metrics()
    assert m.by_user == groups and set(m.by_queue) == {"default"}
    assert m.fairness == pytest.approx(jain_index([1.0, 1.6]))
    assert jain_index([2, 2, 2]) == 1 and jain_index([1, 0, 0]) == pytest.approx(1 / 3) and jain_index([]) == 1
    line = timeline(mixed_result.records, 4, mixed_result.runs)
    at = dict(zip(line.times.tolist(), zip(line.utilization.tolist(), line.queue.tolist())))
    assert at[0] == (0.5, 0) and at[10] == (0.5, 1) and at[20] == (1.0, 1) and at[60] == (0.5, 1)
    assert at[70] == (1.0, 0) and at[170] == (0.0, 0)
    starts, util, queue = line.averaged(17)
    assert util.mean() * 170 == pytest.approx(sum((r.end - r.start) * len(r.resources)
                                                  for r in mixed_result.runs) / 4)
    assert "alice" in m.format() and "fairness" in m.format()


# ------------------------------------------------------------------------------ policies

def test_easy_backfilling_differs_from_conservative_where_it_should():
    """J4 crosses J3's reservation (conservative: waits) but not the head J2's (EASY: starts at once)."""
    platform = platform_from_spec("resource_id=4")
    jobs = [W(1, 0, 100, 100, "resource_id=3"), W(2, 1, 100, 100, "resource_id=3"),
            W(3, 2, 100, 100, "resource_id=4"), W(4, 3, 250, 250, "resource_id=1")]
    cons = {r.id: (r.start, r.end) for r in simulate(jobs, platform).records}
    easy = {r.id: (r.start, r.end) for r in simulate(jobs, platform, backfilling="easy").records}
    assert cons == {1: (0, 100), 2: (100, 200), 3: (200, 300), 4: (300, 550)}
    assert easy == {1: (0, 100), 2: (100, 200), 3: (253, 353), 4: (3, 253)}


def test_easy_equals_conservative_when_every_job_can_start_in_order():
    platform = platform_from_spec("network_address=4/core=4")
    jobs = synthetic_workload(150, nodes=4, cores_per_node=4, load=0.3, seed=5)
    cons = simulate(jobs, platform)
    easy = simulate(jobs, platform, backfilling="easy")
    assert not easy.check() and not cons.check()
    if all(r.start == r.submit for r in cons.records):
        assert [(r.start, r.resources) for r in easy.records] == [(r.start, r.resources) for r in cons.records]
    assert easy.metrics().mean_wait <= cons.metrics().mean_wait * 1.5 + 60


def test_policies_by_name():
    assert parse_policy("fifo").config == {"JOB_PRIORITY": "FIFO"}
    sjf = parse_policy("shortest-job-first")
    assert sjf.config["CUSTOM_JOB_SORTING"] == "shortest_job_first"
    combo = parse_policy("easy+fairshare")
    assert combo.backfilling == "easy" and combo.config["JOB_PRIORITY"] == "FAIRSHARE"
    assert parse_policy("best-fit").find == "best_fit"
    conf = parse_policy(f"conf={EXAMPLES / 'sjf.conf'}")
    assert conf.name == "sjf.conf" and conf.configure(None).job_priority == "CUSTOM"
    with pytest.raises(UsageError, match="unknown policy 'lifo'"):
        parse_policy("lifo")
    with pytest.raises(UsageError, match="no such configuration file"):
        parse_policy("conf=/nonexistent.conf")


def test_compare_policies_side_by_side(tmp_path):
    platform = platform_from_spec("network_address=8/core=4")
    workload = synthetic_workload(250, nodes=8, cores_per_node=4, load=0.95, seed=7, users=4)
    comparison = compare_policies(workload, platform, ["fifo", "sjf", "easy", "best-fit",
                                                       f"conf={EXAMPLES / 'fairshare.conf'}"])
    assert list(comparison.results) == ["fifo", "sjf", "easy", "best-fit", "fairshare.conf"]
    for result in comparison.results.values():
        assert not result.check() and result.metrics().completed == 250
    fifo, sjf = comparison.results["fifo"], comparison.results["sjf"]
    assert [r.start for r in fifo.records] != [r.start for r in sjf.records]
    table = comparison.table().splitlines()
    assert table[0].split() == ["metric", "fifo", "sjf", "easy", "best-fit", "fairshare.conf"]
    waits = next(line for line in table if line.startswith("mean_wait")).split()[1:]
    assert [float(w) for w in waits] == pytest.approx([r.metrics().mean_wait for r in comparison.results.values()],
                                                      rel=1e-3)
    plot = comparison.plot(tmp_path / "cmp.svg")
    assert Path(plot).read_text().count("<svg") == 1


def test_fairshare_with_one_user_is_explained():
    platform = platform_from_spec("resource_id=4")
    jobs = [W(i, i, 50, 60, "resource_id=3", user="solo") for i in range(1, 5)]
    comparison = compare_policies(jobs and load_workload_from(jobs), platform, ["fifo", "fairshare"])
    assert any("one user" in note for note in comparison.notes())


def load_workload_from(jobs):
    from oarsched.sim import Workload

    return Workload(jobs=jobs)


def test_best_fit_needs_nodes():
    with pytest.raises(UsageError, match="network_address level"):
        compare_policies(load_workload_from([W(1, 0, 1, 1)]), platform_from_spec("resource_id=4"), ["best-fit"])


# ---------------------------------------------------------------------- command line

@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "t.swf"
    assert main(["synth", "200", "--nodes", "8", "--cores-per-node", "4", "--users", "3", "-o", str(path)]) == 0
    return path


def test_simulate_several_policies_and_every_output(trace, tmp_path, capsys):
    capsys.readouterr()
    assert main(["simulate", str(trace), "--policy", "fifo", "--policy", f"conf={EXAMPLES / 'fairshare.conf'}",
                 "--policy", "easy", "--out", str(tmp_path / "r.csv"), "--batsim", str(tmp_path / "bs"),
                 "--swf-out", str(tmp_path / "o.swf"), "--plot", str(tmp_path / "m.png"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "platform: network_address=8/core=4 (from the SWF header" in captured.err
    out = captured.out
    assert "job security time 60 s (OAR3's default" in out
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "fifo", "fairshare.conf", "easy"]
    for name in ("fifo", "fairshare.conf", "easy"):
        assert (tmp_path / f"r-{name}.csv").exists() and (tmp_path / f"o-{name}.swf").exists()
        assert (tmp_path / "bs" / name / "out_jobs.csv").exists()
        assert (tmp_path / "bs" / name / "out_schedule.csv").exists()
    assert (tmp_path / "m.png").stat().st_size > 10_000


def test_simulate_warns_about_oversize_jobs_and_takes_security_time(tmp_path, capsys):
    path = tmp_path / "w.csv"
    path.write_text("id,submit,runtime,walltime,request\n1,0,10,20,resource_id=2\n2,0,10,20,resource_id=9\n")
    assert main(["simulate", str(path), "--platform", "resource_id=4", "--security-time", "0", "--json"]) == 0
    captured = capsys.readouterr()
    assert "1 jobs ask more resources than the platform's 4" in captured.err and ": 2" in captured.err
    assert '"security_time": 0' in captured.out and '"rejected": 1' in captured.out


def test_simulate_unknown_policy_is_one_line(trace, capsys):
    assert main(["simulate", str(trace), "--policy", "lifo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oarsched: error: --policy lifo: unknown policy") and err.count("\n") == 1


def test_simulate_into_a_closed_pipe_is_quiet(trace):
    """``oarsched simulate ... | head -1``: no BrokenPipe traceback."""
    proc = subprocess.run(f"{sys.executable} -m oarsched.cli simulate {trace} --policy fifo --policy easy | head -1",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# ------------------------------------------------------------------------------ sweeps

def test_sweep_runs_tasks_in_processes_gathers_and_skips_what_is_done(tmp_path, capsys):
    import json

    traces = []
    for seed in (1, 2):
        path = tmp_path / f"t{seed}.swf"
        assert main(["synth", "120", "--nodes", "4", "--cores-per-node", "4", "--seed", str(seed), "-o", str(path)]) == 0
        traces.append(str(path))
    out = tmp_path / "sweep"
    base = ["sweep", *traces, "--policy", "fifo", "--policy", "easy", "--out-dir", str(out)]
    assert main([*base, "--task", "3"]) == 0  # one task alone, as a job array runs it
    assert (out / "t2" / "easy.json").exists() and not (out / "t1" / "fifo.json").exists()
    capsys.readouterr()
    assert main([*base, "--gather"]) == 0
    table = capsys.readouterr().out
    assert "t1:fifo" in table and "(not run yet)" in table
    before = (out / "t2" / "easy.json").stat().st_mtime_ns
    assert main([*base, "--jobs", "2"]) == 0
    table = capsys.readouterr().out
    assert "(not run yet)" not in table and (out / "t2" / "easy.json").stat().st_mtime_ns == before
    for trace, policy in ((traces[0], "fifo"), (traces[1], "easy")):
        data = json.loads((out / Path(trace).stem / f"{policy}.json").read_text())
        direct = simulate(load_workload(trace), platform_from_spec("network_address=4/core=4"),
                          config={"SCHEDULER_JOB_SECURITY_TIME": 60}, backfilling="easy" if policy == "easy" else
                          "conservative").metrics()
        assert data["metrics"]["mean_wait"] == pytest.approx(direct.mean_wait)
        row = next(line for line in table.splitlines() if line.startswith(f"{Path(trace).stem}:{policy} "))
        assert row.split()[1] == "120"
    assert main([*base, "--task", "9"]) == 1
    assert "--task 9: the sweep has tasks 0 to 3" in capsys.readouterr().err
