"""Reading OAR3's database into the model, and writing decisions back.

Everything here is SQLAlchemy 2.0 Core over the reflected OAR3 schema, so the
site-specific columns of ``resources`` (hierarchy labels, properties) are
seen as they are.  No text coming from jobs or from the configuration is
pasted into SQL: property expressions are parsed
(:mod:`oarsched.model.properties`) and the resource order is a list of
checked column names.
"""
from __future__ import annotations

import gc
import logging
import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np
from sqlalchemy import (
    ARRAY,
    Engine,
    Integer,
    Select,
    any_,
    asc,
    bindparam,
    create_engine,
    desc,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from oarsched.engine.scheduler import ScheduledJob, ScheduleResult
from oarsched.errors import DatabaseError, JobError
from oarsched.model.job import Dependency, Job, Moldable, ResourceGroup, parse_job_types
from oarsched.model.platform import MAX_TIME, Resource
from oarsched.oar.property_sql import to_sqlalchemy
from oarsched.oar.round_support import first_line

if TYPE_CHECKING:
    from oarsched.oar.metadb import GanttMemo

log = logging.getLogger("oarsched.db")

RESOURCE_CORE_COLUMNS = ("resource_id", "type", "state", "available_upto")

# SQLite's scratch tables for the gantt write (temporary: private to the connection)
_RANGES = "temp.oarsched_gantt_ranges"
_OFFSETS = "temp.oarsched_offsets"
_JOB_VALUES = "temp.oarsched_job_values"


GIVEN_UP_MARK = "oarsched: given up"
"""Start of ``jobs.scheduler_info`` for a job a round gave up on: the next rounds place it after the others."""

ROUND_LOCK_KEY = 0x6F61727363686564
"""PostgreSQL advisory lock of the scheduling rounds ("oarsched" in ASCII)."""


class RoundLocked(DatabaseError):
    """Another scheduling round held the database's round lock for the whole wait."""

    def __init__(self, waited: float | None) -> None:
        self.waited = waited
        super().__init__("another scheduling round is running on this database"
                         + (f" (waited {waited:.3g}s for it)" if waited is not None else ""))


@dataclass
class JobRows:
    """Waiting jobs read from the database, and the ones that could not be read."""

    jobs: list[Job] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    message_info: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    """job id -> (job_type, queue, name) for ``jobs.message``."""


class OarDatabase:
    """An OAR3 database (SQLite or PostgreSQL) seen through SQLAlchemy."""

    def __init__(self, url_or_engine: str | Engine, *, budget: float | None = None, pre_ping: bool = False) -> None:
        """``budget``: seconds any lock wait or statement may take, from the schema's reflection on
        (PostgreSQL's ``lock_timeout`` / ``statement_timeout``, SQLite's busy timeout); None: no limit.
        ``pre_ping``: test a pooled connection before each use (a database kept open between rounds
        outlives server restarts)."""
        from oarsched.oar.schema import reflect_tables

        if isinstance(url_or_engine, str):
            _sqlite_file_exists(url_or_engine)
            self.engine = create_engine(url_or_engine, connect_args=_timeout_args(url_or_engine, budget),
                                        pool_pre_ping=pre_ping)
        else:
            self.engine = url_or_engine
        try:
            with self.engine.connect() as conn:
                self.tables = reflect_tables(conn)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot open the OAR database ({self.engine.url.render_as_string(hide_password=True)}): "
                                f"{exc.__class__.__name__}: {first_line(exc)}") from None
        self.dialect = self.engine.dialect.name
        self.gantt_memo: GanttMemo | None = None
        """What this process's last round left in the gantt (a resident server's; see :class:`GanttMemo`)."""

    # -- the round's transaction ----------------------------------------------------------
    @contextmanager
    def round_transaction(self, budget: float | None = None) -> Iterator[Connection]:
        """The transaction of one scheduling round, holding the database's round lock from its start.

        One round at a time per database, whatever the queue: two rounds that
        read the same free resources would both place jobs on them.
        PostgreSQL: a transaction-level advisory lock taken before the first
        read.  SQLite: ``BEGIN IMMEDIATE`` (the write lock) before the first
        read, so that the reads are inside the write transaction.  A round
        waits for the lock at most ``budget`` seconds (None: forever), then
        raises :class:`RoundLocked`.  On PostgreSQL ``budget`` also bounds
        every lock wait (``lock_timeout``) and every statement
        (``statement_timeout``): a table lock held by someone else cannot
        hang the round.  The transaction commits when the block ends, and
        rolls back on an exception.
        """
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                # the driver's own transaction handling would begin lazily, at the first write
                conn.execution_options(isolation_level="AUTOCOMMIT")
                ms = 0 if budget is None else max(1, int(budget * 1000))
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {ms if budget is not None else 2**31 - 1}")
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    raise RoundLocked(budget) from None
                try:
                    yield conn
                except BaseException:
                    if conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                        conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            return
        with self.engine.begin() as conn:
            self.prepare_round(conn, budget)
            try:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROUND_LOCK_KEY})
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) not in ("55P03", "57014"):  # lock_not_available, query_canceled
                    raise
                raise RoundLocked(budget) from None
            yield conn

    def prepare_round(self, conn: Connection, budget: float | None = None) -> None:
        """Settings of the round's transaction, before its first read (PostgreSQL; ``SET LOCAL``
        ends with the transaction).

        ``lock_timeout`` and ``statement_timeout``: ``budget`` seconds (None: no limit).

        No nested-loop joins: the round's reads are bulk reads of whole queues;
        without fresh statistics (a burst of submissions before autovacuum's
        analyze) the planner's default selectivities choose nested loops over
        bitmap scans that make them quadratic (70,000 waiting jobs: 260 s
        instead of 0.4 s).

        No JIT compilation (PostgreSQL 11+): the round's statements are many
        and short, and their cost estimates (the scratch gantt table has no
        statistics) cross the JIT thresholds: compiling one UPDATE of
        ``jobs.start_time`` took 0.45 s of a 0.5 s statement.
        """
        if self.dialect != "postgresql":
            return
        conn.execute(text("SET LOCAL enable_nestloop = off"))
        if (conn.dialect.server_version_info or (0,)) >= (11,):
            conn.execute(text("SET LOCAL jit = off"))
        if budget is not None:
            ms = max(1, int(budget * 1000))
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")

    # -- resources ---------------------------------------------------------------------
    def read_resources(self, conn: Connection, order_terms: Sequence[tuple[str, str, str | None]],
                       properties: Sequence[str] | None = None) -> list[Resource]:
        """All resources in scheduling order (``SCHEDULER_RESOURCE_ORDER``, evaluated by the database).

        ``properties``: the columns to read into :attr:`Resource.properties`
        (the hierarchy labels, for a round whose property expressions the
        database evaluates); None reads every site column.  Fewer columns is
        most of the speed: 200,000 rows of OAR3's twenty columns are four
        million values to decode.
        """
        t = self.tables["resources"]
        order = []
        for column, direction, nulls in order_terms:
            if column not in t.c and self.dialect == "sqlite":  # SQLite's names ignore case
                column = next((c for c in t.c.keys() if c.lower() == column.lower()), column)
            if column not in t.c:
                raise DatabaseError(f"SCHEDULER_RESOURCE_ORDER names column {column!r} that resources has not")
            expr = desc(t.c[column]) if direction.upper() == "DESC" else asc(t.c[column])
            if nulls:
                expr = expr.nulls_first() if nulls.upper() == "FIRST" else expr.nulls_last()
            order.append(expr)
        if properties is None:
            props = [c for c in t.c.keys() if c not in RESOURCE_CORE_COLUMNS]
        else:
            props = list(dict.fromkeys(c for c in properties if c in t.c and c not in RESOURCE_CORE_COLUMNS))
        columns = [*RESOURCE_CORE_COLUMNS, *props]
        resources = []
        with gc_paused():
            rows = conn.execute(select(*(t.c[c] for c in columns)).order_by(*order)).all()
            for row in rows:
                rid, rtype, state, upto = row[:4]
                try:
                    rid = checked_int(rid, "resources.resource_id", 1, INT32_MAX)
                    resources.append(Resource(
                        id=rid,
                        state=state,  # NULL or not text: an unknown state, not schedulable (kamelot's screening)
                        type=checked_text(rtype, "resources.type", "default"),
                        available_upto=checked_int(upto, "resources.available_upto", INT32_MIN, INT32_MAX,
                                                   null=INT32_MAX),
                        properties=dict(zip(props, row[4:])),
                    ))
                except BadValue as exc:
                    log.error("resource %r: %s; resource skipped", rid, exc)
        return resources

    def resource_ids_matching(self, conn: Connection, expr) -> list[int]:
        """Resource ids selected by a parsed property expression (bound parameters only)."""
        t = self.tables["resources"]
        stmt = select(t.c.resource_id)
        if expr is not None:
            stmt = stmt.where(to_sqlalchemy(expr, t))
        return [int(r[0]) for r in conn.execute(stmt)]

    # -- waiting jobs --------------------------------------------------------------------
    def read_waiting_jobs(self, conn: Connection, queues: Sequence[str], nodes_label: str = "network_address",
                          reservation: str = "None") -> JobRows:
        """The queues' waiting jobs (not reservations), by job id, with moldables, types and dependencies.

        ``reservation="toSchedule"``: the new advance reservations instead (the meta-scheduler's).
        """
        jobs_t = self.tables["jobs"]
        waiting = (jobs_t.c.state == "Waiting", jobs_t.c.reservation == reservation,
                   jobs_t.c.queue_name.in_(list(queues)))
        rows = conn.execute(
            select(jobs_t.c.job_id, jobs_t.c.job_user, jobs_t.c.project, jobs_t.c.job_name, jobs_t.c.queue_name,
                   jobs_t.c.properties, jobs_t.c.submission_time, jobs_t.c.job_type)
            .where(*waiting)
            .order_by(jobs_t.c.job_id)
        ).all()
        if not rows:
            return JobRows()
        # the related rows are selected by the same condition, as a subquery: one
        # parameter per job id would exceed PostgreSQL's 65,535 for a long queue
        ids = select(jobs_t.c.job_id).where(*waiting)
        bad: dict[int, str] = {}  # job id -> the first bad value found in its rows
        with gc_paused():
            return self._make_jobs(rows, self._read_moldables(conn, ids, bad), self.read_types(conn, ids, bad),
                                   self._read_dependencies(conn, ids, bad), bad)

    def read_given_up(self, conn: Connection, queues: Sequence[str]) -> frozenset[int]:
        """Waiting jobs of ``queues`` an earlier round gave up on (marked in ``jobs.scheduler_info``)."""
        jobs_t = self.tables["jobs"]
        if "scheduler_info" not in jobs_t.c:
            return frozenset()
        return frozenset(conn.execute(
            select(jobs_t.c.job_id).where(jobs_t.c.state == "Waiting", jobs_t.c.queue_name.in_(list(queues)),
                                          jobs_t.c.scheduler_info.startswith(GIVEN_UP_MARK, autoescape=True))
        ).scalars())

    def mark_given_up(self, conn: Connection, marks: dict[int, str]) -> None:
        """Write ``jobs.scheduler_info`` of jobs given up on (``marks``: id -> why; "" clears the mark)."""
        if "scheduler_info" in self.tables["jobs"].c:
            self.update_jobs(conn, "scheduler_info",
                             {jid: f"{GIVEN_UP_MARK}: {why}"[:255] if why else "" for jid, why in marks.items()})

    def _make_jobs(self, rows, moldables: dict[int, list[Moldable]], types: dict[int, dict[str, str]],
                   deps: dict[int, list[Dependency]], bad: dict[int, str]) -> JobRows:
        out = JobRows()
        for jid, user, project, name, queue, properties, submitted, job_type in rows:
            try:
                if jid in bad:
                    raise JobError(jid, bad[jid])
                mlds = moldables.get(jid)
                if not mlds:
                    raise JobError(jid, "no current moldable description (moldable_job_descriptions/job_resource_groups)")
                job = Job(
                    id=jid, moldables=mlds, user=checked_text(user, "jobs.job_user"),
                    project=checked_text(project, "jobs.project"), name=checked_text(name, "jobs.job_name"),
                    queue=queue, types=types.get(jid, {}),
                    properties=checked_text(properties, "jobs.properties"), dependencies=deps.get(jid, []),
                    submission_time=checked_int(submitted, "jobs.submission_time", 0, INT32_MAX, null=0),
                    job_type=checked_text(job_type, "jobs.job_type", "PASSIVE"),
                )
            except BadValue as bad_value:
                exc = JobError(jid, str(bad_value))
                log.error("%s; job skipped", exc)
                out.errors[jid] = exc.message
                continue
            except JobError as exc:
                log.error("%s; job skipped", exc)
                out.errors[jid] = exc.message
                continue
            out.jobs.append(job)
            out.message_info[jid] = (job.job_type, job.queue, job.name)
        return out

    def _read_moldables(self, conn: Connection, ids: Select, bad: dict[int, str]) -> dict[int, list[Moldable]]:
        m = self.tables["moldable_job_descriptions"]
        g = self.tables["job_resource_groups"]
        d = self.tables["job_resource_descriptions"]
        stmt = (
            select(m.c.moldable_job_id, m.c.moldable_id, m.c.moldable_walltime, g.c.res_group_id,
                   g.c.res_group_property, d.c.res_job_resource_type, d.c.res_job_value)
            .join(g, g.c.res_group_moldable_id == m.c.moldable_id)
            .join(d, d.c.res_job_group_id == g.c.res_group_id)
            .where(m.c.moldable_index == "CURRENT", g.c.res_group_index == "CURRENT",
                   d.c.res_job_index == "CURRENT", m.c.moldable_job_id.in_(ids))
            .order_by(m.c.moldable_id, g.c.res_group_id, d.c.res_job_order)
        )
        by_job: dict[int, dict[int, Moldable]] = defaultdict(dict)
        groups: dict[int, ResourceGroup] = {}
        for jid, mid, walltime, gid, prop, level, value in conn.execute(stmt).all():
            if jid in bad:
                continue
            try:
                mld = by_job[jid].get(mid)
                if mld is None:
                    # NULL is kept for validate_job to name; 64-bit range: beyond 2**31 the job "never fits"
                    walltime = checked_int(walltime, "moldable_job_descriptions.moldable_walltime",
                                           INT64_MIN, INT64_MAX, null=None)
                    mld = by_job[jid][mid] = Moldable(id=mid, walltime=walltime, groups=[])
                grp = groups.get(gid)
                if grp is None:
                    grp = groups[gid] = ResourceGroup(
                        levels=[], property=checked_text(prop, "job_resource_groups.res_group_property"))
                    mld.groups.append(grp)
                grp.levels.append((checked_text(level, "job_resource_descriptions.res_job_resource_type", None),
                                   checked_int(value, "job_resource_descriptions.res_job_value",
                                               INT32_MIN, INT32_MAX, null=0)))
            except BadValue as exc:
                bad[jid] = str(exc)
        return {jid: list(mlds.values()) for jid, mlds in by_job.items()}  # rows come by moldable id

    def read_types(self, conn: Connection, ids: Select | Sequence[int],
                   bad: dict[int, str] | None = None) -> dict[int, dict[str, str]]:
        """Types of the jobs ``ids`` selects; a job with a bad type row goes to ``bad`` (id -> why)."""
        bad = {} if bad is None else bad
        t = self.tables["job_types"]
        stmt = select(t.c.job_id, t.c.type).where(t.c.job_id.in_(ids)).order_by(t.c.job_type_id)
        raw: dict[int, list[str]] = defaultdict(list)
        for jid, value in conn.execute(stmt).all():
            try:
                raw[jid].append(checked_text(value, "job_types.type"))
            except BadValue as exc:
                bad.setdefault(jid, str(exc))
        return {jid: parse_job_types(values) for jid, values in raw.items()}

    def _read_dependencies(self, conn: Connection, ids: Select, bad: dict[int, str]) -> dict[int, list[Dependency]]:
        dep = self.tables["job_dependencies"]
        jobs_t = self.tables["jobs"]
        stmt = (
            select(dep.c.job_id, dep.c.job_id_required, jobs_t.c.state, jobs_t.c.exit_code)
            .join(jobs_t, jobs_t.c.job_id == dep.c.job_id_required, isouter=True)
            .where(dep.c.job_dependency_index == "CURRENT", dep.c.job_id.in_(ids))
            .order_by(dep.c.job_id, dep.c.job_id_required)
        )
        out: dict[int, list[Dependency]] = defaultdict(list)
        for jid, required, state, exit_code in conn.execute(stmt).all():
            try:
                out[jid].append(Dependency(
                    checked_int(required, "job_dependencies.job_id_required", 1, INT32_MAX),
                    checked_text(state, "jobs.state", "Unknown"),
                    checked_int(exit_code, "jobs.exit_code", INT32_MIN, INT32_MAX, null=None)))
            except BadValue as exc:
                bad.setdefault(jid, str(exc))
        return out

    # -- jobs already in the gantt ---------------------------------------------------------
    def read_scheduled_jobs(self, conn: Connection, now: int) -> list[ScheduledJob]:
        """Every job with gantt rows (running jobs, reservations, earlier queues' decisions).

        Two reads: one row per predicted job, then the (moldable, resource) pairs alone; one joined row per
        resource repeated the job's columns tens of thousands of times.
        """
        jobs_t = self.tables["jobs"]
        gp = self.tables["gantt_jobs_predictions"]
        gr = self.tables["gantt_jobs_resources"]
        m = self.tables["moldable_job_descriptions"]
        predicted = (
            select(jobs_t.c.job_id, jobs_t.c.state, jobs_t.c.suspended, jobs_t.c.job_user, jobs_t.c.project,
                   jobs_t.c.queue_name, jobs_t.c.job_name, jobs_t.c.start_time.label("job_start"),
                   gp.c.moldable_job_id, gp.c.start_time, m.c.moldable_walltime)
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(jobs_t, jobs_t.c.job_id == m.c.moldable_job_id)
            .where(m.c.moldable_index == "CURRENT", has_gantt_resources(gr, gp.c.moldable_job_id))
            .order_by(gp.c.start_time, jobs_t.c.job_id)
        )
        jobs: dict[int, ScheduledJob] = {}
        suspended_ids = []
        for row in conn.execute(predicted):
            jid = row.job_id
            if jid in jobs:  # a job predicted twice (two CURRENT moldables): its first row, as before
                continue
            start = _gantt_start(row, now)
            jobs[jid] = ScheduledJob(
                id=jid, start_time=start, walltime=_gantt_walltime(row, start), resources=[],
                moldable_id=row.moldable_job_id, user=_text_or(row.job_user, ""),
                project=_text_or(row.project, ""), queue=_text_or(row.queue_name, ""),
                name=_text_or(row.job_name, ""), state=_text_or(row.state, ""),
            )
            if row.suspended == "YES":
                suspended_ids.append(jid)
        if not jobs:
            return []
        held = self.gantt_resources(conn, [sj.moldable_id for sj in jobs.values()])
        for sj in jobs.values():
            sj.resources = held.get(sj.moldable_id, [])
        bad: dict[int, str] = {}
        types = self.read_types(conn, select(m.c.moldable_job_id).join(gp, gp.c.moldable_job_id == m.c.moldable_id),
                                 bad)
        for jid, why in bad.items():
            if jid in jobs:
                log.warning("job %s (in the gantt): %s; that type is ignored", jid, why)
        for jid, sj in jobs.items():
            sj.types = types.get(jid, {})
        for jid in suspended_ids:
            jobs[jid].suspended_time = self._suspended_duration(conn, jid, now)
        return list(jobs.values())

    def gantt_resources(self, conn: Connection, moldable_ids: Sequence[int]) -> dict[int, list[int]]:
        """The resource ids of these moldables' ``gantt_jobs_resources`` rows, by moldable, in id order.

        Index probes of those moldables only: the meta-scheduler's gantt holds last round's rows until the
        round's end, and a join with the predictions may walk all of them (millions) in key order.  A value
        that is not an integer names no resource (like an unknown id) and is left out.
        """
        gr = self.tables["gantt_jobs_resources"]
        ids = sorted(set(moldable_ids))
        if self.dialect == "postgresql":  # one array parameter
            chunks = [gr.c.moldable_job_id == any_(bindparam("gantt_ids", ids, type_=ARRAY(Integer)))] if ids else []
        else:  # IN lists short of SQLite's variable limit
            chunks = [gr.c.moldable_job_id.in_(ids[i:i + IN_CHUNK]) for i in range(0, len(ids), IN_CHUNK)]
        held: dict[int, list[int]] = defaultdict(list)
        with gc_paused():
            for where in chunks:
                for mld, rid in conn.execute(select(gr.c.moldable_job_id, gr.c.resource_id).where(where)
                                             .order_by(gr.c.moldable_job_id, gr.c.resource_id)):
                    if type(rid) is int:
                        held[mld].append(rid)
        return held

    def _suspended_duration(self, conn: Connection, job_id: int, now: int) -> int:
        logs = self.tables["job_state_logs"]
        rows = conn.execute(
            select(logs.c.date_start, logs.c.date_stop)
            .where(logs.c.job_id == job_id, logs.c.job_state.in_(["Suspended", "Resuming"]))
        ).all()
        total = 0
        for start, stop in rows:
            try:
                start = checked_int(start, "job_state_logs.date_start", 0, INT32_MAX, null=0)
                stop = checked_int(stop, "job_state_logs.date_stop", 0, INT32_MAX, null=0)
            except BadValue as exc:
                log.warning("job %s: %s; that suspension is not counted", job_id, exc)
                continue
            spent = (now - start) if stop == 0 else (stop - start)
            if spent > 0:
                total += spent
        return total

    # -- accounting (fairshare) ---------------------------------------------------------------
    def read_accounting(self, conn: Connection, queues: Sequence[str], window_start: int, now: int):
        from oarsched.oar.accounting import load_accounting

        return load_accounting(conn, self.tables, queues, window_start, now)

    # -- writing -----------------------------------------------------------------------------
    def write_decisions(self, conn: Connection, result: ScheduleResult, messages: dict[int, str],
                        karma: dict[int, float] | None = None, start_times: dict[int, int] | None = None, *,
                        write_resources: Callable[[dict[int, Runs]], int] | None = None) -> int:
        """Insert the gantt rows of every assignment and update ``jobs.message``, ``last_karma`` and ``start_time``.

        Runs inside the caller's transaction: the round is written whole or not at all.
        Resource rows (one per resource, as OAR3 writes them: millions for a
        large round) are sent as contiguous ranges of resource ids and expanded
        inside the database in one statement (:meth:`insert_resource_ranges`).
        ``start_times`` is what OAR3's kamelot leaves in ``jobs.start_time``
        (its ORM rows are flushed by its commit): the predicted start of each
        placed job, -1 for each job considered but not placed; OAR3's
        meta-scheduler reads the gantt back in that order.
        ``write_resources`` (moldable id -> its runs of contiguous resource ids) writes the resource rows
        instead of the plain insert (the meta-scheduler writes them by difference).
        Returns the number of resource rows.
        """
        self._start_times_from_gantt(conn)
        self.update_jobs(conn, "start_time", start_times or {})
        self.update_jobs(conn, "message", messages)
        self.update_jobs(conn, "last_karma", karma or {})
        gp = self.tables["gantt_jobs_predictions"]
        assignments = sorted(result.assignments.values(), key=lambda a: a.job_id)
        if not assignments:
            return 0
        conn.execute(insert(gp), [{"moldable_job_id": a.moldable_id, "start_time": a.start_time} for a in assignments])
        runs = {a.moldable_id: id_runs(a.rids) for a in sorted(assignments, key=lambda a: a.moldable_id)}
        if write_resources is not None:
            return write_resources(runs)
        return self.insert_resource_ranges(conn, [(m, lo, hi) for m, rr in runs.items() for lo, hi in rr])

    def _start_times_from_gantt(self, conn: Connection) -> None:
        """``jobs.start_time`` := gantt start for every job already in the gantt, where they differ.

        OAR3's kamelot loads the jobs already in the gantt as ORM rows and sets
        their ``start_time`` to the gantt start; its commit flushes that
        (it matters for a reservation whose gantt start was pushed to now+1).
        One statement, touching only the rows that change.
        """
        jobs_t = self.tables["jobs"]
        gp = self.tables["gantt_jobs_predictions"]
        gr = self.tables["gantt_jobs_resources"]
        m = self.tables["moldable_job_descriptions"]
        sub = (
            select(m.c.moldable_job_id.label("job_id"), gp.c.start_time)
            .join(gp, gp.c.moldable_job_id == m.c.moldable_id)
            .where(m.c.moldable_index == "CURRENT", gp.c.start_time.is_not(None),
                   has_gantt_resources(gr, gp.c.moldable_job_id))
        ).subquery()
        gantt_start = select(sub.c.start_time).where(sub.c.job_id == jobs_t.c.job_id).limit(1).scalar_subquery()
        conn.execute(
            update(jobs_t)
            .where(jobs_t.c.job_id.in_(select(sub.c.job_id)), jobs_t.c.start_time.is_distinct_from(gantt_start))
            .values(start_time=gantt_start)
        )

    def update_jobs(self, conn: Connection, column: str, values: Mapping[int, object]) -> None:
        """``UPDATE jobs SET column = values[job_id]`` for every job id of ``values``, in one statement.

        PostgreSQL: the ids and values travel as two arrays joined by ``unnest``.
        SQLite: they go to a temporary table that the update reads.
        """
        if not values:
            return
        jobs_t = self.tables["jobs"]
        quoted = conn.dialect.identifier_preparer.quote(column)
        ids = list(values)
        vals = [values[i] for i in ids]
        if self.dialect == "postgresql":
            sql_type = jobs_t.c[column].type.compile(dialect=conn.dialect)
            conn.execute(text(
                f"UPDATE jobs SET {quoted} = v.val FROM unnest(CAST(:ids AS INTEGER[]), CAST(:vals AS {sql_type}[])) "
                "AS v(id, val) WHERE jobs.job_id = v.id"
            ), {"ids": ids, "vals": vals})
            return
        conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {_JOB_VALUES} (id INTEGER PRIMARY KEY, val)"))
        conn.execute(text(f"DELETE FROM {_JOB_VALUES}"))
        conn.execute(text(f"INSERT INTO {_JOB_VALUES} (id, val) VALUES (:id, :val)"),
                     [{"id": i, "val": v} for i, v in zip(ids, vals)])
        conn.execute(text(
            f"UPDATE jobs SET {quoted} = (SELECT v.val FROM {_JOB_VALUES} AS v WHERE v.id = jobs.job_id) "
            f"WHERE job_id IN (SELECT id FROM {_JOB_VALUES})"
        ))
        conn.execute(text(f"DELETE FROM {_JOB_VALUES}"))

    def insert_resource_ranges(self, conn: Connection, ranges: list[tuple[int, int, int]],
                                table: str = "gantt_jobs_resources") -> int:
        """Insert ``(moldable_id, resource_id)`` into ``table`` (gantt-shaped) for every id of every
        ``(moldable_id, lo, hi)`` range.

        PostgreSQL: one statement over three arrays, each range expanded by
        ``generate_series``.  SQLite (no ``generate_series``): the ranges go to
        a temporary table and are joined with a temporary table of offsets
        ``0..max(hi - lo)``, in one ``INSERT ... SELECT`` — rows come out in
        (moldable, resource) order, appended to the table and its primary key.
        """
        if not ranges:
            return 0
        nrows = sum(hi - lo + 1 for _, lo, hi in ranges)
        if self.dialect == "postgresql":
            conn.execute(text(
                f"INSERT INTO {table} (moldable_job_id, resource_id) "
                "SELECT r.mld, g FROM unnest(CAST(:mld AS INTEGER[]), CAST(:lo AS INTEGER[]), CAST(:hi AS INTEGER[])) "
                "AS r(mld, lo, hi) CROSS JOIN LATERAL generate_series(r.lo, r.hi) AS g"
            ), {"mld": [r[0] for r in ranges], "lo": [r[1] for r in ranges], "hi": [r[2] for r in ranges]})
            return nrows
        span = max(hi - lo for _, lo, hi in ranges)
        conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {_RANGES} (mld INTEGER, lo INTEGER, hi INTEGER)"))
        conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {_OFFSETS} (k INTEGER PRIMARY KEY)"))
        conn.execute(text(f"DELETE FROM {_RANGES}"))
        conn.execute(text(f"INSERT INTO {_RANGES} (mld, lo, hi) VALUES (:mld, :lo, :hi)"),
                     [{"mld": m, "lo": lo, "hi": hi} for m, lo, hi in ranges])
        conn.execute(text(
            f"INSERT OR IGNORE INTO {_OFFSETS} (k) "
            "WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k < :span) SELECT k FROM s"
        ), {"span": span})
        conn.execute(text(
            f"INSERT INTO {table} (moldable_job_id, resource_id) "
            f"SELECT r.mld, r.lo + o.k FROM {_RANGES} AS r CROSS JOIN {_OFFSETS} AS o WHERE o.k <= r.hi - r.lo"
        ))
        conn.execute(text(f"DELETE FROM {_RANGES}"))
        return nrows


IN_CHUNK = 5000
"""Ids per ``IN (...)`` list: each is a bound variable, and SQLite allows 32,766 per statement."""


def has_gantt_resources(gr, moldable_id):
    """``moldable_id`` has rows in ``gr``: one index probe per moldable.  A scalar sub-query, not EXISTS:
    PostgreSQL turns EXISTS into a semi-join, which with nested loops off (:meth:`OarDatabase.prepare_round`)
    reads every resource row of the gantt (millions)."""
    return select(gr.c.moldable_job_id).where(gr.c.moldable_job_id == moldable_id).limit(1).scalar_subquery() \
        .is_not(None)


def _sqlite_file_exists(url: str) -> None:
    """Opening a missing SQLite file would create an empty one there (and then fail on its schema)."""
    u = make_url(url)
    path = u.database
    if u.get_backend_name() != "sqlite" or not path or path == ":memory:" or u.query.get("uri"):
        return
    if not os.path.exists(path):
        raise DatabaseError(f"cannot open the OAR database ({path}): no such file (DB_BASE_FILE)")


def _timeout_args(url: str, budget: float | None) -> dict:
    if budget is None:
        return {}
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        ms = max(1, int(budget * 1000))
        return {"options": f"-c lock_timeout={ms} -c statement_timeout={ms}"}
    if backend == "sqlite":
        return {"timeout": budget}
    return {}


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building hundreds of thousands of
    objects from rows otherwise triggers collections that traverse every one
    of them again (half the time of reading 200,000 resources)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _gantt_start(row, now: int) -> int:
    """A placed job's gantt start; a NULL or unusable one (OAR3 never writes it) keeps the job's
    resources busy from its recorded start, or from now, rather than freeing them."""
    try:
        return checked_int(row.start_time, "gantt_jobs_predictions.start_time", 0, INT32_MAX)
    except BadValue as exc:
        why = exc
    job_start = row.job_start
    start = job_start if type(job_start) is int and 0 < job_start <= INT32_MAX else now
    log.warning("job %s: %s; its resources are kept busy from %s", row.job_id, why, start)
    return start


def _gantt_walltime(row, start: int) -> int:
    """A placed job's walltime; a NULL or unusable one keeps its resources busy to the end of time
    (freeing them could double-book them)."""
    try:
        return checked_int(row.moldable_walltime, "moldable_job_descriptions.moldable_walltime", 1, INT32_MAX)
    except BadValue as exc:
        walltime = MAX_TIME - 1 - start
        log.warning("job %s (in the gantt): %s; its resources are kept busy to the end of time", row.job_id, exc)
        return walltime


def _text_or(value, default: str) -> str:
    return value if type(value) is str else default


# ------------------------------------------------------------------------- values at the edge
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_REQUIRED = object()


class BadValue(ValueError):
    """A value read from the database that the scheduler cannot use: names its column."""

    def __init__(self, column: str, value, why: str) -> None:
        shown = repr(value)
        super().__init__(f"{column} = {shown if len(shown) <= 40 else shown[:37] + '...'}: {why}")


def checked_int(value, column: str, lo: int, hi: int, *, null=_REQUIRED):
    """``value`` if it is an integer in ``[lo, hi]``; NULL gives ``null`` when given.

    SQLite stores whatever it is given (text, reals, blobs, 64-bit integers)
    in an INTEGER column; ``int()`` on those fails deep inside the round.
    """
    if value is None:
        if null is _REQUIRED:
            raise BadValue(column, value, "NULL")
        return null
    if type(value) is not int:
        raise BadValue(column, value, "not an integer")
    if not lo <= value <= hi:
        raise BadValue(column, value, f"out of range [{lo}, {hi}]")
    return value


def checked_text(value, column: str, null: str | None = ""):
    """``value`` if it is text; NULL gives ``null`` (None: NULL is refused)."""
    if value is None:
        if null is None:
            raise BadValue(column, value, "NULL")
        return null
    if type(value) is not str:
        raise BadValue(column, value, "not text")
    return value


def job_message(*, nb_resources: int | None, queue: str, walltime: int | None = None,
                job_type: str = "PASSIVE", name: str | None = None, karma: float | None = None) -> str:
    """``jobs.message`` as OAR3 writes it: ``R=..,W=..,J=P|I,Q=..[,N=..][ (Karma=..)]``.

    ``W`` (the reserved walltime) is there for scheduled jobs, not for the
    running jobs the meta-scheduler re-inserts.
    """
    parts = []
    if nb_resources:
        parts.append(f"R={nb_resources}")
    if walltime is not None:
        parts.append(f"W={walltime}")
    parts.append("J=P" if job_type == "PASSIVE" else "J=I")
    parts.append(f"Q={queue}")
    if name:
        parts.append(f"N={name}")
    msg = ",".join(parts)
    if karma is not None:
        msg += f" (Karma={karma!r})"
    return msg


Runs = list[tuple[int, int]]
"""Resource ids as runs of contiguous ids, ``[(lo, hi), ...]`` (:func:`id_runs`)."""


def id_runs(ids) -> Runs:
    """Contiguous runs of the ids (in any order, repeats counted once)."""
    arr = np.sort(np.asarray(ids, dtype=np.int64), kind="stable")  # timsort: ids come in long sorted runs
    if arr.size == 0:
        return []
    arr = arr[np.concatenate(([True], arr[1:] != arr[:-1]))]
    brk = np.nonzero(np.diff(arr) != 1)[0]
    starts = np.concatenate(([0], brk + 1))
    ends = np.concatenate((brk, [arr.size - 1]))
    return [(int(arr[s]), int(arr[e])) for s, e in zip(starts, ends)]
