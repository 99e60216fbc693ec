"""The simulator: hand-computed small traces, OAR's queue/besteffort/reservation rules, invariants, metrics."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarsched import Platform
from oarsched.errors import ConfigError
from oarsched.sim import (
    JobRecord,
    Simulator,
    WorkloadJob,
    compare,
    compute_metrics,
    load_workload,
    platform_from_spec,
    read_records,
    simulate,
)
from oarsched.sim.records import format_ranges, parse_ranges
from tests.conftest import require_shared


def W(job_id, submit, runtime, walltime, request="resource_id=1", **kw) -> WorkloadJob:
    return WorkloadJob(id=job_id, submit=submit, runtime=runtime, walltime=walltime, request=request, **kw)


def outcome(result) -> dict[int, tuple]:
    return {r.id: (r.status, r.start, r.end) for r in result.records}


@pytest.fixture
def four() -> Platform:
    return platform_from_spec("resource_id=4")


@pytest.fixture
def two_nodes() -> Platform:
    return Platform.from_hierarchy({"network_address": 2, "core": 4})


# ------------------------------------------------------------------ hand-computed runs

def test_backfilling_and_early_end(four):
    """J1 holds 2 cores; J2 (4 cores) is planned after J1's walltime; J3 backfills before it.

    J1 ends early at 60: the round then starts J2 at once (J3 ended at 50).
    """
    jobs = [W(1, 0, 60, 100, "resource_id=2"), W(2, 10, 100, 100, "resource_id=4"),
            W(3, 20, 30, 50, "resource_id=2")]
    result = simulate(jobs, four)
    assert outcome(result) == {1: ("completed", 0, 60), 2: ("completed", 60, 160), 3: ("completed", 20, 50)}
    assert result.record(1).resources == [1, 2] and result.record(3).resources == [3, 4]
    m = result.metrics()
    assert m.mean_wait == pytest.approx(50 / 3) and m.median_wait == 0 and m.max_wait == 50
    assert m.mean_bounded_slowdown == pytest.approx((1 + 1.5 + 1) / 3)
    assert m.makespan == 160
    assert m.utilization == pytest.approx((2 * 60 + 2 * 30 + 4 * 100) / (4 * 160))
    assert m.jobs_per_hour == pytest.approx(3 * 3600 / 160)


def test_walltime_kill(four):
    result = simulate([W(1, 0, 300, 200, "resource_id=4"), W(2, 0, 10, 10)], four)
    r1 = result.record(1)
    assert (r1.status, r1.start, r1.end, r1.killed) == ("killed", 0, 200, True)
    assert "walltime 200s" in r1.reason
    assert outcome(result)[2] == ("completed", 200, 210)
    assert result.metrics().killed == 1


def test_security_time_does_not_delay_a_job_that_ends(four):
    # the engine reserves walltime + 60 s, but the end event frees the resources at once
    result = simulate([W(1, 0, 100, 100, "resource_id=4"), W(2, 0, 10, 10, "resource_id=4")], four,
                      config={"SCHEDULER_JOB_SECURITY_TIME": 60})
    assert outcome(result)[2] == ("completed", 100, 110)


def test_higher_priority_queue_first(four):
    jobs = [W(1, 0, 100, 100, "resource_id=4"), W(2, 5, 10, 10, "resource_id=4"),
            W(3, 6, 10, 10, "resource_id=4", queue="admin")]
    result = simulate(jobs, four)
    assert outcome(result)[3] == ("completed", 100, 110)
    assert outcome(result)[2] == ("completed", 110, 120)


def test_unknown_queue_is_an_error(four):
    with pytest.raises(ConfigError, match="job 1 is in queue 'batch' which is not defined"):
        simulate([W(1, 0, 1, 1, queue="batch")], four)
    result = simulate([W(1, 0, 1, 1, queue="batch")], four, queues={"batch": 1})
    assert outcome(result) == {1: ("completed", 0, 1)}


def test_besteffort_preempted_by_a_default_job(two_nodes):
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, 100, 50, 60, "core=4")]
    result = simulate(jobs, two_nodes)
    assert outcome(result) == {1: ("preempted", 0, 100), 2: ("completed", 100, 150)}
    assert result.record(1).preemptions == 1 and "by job 2" in result.record(1).reason
    assert result.check() == []


def test_besteffort_requeued(two_nodes):
    """Requeued as OAR3 resubmits: a new job (the next id), the preempted job's submission time."""
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, 100, 50, 60, "core=4")]
    result = simulate(jobs, two_nodes, requeue_besteffort=True)
    assert outcome(result) == {1: ("preempted", 0, 100), 2: ("completed", 100, 150), 3: ("completed", 150, 1150)}
    assert [(r.job_id, r.start, r.end, r.outcome) for r in result.runs if r.job_id != 2] == [
        (1, 0, 100, "preempted"), (3, 150, 1150, "completed")]
    first, again = result.record(1), result.record(3)
    assert (first.resubmitted_as, first.resubmit_of, again.resubmit_of, again.resubmitted_as) == (3, None, 1, None)
    assert "by job 2, resubmitted as job 3" in first.reason
    assert (again.submit, again.queue, again.besteffort, again.preemptions) == (0, "besteffort", True, 1)
    assert result.chain(1) == [first, again] and result.workload_job(3) is jobs[0]
    m = result.metrics()
    assert (m.jobs, m.completed, m.preempted, m.started) == (2, 2, 0, 2)  # job 1 counts once, by its resubmission
    assert m.mean_wait == pytest.approx((150 + 0) / 2)  # from the workload job's submission to its last start
    # the preempted run counts in the utilization
    assert m.utilization == pytest.approx((8 * 100 + 4 * 50 + 8 * 1000) / (8 * 1150))
    assert result.check() == []


def test_idempotent_besteffort_is_requeued(two_nodes):
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort", types=["idempotent"]), W(2, 100, 50, 60, "core=4")]
    result = simulate(jobs, two_nodes)
    assert outcome(result)[3] == ("completed", 150, 1150) and result.record(3).resubmit_of == 1
    assert "idempotent" in result.workload_job(3).types


def test_besteffort_does_not_delay_other_queues(two_nodes):
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, 0, 50, 60, "core=8")]
    result = simulate(jobs, two_nodes)
    assert outcome(result) == {1: ("completed", 50, 1050), 2: ("completed", 0, 50)}


def test_reservations_accepted_refused_and_on_time(two_nodes):
    jobs = [W(1, 0, 1000, 2000, "core=6"), W(2, 10, 100, 100, "core=4", reservation=500),
            W(3, 20, 100, 100, "core=2", reservation=500), W(4, 30, 100, 200, "core=2"),
            W(5, 40, 10, 10, "core=2", reservation=5)]
    result = simulate(jobs, two_nodes)
    out = outcome(result)
    assert out[2][0] == "rejected" and "not free at 500" in result.record(2).reason
    assert out[3] == ("completed", 500, 600) and result.record(3).reservation
    # job 4 fits before the reservation's slot; job 5's past start becomes its submission time
    assert out[4] == ("completed", 30, 130)
    assert out[5][0] == "rejected"  # job 4 holds the 2 free cores at 40
    m = result.metrics()
    assert m.rejected == 2 and m.mean_wait == pytest.approx(0.0)  # reservations are left out of waits


def test_reservation_preempts_besteffort(two_nodes):
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, 10, 100, 100, "core=8", reservation=300)]
    result = simulate(jobs, two_nodes)
    assert outcome(result) == {1: ("preempted", 0, 300), 2: ("completed", 300, 400)}


@pytest.mark.parametrize("requeue", [False, True])
def test_besteffort_killed_the_kill_duration_before_a_reservation(two_nodes, requeue):
    """SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION: kao kills besteffort jobs in the way of a job
    starting within that many seconds; requeued, the besteffort job waits for the reservation's end."""
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, 10, 100, 100, "core=8", reservation=300)]
    config = {"SCHEDULER_JOB_SECURITY_TIME": 0, "SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION": 100}
    result = simulate(jobs, two_nodes, config=config, requeue_besteffort=requeue)
    assert [(r.job_id, r.start, r.end, r.outcome) for r in result.runs][:2] == [
        (1, 0, 200, "preempted"), (2, 300, 400, "completed")]
    assert result.chain(1)[-1].start == (400 if requeue else 0)


def test_queues_of_equal_priority_are_one_group(two_nodes):
    """OAR3 schedules queues of equal priority together: FIFO across them (job 1 of queue b first)."""
    jobs = [W(1, 0, 100, 100, "core=8", queue="b"), W(2, 0, 100, 100, "core=8", queue="a")]
    result = simulate(jobs, two_nodes, queues={"a": 2, "b": 2})
    assert outcome(result) == {1: ("completed", 0, 100), 2: ("completed", 100, 200)}
    apart = simulate(jobs, two_nodes, queues={"a": 3, "b": 2})
    assert outcome(apart) == {1: ("completed", 100, 200), 2: ("completed", 0, 100)}


def test_never_fitting_job_is_rejected(four):
    result = simulate([W(1, 0, 10, 10, "resource_id=5"), W(2, 0, 10, 10, "switch=1")], four)
    assert outcome(result)[1][0] == "rejected" and "never fits" in result.record(1).reason
    assert outcome(result)[2][0] == "rejected" and "unknown hierarchy level" in result.record(2).reason


def test_dependencies(four):
    jobs = [W(1, 0, 100, 100), W(2, 0, 10, 10, depends=(1,)), W(3, 0, 500, 100, depends=(2,)),
            W(4, 0, 10, 10, depends=(3,))]
    result = simulate(jobs, four)
    # job 3 is killed at its walltime: OAR's dependency on a job in Error is satisfied
    assert outcome(result) == {1: ("completed", 0, 100), 2: ("completed", 100, 110),
                               3: ("killed", 110, 210), 4: ("completed", 210, 220)}


def test_dependency_cycle_never_starts(four):
    result = simulate([W(1, 0, 1, 1, depends=(2,)), W(2, 0, 1, 1, depends=(1,))], four, period=60)
    assert {r.status for r in result.records} == {"not_started"}


def test_fairshare_orders_by_past_usage(four):
    # alice used the whole platform for 1000 s; at 1000 bob's job goes before her earlier one
    jobs = [W(1, 0, 1000, 1000, "resource_id=4", user="alice"), W(2, 10, 10, 10, "resource_id=4", user="alice"),
            W(3, 20, 10, 10, "resource_id=4", user="bob")]
    fifo = simulate(jobs, four)
    fair = simulate(jobs, four, config={"JOB_PRIORITY": "FAIRSHARE", "SCHEDULER_JOB_SECURITY_TIME": 0,
                                        "ACCOUNTING_WINDOW": 100})
    assert (outcome(fifo)[2][1], outcome(fifo)[3][1]) == (1000, 1010)
    assert (outcome(fair)[3][1], outcome(fair)[2][1]) == (1000, 1010)


def test_quotas_limit_a_user(four):
    rules = {"quotas": {"*,*,*,/": [2, -1, -1]}}
    jobs = [W(1, 0, 100, 100, "resource_id=2", user="alice"), W(2, 0, 100, 100, "resource_id=2", user="alice"),
            W(3, 0, 100, 100, "resource_id=2", user="bob")]
    result = simulate(jobs, four, quotas=rules)
    assert outcome(result) == {1: ("completed", 0, 100), 2: ("completed", 100, 200), 3: ("completed", 0, 100)}


def test_round_cap(four):
    jobs = [W(1, 0, 100, 100, "resource_id=4")] + [W(i, 1, 10, 10) for i in range(2, 6)]
    capped = simulate(jobs, four, config={"MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND": 2,
                                          "SCHEDULER_JOB_SECURITY_TIME": 0})
    # one round considers jobs 2-3 only: 4 and 5 wait for the next round (job 2 and 3's end)
    assert [outcome(capped)[i][1] for i in range(2, 6)] == [100, 100, 110, 110]


def test_period_adds_rounds_not_changes(four):
    jobs = [W(1, 0, 100, 100, "resource_id=4"), W(2, 10, 10, 10)]
    plain, periodic = simulate(jobs, four), simulate(jobs, four, period=7)
    assert outcome(plain) == outcome(periodic)
    assert periodic.rounds > plain.rounds
    with pytest.raises(ConfigError, match="period must be positive"):
        Simulator(four, period=0)


def test_until_stops_the_clock(four):
    result = simulate([W(1, 0, 100, 100, "resource_id=4"), W(2, 10, 10, 10), W(3, 500, 1, 1)], four, until=50)
    assert outcome(result) == {1: ("running", 0, None), 2: ("not_started", None, None),
                               3: ("not_started", None, None)}


def test_progress_reports_every_job(four):
    seen = []
    simulate([W(i, i, 5, 5) for i in range(1, 6)], four, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5, 5) and all(t == 5 for _, t in seen)


# ------------------------------------------------------------------------- invariants

job_strategy = st.builds(
    lambda submit, runtime, extra, size, queue: (submit, runtime, max(1, runtime + extra), size, queue),
    st.integers(0, 500), st.integers(0, 300), st.integers(-100, 200), st.integers(1, 6),
    st.sampled_from(["default", "default", "admin", "besteffort"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(job_strategy, min_size=1, max_size=25), st.booleans())
def test_invariants_on_random_traces(specs, requeue):
    platform = Platform.from_hierarchy({"network_address": 2, "core": 4})
    jobs = [W(i + 1, s, r, w, f"core={n}", queue=q) for i, (s, r, w, n, q) in enumerate(specs)]
    result = simulate(jobs, platform, requeue_besteffort=requeue)
    assert result.check() == []
    for rec, job in zip(sorted(result.records, key=lambda r: r.id), sorted(jobs, key=lambda j: j.id)):
        assert rec.status in ("completed", "killed", "preempted")
        assert rec.start >= rec.submit and rec.wait == rec.start - rec.submit
        assert rec.run <= job.walltime and (rec.status != "completed" or rec.run == job.runtime)
    m = result.metrics()
    assert 0.0 <= m.utilization <= 1.0 + 1e-9
    assert simulate(jobs, platform, requeue_besteffort=requeue).records == result.records  # deterministic


def test_check_finds_an_overlap(four):
    result = simulate([W(1, 0, 10, 10, "resource_id=4"), W(2, 0, 10, 10, "resource_id=4")], four)
    from oarsched.sim.records import Run

    result.runs.append(Run(2, 5, 8, (1,), "completed"))
    assert any("jobs 1 and 2 both use [1]" in p for p in result.check())


# -------------------------------------------------------------------- the real sample

def test_real_swf_sample_replay_is_deterministic_and_sound():
    shared = require_shared()
    workload = load_workload(shared / "traces" / "gofree_sample_1.swf")
    platform = platform_from_spec("network_address=8/core=12")  # smaller than the original 352 cores
    first = simulate(workload, platform)
    second = simulate(workload, platform)
    assert [r.as_dict() for r in first.records] == [r.as_dict() for r in second.records]
    assert first.check() == []
    m = first.metrics()
    assert m.rejected == 2  # the 288- and 336-processor jobs cannot fit 96 cores
    assert m.completed == 446 and m.started == 446
    assert 0 < m.utilization <= 1 and m.mean_wait > 0


# ------------------------------------------------------------------- records, metrics

def test_records_round_trip_csv_and_json(tmp_path, two_nodes):
    jobs = [W(1, 0, 1000, 2000, "core=8", queue="besteffort"), W(2, 100, 50, 60, "core=4"),
            W(3, 0, 5, 5, "core=9"), W(4, 10, 300, 200, "core=2", user="dave")]
    result = simulate(jobs, two_nodes)
    for name in ("r.csv", "r.json"):
        result.save(tmp_path / name)
        assert read_records(tmp_path / name) == result.records
    header = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert header.startswith("id,user,queue,submit,start,end,wait,run,walltime,nb_resources,resources,status")


def test_records_errors_name_line_and_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,submit,start,end,walltime,resources,status\n1,0,5,9,10,1-2,completed\n2,0,x,9,10,1,completed\n")
    from oarsched.sim import RecordsError

    with pytest.raises(RecordsError, match="line 3: column 'start': cannot read 'x'"):
        read_records(path)
    path.write_text("id,submit,start,end,walltime,resources,status\n1,0,5,9,10,1-2,finished\n")
    with pytest.raises(RecordsError, match="column 'status'"):
        read_records(path)


def test_ranges():
    assert format_ranges([7, 1, 2, 3, 9, 10]) == "1-3,7,9-10"
    assert parse_ranges("1-3,7,9-10") == [1, 2, 3, 7, 9, 10]
    with pytest.raises(ValueError):
        parse_ranges("3-1")


def rec(job_id, submit, start, end, n=1, **kw) -> JobRecord:
    return JobRecord(id=job_id, submit=submit, walltime=end - start, status="completed", start=start, end=end,
                     resources=list(range(1, n + 1)), **kw)


def test_metrics_by_hand():
    records = [rec(1, 0, 0, 5), rec(2, 0, 100, 200, n=2), rec(3, 10, 50, 51),
               JobRecord(id=4, submit=0, walltime=1, status="rejected")]
    m = compute_metrics(records, resources=4, bound=10)
    assert m.jobs == 4 and m.started == 3 and m.rejected == 1
    assert m.mean_wait == pytest.approx((0 + 100 + 40) / 3)
    assert m.p95_wait == pytest.approx(94.0)  # linear interpolation between 40 and 100
    # slowdowns: (0+5)/5, (100+100)/100, (40+1)/1; bounded: 1, 2, 41/10
    assert m.mean_slowdown == pytest.approx((1 + 2 + 41) / 3)
    assert m.mean_bounded_slowdown == pytest.approx((1 + 2 + 4.1) / 3)
    assert m.makespan == 200 and m.utilization == pytest.approx((5 + 200 + 1) / (4 * 200))
    assert compute_metrics(records, resources=4, bound=100).mean_bounded_slowdown == pytest.approx((1 + 2 + 1) / 3)
    with pytest.raises(ValueError):
        compute_metrics(records, resources=0)


def test_metrics_of_nothing():
    m = compute_metrics([JobRecord(id=1, submit=0, walltime=1, status="rejected")], resources=2)
    assert (m.mean_wait, m.utilization, m.makespan, m.jobs_per_hour) == (0.0, 0.0, 0, 0.0)


def test_comparison():
    a = [rec(1, 0, 0, 10), rec(2, 0, 10, 20), rec(3, 0, 5, 6)]
    b = [rec(1, 0, 0, 10), rec(2, 0, 0, 10, n=1), rec(3, 0, 20, 21)]
    c = compare(a, b, resources=2, names=("fifo", "other"))
    assert (c.common_jobs, c.earlier_in_b, c.later_in_b, c.same_start) == (3, 1, 1, 1)
    rows = {name: (va, vb, diff) for name, va, vb, diff in c.rows()}
    assert rows["mean_wait"] == (pytest.approx(5.0), pytest.approx(20 / 3), pytest.approx(20 / 3 - 5))
    text = c.format()
    assert "fifo" in text and "other" in text and "1 earlier, 1 later, 1 at the same time" in text


# --------------------------------------------------------------------------- accounting

@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 900), st.integers(1, 900), st.integers(1, 4),
                          st.sampled_from(["alice", "bob"]), st.sampled_from(["default", "admin"])),
                min_size=1, max_size=15),
       st.integers(100, 700))
def test_accounting_sums_give_oars_karma(usages, window):
    """The folded accounting gives the karma of the full windowed table (oaraccounting's rows)."""
    from oarsched.oar.config import OarConfig
    from oarsched.policies.sorting import AccountingRow, compute_karma
    from oarsched.sim.simulator import _Accounting, _windows

    horizon = 2000
    config = OarConfig.from_mapping({"SCHEDULER_FAIRSHARING_WINDOW_SIZE": horizon,
                                     "SCHEDULER_FAIRSHARING_COEF_PROJECT": 1})
    folded = _Accounting(window, horizon)
    probes = [Job_(i, user, queue) for i, user in enumerate(["alice", "bob", "carol"]) for queue in ["default"]]
    full: dict[tuple, int] = {}
    events = sorted((start + run, start, run, wall, n, user, queue) for start, run, wall, n, user, queue in usages)
    window_ends = {k * window - 1 for k in range(1, 5000 // window)}  # where '<' and '<=' differ
    for now in sorted(set(range(0, 5000, 250)) | window_ends):
        while events and events[0][0] <= now:
            stop, start, _run, wall, n, user, queue = events.pop(0)
            spec = WorkloadJob(1, start, 0, wall, user=user, queue=queue)
            folded.add(spec, n, start, stop)
            for ctype, end in (("USED", stop), ("ASKED", start + wall)):
                for ws, we, seconds in _windows(start, end, window):
                    key = (ws, we, user, "default", queue, ctype)
                    full[key] = full.get(key, 0) + seconds * n
        rows = [AccountingRow(*key, c) for key, c in full.items()]
        for queue in ("default", "admin"):
            assert compute_karma(probes, folded.rows(now), [queue], now, config) == \
                compute_karma(probes, rows, [queue], now, config)


def Job_(job_id, user, queue):
    from oarsched import Job

    return Job(id=job_id, walltime=1, user=user, queue=queue)


def test_find_plugin_is_used(two_nodes):
    from oarsched.plugins import PluginRegistry, find_function

    @find_function
    def last_ones(window, n="1"):
        free = window.candidates(0)
        return free[-int(n):] if free.size >= int(n) else None

    jobs = [W(1, 0, 10, 10, "core=2", types=["find=last:2"]), W(2, 0, 10, 10, "core=2")]
    result = simulate(jobs, two_nodes, plugins=PluginRegistry(find={"last": last_ones}))
    assert result.record(1).resources == [7, 8] and result.record(2).resources == [1, 2]
