"""Faults: the scheduler killed while it writes, the database connection dropped mid-round, SCHEDULER_TIMEOUT.

The kill tests run ``oarsched-kamelot`` for real on a benchmark workload
(10,000 resources; 100 jobs, about 530,000 gantt rows whose write takes a
few tenths of a second -- 500 jobs and 2.5 million rows in the ``slow``
form) with two running jobs added, SIGKILL it at random points (mostly
while it writes), then check that the gantt tables and ``jobs.message`` hold
exactly the state before the round or exactly the state after a complete
round -- on SQLite and on PostgreSQL.  The default run kills
:data:`KILLS` times per backend; the ``slow`` variant :data:`KILLS_SLOW` times.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from oarsched.oar.config import OarConfig
from oarsched.oar.db import OarDatabase
from oarsched.oar.kamelot import Deadline, schedule_queue
from oarsched.oar.submit import add_job, add_running_job
from tests.conftest import require_shared
from tests.oarcase import NOW as CASE_NOW
from tests.oarcase import conf_for_url, make_case
from tests.pgserver import copy_sqlite_to_pg

WORKLOAD = "nodeonly-10k-100"
WORKLOAD_SLOW = "nodeonly-10k-500"
KILLS = 10
KILLS_SLOW = 100
WAIT = 300.0
"""Seconds to wait for an event that takes well under one (a guard against hanging, never an assertion)."""

RUNNING = [(list(range(1, 51)), 7200), (list(range(9001, 9101)), 3600)]
"""Running jobs added to the workload (resource ids, walltime), so that 'before' has gantt rows."""


# ------------------------------------------------------------------------------- state
@dataclass(frozen=True)
class State:
    """What a round writes: predictions, an exact fingerprint of the resource rows, job messages."""

    predictions: tuple
    resources: tuple
    jobs: tuple


def read_state(conn: Connection) -> State:
    preds = conn.execute(text(
        "SELECT moldable_job_id, start_time FROM gantt_jobs_predictions ORDER BY moldable_job_id")).all()
    # count and moments of (moldable, resource): a strict subset of the rows cannot match both sums
    res = conn.execute(text(
        "SELECT count(*), sum(moldable_job_id), sum(resource_id), sum(moldable_job_id * resource_id), "
        "sum(resource_id * resource_id) FROM gantt_jobs_resources")).one()
    jobs = conn.execute(text("SELECT job_id, message, last_karma FROM jobs ORDER BY job_id")).all()
    return State(tuple(map(tuple, preds)), tuple(res), tuple(map(tuple, jobs)))


# ----------------------------------------------------------------------------- process
class Run:
    """``oarsched-kamelot`` as a child process whose stderr is read as it comes."""

    def __init__(self, conf: Path, cwd: Path, argv: list[str]) -> None:
        env = dict(os.environ, OARCONFFILE=str(conf))
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "oarsched.oar.kamelot", *argv], env=env, cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.writing = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "writing" in line and "decisions" in line:
                self.writing.set()
        self.writing.set()  # also on exit, so that a waiter never hangs

    def kill(self) -> bool:
        """SIGKILL; True when the process was still running."""
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.wait()
        return alive

    def wait(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


# ---------------------------------------------------------------------------- workload
class Workload:
    """The benchmark workload plus running jobs, on SQLite or PostgreSQL, with its before/after states."""

    def __init__(self, tmp_path: Path, url: str | None, name: str = WORKLOAD) -> None:
        src = require_shared() / "bench" / name
        self.argv = [str(a) for a in json.loads((src / "case.json").read_text())["argv"]]
        self.now = int(self.argv[1])
        self.dir = tmp_path / name
        self.dir.mkdir()
        self.pristine = self.dir / "pristine.sqlite"
        shutil.copyfile(src / "before.sqlite", self.pristine)
        self.pristine.chmod(0o644)
        self._add_running_jobs(f"sqlite:///{self.pristine}")
        if url is None:
            self.db: Path | None = self.dir / "oar.sqlite"
            shutil.copyfile(self.pristine, self.db)
            self.url = f"sqlite:///{self.db}"
        else:
            self.db = None
            self.url = url
            copy_sqlite_to_pg(self.pristine, url)
        self.engine = create_engine(self.url)
        self.conf = self.dir / "oar.conf"
        conf = [ln for ln in (src / "oar.conf").read_text().splitlines() if not ln.startswith(("DB_", "LOG_LEVEL"))]
        conf += [f'{k}="{v}"' for k, v in conf_for_url(self.url).items()] + ['LOG_LEVEL="2"']
        self.conf.write_text("\n".join(conf) + "\n")
        with self.engine.connect() as conn:
            self.before = read_state(conn)
            self._before_rows = {t: conn.execute(text(f"SELECT * FROM {t}")).mappings().all()
                                 for t in ("gantt_jobs_predictions", "gantt_jobs_resources")}
        self.after, self.write_seconds = self._reference_round()

    def _add_running_jobs(self, url: str) -> None:
        eng = create_engine(url)
        try:
            with eng.begin() as conn:
                for rids, walltime in RUNNING:
                    add_running_job(conn, start_time=self.now - 600, resource_ids=rids,
                                    request=f"resource_id={len(rids)}", walltime=walltime)
        finally:
            eng.dispose()

    def _reference_round(self) -> tuple[State, float]:
        run = self.start()
        assert run.wait() == 0, run.stderr
        m = re.search(r"write (\d+\.\d+)s", run.stderr)
        assert m, run.stderr
        after = self.state()
        assert after != self.before
        self.restore()
        assert self.state() == self.before
        return after, float(m.group(1))

    def start(self) -> Run:
        return Run(self.conf, self.dir, self.argv)

    def state(self) -> State:
        with self.engine.connect() as conn:
            return read_state(conn)

    def settle(self) -> None:
        """Wait until the killed scheduler is gone from the server (PostgreSQL rolls its transaction back)."""
        if self.db is not None:
            return
        deadline = time.monotonic() + WAIT
        with self.engine.connect() as conn:
            while conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalar():
                assert time.monotonic() < deadline, "the killed scheduler's backend never went away"
                time.sleep(0.05)
                conn.rollback()

    def integrity(self) -> str:
        if self.db is None:
            return "ok"
        with self.engine.connect() as conn:
            return conn.execute(text("PRAGMA integrity_check")).scalar()

    def restore(self) -> None:
        """Back to the state before the round."""
        if self.db is not None:
            self.engine.dispose()
            for suffix in ("-journal", "-wal", "-shm"):
                Path(str(self.db) + suffix).unlink(missing_ok=True)
            shutil.copyfile(self.pristine, self.db)
            return
        with self.engine.begin() as conn:
            conn.execute(text("TRUNCATE gantt_jobs_resources, gantt_jobs_predictions"))
            for table, rows in self._before_rows.items():
                if rows:
                    conn.execute(text(f"INSERT INTO {table} ({', '.join(rows[0].keys())}) VALUES "
                                      f"({', '.join(':' + k for k in rows[0].keys())})"), [dict(r) for r in rows])
            conn.execute(text("UPDATE jobs SET message = :m, last_karma = :k WHERE job_id = :j"),
                         [{"j": j, "m": m, "k": k} for j, m, k in self.before.jobs])

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str | None:
    """None for SQLite, else the URL of a fresh PostgreSQL database."""
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else None


@contextmanager
def workload(tmp_path: Path, url: str | None, name: str = WORKLOAD) -> Iterator[Workload]:
    w = Workload(tmp_path, url, name)
    try:
        yield w
    finally:
        w.close()


# ------------------------------------------------------------------------------ kills
def kill_many(w: Workload, kills: int, rng: random.Random) -> dict[str, int]:
    """Kill ``kills`` rounds at random points; each must leave 'before' or 'after'. Returns the outcome counts."""
    outcomes = {"before": 0, "after": 0}
    for trial in range(kills):
        run = w.start()
        if trial % 4 == 3:  # anywhere in the process's life (start, read, schedule, write, exit)
            delay = rng.uniform(0, 1.5 * (w.write_seconds + 1.0))
            where = f"{delay:.3f}s after start"
        else:  # while writing: the first trial right as the write begins
            assert run.writing.wait(WAIT), run.stderr
            delay = 0.0 if trial == 0 else rng.uniform(0, 1.2 * w.write_seconds)
            where = f"{delay:.3f}s into the write"
        time.sleep(delay)
        alive = run.kill()
        w.settle()
        state = w.state()
        what = f"trial {trial}: killed {where} (alive: {alive})"
        assert w.integrity() == "ok", what
        assert state in (w.before, w.after), f"{what}: the gantt holds a partial round"
        if state == w.after:
            outcomes["after"] += 1
            w.restore()
        else:
            outcomes["before"] += 1  # no restore: the next round runs on what the kill left
    return outcomes


def check_kills(w: Workload, kills: int) -> None:
    seed = int(os.environ.get("OARSCHED_FAULT_SEED", random.randrange(2**32)))
    outcomes = kill_many(w, kills, random.Random(seed))
    assert outcomes["before"] >= 1, (seed, outcomes)  # the first trial kills as the write begins
    run = w.start()  # and the database still works: a full round gives the whole new state
    assert run.wait() == 0, run.stderr
    assert w.state() == w.after, seed


def test_sigkill_while_writing(tmp_path: Path, backend: str | None):
    with workload(tmp_path, backend) as w:
        check_kills(w, KILLS)


@pytest.mark.slow
def test_sigkill_while_writing_many_times(tmp_path: Path, backend: str | None):
    with workload(tmp_path, backend, WORKLOAD_SLOW) as w:
        check_kills(w, KILLS_SLOW)


# ---------------------------------------------------------------------- connection drop
def _terminate_scheduler_backends(w: Workload, admin_url: str) -> int:
    """pg_terminate_backend on every client of the workload's database: the scheduler's connections only."""
    w.engine.dispose()  # our own pooled connections are closed first
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"),
                {"db": w.engine.url.database}).all())
    finally:
        eng.dispose()


def _wait_for_backend(w: Workload, run: Run) -> None:
    deadline = time.monotonic() + WAIT
    with w.engine.connect() as conn:
        while not conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalar():
            assert run.proc.poll() is None and time.monotonic() < deadline, run.stderr
            time.sleep(0.01)
            conn.rollback()


@pytest.mark.postgres
@pytest.mark.parametrize("when", ["writing", "connected"])
def test_connection_dropped_mid_round(tmp_path: Path, pg_server: str, pg_url: str, when: str):
    """pg_terminate_backend on the scheduler's connection: exit 1, one clean line, nothing written."""
    with workload(tmp_path, pg_url) as w:
        run = w.start()
        if when == "writing":
            assert run.writing.wait(WAIT), run.stderr
        else:
            _wait_for_backend(w, run)
        terminated = _terminate_scheduler_backends(w, pg_server)
        code = run.wait()
        if terminated == 0 or code == 0:  # the round ended first (not seen in practice): it must be whole
            assert w.state() in (w.before, w.after)
            pytest.skip("the scheduler finished before its connection could be terminated")
        assert code == 1, run.stderr
        assert "Traceback" not in run.stderr
        errors = [ln for ln in run.stderr.splitlines() if ln.startswith("oarsched-kamelot:")]
        assert len(errors) == 1, run.stderr
        assert re.match(r"oarsched-kamelot: error: .*(terminating connection|connection .*closed|closed the connection)",
                        errors[0], re.I), errors[0]
        assert "[SQL" not in errors[0] and len(errors[0]) < 500, errors[0]
        w.settle()
        assert w.state() == w.before


# ---------------------------------------------------------------------- SCHEDULER_TIMEOUT
def _timeout_case(tmp_path: Path, **conf: str):
    """Fourteen jobs of several shapes (one depends on another) on 2 nodes x 4 cores."""
    def setup(conn: Connection) -> None:
        first = add_job(conn, request="resource_id=3", walltime=300)
        for i in range(12):
            add_job(conn, request=["network_address=1", "resource_id=2", "network_address=1/core=3"][i % 3],
                    walltime=100 + 50 * i)
        add_job(conn, request="network_address=2", walltime=50, dependencies=[first])
    return make_case(tmp_path, setup, conf=conf)


class CountingClock:
    """A clock that moves one tick per reading."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _round(case, deadline: Deadline | None):
    config = OarConfig.load(case.conf)
    db = OarDatabase(case.url)
    try:
        return schedule_queue(db, config, "default", CASE_NOW, write=False, deadline=deadline)
    finally:
        db.engine.dispose()


def test_deadline_cuts_the_round_to_a_prefix(tmp_path: Path):
    """Wherever the deadline falls, the jobs considered are a prefix of the order, placed as in the full round."""
    case = _timeout_case(tmp_path)
    full = _round(case, None)
    order = [j.id for j in full.jobs]
    assert len(full.result.assignments) >= 10
    seen_cuts = set()
    for ticks in range(3 * len(order)):
        report = _round(case, Deadline(at=ticks, clock=CountingClock()))
        considered = [j for j in order if j not in report.not_considered]
        assert considered == order[: len(considered)] and len(considered) >= 1, ticks
        assert report.not_considered == order[len(considered):]
        seen_cuts.add(len(considered))
        for jid in considered:
            if jid in full.result.assignments:
                a, b = report.result.assignments[jid], full.result.assignments[jid]
                assert (a.start_time, a.moldable_id, a.resources) == (b.start_time, b.moldable_id, b.resources)
            else:
                assert jid in report.result.unscheduled
        for jid in report.not_considered:
            assert report.result.unscheduled[jid].startswith("not considered")
    assert len(seen_cuts) > 3  # the cut really moved through the round


def test_expired_deadline_still_considers_the_first_job(tmp_path: Path):
    case = _timeout_case(tmp_path)
    report = _round(case, Deadline(at=float("-inf")))
    first = report.jobs[0].id
    assert list(report.result.assignments) == [first]
    assert report.not_considered == [j.id for j in report.jobs[1:]]


@pytest.mark.parametrize("timeout, placed", [("0.000001", 1), ("0", 14), ("-1", 14), ("3600", 14)])
def test_scheduler_timeout_end_to_end(tmp_path: Path, timeout: str, placed: int):
    """SCHEDULER_TIMEOUT from oar.conf: a tiny one leaves time for the first job only; <= 0 means none."""
    case = _timeout_case(tmp_path, SCHEDULER_TIMEOUT=timeout)
    out = case.run()
    assert out.code == 0, out.stderr
    gantt = case.gantt()
    assert len(gantt) == placed
    if placed == 1:
        assert list(gantt) == [1]
        assert re.search(r"SCHEDULER_TIMEOUT=1e-06s: placement stops after 5e-07s: 13 of 14 jobs not considered "
                         r"this round \(first: 2, 3, 4", out.stderr), out.stderr
        full = _timeout_case(tmp_path / "full")
        assert full.run().code == 0
        assert full.gantt()[1] == gantt[1]
    else:
        assert "jobs not considered" not in out.stderr

