"""The meta-scheduler's reads and writes on OAR3's database (next to :mod:`oarsched.oar.db`).

Every method runs inside the caller's transaction (one per round): nothing is
committed here.  Dates are the round's ``now``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import MetaData, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from oarsched.engine.meta import BesteffortJob, GanttJob, WalltimeGrant, WalltimeRequest
from oarsched.errors import ConfigError
from oarsched.oar.db import IN_CHUNK, OarDatabase, Runs, has_gantt_resources, id_runs

log = logging.getLogger("oarsched.kao")

CURRENT_STATES = ("Running", "toLaunch", "Launching", "Finishing", "Suspended", "Resuming")
"""Jobs that hold resources: re-inserted in the gantt at the start of every round."""

MOVABLE_STATES = ("toLaunch", "toError", "toAckReservation", "Launching", "Running", "Finishing",
                  "Waiting", "Hold", "Suspended", "Resuming")
"""States ``set_job_state`` changes (never Terminated or Error)."""

NOT_WAITING_STATES = ("Hold", "toLaunch", "toError", "toAckReservation", "Launching", "Running",
                      "Suspended", "Resuming", "Finishing")

EVENT_DESCRIPTION_MAX = 255


@dataclass
class JobInfo:
    """The columns of ``jobs`` the round's later phases read."""

    id: int
    state: str
    job_type: str
    reservation: str
    info_type: str | None
    message: str
    start_time: int
    stop_time: int
    assigned_moldable_job: int
    suspended: str
    user: str
    name: str
    queue: str
    checkpoint: int
    notify: str | None = None


class GanttMemo:
    """The gantt resource rows a round of this process committed, for its next round while nobody else has
    written the database (the resident kao server keeps one per open database).

    SQLite only.  ``PRAGMA data_version`` read twice on one connection differs exactly when another
    connection committed in between.  Read at the end of a round, inside its write transaction (nobody else
    can commit then), and again at the start of the next round on the same connection, an equal value says
    the file is as that round left it: ``gantt_jobs_resources`` and its ``_visu`` copy hold exactly the runs
    remembered, and the round compares with them instead of reading their millions of rows.  Anything else
    (another connection, any commit by anyone, a failed round, PostgreSQL, which has no exact witness) and
    the round reads the tables as usual.
    """

    def __init__(self) -> None:
        self._witness: tuple[object, int] | None = None
        self._runs: dict[int, Runs] | None = None

    def recall(self, conn: Connection) -> dict[int, Runs] | None:
        """The runs both tables hold, if nothing was committed since they were remembered; used once."""
        runs, witness = self._runs, self._witness
        self._runs = self._witness = None  # a round that fails must not leave it for the next
        if runs is None or witness != self.witness(conn):
            return None
        return runs

    @staticmethod
    def witness(conn: Connection) -> tuple[object, int] | None:
        """(the DBAPI connection, its ``data_version``); None where there is no such witness."""
        if conn.dialect.name != "sqlite":
            return None
        return conn.connection.driver_connection, int(conn.exec_driver_sql("PRAGMA data_version").scalar_one())

    def remember(self, witness: tuple[object, int] | None, runs: dict[int, Runs]) -> None:
        """After the commit of the round that read ``witness`` inside its transaction and left ``runs``."""
        if witness is not None:
            self._witness, self._runs = witness, dict(runs)


class MetaDb:
    """One round's view of the database: ``conn`` (inside the round's transaction) and its clock."""

    def __init__(self, db: OarDatabase, conn: Connection, now: int, frag_user: str | None) -> None:
        self.db = db
        self.t = db.tables
        self.conn = conn
        self.now = now
        self.frag_user = frag_user
        self.state_changes: list[tuple[int, str]] = []
        self.kept: list[int] = []
        """Moldables of accepted reservations keeping their gantt rows (:meth:`open_gantt`)."""
        self.placed: dict[int, Runs] = {}
        """Moldable -> its runs of resource ids, for every moldable given gantt rows this round."""
        self.known: dict[str, dict[int, Runs]] | None = None
        """Table -> moldable -> runs: what the gantt resource tables hold, when a :class:`GanttMemo` vouches
        for it (kept up to date by every write); None: they are read."""

    def trust(self, runs: dict[int, Runs]) -> None:
        """The gantt resource tables and their ``_visu`` copy hold exactly ``runs`` (:meth:`GanttMemo.recall`)."""
        self.known = {GANTT_RESOURCES: dict(runs), GANTT_RESOURCES + "_visu": dict(runs)}

    # -- gantt initialisation -------------------------------------------------------------------
    def kept_reservation_moldables(self) -> list[int]:
        """Moldables of accepted reservations still waiting, with gantt rows: they keep them."""
        j, gp, gr, m = self.t["jobs"], self.t["gantt_jobs_predictions"], self.t["gantt_jobs_resources"], \
            self.t["moldable_job_descriptions"]
        stmt = (
            select(gp.c.moldable_job_id).distinct()
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(j, j.c.job_id == m.c.moldable_job_id)
            .where(j.c.reservation == "Scheduled", j.c.state.in_(["Waiting", "toAckReservation"]),
                   has_gantt_resources(gr, gp.c.moldable_job_id))
        )
        return sorted(int(r[0]) for r in self.conn.execute(stmt))

    def reinsert_current_jobs(self) -> None:
        """Jobs holding resources get their gantt rows back and a message without ``W=`` (trap T20/M7).

        Only the rows and messages that change are written.
        """
        from oarsched.oar.db import job_message

        j, ar = self.t["jobs"], self.t["assigned_resources"]
        gp = self.t["gantt_jobs_predictions"]
        current = j.c.state.in_(CURRENT_STATES)
        holding = select(ar.c.moldable_job_id).where(ar.c.moldable_job_id == j.c.assigned_moldable_job).exists()
        self.conn.execute(insert(gp).from_select(
            ["moldable_job_id", "start_time"],
            select(j.c.assigned_moldable_job, func.coalesce(j.c.start_time, 0)).where(current, holding)))
        held: dict[int, list[int]] = defaultdict(list)
        for mld, rid in self.conn.execute(select(ar.c.moldable_job_id, ar.c.resource_id).distinct()
                                          .join(j, j.c.assigned_moldable_job == ar.c.moldable_job_id).where(current)):
            held[int(mld)].append(int(rid))
        self.put_gantt_resources({m: id_runs(rids) for m, rids in held.items()})
        stmt = (
            select(j.c.job_id, j.c.job_type, j.c.queue_name, j.c.job_name, j.c.message, func.count(ar.c.resource_id))
            .join(ar, ar.c.moldable_job_id == j.c.assigned_moldable_job)
            .where(current)
            .group_by(j.c.job_id, j.c.job_type, j.c.queue_name, j.c.job_name, j.c.message)
        )
        msgs = {}
        for jid, job_type, queue, name, old, n in self.conn.execute(stmt):
            msg = job_message(nb_resources=int(n), queue=queue, job_type=job_type or "PASSIVE", name=name)
            if msg != old:
                msgs[int(jid)] = msg
        self.db.update_jobs(self.conn, "message", msgs)

    # -- queues -------------------------------------------------------------------------------
    def queue_groups(self) -> list[list[tuple[str, str]]]:
        """Queues by decreasing priority, grouped by equal priority: ``[(name, state), ...]`` per group."""
        q = self.t["queues"]
        groups: list[list[tuple[str, str]]] = []
        last = None
        for row in self.conn.execute(select(q.c.queue_name, q.c.priority, q.c.state).order_by(q.c.priority.desc())):
            if not groups or row.priority != last:
                groups.append([])
                last = row.priority
            groups[-1].append((row.queue_name, row.state))
        return groups

    # -- gantt reads ----------------------------------------------------------------------------
    def gantt_jobs(self, *, states: tuple[str, ...] = ("Waiting",), queue: str | None = None,
                   reservation: str | None = None, sec: int = 0, start_by: int | None = None) -> list[GanttJob]:
        """Jobs in ``states`` with gantt rows (starting by ``start_by``), by job id; ``walltime`` = stored
        walltime + ``sec``."""
        j, gp, m = self.t["jobs"], self.t["gantt_jobs_predictions"], self.t["moldable_job_descriptions"]
        stmt = (
            select(j.c.job_id, j.c.reservation, gp.c.moldable_job_id, gp.c.start_time, m.c.moldable_walltime)
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(j, j.c.job_id == m.c.moldable_job_id)
            .where(j.c.state.in_(states))
            .order_by(j.c.job_id, gp.c.moldable_job_id)
        )
        if queue is not None:
            stmt = stmt.where(j.c.queue_name == queue)
        if start_by is not None:
            stmt = stmt.where(gp.c.start_time <= start_by)
        if reservation is not None:
            stmt = stmt.where(j.c.reservation == reservation, m.c.moldable_index == "CURRENT")
        rows = self.conn.execute(stmt).all()
        held = self.db.gantt_resources(self.conn, [int(row.moldable_job_id) for row in rows])
        # a job's moldable is the one holding its lowest resource id (OAR3 reads rows by job and resource)
        rows = sorted((row for row in rows if held.get(int(row.moldable_job_id))),
                      key=lambda row: (row.job_id, held[int(row.moldable_job_id)][0]))
        out: dict[int, GanttJob] = {}
        for row in rows:
            rids = held[int(row.moldable_job_id)]
            g = out.get(row.job_id)
            if g is None:
                g = out[row.job_id] = GanttJob(
                    id=int(row.job_id), moldable_id=int(row.moldable_job_id), start_time=int(row.start_time or 0),
                    walltime=int(row.moldable_walltime or 0) + sec, reservation=row.reservation or "None")
            g.resources.extend(rids)
        for g in out.values():
            g.resources.sort()
        return list(out.values())

    def resource_states(self) -> dict[int, str]:
        r = self.t["resources"]
        return {int(row.resource_id): row.state for row in self.conn.execute(select(r.c.resource_id, r.c.state))}

    def job_infos(self, ids) -> dict[int, JobInfo]:
        ids = list(ids)
        if not ids:
            return {}
        j = self.t["jobs"]
        rows = self.conn.execute(select(j).where(j.c.job_id.in_(ids))).all()
        return {int(r.job_id): _info(r) for r in rows}

    def jobs_in_states(self, states: tuple[str, ...]) -> dict[str, list[JobInfo]]:
        j = self.t["jobs"]
        out: dict[str, list[JobInfo]] = defaultdict(list)
        for r in self.conn.execute(select(j).where(j.c.state.in_(states)).order_by(j.c.job_id)):
            out[r.state].append(_info(r))
        return out

    def types_of(self, ids) -> dict[int, dict[str, str]]:
        """Types of the jobs ``ids``; a job whose type rows cannot be read is logged and gets those it has."""
        bad: dict[int, str] = {}
        types = self.db.read_types(self.conn, list(ids), bad)
        for jid, why in bad.items():
            log.error("job %s: %s (types read so far kept)", jid, why)
        return types

    def besteffort_jobs(self, scheduled) -> list[BesteffortJob]:
        be = [s for s in scheduled if "besteffort" in s.types]
        infos = self.job_infos(s.id for s in be)
        return [BesteffortJob(id=s.id, resources=list(s.resources),
                              checkpoint=infos[s.id].checkpoint if s.id in infos else 0) for s in be]

    # -- writes ---------------------------------------------------------------------------------
    def set_message(self, job_id: int, message: str) -> None:
        j = self.t["jobs"]
        self.conn.execute(update(j).where(j.c.job_id == job_id).values(message=message))

    def update_job(self, job_id: int, **values) -> None:
        j = self.t["jobs"]
        self.conn.execute(update(j).where(j.c.job_id == job_id).values(**values))

    def add_event(self, kind: str, job_id: int, description: str, to_check: str = "YES") -> None:
        """An ``event_logs`` row (description cut at 255 characters, as OAR3's)."""
        self.conn.execute(insert(self.t["event_logs"]).values(
            type=kind, job_id=job_id, date=self.now, description=description[:EVENT_DESCRIPTION_MAX],
            to_check=to_check))

    def first_event_date(self, kind: str, job_id: int) -> int | None:
        e = self.t["event_logs"]
        value = self.conn.execute(select(func.min(e.c.date)).where(e.c.type == kind, e.c.job_id == job_id)).scalar()
        return None if value is None else int(value)

    def frag_job(self, job_id: int) -> bool:
        """Ask Leon to kill the job (a ``frag_jobs`` row and its event); False when not allowed or already asked."""
        j, f = self.t["jobs"], self.t["frag_jobs"]
        owner = self.conn.execute(select(j.c.job_user).where(j.c.job_id == job_id)).scalar()
        user = self.frag_user
        if owner is None and not self.conn.execute(select(j.c.job_id).where(j.c.job_id == job_id)).first():
            log.warning("job %s: cannot frag a job that does not exist", job_id)
            return False
        if user not in ("oar", "root", owner):
            log.warning("job %s: user %r may not frag it", job_id, user)
            return False
        if self.conn.execute(select(f.c.frag_id_job).where(f.c.frag_id_job == job_id)).first():
            return False
        self.conn.execute(insert(f).values(frag_id_job=job_id, frag_date=self.now))
        self.add_event("FRAG_JOB_REQUEST", job_id, f"User {user} requested to frag the job {job_id}")
        return True

    def set_job_state(self, job_id: int, state: str, *, log_row: bool = True) -> bool:
        """OAR3's ``set_job_state``: state, closing the previous state log, a new log row.

        Returns False (nothing written) when the job is already in ``state`` or
        in Terminated/Error.  ``log_row=False`` leaves out the new log row
        (OAR3 loses the last one of a round: trap M1).  The caller handles the
        Error side effects (:meth:`error_side_effects`).
        """
        j, logs = self.t["jobs"], self.t["job_state_logs"]
        allowed = [s for s in MOVABLE_STATES if s != state]
        changed = self.conn.execute(
            update(j).where(j.c.job_id == job_id, j.c.state.in_(allowed)).values(state=state)).rowcount
        if not changed:
            log.warning("job %s: already %s or finished; state not changed", job_id, state)
            return False
        self.conn.execute(update(logs).where(logs.c.job_id == job_id, logs.c.date_stop == 0).values(date_stop=self.now))
        if log_row:
            self.conn.execute(insert(logs).values(job_id=job_id, job_state=state, date_start=self.now, date_stop=0))
        self.state_changes.append((job_id, state))
        return True

    def error_side_effects(self, job_id: int) -> None:
        """A job gone to Error: ``stop_time`` at least ``start_time``, its resources' ``last_job_date``,
        suspended flags released (its rows are marked LOG by :meth:`log_jobs`)."""
        j, ar, r = self.t["jobs"], self.t["assigned_resources"], self.t["resources"]
        row = self.conn.execute(select(j.c.start_time, j.c.stop_time, j.c.assigned_moldable_job, j.c.suspended)
                                .where(j.c.job_id == job_id)).first()
        if row is None:
            return
        if (row.stop_time or 0) < (row.start_time or 0):
            self.update_job(job_id, stop_time=row.start_time)
        rids = select(ar.c.resource_id).where(ar.c.moldable_job_id == row.assigned_moldable_job)
        if "last_job_date" in r.c:
            self.conn.execute(update(r).where(r.c.resource_id.in_(rids)).values(last_job_date=self.now))
        if row.suspended == "YES" and "suspended_jobs" in r.c:
            self.release_suspended(job_id)

    def log_jobs(self, job_ids: list[int]) -> None:
        """OAR3's ``log_job`` on PostgreSQL (it does nothing on SQLite): the finished jobs' moldables, resource
        groups and descriptions, types, dependencies and assigned resources go from index CURRENT to LOG, which
        OAR's tools read (``index='CURRENT'``)."""
        if not job_ids or self.db.dialect != "postgresql":
            return
        t = self.t
        j, m, g, d = t["jobs"], t["moldable_job_descriptions"], t["job_resource_groups"], t["job_resource_descriptions"]
        ty, dep, ar = t["job_types"], t["job_dependencies"], t["assigned_resources"]
        conn = self.conn
        conn.execute(update(m).where(m.c.moldable_job_id.in_(job_ids), m.c.moldable_index == "CURRENT")
                     .values(moldable_index="LOG"))
        groups = select(g.c.res_group_id).join(m, m.c.moldable_id == g.c.res_group_moldable_id).where(
            m.c.moldable_job_id.in_(job_ids))
        conn.execute(update(d).where(d.c.res_job_group_id.in_(groups)).values(res_job_index="LOG"))
        logged = select(m.c.moldable_id).where(m.c.moldable_job_id.in_(job_ids), m.c.moldable_index == "LOG")
        conn.execute(update(g).where(g.c.res_group_moldable_id.in_(logged), g.c.res_group_index == "CURRENT")
                     .values(res_group_index="LOG"))
        conn.execute(update(ty).where(ty.c.job_id.in_(job_ids), ty.c.types_index == "CURRENT")
                     .values(types_index="LOG"))
        conn.execute(update(dep).where(dep.c.job_id.in_(job_ids), dep.c.job_dependency_index == "CURRENT")
                     .values(job_dependency_index="LOG"))
        assigned = select(j.c.assigned_moldable_job).where(j.c.job_id.in_(job_ids), j.c.assigned_moldable_job != 0)
        conn.execute(update(ar).where(ar.c.moldable_job_id.in_(assigned), ar.c.assigned_resource_index == "CURRENT")
                     .values(assigned_resource_index="LOG"))

    def update_scheduler_priority(self, job_ids: list[int], levels: list[str], order: str, value: int,
                                  state: str) -> None:
        """OAR3's ``update_current_scheduler_priority`` for the jobs ``job_ids`` (``START`` +2 on toLaunch,
        ``STOP`` -2 on Error; ``levels``: the resource columns of ``SCHEDULER_PRIORITY_HIERARCHY_ORDER``).

        Only besteffort or timesharing jobs count, once each: START when the job has no
        ``SCHEDULER_PRIORITY_UPDATED_START`` event yet, STOP when it has one.  For the i-th level (from 1),
        every resource sharing a value of that column with the job's current assigned resources gets
        ``scheduler_priority += value * i * coeff`` (coeff 10 for besteffort without timesharing, else 1);
        then the event ``SCHEDULER_PRIORITY_UPDATED_<state>``.  A job without assigned resources is left
        alone (no event), as in OAR3 (with no level at all, only the event is written).  One UPDATE per level
        and coefficient, whatever the number of jobs.
        """
        if not job_ids:
            return
        e, j, ar = self.t["event_logs"], self.t["jobs"], self.t["assigned_resources"]
        started = {int(r[0]) for r in self.conn.execute(
            select(e.c.job_id).distinct().where(e.c.type == "SCHEDULER_PRIORITY_UPDATED_START",
                                               e.c.job_id.in_(job_ids)))}
        holding = {int(r[0]): int(r[1]) for r in self.conn.execute(
            select(j.c.job_id, j.c.assigned_moldable_job).where(
                j.c.job_id.in_(job_ids),
                select(ar.c.resource_id).where(ar.c.moldable_job_id == j.c.assigned_moldable_job,
                                               ar.c.assigned_resource_index == "CURRENT").exists()))}
        by_coeff: dict[int, list[int]] = defaultdict(list)
        for jid, types in self.types_of(job_ids).items():
            if ("besteffort" not in types and "timesharing" not in types) or (levels and jid not in holding) \
                    or (jid in started) != (state == "STOP"):
                continue
            by_coeff[10 if "besteffort" in types and "timesharing" not in types else 1].append(jid)
        for coeff, jids in sorted(by_coeff.items()):
            moldables = [holding.get(jid, 0) for jid in jids]
            for index, column in enumerate(levels, start=1):
                self._raise_priority(moldables, column, value * index * coeff)
        done = sorted(jid for jids in by_coeff.values() for jid in jids)
        if done:
            self.conn.execute(insert(e), [
                {"type": f"SCHEDULER_PRIORITY_UPDATED_{state}", "job_id": jid, "date": self.now,
                 "description": f"Scheduler priority for job {jid} updated ({order})"[:EVENT_DESCRIPTION_MAX],
                 "to_check": "YES"} for jid in done])

    def _raise_priority(self, moldables: list[int], column: str, step: int) -> None:
        """``scheduler_priority += step`` once per moldable of ``moldables`` whose current assigned resources
        share the resource's value of ``column``."""
        r, ar = self.t["resources"], self.t["assigned_resources"]
        mine = r.alias("mine")
        held = (select(mine.c[column])
                .join(ar, ar.c.resource_id == mine.c.resource_id)
                .where(ar.c.moldable_job_id.in_(moldables), ar.c.assigned_resource_index == "CURRENT"))
        sharing = (select(func.count(ar.c.moldable_job_id.distinct()))
                   .join(mine, mine.c.resource_id == ar.c.resource_id)
                   .where(ar.c.moldable_job_id.in_(moldables), ar.c.assigned_resource_index == "CURRENT",
                          mine.c[column] == r.c[column])
                   .correlate(r).scalar_subquery())
        self.conn.execute(update(r).where(r.c[column].in_(held))
                          .values(scheduler_priority=r.c.scheduler_priority + step * sharing))

    def release_suspended(self, job_id: int) -> None:
        """``resources.suspended_jobs='NO'`` on the job's resources no other suspended job uses."""
        j, ar, r = self.t["jobs"], self.t["assigned_resources"], self.t["resources"]
        mine = select(ar.c.resource_id).join(j, j.c.assigned_moldable_job == ar.c.moldable_job_id).where(
            j.c.job_id == job_id)
        others = select(ar.c.resource_id).join(j, j.c.assigned_moldable_job == ar.c.moldable_job_id).where(
            j.c.suspended == "YES", j.c.state.in_(["Suspended", "Resuming"]), j.c.job_id != job_id)
        self.conn.execute(update(r).where(r.c.resource_id.in_(mine), r.c.resource_id.not_in(others))
                          .values(suspended_jobs="NO"))

    def jobs_on_resources_of(self, job_id: int) -> list[int]:
        """Other jobs holding (or about to hold) a resource of the job (OAR3's list, ``Running`` included)."""
        j, ar = self.t["jobs"], self.t["assigned_resources"]
        j2, a2 = j.alias("j2"), ar.alias("a2")
        mine = select(ar.c.resource_id).join(j, j.c.assigned_moldable_job == ar.c.moldable_job_id).where(
            j.c.job_id == job_id, ar.c.assigned_resource_index == "CURRENT")
        stmt = (select(j2.c.job_id).distinct().join(a2, a2.c.moldable_job_id == j2.c.assigned_moldable_job)
                .where(a2.c.resource_id.in_(mine), a2.c.assigned_resource_index == "CURRENT", j2.c.job_id != job_id,
                       j2.c.state.in_(["toLaunch", "toError", "toAckReservation", "Launching", "Running",
                                       "Finishing"]))
                .order_by(j2.c.job_id))
        return [int(r[0]) for r in self.conn.execute(stmt)]

    def launch(self, job: GanttJob) -> None:
        """start_time, assigned moldable, assigned resources, then state toLaunch."""
        self.update_job(job.id, start_time=self.now, assigned_moldable_job=job.moldable_id)
        gr = self.t["gantt_jobs_resources"]
        self.conn.execute(insert(self.t["assigned_resources"]).from_select(
            ["moldable_job_id", "resource_id"],
            select(gr.c.moldable_job_id, gr.c.resource_id).where(gr.c.moldable_job_id == job.moldable_id)))
        self.set_job_state(job.id, "toLaunch")

    # -- the gantt: written by difference ----------------------------------------------------------
    def open_gantt(self) -> None:
        """Start the round's gantt: OAR3 empties it but for the accepted reservations still waiting, then
        refills it.  Here only ``gantt_jobs_predictions`` (one row per job) is rebuilt, in a temporary
        table of the same name holding the kept rows, which the round's statements see instead (a
        temporary table shadows its namesake on SQLite and PostgreSQL alike).  ``gantt_jobs_resources``
        (one row per job and resource: millions) keeps its rows: each moldable the round places is made
        to hold exactly its resources (:meth:`put_gantt_resources`), and :meth:`close_gantt` deletes the
        rows of those it did not place.  The round's gantt reads all go through the predictions, so they
        never see the rows left from the last round (an ``EXTRA_METASCHED`` hook reading the resource
        rows alone may, until the round's end)."""
        self.kept = self.kept_reservation_moldables()
        self.placed = {}
        conn = self.conn
        name, cols = GANTT_PREDICTIONS, ", ".join(GANTT_PREDICTION_COLUMNS)
        kept = f" WHERE moldable_job_id IN ({', '.join(map(str, self.kept))})" if self.kept else " WHERE 0 = 1"
        if self.db.dialect == "postgresql":
            self._home = str(conn.exec_driver_sql("SELECT current_schema()").scalar())
            conn.exec_driver_sql(f"CREATE TEMP TABLE {name} (LIKE {self._home}.{name} INCLUDING ALL) ON COMMIT DROP")
            conn.exec_driver_sql(f"INSERT INTO pg_temp.{name} ({cols}) SELECT {cols} FROM {self._home}.{name}{kept}")
        else:
            self._home = "main"
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
            conn.exec_driver_sql(f"CREATE TEMP TABLE {name} (moldable_job_id INTEGER NOT NULL PRIMARY KEY, "
                                 "start_time INTEGER)")
            conn.exec_driver_sql(f"INSERT INTO temp.{name} ({cols}) SELECT {cols} FROM main.{name}{kept}")

    def close_gantt(self) -> None:
        """Write the rebuilt predictions back by difference, drop the scratch table, and delete the resource
        rows of the moldables neither kept nor placed this round."""
        md = MetaData()
        scratch_schema = "pg_temp" if self.db.dialect == "postgresql" else "temp"
        home = self.t[GANTT_PREDICTIONS].to_metadata(md, schema=self._home)
        scratch = self.t[GANTT_PREDICTIONS].to_metadata(md, schema=scratch_schema)
        self._sync_predictions(home, self._predictions(scratch))
        self.conn.exec_driver_sql(f"DROP TABLE {scratch_schema}.{GANTT_PREDICTIONS}")
        self._delete_moldables(self.t[GANTT_RESOURCES], self._gone(self.t[GANTT_RESOURCES]))

    def copy_gantt_to_visu(self) -> None:
        """Make ``gantt_*_visu`` equal to the gantt (OAR3 empties and refills them), writing only the moldables
        that differ: an unchanged gantt costs reads, not writes."""
        t = self.t
        self._sync_predictions(t[GANTT_PREDICTIONS + "_visu"], self._predictions(t[GANTT_PREDICTIONS]))
        visu = t[GANTT_RESOURCES + "_visu"]
        self.placed.update(self._runs_in_gantt([m for m in self.kept if m not in self.placed]))
        self.put_gantt_resources(self.placed, visu)
        self._delete_moldables(visu, self._gone(visu))

    def put_gantt_resources(self, runs: dict[int, Runs], table=None) -> int:
        """Make each moldable of ``runs`` hold exactly its runs of resource ids in ``table`` (default
        ``gantt_jobs_resources``), rewriting only the moldables whose rows differ.  Returns the number of
        rows they should have."""
        gr = self.t[GANTT_RESOURCES]
        table = gr if table is None else table
        if table is gr:
            self.placed.update(runs)
        changed = self._differing(table, runs)
        for i in range(0, len(changed), IN_CHUNK):
            chunk = changed[i:i + IN_CHUNK]
            self.conn.execute(delete(table).where(table.c.moldable_job_id.in_(chunk)))
            self.db.insert_resource_ranges(self.conn, [(m, lo, hi) for m in chunk for lo, hi in runs[m]],
                                            table.name)
        if self.known is not None:
            self.known[table.name].update((m, runs[m]) for m in changed)
        return sum(hi - lo + 1 for rr in runs.values() for lo, hi in rr)

    def put_gantt_job(self, moldable_id: int, start: int, rids) -> None:
        """A prediction row and exactly the resource rows ``rids``."""
        self.conn.execute(insert(self.t[GANTT_PREDICTIONS]).values(moldable_job_id=moldable_id, start_time=start))
        self.put_gantt_resources({moldable_id: id_runs(rids)})

    def _differing(self, table, runs: dict[int, Runs]) -> list[int]:
        """Moldables of ``runs`` whose rows in ``table`` are not exactly their runs, by counting rows over
        intervals covering all ids: a run must hold one row per id (rows are distinct: the table's primary
        key), a gap none.  Exact, and each count walks the primary key only over its interval.  With the
        tables :attr:`known`, a comparison in memory."""
        if self.known is not None:
            have = self.known[table.name]
            return sorted(m for m, rr in runs.items() if have.get(m) != rr)
        intervals = [iv for m, rr in runs.items() for iv in _intervals(m, rr)]
        if not intervals:
            return []
        conn, name = self.conn, table.name
        count = (f"(SELECT count(*) FROM {name} AS t WHERE t.moldable_job_id = i.mld "
                 "AND t.resource_id BETWEEN i.lo AND i.hi)")
        if self.db.dialect == "postgresql":
            cols = list(zip(*intervals))
            rows = conn.execute(text(
                f"SELECT DISTINCT i.mld FROM unnest(CAST(:mld AS INTEGER[]), CAST(:lo AS BIGINT[]), "
                f"CAST(:hi AS BIGINT[]), CAST(:n AS BIGINT[])) AS i(mld, lo, hi, n) WHERE {count} <> i.n"),
                {"mld": list(cols[0]), "lo": list(cols[1]), "hi": list(cols[2]), "n": list(cols[3])})
        else:
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {_INTERVALS} (mld INTEGER, lo INTEGER, "
                                 "hi INTEGER, n INTEGER)")
            conn.exec_driver_sql(f"DELETE FROM {_INTERVALS}")
            conn.exec_driver_sql(f"INSERT INTO {_INTERVALS} VALUES (?, ?, ?, ?)", intervals)
            rows = conn.exec_driver_sql(f"SELECT DISTINCT i.mld FROM {_INTERVALS} AS i WHERE {count} <> i.n")
        return sorted(int(r[0]) for r in rows)

    def _gone(self, table) -> list[int]:
        """Moldables with rows in ``table`` that are neither kept nor placed this round."""
        alive = set(self.kept) | set(self.placed)
        present = sorted(self.known[table.name]) if self.known is not None else _moldables(self.conn, table)
        return [m for m in present if m not in alive]

    def _delete_moldables(self, table, ids: list[int]) -> None:
        for i in range(0, len(ids), IN_CHUNK):
            self.conn.execute(delete(table).where(table.c.moldable_job_id.in_(ids[i:i + IN_CHUNK])))
        if self.known is not None and table.name in self.known:
            for m in ids:
                self.known[table.name].pop(m, None)

    def _runs_in_gantt(self, ids: list[int]) -> dict[int, Runs]:
        """The resource rows of the moldables ``ids`` (few: the kept reservations), as runs."""
        got = self.db.gantt_resources(self.conn, ids)
        return {m: id_runs(got.get(m, [])) for m in ids}

    def _predictions(self, table) -> dict[int, int | None]:
        return {int(m): s for m, s in self.conn.execute(select(table.c.moldable_job_id, table.c.start_time))}

    def _sync_predictions(self, table, want: dict[int, int | None]) -> None:
        """Make ``table`` hold exactly the prediction rows ``want`` (moldable -> start), writing only the
        rows that differ."""
        have = self._predictions(table)
        self._delete_moldables(table, sorted(m for m in have if m not in want))
        changed = sorted(m for m, start in want.items() if m in have and have[m] != start)
        for m in changed:
            self.conn.execute(update(table).where(table.c.moldable_job_id == m).values(start_time=want[m]))
        new = [{"moldable_job_id": m, "start_time": s} for m, s in sorted(want.items()) if m not in have]
        if new:
            self.conn.execute(insert(table), new)

    def keep_gantt_resources(self, moldable_id: int, rids: list[int]) -> None:
        """Delete the moldable's gantt resource rows except those of ``rids``."""
        gr = self.t["gantt_jobs_resources"]
        self.conn.execute(delete(gr).where(gr.c.moldable_job_id == moldable_id, gr.c.resource_id.not_in(rids)))
        if moldable_id in self.placed:
            self.placed[moldable_id] = _runs_within(self.placed[moldable_id], rids)
        if self.known is not None and moldable_id in self.known[GANTT_RESOURCES]:
            self.known[GANTT_RESOURCES][moldable_id] = _runs_within(self.known[GANTT_RESOURCES][moldable_id], rids)

    def set_gantt_start(self, moldable_id: int, start: int) -> None:
        gp = self.t["gantt_jobs_predictions"]
        self.conn.execute(update(gp).where(gp.c.moldable_job_id == moldable_id).values(start_time=start))

    def set_walltime(self, moldable_id: int, walltime: int) -> None:
        m = self.t["moldable_job_descriptions"]
        self.conn.execute(update(m).where(m.c.moldable_id == moldable_id).values(moldable_walltime=walltime))

    def interactive_waiting(self) -> list[tuple[JobInfo, int]]:
        """Interactive jobs waiting with a gantt prediction: (job, predicted start)."""
        j, gp, m = self.t["jobs"], self.t["gantt_jobs_predictions"], self.t["moldable_job_descriptions"]
        stmt = (
            select(j, gp.c.start_time.label("predicted"))
            .join(m, m.c.moldable_job_id == j.c.job_id)
            .join(gp, gp.c.moldable_job_id == m.c.moldable_id)
            .where(j.c.state == "Waiting", j.c.job_type == "INTERACTIVE", j.c.reservation == "None")
            .order_by(j.c.job_id)
        )
        return [(_info(r), int(r.predicted or 0)) for r in self.conn.execute(stmt)]


    # -- walltime change requests -----------------------------------------------------------------
    def walltime_requests(self) -> list[tuple[WalltimeRequest, list[int], dict[str, str], str, str]]:
        """Running jobs with a pending walltime change: (request, resource ids, types, user, name)."""
        j, m, ar, wc = (self.t[n] for n in ("jobs", "moldable_job_descriptions", "assigned_resources",
                                             "walltime_change"))
        stmt = (
            select(j.c.job_id, j.c.queue_name, j.c.start_time, j.c.job_user, j.c.job_name, j.c.suspended,
                   m.c.moldable_walltime, wc.c.pending, wc.c.force, wc.c.delay_next_jobs, wc.c.granted,
                   wc.c.granted_with_force, wc.c.granted_with_delay_next_jobs, ar.c.resource_id)
            .join(wc, wc.c.job_id == j.c.job_id)
            .join(m, m.c.moldable_id == j.c.assigned_moldable_job)
            .join(ar, ar.c.moldable_job_id == j.c.assigned_moldable_job)
            .where(j.c.state == "Running", wc.c.pending != 0)
            .order_by(j.c.job_id, ar.c.resource_id)
        )
        out: dict[int, list] = {}
        for r in self.conn.execute(stmt):
            if r.job_id not in out:
                suspended = self.db._suspended_duration(self.conn, r.job_id, self.now) if r.suspended == "YES" else 0
                req = WalltimeRequest(
                    job_id=int(r.job_id), queue=r.queue_name or "", start_time=int(r.start_time or 0),
                    walltime=int(r.moldable_walltime or 0), pending=int(r.pending or 0), force=r.force == "YES",
                    delay_next_jobs=r.delay_next_jobs == "YES", granted=int(r.granted or 0),
                    granted_with_force=int(r.granted_with_force or 0),
                    granted_with_delay_next_jobs=int(r.granted_with_delay_next_jobs or 0), suspended=suspended)
                out[r.job_id] = [req, [], {}, r.job_user or "", r.job_name or ""]
            out[r.job_id][1].append(int(r.resource_id))
        types = self.types_of(out)
        return [(req, rids, types.get(jid, {}), user, name) for jid, (req, rids, _, user, name) in out.items()]

    def possible_end(self, start: int, end: int, rids: list[int], sec: int, delay_next_jobs: bool,
                     types: dict[str, str], user: str, name: str) -> int:
        """The last second a job on ``rids`` may run to within ``[start, end]``: before the next job predicted
        there (besteffort jobs and jobs it may share with do not count; with ``delay_next_jobs`` only
        reservations do)."""
        j, m, gp, gr, t = (self.t[n] for n in ("jobs", "moldable_job_descriptions", "gantt_jobs_predictions",
                                                "gantt_jobs_resources", "job_types"))
        excluded = [t.c.type == "besteffort"]
        ts = types.get("timesharing")
        if ts == "*,*":
            excluded.append(t.c.type == "timesharing=*,*")
        elif ts in ("user,*", "*,user"):
            excluded.append(t.c.type.in_(["timesharing=user,*", "timesharing=*,user"]) & (j.c.job_user == user))
        elif ts in ("name,*", "*,name"):
            excluded.append(t.c.type.in_(["timesharing=*,name", "timesharing=name,*"]) & (j.c.job_name == name))
        elif ts in ("user,name", "name,user"):
            excluded.append(t.c.type.in_(["timesharing=user,name", "timesharing=name,user"])
                            & (j.c.job_name == name) & (j.c.job_user == user))
        if "allow" in types:
            excluded.append(t.c.type == f"placeholder={types['allow']}")
        stmt = (
            select(gp.c.start_time).distinct()
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(j, j.c.job_id == m.c.moldable_job_id)
            .join(gr, gr.c.moldable_job_id == gp.c.moldable_job_id)
            .where(gp.c.start_time > start, gp.c.start_time <= end + sec, gr.c.resource_id.in_(rids),
                   ~select(t.c.job_id).where(t.c.job_id == j.c.job_id, or_(*excluded)).exists())
        )
        if delay_next_jobs:
            stmt = stmt.where(j.c.reservation != "None")
        first = end
        for (next_start,) in self.conn.execute(stmt):
            first = min(first, int(next_start) - sec - 1)
        return first

    def container_end(self, container_id: int) -> int | None:
        j, m = self.t["jobs"], self.t["moldable_job_descriptions"]
        row = self.conn.execute(select(j.c.start_time, m.c.moldable_walltime)
                                .join(m, m.c.moldable_id == j.c.assigned_moldable_job)
                                .where(j.c.job_id == container_id, j.c.state == "Running")).first()
        return None if row is None else int(row.start_time or 0) + int(row.moldable_walltime or 0)

    def apply_walltime_grant(self, job_id: int, grant: WalltimeGrant) -> None:
        """The request's counters, every moldable's walltime, and a WALLTIME event (``to_check`` NO)."""
        wc, m = self.t["walltime_change"], self.t["moldable_job_descriptions"]
        done = grant.pending == 0
        values: dict[str, object] = {"pending": grant.pending, "granted": grant.granted, "granted_with_force": grant.granted_with_force,
                  "granted_with_delay_next_jobs": grant.granted_with_delay_next_jobs}
        if done:
            values.update(force="NO", delay_next_jobs="NO")
        self.conn.execute(update(wc).where(wc.c.job_id == job_id).values(**values))
        self.conn.execute(update(m).where(m.c.moldable_job_id == job_id).values(moldable_walltime=grant.walltime))
        self.add_event("WALLTIME", job_id, grant.message, to_check="NO")

    # -- energy saving --------------------------------------------------------------------------
    def idle_nodes(self) -> dict[str, int | None]:
        """Nodes with Alive default resources that may sleep (``0 < available_upto < 2**31-1``) and no job
        started by now in the gantt: node -> last job end date."""
        r, gp, gr = self.t["resources"], self.t["gantt_jobs_predictions"], self.t["gantt_jobs_resources"]
        busy = select(r.c.network_address).join(gr, gr.c.resource_id == r.c.resource_id).join(
            gp, gp.c.moldable_job_id == gr.c.moldable_job_id).where(gp.c.start_time <= self.now)
        stmt = (
            select(r.c.network_address, func.max(r.c.last_job_date))
            .where(r.c.state == "Alive", r.c.network_address != "", r.c.type == "default",
                   r.c.available_upto < 2**31 - 1, r.c.available_upto > 0, r.c.network_address.not_in(busy))
            .group_by(r.c.network_address)
        )
        return {row[0]: row[1] for row in self.conn.execute(stmt)}

    def next_start_on_nodes(self, nodes: list[str]) -> dict[str, int | None]:
        r, gp, gr = self.t["resources"], self.t["gantt_jobs_predictions"], self.t["gantt_jobs_resources"]
        stmt = (select(r.c.network_address, func.min(gp.c.start_time))
                .join(gr, gr.c.resource_id == r.c.resource_id).join(gp, gp.c.moldable_job_id == gr.c.moldable_job_id)
                .where(r.c.network_address.in_(nodes)).group_by(r.c.network_address))
        return {row[0]: row[1] for row in self.conn.execute(stmt)}

    def last_wakeups(self, nodes: list[str]) -> dict[str, int | None]:
        e, h = self.t["event_logs"], self.t.get("event_log_hostnames")
        if h is None:
            return {}
        stmt = (select(h.c.hostname, func.max(e.c.date)).join(e, e.c.event_id == h.c.event_id)
                .where(e.c.type == "WAKEUP_NODE", h.c.hostname.in_(nodes)).group_by(h.c.hostname))
        return {row[0]: row[1] for row in self.conn.execute(stmt)}

    def nodes_to_wake_up(self, wakeup_time: int) -> list[str]:
        """Absent nodes that waiting jobs are predicted on within ``wakeup_time`` (and that stay long enough)."""
        r, gp, gr, m, j = (self.t[n] for n in ("resources", "gantt_jobs_predictions", "gantt_jobs_resources",
                                                 "moldable_job_descriptions", "jobs"))
        stmt = (
            select(r.c.network_address).distinct()
            .join(gr, gr.c.resource_id == r.c.resource_id)
            .join(gp, gp.c.moldable_job_id == gr.c.moldable_job_id)
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(j, j.c.job_id == m.c.moldable_job_id)
            .where(gp.c.start_time <= self.now + wakeup_time, j.c.state == "Waiting", r.c.state == "Absent",
                   r.c.network_address != "", r.c.type == "default",
                   gp.c.start_time + m.c.moldable_walltime <= r.c.available_upto)
            .order_by(r.c.network_address)
        )
        return [row[0] for row in self.conn.execute(stmt)]


def priority_levels(order: str, resources) -> list[str]:
    """The ``resources`` columns ``SCHEDULER_PRIORITY_HIERARCHY_ORDER`` names, from its ``/``-separated levels
    (empty ones skipped; ``resource_id`` and ``id`` are the resource id); ConfigError on an unknown one."""
    levels = ["resource_id" if f in ("id", "resource_id") else f for f in order.split("/") if f]
    unknown = [f for f in levels if f not in resources.c]
    if unknown:
        raise ConfigError(f"SCHEDULER_PRIORITY_HIERARCHY_ORDER={order!r}: resources has no column "
                          + ", ".join(unknown))
    return levels


GANTT_PREDICTIONS, GANTT_RESOURCES = "gantt_jobs_predictions", "gantt_jobs_resources"
GANTT_PREDICTION_COLUMNS = ("moldable_job_id", "start_time")

_INTERVALS = "temp.oarsched_gantt_intervals"

ID_MIN, ID_MAX = -(2**31), 2**31 - 1
"""The range of an INTEGER column (resource ids)."""


def _intervals(moldable_id: int, runs: Runs) -> list[tuple[int, int, int, int]]:
    """``(moldable, lo, hi, rows expected)`` over all ids: each run full, each gap around them empty."""
    out = []
    prev = ID_MIN
    for lo, hi in runs:
        if lo > prev:
            out.append((moldable_id, prev, lo - 1, 0))
        out.append((moldable_id, lo, hi, hi - lo + 1))
        prev = hi + 1
    if prev <= ID_MAX:
        out.append((moldable_id, prev, ID_MAX, 0))
    return out


def _runs_within(runs: Runs, rids) -> Runs:
    """The ids of ``runs`` that are in ``rids``, as runs."""
    ids = np.concatenate([np.arange(lo, hi + 1) for lo, hi in runs] or [np.zeros(0, dtype=np.int64)])
    return id_runs(np.intersect1d(ids.astype(np.int64), np.asarray(rids, dtype=np.int64)))


def _moldables(conn: Connection, table) -> list[int]:
    """The distinct moldable ids of a gantt-shaped table, hopping along its primary key (one index probe per
    moldable, not a scan of its rows)."""
    name = table.name
    rows = conn.exec_driver_sql(
        f"WITH RECURSIVE d(m) AS (SELECT min(moldable_job_id) FROM {name} UNION ALL "
        f"SELECT (SELECT min(moldable_job_id) FROM {name} WHERE moldable_job_id > d.m) FROM d WHERE d.m IS NOT NULL) "
        "SELECT m FROM d WHERE m IS NOT NULL")
    return [int(r[0]) for r in rows]


def _info(r) -> JobInfo:
    return JobInfo(
        id=int(r.job_id), state=r.state, job_type=r.job_type or "PASSIVE", reservation=r.reservation or "None",
        info_type=r.info_type, message=r.message or "", start_time=int(r.start_time or 0),
        stop_time=int(r.stop_time or 0), assigned_moldable_job=int(r.assigned_moldable_job or 0),
        suspended=r.suspended or "NO", user=r.job_user or "", name=r.job_name or "", queue=r.queue_name or "",
        checkpoint=int(r.checkpoint or 0), notify=r.notify,
    )

