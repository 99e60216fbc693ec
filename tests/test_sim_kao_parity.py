"""The simulator's meta round is ``oarsched-kao``'s: the same state gives the same decisions.

Small platforms and workloads (several queues and priorities, equal priorities
sharing a group, advance reservations, besteffort jobs) are simulated; at each
round the simulation's state is written as an OAR3 database (the rows
:mod:`oarsched.oar.submit` writes: running jobs with their resources, accepted
reservations with their gantt rows, new ``toSchedule`` reservations, waiting
jobs), ``oarsched-kao``'s round (:func:`oarsched.oar.kao.run_kao`) runs on it
at the same time, and what it decides is compared with what the simulator's
round decided: jobs launched (resources, moldable), reservations accepted
(start, resources) or refused, besteffort jobs killed (in order), the
predictions of the jobs placed later, and the exit status.  The engine's
:class:`~oarsched.engine.meta.MemoryRound` alone (no plan kept between rounds)
is run on the same state too and must decide as the simulator did.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from oarsched.engine.meta import EXIT_BESTEFFORT_KILL, MemoryRound, MetaDecisions, MetaState
from oarsched.engine.search import SchedulerOptions, Search
from oarsched.oar.config import OarConfig
from oarsched.oar.db import OarDatabase
from oarsched.oar.kao import run_kao
from oarsched.oar.readers import read_platform
from oarsched.oar.submit import add_job, add_queue, add_reservation, add_running_job
from oarsched.sim import Simulator, WorkloadJob
from oarsched.sim import simulator as simulator_module
from tests.oarcase import _logging_restored, make_case, node_resources, read_gantt

QUEUES = {"admin": 10, "default": 2, "night": 2, "besteffort": 0}
"""Stock queues plus ``night``, of ``default``'s priority: one group of two queues."""

REQUESTS = ["resource_id=1", "resource_id=3", "core=2", "core=4", "network_address=1", "network_address=1/core=2",
            "network_address=2/core=1"]


@dataclass
class Snapshot:
    """One round of the simulation: its time, the database written from its state, its decisions."""

    now: int
    url: str
    decisions: MetaDecisions | None = None
    moldables: dict[int, list[int]] = field(default_factory=dict)
    """The simulator's moldable ids of each job not started (a moldable is compared by its rank)."""


def _base(tmp_path: Path, nodes: int, cores: int, conf: dict[str, str]):
    """The platform's database (resources, the four queues) and its ``oar.conf``; copied for every round."""
    def queues(conn):
        add_queue(conn, "admin", QUEUES["admin"])
        add_queue(conn, "night", QUEUES["night"])
    return make_case(tmp_path, queues, resources=node_resources(nodes, cores), conf=conf, name="base")


def _write_state(run, url: str) -> None:
    """The simulation's jobs as OAR3's database holds them before a round (ids kept: jobs 1..N in order).

    A preempted besteffort job resubmitted is ``Terminated`` here, and its resubmission (an id after every
    workload id, issued in order) a new ``Waiting`` job -- as bipbip's ``resubmit_job`` leaves them: the copy
    keeps the submission time and names the job it resubmits (``resubmit_job_id``); kao does not resubmit.
    """
    sec = run.sim.config.job_security_time
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            for job_id in sorted(run.jobs):
                job = run.jobs[job_id]
                spec = job.spec
                kw = dict(request=spec.request, walltime=spec.walltime, queue=spec.queue, user=spec.user,
                          types=dict(spec.types), submission_time=spec.submit,
                          extra={"resubmit_job_id": job.resubmit_of or 0})
                if job.state == "running":
                    new = add_running_job(conn, start_time=job.start, resource_ids=job.resources,
                                          **{**kw, "walltime": job.scheduled.walltime})
                elif job.state == "reserved":
                    g = run.reserved_gantt[job_id]
                    new = add_reservation(conn, start_time=g.start_time, resource_ids=g.resources,
                                          **{**kw, "walltime": g.walltime - sec})
                elif job.state == "to_schedule":
                    new = add_job(conn, reservation="toSchedule", start_time=spec.reservation, **kw)
                elif job.state == "waiting":
                    new = add_job(conn, **kw)
                else:  # not submitted yet, or done: only the id is kept
                    new = add_job(conn, state="Terminated", **kw)
                assert new == job_id
    finally:
        eng.dispose()


def _simulate(tmp_path: Path, jobs: list[WorkloadJob], nodes: int, cores: int, conf: dict[str, str],
              monkeypatch, limit: int, split_groups: bool = False) -> tuple[list[Snapshot], OarConfig]:
    base = _base(tmp_path, nodes, cores, conf)
    config = OarConfig.load(base.conf)
    db = OarDatabase(base.url)
    with db.engine.connect() as conn:
        platform = read_platform(db, conn, config, properties=config.hierarchy_labels)
    db.engine.dispose()
    snapshots: list[Snapshot] = []
    original = simulator_module._SimRound.run
    search = Search(platform, SchedulerOptions(job_security_time=config.job_security_time))

    def spy(rnd):
        if len(snapshots) >= limit:
            return original(rnd)
        path = tmp_path / f"round-{len(snapshots)}.sqlite"
        shutil.copyfile(base.db, path)
        snap = Snapshot(rnd.now, f"sqlite:///{path}")
        _write_state(rnd.run_, snap.url)
        snap.moldables = {jid: [m.id for m in j.job.moldables] for jid, j in rnd.run_.jobs.items()
                          if j.job is not None and j.state != "running"}
        plain = _plain_round(rnd, search)
        snap.decisions = original(rnd)
        assert _summary(plain) == _summary(snap.decisions)
        snapshots.append(snap)
        return snap.decisions

    monkeypatch.setattr(simulator_module._SimRound, "run", spy)
    monkeypatch.setenv("OARDO_USER", "oar")  # kao frags besteffort jobs as OAR does
    # Killed besteffort jobs are resubmitted, as OAR3 resubmits idempotent ones: new jobs, new ids.
    sim = Simulator(platform, config=config, queues=QUEUES, requeue_besteffort=True)
    if split_groups:  # the simulator's old rule: each queue alone, even at equal priorities
        sim.groups = [[q] for group in sim.groups for q in group]
    result = sim.run(jobs)
    monkeypatch.setattr(simulator_module._SimRound, "run", original)
    assert result.check() == []
    return snapshots, config


def _plain_round(rnd, search: Search) -> MetaDecisions:
    """The engine's :class:`MemoryRound` alone on the simulation's state (no kept plan, its own search)."""
    run, st = rnd.run_, rnd.state
    state = MetaState(now=rnd.now, scheduled=run.scheduled_now(), groups=st.groups,
                      waiting={q: run.waiting_jobs(w) for q, w in run.waiting.items()},
                      new_reservations=st.new_reservations, accepted=st.accepted, besteffort=st.besteffort,
                      kill_duration=st.kill_duration, reservation_timeout=st.reservation_timeout)
    return MemoryRound(search, state, lambda queues: run.round_options(queues, rnd.now)).run()


def _summary(d: MetaDecisions) -> tuple:
    return (d.exit_code, [(g.id, g.start_time, sorted(g.resources)) for g in d.launched], [b.id for b in d.killed],
            {j: (g.start_time, g.resources) for j, g in d.accepted.items()}, sorted(d.refused),
            {j: (a.start_time, a.resources) for j, a in d.placed.items()})


def _kao_decisions(snap: Snapshot, config: OarConfig):
    """kao's round on a copy of the snapshot's database, and what it left there."""
    source = Path(snap.url.removeprefix("sqlite:///"))
    copy = source.with_name(f"{source.stem}-kao-{len(list(source.parent.glob(source.stem + '-kao-*')))}.sqlite")
    shutil.copyfile(source, copy)
    db = OarDatabase(f"sqlite:///{copy}")
    try:
        with _logging_restored():
            result = run_kao(db, config, snap.now, notify=False)
        with db.engine.connect() as conn:
            assigned = {}
            for jid, idx, rid in conn.execute(text(
                    "SELECT m.moldable_job_id, m.moldable_index, a.resource_id FROM assigned_resources a "
                    "JOIN moldable_job_descriptions m ON m.moldable_id = a.moldable_job_id "
                    "JOIN jobs j ON j.job_id = m.moldable_job_id WHERE j.state = 'toLaunch' "
                    "ORDER BY a.resource_id")):
                assigned.setdefault(int(jid), []).append(int(rid))
            moldable_ids = dict(conn.execute(text(
                "SELECT moldable_id, moldable_job_id FROM moldable_job_descriptions")).all())
            chosen = {int(j): int(m) for j, m in conn.execute(text(
                "SELECT job_id, assigned_moldable_job FROM jobs WHERE state = 'toLaunch'"))}
            gantt = read_gantt(conn)
            states = dict(conn.execute(text("SELECT job_id, state FROM jobs")).all())
    finally:
        db.engine.dispose()
    return result, assigned, chosen, moldable_ids, gantt, states


def _first_moldable(moldable_ids: dict[int, int]) -> dict[int, int]:
    first: dict[int, int] = {}
    for mld, job in sorted(moldable_ids.items()):
        first.setdefault(job, mld)
    return first


def check_round(snap: Snapshot, config: OarConfig) -> None:
    d = snap.decisions
    assert d is not None
    result, assigned, chosen, moldable_ids, gantt, states = _kao_decisions(snap, config)
    where = f"round at {snap.now} ({snap.url})"
    first = _first_moldable(moldable_ids)
    assert result.exit_code == d.exit_code, where
    assert result.killed == [b.id for b in d.killed], where
    assert sorted(result.accepted) == sorted(d.accepted), where
    assert sorted(result.refused) == sorted(d.refused), where
    for job_id, g in d.accepted.items():
        assert gantt[job_id] == (g.start_time, sorted(g.resources)), where
    assert sorted(result.launched) == [g.id for g in d.launched], where
    for g in d.launched:  # resources, and the moldable by its rank (the ids differ)
        assert assigned[g.id] == sorted(g.resources), where
        assert chosen[g.id] - first[g.id] == snap.moldables[g.id].index(g.moldable_id), where
    if d.exit_code != EXIT_BESTEFFORT_KILL:
        # the jobs placed later keep the predictions kao writes (the simulator plans them again next round)
        later = {jid: (a.start_time, sorted(a.resources)) for jid, a in d.placed.items()
                 if a.start_time > snap.now}
        assert {jid: gantt[jid] for jid in later if jid in gantt} == later, where
        assert all(states[jid] == "Waiting" for jid in later), where


@st.composite
def workloads(draw):
    nodes = draw(st.integers(2, 3))
    cores = draw(st.sampled_from([2, 4]))
    n = draw(st.integers(3, 9))
    jobs = []
    t = 1000  # room for reservations asked in the past, too old ones included
    for i in range(1, n + 1):
        t += draw(st.sampled_from([0, 0, 10, 60, 300]))
        queue = draw(st.sampled_from(["default", "default", "night", "admin", "besteffort", "besteffort"]))
        walltime = draw(st.sampled_from([100, 600, 1800]))
        runtime = draw(st.sampled_from([50, 100, 600, 2000]))
        reservation = None
        if queue != "besteffort" and draw(st.integers(0, 3)) == 0:
            reservation = max(0, t + draw(st.sampled_from([-1900, -700, -50, 0, 30, 200, 900])))
        jobs.append(WorkloadJob(id=i, submit=t, runtime=runtime, walltime=walltime, request=draw(
            st.sampled_from(REQUESTS)), queue=queue, user=f"u{draw(st.integers(1, 2))}", reservation=reservation))
    conf = {"SCHEDULER_JOB_SECURITY_TIME": str(draw(st.sampled_from([0, 60]))),
            "SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION": str(draw(st.sampled_from([0, 0, 300])))}
    return nodes, cores, jobs, conf


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(case=workloads())
def test_each_simulated_round_is_kaos_round(tmp_path_factory, monkeypatch, case):
    nodes, cores, jobs, conf = case
    tmp_path = tmp_path_factory.mktemp("parity")
    snapshots, config = _simulate(tmp_path, jobs, nodes, cores, conf, monkeypatch, limit=12)
    assert snapshots
    for snap in snapshots:
        check_round(snap, config)
    shutil.rmtree(tmp_path)


def _kinds(snapshots: list[Snapshot]) -> set[str]:
    out = set()
    for s in snapshots:
        d = s.decisions
        assert d is not None
        out |= {k for k, v in (("launch", d.launched), ("kill", d.killed), ("accept", d.accepted),
                               ("refuse", d.refused), ("exit1", d.exit_code == 1)) if v}
    return out


def test_a_round_of_every_kind_is_compared(tmp_path, monkeypatch):
    """One hand-made run meets every decision: launches, besteffort kills (exit 2), reservations accepted
    (one starting now: exit 1) and refused, two queues of equal priority."""
    jobs = [WorkloadJob(1, 0, 5000, 5000, "network_address=2", queue="besteffort"),
            WorkloadJob(2, 10, 100, 600, "core=2", queue="night"),  # kills 1, then starts with 3
            WorkloadJob(3, 10, 100, 600, "core=3", queue="default"),
            WorkloadJob(4, 20, 100, 600, "network_address=2", reservation=20),  # refused: 2 and 3 run
            WorkloadJob(5, 30, 100, 600, "core=2", reservation=30, queue="admin"),  # accepted, starts now
            WorkloadJob(6, 40, 5000, 5000, "core=1", queue="besteffort"),
            WorkloadJob(7, 50, 100, 600, "network_address=2", reservation=300)]  # accepted, kills 6 at 300
    snapshots, config = _simulate(tmp_path, jobs, 2, 4, {"SCHEDULER_JOB_SECURITY_TIME": "0"}, monkeypatch, 20)
    assert _kinds(snapshots) == {"launch", "kill", "accept", "refuse", "exit1"}
    for snap in snapshots:
        check_round(snap, config)


def test_the_comparison_sees_queues_of_equal_priority_scheduled_apart(tmp_path, monkeypatch):
    """Job 2 (night) comes before job 3 (default) in their group's FIFO order; scheduled queue by queue,
    job 3 would take the platform first."""
    jobs = [WorkloadJob(1, 0, 100, 100, "core=1"),
            WorkloadJob(2, 10, 100, 600, "network_address=2", queue="night"),
            WorkloadJob(3, 10, 100, 600, "network_address=2", queue="default")]
    conf = {"SCHEDULER_JOB_SECURITY_TIME": "0"}
    snapshots, config = _simulate(tmp_path / "group", jobs, 2, 4, conf, monkeypatch, 20)
    for snap in snapshots:
        check_round(snap, config)
    apart, config = _simulate(tmp_path / "apart", jobs, 2, 4, conf, monkeypatch, 20, split_groups=True)
    with pytest.raises(AssertionError):
        for snap in apart:
            check_round(snap, config)


@pytest.mark.parametrize("side", ["simulator", "kao"])
def test_the_comparison_fails_when_one_side_drifts(tmp_path, monkeypatch, side):
    """Break one side's rule (the besteffort kill order, a reservation's start): the comparison sees it."""
    jobs = [WorkloadJob(1, 0, 5000, 5000, "core=2", queue="besteffort"),
            WorkloadJob(2, 0, 5000, 5000, "core=2", queue="besteffort"),
            WorkloadJob(3, 0, 5000, 5000, "core=4", queue="besteffort"),
            WorkloadJob(4, 100, 100, 600, "network_address=2")]
    snapshots, config = _simulate(tmp_path, jobs, 2, 4, {"SCHEDULER_JOB_SECURITY_TIME": "0"}, monkeypatch, 20)
    kill = next(s for s in snapshots if s.decisions is not None and s.decisions.killed)
    check_round(kill, config)
    assert kill.decisions is not None and len(kill.decisions.killed) == 3
    if side == "simulator":
        kill.decisions.killed.reverse()
    else:
        from oarsched.engine import meta

        original = meta.besteffort_to_kill
        monkeypatch.setattr(meta, "besteffort_to_kill", lambda c, b: list(reversed(original(c, b))))
    with pytest.raises(AssertionError):
        check_round(kill, config)


def test_a_resubmission_is_a_new_waiting_job_for_kao(tmp_path, monkeypatch):
    """Besteffort job 1, killed for job 3, is resubmitted as job 4: kao's database holds job 1 ended and job 4
    waiting, with job 1's submission time, behind job 2 (requeued under its own id, job 1 came back first and
    the two besteffort jobs killed each other without end)."""
    jobs = [WorkloadJob(1, 1000, 90, 100, "resource_id=3", queue="besteffort"),
            WorkloadJob(2, 1010, 50, 1800, "network_address=1", queue="besteffort"),
            WorkloadJob(3, 1010, 2000, 600, "network_address=2/core=1")]
    conf = {"SCHEDULER_JOB_SECURITY_TIME": "60", "SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION": "300"}
    snapshots, config = _simulate(tmp_path, jobs, 3, 2, conf, monkeypatch, 20)
    assert {"launch", "kill"} <= _kinds(snapshots)
    launched = [(s.now, g.id) for s in snapshots if s.decisions is not None for g in s.decisions.launched]
    assert (1010, 2) in launched and (1060, 4) in launched
    with_copy = [s for s in snapshots if 4 in _rows(s)]
    assert with_copy and all(_rows(s)[4] == ("Waiting", 1000, 1) for s in with_copy if s.now < 1060)
    for snap in snapshots:
        check_round(snap, config)


def _rows(snap: Snapshot) -> dict[int, tuple[str, int, int]]:
    eng = create_engine(snap.url)
    try:
        with eng.connect() as conn:
            return {int(j): (s, int(t), int(r)) for j, s, t, r in conn.execute(text(
                "SELECT job_id, state, submission_time, resubmit_job_id FROM jobs"))}
    finally:
        eng.dispose()
