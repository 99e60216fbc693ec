"""Interrupted simulations keep what they did: records written as jobs end, Ctrl-C, checkpoints, --resume."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from oarsched.cli import main
from oarsched.errors import ConfigError
from oarsched.sim import Simulator, platform_from_spec, read_records, simulate
from oarsched.sim.synthetic import synthetic_workload


@pytest.fixture(scope="module")
def trace():
    return synthetic_workload(1500, nodes=16, cores_per_node=8, seed=4)


def test_stopped_run_resumes_to_the_records_of_an_uninterrupted_one(trace, tmp_path):
    platform = platform_from_spec("network_address=16/core=8")
    whole = simulate(trace, platform)
    instants = [0]
    closed = []

    def stop() -> bool:
        instants[0] += 1
        return instants[0] == 1000

    checkpoint = tmp_path / "run.checkpoint"
    part = Simulator(platform).run(trace, stop=stop, checkpoint=checkpoint, on_close=closed.append)
    assert part.interrupted_at is not None
    statuses = {r.status for r in part.records}
    assert {"completed", "not_started"} <= statuses and "running" in statuses
    assert sorted(r.id for r in closed) == sorted(r.id for r in part.records if r.status == "completed")
    done = {r.id: r for r in part.records if r.status == "completed"}
    assert all(whole.record(i) == r for i, r in done.items())  # what is done is final
    resumed = Simulator(platform).run(trace, checkpoint=checkpoint, resume=True)
    assert resumed.records == whole.records and resumed.runs == whole.runs and resumed.rounds == whole.rounds
    with pytest.raises(ConfigError, match="another workload"):
        Simulator(platform).run(trace.jobs[:100], checkpoint=checkpoint, resume=True)
    with pytest.raises(ConfigError, match="cannot read the checkpoint"):
        Simulator(platform).run(trace, checkpoint=tmp_path / "none", resume=True)


def test_ctrl_c_writes_what_is_done_and_resume_finishes(tmp_path):
    swf = tmp_path / "t.swf"
    assert main(["synth", "4000", "--nodes", "16", "--cores-per-node", "8", "--seed", "5", "-o", str(swf)]) == 0
    out = tmp_path / "run.csv"
    command = [sys.executable, "-m", "oarsched.cli", "simulate", str(swf), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # records are written as jobs end: wait for some
        if out.exists() and out.read_text().count("\n") > 200:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted:" in stderr and "--resume" in stderr and "Traceback" not in stderr
    partial = read_records(out)
    assert len(partial) == 4000 and any(r.status == "completed" for r in partial)
    assert any(r.status in ("not_started", "running") for r in partial)
    assert (tmp_path / "run.csv.checkpoint").exists()
    assert main(["simulate", str(swf), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert not (tmp_path / "run.csv.checkpoint").exists()
    whole = tmp_path / "whole.csv"
    assert main(["simulate", str(swf), "--out", str(whole), "--no-progress"]) == 0
    assert read_records(out) == read_records(whole)
