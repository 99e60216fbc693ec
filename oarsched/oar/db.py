"""Reading OAR3's database into the model, and writing decisions back.

Everything here is SQLAlchemy 2.0 Core over the reflected OAR3 schema, so the
site-specific columns of ``resources`` (hierarchy labels, properties) are
seen as they are.  No text coming from jobs or from the configuration is
pasted into SQL: property expressions are parsed
(:mod:`oarsched.model.properties`) and the resource order is a list of
checked column names.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from sqlalchemy import Engine, asc, create_engine, desc, exists, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from oarsched.engine.scheduler import ScheduledJob, ScheduleResult
from oarsched.errors import DatabaseError, JobError
from oarsched.model.job import Dependency, Job, Moldable, ResourceGroup, parse_job_types
from oarsched.model.platform import Resource
from oarsched.oar.property_sql import to_sqlalchemy

log = logging.getLogger("oarsched.db")

RESOURCE_CORE_COLUMNS = ("resource_id", "type", "state", "available_upto")

# SQLite's scratch tables for the gantt write (temporary: private to the connection)
_RANGES = "temp.oarsched_gantt_ranges"
_OFFSETS = "temp.oarsched_offsets"
_JOB_VALUES = "temp.oarsched_job_values"


@dataclass
class JobRows:
    """Waiting jobs read from the database, and the ones that could not be read."""

    jobs: list[Job] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    message_info: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    """job id -> (job_type, queue, name) for ``jobs.message``."""


class OarDatabase:
    """An OAR3 database (SQLite or PostgreSQL) seen through SQLAlchemy."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        from oarsched.oar.schema import reflect_tables

        self.engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        try:
            with self.engine.connect() as conn:
                self.tables = reflect_tables(conn)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot open the OAR database ({self.engine.url.render_as_string(hide_password=True)}): "
                                f"{exc.__class__.__name__}: {_first_line(exc)}") from None
        self.dialect = self.engine.dialect.name

    # -- resources ---------------------------------------------------------------------
    def read_resources(self, conn: Connection, order_terms: Sequence[tuple[str, str, str | None]]) -> list[Resource]:
        """All resources in scheduling order (``SCHEDULER_RESOURCE_ORDER``, evaluated by the database)."""
        t = self.tables["resources"]
        order = []
        for column, direction, nulls in order_terms:
            if column not in t.c:
                raise DatabaseError(f"SCHEDULER_RESOURCE_ORDER names column {column!r} that resources has not")
            expr = desc(t.c[column]) if direction.upper() == "DESC" else asc(t.c[column])
            if nulls:
                expr = expr.nulls_first() if nulls.upper() == "FIRST" else expr.nulls_last()
            order.append(expr)
        result = conn.execute(select(t).order_by(*order))
        columns = list(result.keys())
        at = {c: i for i, c in enumerate(columns)}
        i_rid, i_state, i_type, i_upto = (at[c] for c in ("resource_id", "state", "type", "available_upto"))
        prop_cols = [(c, i) for c, i in at.items() if c not in RESOURCE_CORE_COLUMNS]
        resources = []
        for row in result:  # rows indexed by position: a mapping view per row costs more than the rest together
            rid, state, rtype, upto = row[i_rid], row[i_state], row[i_type], row[i_upto]
            if rid is None:
                raise DatabaseError("a resources row has a NULL resource_id")
            resources.append(Resource(
                id=int(rid),
                state=state,  # NULL: an unknown state, not schedulable (see kamelot's screening)
                type=rtype if rtype is not None else "default",
                available_upto=int(upto) if upto is not None else 2**31 - 1,
                properties={c: row[i] for c, i in prop_cols},
            ))
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
        rows = conn.execute(
            select(jobs_t.c.job_id, jobs_t.c.job_user, jobs_t.c.project, jobs_t.c.job_name, jobs_t.c.queue_name,
                   jobs_t.c.properties, jobs_t.c.submission_time, jobs_t.c.job_type)
            .where(jobs_t.c.state == "Waiting", jobs_t.c.reservation == reservation,
                   jobs_t.c.queue_name.in_(list(queues)))
            .order_by(jobs_t.c.job_id)
        ).all()
        out = JobRows()
        if not rows:
            return out
        ids = [int(r.job_id) for r in rows]
        moldables = self._read_moldables(conn, ids)
        types = self._read_types(conn, ids)
        deps = self._read_dependencies(conn, ids)
        for r in rows:
            jid = int(r.job_id)
            try:
                mlds = moldables.get(jid)
                if not mlds:
                    raise JobError(jid, "no current moldable description (moldable_job_descriptions/job_resource_groups)")
                job = Job(
                    id=jid, moldables=mlds, user=r.job_user or "", project=r.project or "",
                    name=r.job_name or "", queue=r.queue_name, types=types.get(jid, {}),
                    properties=r.properties or "", dependencies=deps.get(jid, []),
                    submission_time=int(r.submission_time or 0), job_type=r.job_type or "PASSIVE",
                )
            except JobError as exc:
                log.error("%s; job skipped", exc)
                out.errors[jid] = exc.message
                continue
            out.jobs.append(job)
            out.message_info[jid] = (job.job_type, job.queue, job.name)
        return out

    def _read_moldables(self, conn: Connection, ids: list[int]) -> dict[int, list[Moldable]]:
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
        for row in conn.execute(stmt):
            jid, mid = int(row.moldable_job_id), int(row.moldable_id)
            mld = by_job[jid].get(mid)
            if mld is None:
                walltime = row.moldable_walltime
                mld = by_job[jid][mid] = Moldable(id=mid, walltime=int(walltime) if walltime is not None else None, groups=[])
            grp = groups.get(row.res_group_id)
            if grp is None:
                grp = groups[row.res_group_id] = ResourceGroup(levels=[], property=row.res_group_property or "")
                mld.groups.append(grp)
            value = row.res_job_value
            grp.levels.append((row.res_job_resource_type, int(value) if value is not None else 0))
        return {jid: sorted(mlds.values(), key=lambda x: x.id) for jid, mlds in by_job.items()}

    def _read_types(self, conn: Connection, ids: list[int]) -> dict[int, dict[str, str]]:
        t = self.tables["job_types"]
        stmt = select(t.c.job_id, t.c.type).where(t.c.job_id.in_(ids)).order_by(t.c.job_type_id)
        raw: dict[int, list[str]] = defaultdict(list)
        for row in conn.execute(stmt):
            raw[int(row.job_id)].append(row.type or "")
        return {jid: parse_job_types(values) for jid, values in raw.items()}

    def _read_dependencies(self, conn: Connection, ids: list[int]) -> dict[int, list[Dependency]]:
        dep = self.tables["job_dependencies"]
        jobs_t = self.tables["jobs"]
        stmt = (
            select(dep.c.job_id, dep.c.job_id_required, jobs_t.c.state, jobs_t.c.exit_code)
            .join(jobs_t, jobs_t.c.job_id == dep.c.job_id_required, isouter=True)
            .where(dep.c.job_dependency_index == "CURRENT", dep.c.job_id.in_(ids))
            .order_by(dep.c.job_id, dep.c.job_id_required)
        )
        out: dict[int, list[Dependency]] = defaultdict(list)
        for row in conn.execute(stmt):
            state = row.state if row.state is not None else "Unknown"
            out[int(row.job_id)].append(Dependency(int(row.job_id_required), state, row.exit_code))
        return out

    # -- jobs already in the gantt ---------------------------------------------------------
    def read_scheduled_jobs(self, conn: Connection, now: int) -> list[ScheduledJob]:
        """Every job with gantt rows (running jobs, reservations, earlier queues' decisions)."""
        jobs_t = self.tables["jobs"]
        gp = self.tables["gantt_jobs_predictions"]
        gr = self.tables["gantt_jobs_resources"]
        m = self.tables["moldable_job_descriptions"]
        stmt = (
            select(jobs_t.c.job_id, jobs_t.c.state, jobs_t.c.suspended, jobs_t.c.job_user, jobs_t.c.project,
                   jobs_t.c.queue_name, jobs_t.c.job_name, jobs_t.c.start_time.label("job_start"),
                   gp.c.moldable_job_id, gp.c.start_time,
                   m.c.moldable_walltime, gr.c.resource_id)
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(jobs_t, jobs_t.c.job_id == m.c.moldable_job_id)
            .join(gr, gr.c.moldable_job_id == gp.c.moldable_job_id)
            .where(m.c.moldable_index == "CURRENT")
            .order_by(gp.c.start_time, jobs_t.c.job_id, gr.c.resource_id)
        )
        jobs: dict[int, ScheduledJob] = {}
        suspended_ids = []
        for row in conn.execute(stmt):
            jid = int(row.job_id)
            sj = jobs.get(jid)
            if sj is None:
                sj = jobs[jid] = ScheduledJob(
                    id=jid, start_time=_gantt_start(row, now), walltime=int(row.moldable_walltime or 0),
                    resources=[], moldable_id=int(row.moldable_job_id), user=row.job_user or "",
                    project=row.project or "", queue=row.queue_name or "", name=row.job_name or "",
                    state=row.state or "",
                )
                if row.suspended == "YES":
                    suspended_ids.append(jid)
            sj.resources.append(int(row.resource_id))  # type: ignore[attr-defined]  # built as a list above
        if not jobs:
            return []
        types = self._read_types(conn, list(jobs))
        for jid, sj in jobs.items():
            sj.types = types.get(jid, {})
        for jid in suspended_ids:
            jobs[jid].suspended_time = self._suspended_duration(conn, jid, now)
        return list(jobs.values())

    def _suspended_duration(self, conn: Connection, job_id: int, now: int) -> int:
        logs = self.tables["job_state_logs"]
        rows = conn.execute(
            select(logs.c.date_start, logs.c.date_stop)
            .where(logs.c.job_id == job_id, logs.c.job_state.in_(["Suspended", "Resuming"]))
        ).all()
        total = 0
        for start, stop in rows:
            start, stop = int(start or 0), int(stop or 0)
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
                        karma: dict[int, float] | None = None, start_times: dict[int, int] | None = None) -> int:
        """Insert the gantt rows of every assignment and update ``jobs.message``, ``last_karma`` and ``start_time``.

        Runs inside the caller's transaction: the round is written whole or not at all.
        Resource rows (one per resource, as OAR3 writes them: millions for a
        large round) are sent as contiguous ranges of resource ids and expanded
        inside the database in one statement (:meth:`_insert_resource_ranges`).
        ``start_times`` is what OAR3's kamelot leaves in ``jobs.start_time``
        (its ORM rows are flushed by its commit): the predicted start of each
        placed job, -1 for each job considered but not placed; OAR3's
        meta-scheduler reads the gantt back in that order.
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
        ranges: list[tuple[int, int, int]] = []
        for a in sorted(assignments, key=lambda a: a.moldable_id):
            ranges.extend((a.moldable_id, lo, hi) for lo, hi in _ranges(a.rids))
        return self._insert_resource_ranges(conn, ranges)

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
                   exists().where(gr.c.moldable_job_id == gp.c.moldable_job_id))
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

    def _insert_resource_ranges(self, conn: Connection, ranges: list[tuple[int, int, int]]) -> int:
        """Insert ``(moldable_id, resource_id)`` for every id of every ``(moldable_id, lo, hi)`` range.

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
                "INSERT INTO gantt_jobs_resources (moldable_job_id, resource_id) "
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
            "INSERT INTO gantt_jobs_resources (moldable_job_id, resource_id) "
            f"SELECT r.mld, r.lo + o.k FROM {_RANGES} AS r CROSS JOIN {_OFFSETS} AS o WHERE o.k <= r.hi - r.lo"
        ))
        conn.execute(text(f"DELETE FROM {_RANGES}"))
        return nrows


def _gantt_start(row, now: int) -> int:
    """A placed job's gantt start; a NULL one (OAR3 never writes it) keeps the job's resources busy
    from its recorded start, or from now, rather than freeing them."""
    if row.start_time is not None:
        return int(row.start_time)
    start = int(row.job_start) if row.job_start else now
    log.warning("job %s: NULL start_time in gantt_jobs_predictions; its resources are kept busy from %s",
                row.job_id, start)
    return start


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


def _ranges(ids: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of distinct ids."""
    arr = np.sort(np.asarray(ids, dtype=np.int64))
    if arr.size == 0:
        return []
    brk = np.nonzero(np.diff(arr) != 1)[0]
    starts = np.concatenate(([0], brk + 1))
    ends = np.concatenate((brk, [arr.size - 1]))
    return [(int(arr[s]), int(arr[e])) for s, e in zip(starts, ends)]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
