"""Preempted besteffort jobs requeued as OAR3 resubmits them: new jobs, their records, metrics and checkpoints.

OAR3's bipbip resubmits a besteffort idempotent job Leon killed as a new job
(``resubmit_job``: a new id, the same submission time, ``resubmit_job_id``
naming the killed job).  The simulator once requeued the job under its own
id: FIFO put it back at the head of its queue and, with a kill duration, it
could be killed and restarted at the same instant without end.
"""
from __future__ import annotations

import pickle

import pytest

from oarsched import Platform
from oarsched.errors import ConfigError
from oarsched.sim import (
    JobRecord,
    Simulator,
    WorkloadJob,
    compare,
    compute_metrics,
    read_records,
    simulate,
    write_records,
)
from oarsched.sim import simulator as simulator_module
from oarsched.sim.metrics import timeline
from oarsched.sim.records import final_records, workload_ids

CONF = {"SCHEDULER_JOB_SECURITY_TIME": 60, "SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION": 300}


def W(job_id, submit, runtime, walltime, request="resource_id=1", **kw) -> WorkloadJob:
    return WorkloadJob(id=job_id, submit=submit, runtime=runtime, walltime=walltime, request=request, **kw)


@pytest.fixture
def six() -> Platform:
    return Platform.from_hierarchy({"network_address": 3, "core": 2})


def bounded(sim: Simulator, jobs, instants: int = 5000, **kw):
    """Run, giving up after ``instants`` instants of simulated time (a livelock fails instead of hanging:
    an instant repeated without end counts each time)."""
    seen = [0]

    def stop() -> bool:
        seen[0] += 1
        return seen[0] > instants

    result = sim.run(jobs, stop=stop, **kw)
    assert result.interrupted_at is None, f"no end after {instants} instants (at {result.interrupted_at})"
    return result


def chains(result) -> dict[int, list[tuple]]:
    return {wid: [(r.id, r.status, r.start, r.end) for r in result.chain(wid)] for wid in
            sorted({j.id for j in result.workload.jobs})}


def test_the_resubmission_waits_behind_the_queue_and_the_run_ends(six):
    """The livelock: job 1, killed for job 3, came back under its own id before job 2 (FIFO), so job 2,
    planned within the kill duration, killed it again at once, and so on.  Resubmitted as job 4, it waits
    behind job 2, which starts then, and runs when job 2 is done."""
    jobs = [W(1, 1000, 90, 100, "resource_id=3", queue="besteffort"),
            W(2, 1010, 50, 1800, "network_address=1", queue="besteffort"),
            W(3, 1010, 2000, 600, "network_address=2/core=1")]
    result = bounded(Simulator(six, config=CONF, requeue_besteffort=True, max_resubmissions=None), jobs)
    assert chains(result) == {1: [(1, "preempted", 1000, 1010), (4, "completed", 1060, 1150)],
                              2: [(2, "completed", 1010, 1060)], 3: [(3, "killed", 1010, 1610)]}
    first, again = result.record(1), result.record(4)
    assert first.reason == "preempted at 1010 by job 3, resubmitted as job 4"
    assert (first.resubmitted_as, again.resubmit_of, again.submit, again.preemptions) == (4, 1, 1000, 1)
    assert [(r.job_id, r.outcome) for r in result.runs if r.job_id in (1, 4)] == [(1, "preempted"), (4, "completed")]
    assert result.check() == []
    m = result.metrics()
    assert (m.jobs, m.completed, m.killed, m.preempted) == (3, 2, 1, 0)
    assert m.max_wait == 60  # job 1: from its submission at 1000 to its resubmission's start at 1060


def test_two_besteffort_jobs_killing_each_other_end(six):
    """Job 2 (in the way of job 1's plan) is killed for it; under its old id it came first again, forever."""
    jobs = [W(1, 1010, 2000, 1800, "core=4", queue="besteffort"),
            W(2, 1010, 2000, 600, "network_address=2/core=1", queue="besteffort")]
    result = bounded(Simulator(six, config=CONF, requeue_besteffort=True, max_resubmissions=None), jobs)
    assert chains(result) == {1: [(1, "preempted", 1010, 2570), (3, "killed", 2570, 4370)],
                              2: [(2, "killed", 2570, 3170)]}
    assert result.check() == []


def test_resubmissions_are_bounded(six):
    """Two besteffort jobs whose resubmissions kill each other at the same instant (a job planned within the
    kill duration kills the besteffort job in its way: OAR3's rule) stop after max_resubmissions."""
    jobs = [W(1, 1000, 600, 100, "resource_id=1", queue="besteffort"),
            W(2, 1000, 2000, 100, "network_address=1/core=2", queue="besteffort"),
            W(3, 1060, 100, 1800, "network_address=1"),
            W(4, 1080, 600, 600, "network_address=1/core=2", queue="besteffort")]
    result = bounded(Simulator(six, config=CONF, requeue_besteffort=True, max_resubmissions=2), jobs)
    # new ids in the order of the kills, after every workload id
    assert chains(result) == {
        1: [(1, "preempted", 1000, 1060), (5, "preempted", 1060, 1080), (7, "preempted", 1080, 1080)],
        2: [(2, "preempted", 1000, 1080), (6, "preempted", 1080, 1080), (8, "killed", 1080, 1180)],
        3: [(3, "completed", 1060, 1160)], 4: [(4, "completed", 1080, 1680)]}
    assert result.record(7).preemptions == 3
    assert result.record(7).reason == ("preempted at 1080 by job 8, not resubmitted: resubmitted 2 times already "
                                       "(max_resubmissions)")
    assert workload_ids(result.records) == {1: 1, 2: 2, 3: 3, 4: 4, 5: 1, 6: 2, 7: 1, 8: 2}
    assert result.metrics().preempted == 1 and result.metrics().jobs == 4
    default = bounded(Simulator(six, config=CONF, requeue_besteffort=True), jobs)
    assert max(r.preemptions for r in default.records) == simulator_module.MAX_RESUBMISSIONS + 1
    with pytest.raises(ConfigError, match="max_resubmissions must be >= 0"):
        Simulator(six, max_resubmissions=-1)


def test_a_job_depending_on_a_resubmitted_job_waits_for_the_resubmission():
    platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, 100, 50, 60, "core=4"),
            W(3, 200, 10, 100, "core=1", depends=(1,))]
    result = simulate(jobs, platform, requeue_besteffort=True)
    assert result.record(4).resubmit_of == 1
    assert (result.record(4).status, result.record(4).end) == ("completed", 1150)
    assert (result.record(3).status, result.record(3).start) == ("completed", 1150)
    alone = simulate(jobs, platform)  # not resubmitted: job 1 ended in Error, which OAR's rule ignores
    assert (alone.record(3).status, alone.record(3).start) == ("completed", 200)


def requeued(platform: Platform, second_at: int = 100) -> list[JobRecord]:
    """Besteffort job 1 preempted by job 2, resubmitted as job 3."""
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, second_at, 50, 60, "core=4")]
    return simulate(jobs, platform, requeue_besteffort=True).records


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_records_keep_the_chain(tmp_path, suffix):
    records = requeued(Platform.from_hierarchy({"network_address": 2, "core": 4}))
    path = tmp_path / f"records{suffix}"
    write_records(records, path)
    assert read_records(path) == records
    assert [(r.id, r.resubmit_of, r.resubmitted_as) for r in read_records(path)] == [
        (1, None, 3), (2, None, None), (3, 1, None)]
    assert [r.id for r in final_records(records)] == [2, 3]


def test_records_written_before_the_chain_columns_still_read(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("id,user,queue,submit,start,end,wait,run,walltime,nb_resources,resources,status,killed,"
                    "reservation,besteffort,preemptions,reason\n"
                    "1,,besteffort,0,150,1150,150,1000,2000,8,1-8,completed,no,no,yes,1,\n")
    [record] = read_records(path)
    assert (record.resubmit_of, record.resubmitted_as, record.preemptions) == (None, None, 1)


def test_metrics_of_a_resubmitted_job_from_records_alone():
    """Without the runs, every record's run counts (the preempted one too); the queue holds job 1 until its
    first start, then its resubmission from the preemption to its start."""
    records = requeued(Platform.from_hierarchy({"network_address": 2, "core": 4}))
    m = compute_metrics(records, 8)
    assert m.utilization == pytest.approx((8 * 100 + 4 * 50 + 8 * 1000) / (8 * 1150))
    assert (m.jobs, m.started, m.completed, m.mean_wait) == (2, 2, 2, 75.0)
    assert set(m.by_queue) == {"besteffort", "default"} and m.by_queue["besteffort"].jobs == 1
    line = timeline(records, 8)
    queue = dict(zip(line.times.tolist(), line.queue.tolist()))
    assert queue == {0: 0, 100: 1, 150: 0, 1150: 0}  # 0: job 1 starts; 100: job 3 queued, 2 starts; 150: 3 starts


def test_comparison_matches_jobs_by_workload_id():
    """A resubmitted job is compared by its last start, whatever its new id in each run."""
    platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
    c = compare(requeued(platform), requeued(platform, second_at=200), 8)
    assert c.common_jobs == 2 and c.later_in_b == 2  # job 1: 150 -> 250 (resubmission 3 both times); job 2: 100 -> 200


def test_checkpoint_resumes_resubmissions(tmp_path, six):
    jobs = [W(1, 1000, 600, 100, "resource_id=1", queue="besteffort"),
            W(2, 1000, 2000, 100, "network_address=1/core=2", queue="besteffort"),
            W(3, 1060, 100, 1800, "network_address=1"),
            W(4, 1080, 600, 600, "network_address=1/core=2", queue="besteffort")]
    whole = bounded(Simulator(six, config=CONF, requeue_besteffort=True), jobs)
    checkpoint = tmp_path / "run.checkpoint"
    seen = [0]

    def stop() -> bool:
        seen[0] += 1
        return seen[0] == 6  # among the resubmissions at 1080

    part = Simulator(six, config=CONF, requeue_besteffort=True).run(jobs, stop=stop, checkpoint=checkpoint)
    assert part.interrupted_at == 1080 and any(r.resubmit_of for r in part.records)
    resumed = Simulator(six, config=CONF, requeue_besteffort=True).run(jobs, checkpoint=checkpoint, resume=True)
    assert resumed.records == whole.records and resumed.runs == whole.runs


@pytest.fixture
def checkpoint(tmp_path):
    platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
    jobs = [W(i, 10 * i, 100, 100, "core=4") for i in range(1, 20)]
    path = tmp_path / "run.checkpoint"
    Simulator(platform).run(jobs, stop=lambda: True, checkpoint=path)
    return platform, jobs, path


def test_checkpoint_of_another_version_is_refused(checkpoint, monkeypatch):
    platform, jobs, path = checkpoint
    Simulator(platform).run(jobs, checkpoint=path, resume=True)  # this code's checkpoint resumes
    import oarsched

    monkeypatch.setattr(oarsched, "__version__", "99.0")
    with pytest.raises(ConfigError, match=r"written by oarsched \S+ \(checkpoint format 2\); this is oarsched "
                                          r"99\.0 \(checkpoint format 2\)"):
        Simulator(platform).run(jobs, checkpoint=path, resume=True)


def test_checkpoint_of_another_format_is_refused(checkpoint, monkeypatch):
    platform, jobs, path = checkpoint
    monkeypatch.setattr(simulator_module, "CHECKPOINT_FORMAT", 3)
    with pytest.raises(ConfigError, match=r"\(checkpoint format 2\); this is oarsched .* \(checkpoint format 3\)"):
        Simulator(platform).run(jobs, checkpoint=path, resume=True)


def test_checkpoint_without_a_header_is_refused(checkpoint):
    """The format before version 2: one pickle of (fingerprint tuple, run)."""
    platform, jobs, path = checkpoint
    path.write_bytes(pickle.dumps((("digest", 8), {"jobs": {}})))
    with pytest.raises(ConfigError, match="written by another oarsched .*before checkpoint format 2"):
        Simulator(platform).run(jobs, checkpoint=path, resume=True)


def test_checkpoint_names_what_differs(checkpoint):
    platform, jobs, path = checkpoint
    with pytest.raises(ConfigError, match=r"another workload, platform or configuration \(workload differs\)"):
        Simulator(platform).run(jobs[:-1], checkpoint=path, resume=True)
    with pytest.raises(ConfigError, match=r"\(configuration, options differ\)"):
        Simulator(platform, config={"SCHEDULER_JOB_SECURITY_TIME": 60}, requeue_besteffort=True).run(
            jobs, checkpoint=path, resume=True)
