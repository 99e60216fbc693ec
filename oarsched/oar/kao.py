"""``oarsched-kao``: OAR3's meta-scheduler round (``kao``, internal mode) in one process.

Almighty runs ``META_SCHED_CMD`` after every submission and job end; this
command is a drop-in for OAR3's ``kao``: it reads the same ``oar.conf``
(``$OARCONFFILE``) and database, does one whole round, and exits with the
status Almighty expects:

* 0: a normal round (jobs may have been launched);
* 1: an advance reservation acknowledged this round starts now (schedule again);
* 2: besteffort jobs must be killed first (Almighty runs Leon), or the oarsub
  of an accepted reservation could not be told.

The round (see ``docs/differences-from-oar3.md`` for where it departs from OAR3):

1. the gantt is flushed and rebuilt with the jobs holding resources and the
   accepted reservations;
2. each group of queues of equal priority (higher first, ``notActive``
   queues skipped) is scheduled by oarsched's engine into slot sets shared by
   the whole round; then the queues' accepted reservations are checked
   (expired, waiting for resources) and their new ones accepted or refused;
3. jobs whose start has come are launched (``toLaunch``), unless besteffort
   jobs hold their resources: those are fragged and nothing starts;
4. the visualisation tables are refreshed; jobs in transitional states
   (``toError``, ``toAckReservation``, ``toLaunch``) are moved on.

Every database write of the round is one transaction; the notifications
(bipbip commander, Almighty, oarsub sockets) are sent after its commit.  A
notification that fails is logged; the consequences OAR3 gives it (lost
interactive session, unreachable oarsub) are written in a second transaction.
A broken setup (configuration, database) exits 1 with one line on stderr and
writes nothing.

``oarsched-kao`` itself is :mod:`oarsched.oar.kao_client`: with ``--server SOCKET`` it has a resident
server (:mod:`oarsched.oar.kao_server`) run this module's :func:`main`, without the imports and the
schema reflection a fresh process pays for.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from oarsched.engine.constraints import GroupConstraints
from oarsched.engine.meta import (
    CANNOT_RUN,
    EXIT_BESTEFFORT_KILL,
    EXIT_OK,
    EXIT_RESERVATION_NOW,
    TOO_OLD,
    BesteffortJob,
    GanttJob,
    MetaRound,
    Oar3ResourceIndex,
    checkpoint_first,
    cut_message_walltime,
    late_walltime,
    launch_candidates,
    nodes_to_halt,
    per_queue_value,
    reduce_message_resources,
    reservation_status,
    run_meta_round,
    walltime_grant,
)
from oarsched.engine.result import ScheduledJob
from oarsched.engine.round import RoundOptions
from oarsched.engine.search import SchedulerOptions, Search
from oarsched.errors import ConfigError, OarschedError, UsageError
from oarsched.model.platform import Platform
from oarsched.oar.config import OarConfig, setup_logging
from oarsched.oar.db import OarDatabase, RoundLocked, job_message
from oarsched.oar.kamelot import decision_messages, parse_now
from oarsched.oar.metadb import NOT_WAITING_STATES, GanttMemo, JobInfo, MetaDb, priority_levels
from oarsched.oar.notify import Endpoints, NodeCommands, Outbox, TcpMessage, send_all
from oarsched.oar.readers import read_platform
from oarsched.oar.round_support import fail, first_line, guarded_select, quota_state, round_locked
from oarsched.oar.shell import run_shell
from oarsched.oar.user_notify import (
    ERROR_TEXT,
    RUNNING_TEXT,
    Delivery,
    UserNotification,
    deliver,
    plan,
)

log = logging.getLogger("oarsched.kao")

PROG = "oarsched-kao"


@dataclass
class KaoResult:
    """What a round decided (for the exit status, the demo and tests)."""

    exit_code: int = EXIT_OK
    launched: list[int] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)
    notify_failures: list[str] = field(default_factory=list)


def now_sql(t: int) -> str:
    """OAR3's ``local_to_sql``: the process's local time zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


class KaoRound:
    """One meta-scheduler round on an open transaction."""

    def __init__(self, db: OarDatabase, config: OarConfig, mdb: MetaDb, now: int, hook=None) -> None:
        """``hook``: the ``EXTRA_METASCHED`` function (:func:`extra_metasched_hook`), None for none."""
        self.db = db
        self.config = config
        self.mdb = mdb
        self.now = now
        self.hook = hook
        self.sec = config.job_security_time
        self.result = KaoResult()
        self.out = self.result.outbox

    # -- the round ---------------------------------------------------------------------------
    def run(self) -> KaoResult:
        mdb = self.mdb
        if str(self.config.get("WALLTIME_CHANGE_ENABLED", "NO")).lower() == "yes":
            self._walltime_changes()
        mdb.open_gantt()
        mdb.reinsert_current_jobs()
        # OAR3 sets every job already in the gantt to its gantt start (flushed by its next commit: M6)
        self.db._start_times_from_gantt(mdb.conn)
        scheduled = self.db.read_scheduled_jobs(mdb.conn, self.now)
        besteffort = mdb.besteffort_jobs(scheduled)
        self.platform = self._platform()
        steps = _DbSteps(self, self._meta_round(scheduled), self.hook, scheduled)
        if run_meta_round(steps, mdb.queue_groups(), besteffort, self.now, self._absent):
            self.result.exit_code = EXIT_BESTEFFORT_KILL
            self.out.chstate()
        mdb.close_gantt()
        mdb.copy_gantt_to_visu()
        self._energy_saving()
        snapshot = mdb.jobs_in_states(NOT_WAITING_STATES)
        self._resume(snapshot.get("Resuming", []))
        self._interactive_predictions()
        self._to_error(snapshot.get("toError", []))
        self._to_ack_reservation(snapshot.get("toAckReservation", []))
        for job in snapshot.get("toLaunch", []):
            self.out.run_job(job.id)
        return self.result

    def _platform(self) -> Platform:
        return read_platform(self.db, self.mdb.conn, self.config, properties=self.config.hierarchy_labels)

    def _meta_round(self, scheduled: list[ScheduledJob]) -> MetaRound:
        options = SchedulerOptions(job_security_time=self.sec, quotas=quota_state(self.config, self.platform))
        constraints = GroupConstraints(self.platform, select=guarded_select(self.db, self.mdb.conn))
        self.search = Search(self.platform, options, constraints=constraints)
        return MetaRound(self.search, self.now, scheduled)

    def _call_hook(self, hook, prev_queues, scheduled, meta: MetaRound, queues: list[str]) -> None:
        """``EXTRA_METASCHED``'s function, before each queue group, with OAR3's arguments (the round's
        connection in place of its session); a failure is logged, the round goes on."""
        try:
            hook(self.mdb.conn, prev_queues, self.platform, scheduled, meta.round.slot_sets, self.sec, queues,
                 self.now, str(self.config.get("EXTRA_METASCHED_CONFIG", "") or ""))
        except Exception as exc:  # noqa: BLE001 - a site's hook never stops the round
            log.error("EXTRA_METASCHED hook failed before queues %s: %s: %s", ",".join(queues),
                      type(exc).__name__, exc)

    def _walltime_changes(self) -> None:
        """Pending walltime changes of running jobs, granted before scheduling (OAR3 crashes here: M9)."""
        mdb, c = self.mdb, self.config
        for req, rids, types, user, name in mdb.walltime_requests():
            apply_time = per_queue_value(c.get("WALLTIME_CHANGE_APPLY_TIME", 0), req.queue, req.walltime - req.granted)
            increment = per_queue_value(c.get("WALLTIME_INCREMENT", 0), req.queue, req.walltime - req.granted)
            container = mdb.container_end(int(types["inner"])) if types.get("inner", "").isdigit() else None
            grant = walltime_grant(req, self.now, apply_time, increment,
                                   self._end_finder(req, rids, types, user, name, container))
            if grant is None:
                log.debug("job %s: walltime change not granted this round (pending %ss)", req.job_id, req.pending)
                continue
            log.info("job %s: %s", req.job_id, grant.message)
            mdb.apply_walltime_grant(req.job_id, grant)

    def _end_finder(self, req, rids, types, user, name, container: int | None):
        """``(from, to) -> last second`` the job may extend to (next job on its resources, its container's end)."""
        def possible_end(start: int, end: int) -> int:
            if container is not None:
                end = min(end, container)
            return self.mdb.possible_end(start, end, rids, self.sec, req.delay_next_jobs, types, user, name)
        return possible_end

    # -- scheduling a queue group ------------------------------------------------------------------
    def _schedule_group(self, meta: MetaRound, queues: list[str]) -> None:
        conn, config, db = self.mdb.conn, self.config, self.db
        rows = db.read_waiting_jobs(conn, queues, config.nodes_label)
        if not rows.jobs:
            return
        options = RoundOptions(
            now=self.now, queues=queues, ordering=config.sorting_settings(),
            accounting=lambda start, stop: db.read_accounting(conn, queues, start, stop),
            max_jobs=config.max_jobs_per_round)
        outcome = meta.schedule_group(rows.jobs, options)
        result = outcome.result
        messages, placed_karma = decision_messages(result, rows.message_info, outcome.karma)
        db.write_decisions(conn, result, messages, placed_karma, outcome.considered_starts(),
                           write_resources=self.mdb.put_gantt_resources)

    # -- advance reservations --------------------------------------------------------------------
    def _check_accepted_reservations(self, queue: str) -> None:
        """Accepted reservations near their start: expired, late for resources, started short of some."""
        mdb = self.mdb
        ars = mdb.gantt_jobs(queue=queue, reservation="Scheduled", sec=self.sec)
        if not ars:
            return
        index = Oar3ResourceIndex([(r.id, r.state) for r in self.platform.resources])
        timeout = self.config.get_int("RESERVATION_WAITING_RESOURCES_TIMEOUT") \
            if "RESERVATION_WAITING_RESOURCES_TIMEOUT" in self.config else 300
        for ar in sorted(ars, key=lambda g: (g.start_time, g.id)):
            status = reservation_status(ar, self.now, index, timeout)
            if status.action == "expire":
                if mdb.set_job_state(ar.id, "Error"):
                    self._error_done(ar.id)
                mdb.set_message(ar.id, "Reservation expired and couldn't be started.")
            elif status.action == "push":
                log.warning("job %s: advance reservation waits for its resources", ar.id)
                mdb.set_gantt_start(ar.moldable_id, self.now + 1)
            elif status.action == "reduce":
                mdb.keep_gantt_resources(ar.moldable_id, status.kept_rids)
                mdb.add_event("SCHEDULER_REDUCE_NB_RESSOURCES_FOR_RESERVATION", ar.id,
                              f"[MetaSched] Reduce the number of resources for the job {ar.id}")
                info = mdb.job_infos([ar.id])[ar.id]
                msg = reduce_message_resources(info.message, status.nb_resources)
                if msg != info.message:
                    mdb.set_message(ar.id, msg)

    def _check_new_reservations(self, meta: MetaRound, queue: str) -> None:
        """New reservations (``toSchedule``) accepted on the shared slot sets, or refused."""
        mdb = self.mdb
        rows = self.db.read_waiting_jobs(mdb.conn, [queue], self.config.nodes_label, reservation="toSchedule")
        if not rows.jobs:
            return
        infos = mdb.job_infos(j.id for j in rows.jobs)
        quotas_on = self.search.quotas is not None
        for job in rows.jobs:
            info = infos[job.id]
            v = meta.decide_reservation(job, info.start_time)
            if v.refusal == TOO_OLD:
                mdb.set_message(job.id, TOO_OLD)
                mdb.set_job_state(job.id, "toError")
                self.result.refused.append(job.id)
                continue
            if v.start != info.start_time:
                mdb.update_job(job.id, start_time=v.start)
            if v.refusal is not None or v.resources is None:
                if quotas_on:
                    mdb.set_job_state(job.id, "toError")
                    mdb.set_message(job.id, "This advance reservation cannot run due to quotas")
                mdb.set_job_state(job.id, "toError")
                mdb.update_job(job.id, message=CANNOT_RUN, reservation="Scheduled")
                self.result.refused.append(job.id)
                continue
            mld_id, start, w, res = v.moldable_id, v.start, v.walltime, v.resources
            mdb.set_job_state(job.id, "toAckReservation")
            mdb.update_job(job.id, reservation="Scheduled")
            self._save_reservation(job, info, mld_id, start, w, res)
            self.result.accepted.append(job.id)

    def _save_reservation(self, job, info: JobInfo, mld_id: int, start: int, w: int, res) -> None:
        from oarsched._core import bitset

        rids = self.platform.rids[bitset.to_indices(res)]
        self.mdb.put_gantt_job(mld_id, start, rids)
        self.mdb.set_message(job.id, job_message(nb_resources=len(rids), walltime=w, job_type=info.job_type,
                                                 queue=info.queue, name=info.name))

    # -- launching ----------------------------------------------------------------------------------
    def _launch_candidates(self) -> list[GanttJob]:
        kill_duration = self.config.get_int("SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION") \
            if "SCHEDULER_BESTEFFORT_KILL_DURATION_BEFORE_RESERVATION" in self.config else 0
        return launch_candidates(self.mdb.gantt_jobs(sec=self.sec, start_by=self.now + kill_duration), self.now,
                                 kill_duration)

    def _absent(self) -> set[int]:
        return {rid for rid, st in self.mdb.resource_states().items() if st == "Absent"}

    def _kill_besteffort(self, kills: list[BesteffortJob]) -> None:
        """Besteffort jobs in the way of a job about to start: checkpointed or fragged."""
        mdb = self.mdb
        for be in kills:
            if checkpoint_first(be, mdb.first_event_date("CHECKPOINT", be.id), self.now):
                mdb.add_event("CHECKPOINT", be.id, f"Send checkpoint signal to the job {be.id}")
                self.result.killed.append(be.id)
                continue
            mdb.add_event("BESTEFFORT_KILL", be.id, f"kill the besteffort job {be.id}")
            mdb.frag_job(be.id)
            self.result.killed.append(be.id)

    def _launch(self, jobs: list[GanttJob]) -> None:
        mdb = self.mdb
        for job in jobs:
            if job.reservation == "Scheduled" and job.start_time < self.now:
                self._cut_late_reservation(job)
            mdb.launch(job)
            self.out.run_job(job.id)
            self.result.launched.append(job.id)
        self._scheduler_priority([job.id for job in jobs], +2, "START")

    def _cut_late_reservation(self, job: GanttJob) -> None:
        """A reservation starting late keeps its end: walltime, gantt start, event and message."""
        mdb = self.mdb
        new = late_walltime(job.walltime, job.start_time, self.now)
        mdb.set_walltime(job.moldable_id, new)
        mdb.set_gantt_start(job.moldable_id, self.now)
        mdb.add_event("REDUCE_RESERVATION_WALLTIME", job.id, f"Change walltime from {job.walltime} to {new}")
        info = mdb.job_infos([job.id])[job.id]
        msg = cut_message_walltime(info.message, new)
        if msg != info.message:
            mdb.set_message(job.id, msg)

    # -- after the launches -------------------------------------------------------------------------
    def _energy_saving(self) -> None:
        """Nodes to switch off (idle long enough) and on (jobs predicted on Absent nodes); sent after commit.

        OAR3 raises NotImplementedError for the commands and keys the wake-up
        on the sleep command (M16): here the commands get the node names on
        stdin, as in OAR2, and the wake-up is keyed on the wake-up command.
        """
        c, mdb = self.config, self.mdb
        mode = str(c.get("ENERGY_SAVING_MODE", "") or "")
        if not mode:
            return
        if mode != "metascheduler_decision_making":
            log.error("ENERGY_SAVING_MODE=%r is not supported (only metascheduler_decision_making): "
                      "no node switched", mode)
            return
        internal = str(c.get("ENERGY_SAVING_INTERNAL", "no")) == "yes"
        nodes = NodeCommands(internal=internal, timeout=float(c.get("SCHEDULER_TIMEOUT", 10) or 10),
                             sleep_cmd=str(c.get("SCHEDULER_NODE_MANAGER_SLEEP_CMD", "") or ""),
                             wakeup_cmd=str(c.get("SCHEDULER_NODE_MANAGER_WAKE_UP_CMD", "") or ""),
                             greta=f"tcp://{c.get('GRETA_SERVER', 'localhost')}:{c.get('GRETA_PORT', 6672)}")
        can_sleep = bool(nodes.sleep_cmd) or (internal and "ENERGY_SAVING_NODE_MANAGER_SLEEP_CMD" in c)
        if can_sleep and "SCHEDULER_NODE_MANAGER_SLEEP_TIME" in c and "SCHEDULER_NODE_MANAGER_IDLE_TIME" in c:
            idle = mdb.idle_nodes()
            names = sorted(idle)
            nodes.halt = nodes_to_halt(idle, mdb.next_start_on_nodes(names), mdb.last_wakeups(names), self.now,
                                       c.get_int("SCHEDULER_NODE_MANAGER_IDLE_TIME"),
                                       c.get_int("SCHEDULER_NODE_MANAGER_SLEEP_TIME"))
        if nodes.wakeup_cmd or (internal and "ENERGY_SAVING_NODE_MANAGER_WAKE_UP_CMD" in c):
            wakeup_time = c.get_int("SCHEDULER_NODE_MANAGER_WAKEUP_TIME") \
                if "SCHEDULER_NODE_MANAGER_WAKEUP_TIME" in c else 1
            nodes.wakeup = mdb.nodes_to_wake_up(wakeup_time)
        self.out.nodes = nodes

    def _resume(self, jobs: list[JobInfo]) -> None:
        """Resuming jobs whose resources are free again (OAR3 crashes on the ``noop`` path: M14).

        ``noop`` jobs go back to Running.  Others run ``JUST_BEFORE_RESUME_EXEC_FILE <id>``; when it fails
        or times out the job is fragged (``RESUME_SCRIPT_ERROR``, Almighty ``Qdel``), otherwise it stays
        Resuming, as in OAR3 (resuming its processes on the nodes is not done by the meta-scheduler).
        """
        if not jobs:
            return
        mdb = self.mdb
        types = mdb.types_of(j.id for j in jobs)
        for info in jobs:
            others = mdb.jobs_on_resources_of(info.id)
            if others:
                log.info("job %s: stays Resuming, jobs %s use its resources", info.id, others)
                continue
            if "noop" in types.get(info.id, {}):
                if mdb.set_job_state(info.id, "Running"):
                    mdb.release_suspended(info.id)
                    self._notify_user(info.id, "RUNNING", RUNNING_TEXT)
                continue
            why = _resume_script_failure(self.config, info.id)
            if why:
                log.error("job %s: %s", info.id, why)
                mdb.add_event("RESUME_SCRIPT_ERROR", info.id, why)
                mdb.frag_job(info.id)
                self.out.qdel()

    def _interactive_predictions(self) -> None:
        stamp = now_sql(self.now)
        for info, start in self.mdb.interactive_waiting():
            if not info.info_type:  # OAR3 crashes on None.split (M12): nobody to tell
                log.warning("job %s: interactive job without an oarsub address (info_type NULL)", info.id)
                continue
            self.out.oarsub(info.id, info.info_type,
                            f"[{stamp}] Start prediction: {now_sql(start)} ({info.message})\n", "lost_session")

    def _to_error(self, jobs: list[JobInfo]) -> None:
        for info in jobs:
            if info.job_type == "INTERACTIVE" or (info.job_type == "PASSIVE" and info.reservation == "Scheduled"):
                if info.info_type:
                    self.out.oarsub(info.id, info.info_type, info.message + "\n\n")
                    self.out.oarsub(info.id, info.info_type, "BAD JOB\n\n")
                else:
                    log.warning("job %s: no oarsub address (info_type NULL) to tell it failed", info.id)
            if self.mdb.set_job_state(info.id, "Error"):
                self._error_done(info.id)

    def _error_done(self, job_id: int) -> None:
        """OAR3's ``set_job_state(Error)`` after the state: dates and flags, the user told, the scheduler
        priority given back, the job's rows marked LOG (PostgreSQL), Almighty told."""
        self.mdb.error_side_effects(job_id)
        self._notify_user(job_id, "ERROR", ERROR_TEXT)
        self._scheduler_priority([job_id], -2, "STOP")
        self.mdb.log_jobs([job_id])
        self.out.chstate()

    def _notify_user(self, job_id: int, tag: str, text: str) -> None:
        """The job's own notification (``jobs.notify``): mail event now, mail or command after the commit."""
        info = self.mdb.job_infos([job_id]).get(job_id)
        if info is None or not info.notify:
            return
        note = plan(job_id, info.notify, tag, text, name=info.name or None, user=info.user,
                    info_type=info.info_type, add_event=self.mdb.add_event)
        if note is not None:
            self.out.users.append(note)

    def _scheduler_priority(self, job_ids: list[int], value: int, state: str) -> None:
        """``SCHEDULER_PRIORITY_HIERARCHY_ORDER``: resources' ``scheduler_priority`` on besteffort and
        timesharing jobs' start (``+2``) and end (``-2``)."""
        order = self.config.get("SCHEDULER_PRIORITY_HIERARCHY_ORDER")
        if order is None or not job_ids:
            return
        levels = priority_levels(str(order), self.db.tables["resources"])
        self.mdb.update_scheduler_priority(job_ids, levels, str(order), value, state)

    def _to_ack_reservation(self, jobs: list[JobInfo]) -> None:
        for i, info in enumerate(jobs):
            self.out.oarsub(info.id, info.info_type, "GOOD RESERVATION\n\n", "cannot_notify")
            # OAR3 never commits the last acknowledgement's state log (trap M1)
            self.mdb.set_job_state(info.id, "Waiting", log_row=i < len(jobs) - 1)
            if info.start_time - 1 <= self.now and self.result.exit_code == EXIT_OK:
                self.result.exit_code = EXIT_RESERVATION_NOW


class _DbSteps:
    """The steps :func:`~oarsched.engine.meta.run_meta_round` drives, on the database (its order is the
    simulator's: :class:`~oarsched.engine.meta.MemoryRound` runs the same steps in memory)."""

    def __init__(self, kao: KaoRound, meta: MetaRound, hook, scheduled: list[ScheduledJob]) -> None:
        self.kao, self.meta, self.hook, self.scheduled = kao, meta, hook, scheduled
        self.prev_queues: list[str] | None = None

    def before_group(self, queues: list[str]) -> None:
        if self.hook is not None:
            self.kao._call_hook(self.hook, self.prev_queues, self.scheduled, self.meta, queues)
        self.prev_queues = queues

    def schedule_group(self, queues: list[str]) -> None:
        self.kao._schedule_group(self.meta, queues)

    def check_accepted_reservations(self, queue: str) -> None:
        self.kao._check_accepted_reservations(queue)

    def check_new_reservations(self, queue: str) -> None:
        self.kao._check_new_reservations(self.meta, queue)

    def launch_candidates(self) -> list[GanttJob]:
        return self.kao._launch_candidates()

    def kill_besteffort(self, kills: list[BesteffortJob]) -> None:
        self.kao._kill_besteffort(kills)

    def launch(self, jobs: list[GanttJob]) -> None:
        self.kao._launch(jobs)


EXTRA_METASCHED_GROUP = "oar.extra_metasched_func"


def extra_metasched_hook(config: OarConfig):
    """The function ``EXTRA_METASCHED`` names: an entry point of ``oar.extra_metasched_func`` (as OAR3), or
    ``module:function``; None for ``default``/empty (OAR3's no-op)."""
    name = str(config.get("EXTRA_METASCHED", "default") or "default").strip()
    if name == "default":
        return None
    try:
        if ":" in name:
            import importlib

            module, _, attr = name.partition(":")
            return getattr(importlib.import_module(module), attr)
        from oarsched.plugins.registry import load_entry_point

        return load_entry_point(EXTRA_METASCHED_GROUP, name)
    except (LookupError, ImportError, AttributeError) as exc:
        raise ConfigError(f"EXTRA_METASCHED={name!r}: {exc}") from None


def _resume_script_failure(config: OarConfig, job_id: int) -> str | None:
    """Run ``JUST_BEFORE_RESUME_EXEC_FILE <id>``: None when it succeeds (or none is set), else why not."""
    script = str(config.get("JUST_BEFORE_RESUME_EXEC_FILE", "") or "")
    if not script:
        return None
    code = run_shell(f"{script} {job_id}", float(config.get("SUSPEND_RESUME_SCRIPT_TIMEOUT", 60) or 60)).code
    if code is None:
        return "Suspend script timeouted"
    return None if code == 0 else f"[{job_id}] Suspend script error, return code = {code}"


# -- notification failures --------------------------------------------------------------------------

def run_kao(db: OarDatabase, config: OarConfig, now: int, *, notify: bool = True,
            lock_wait: float | None = None) -> KaoResult:
    """One whole round: decisions and writes in one transaction, then the notifications.

    The transaction holds the database's round lock (:meth:`OarDatabase.round_transaction`), the
    one ``oarsched-kamelot`` takes: a kao round and a queue's external scheduler never read the same
    free resources at once.  ``lock_wait``: seconds to wait for it (None: as long as it takes).
    """
    frag_user = os.environ.get("OARDO_USER") or os.environ.get("USER")
    delivery = Delivery.from_config(config)
    memo = db.gantt_memo
    hook = extra_metasched_hook(config)  # a hook may write the gantt behind the round's back: no memo then
    with db.round_transaction(lock_wait) as conn:
        mdb = MetaDb(db, conn, now, frag_user)
        known = memo.recall(conn) if memo is not None else None
        if known is not None and hook is None:
            mdb.trust(known)
            log.debug("gantt resource rows as the last round left them (nothing committed since): not read")
        result = KaoRound(db, config, mdb, now, hook).run()
        witness = GanttMemo.witness(conn) if memo is not None and hook is None else None
    if memo is not None:  # committed: the gantt resource tables now hold exactly what the round placed
        memo.remember(witness, mdb.placed)
    if not notify:
        return result
    endpoints = Endpoints.from_config(config)
    refused: list[TcpMessage] = []
    result.notify_failures = send_all(result.outbox, endpoints, refused.append)
    if refused:
        late = _after_refused(db, now, frag_user, result, refused)
        if late.almighty:
            result.notify_failures += send_all(late, endpoints, lambda m: None)
    if result.outbox.users:
        result.notify_failures += _notify_users(db, now, frag_user, result.outbox.users, delivery)
    return result


def _notify_users(db: OarDatabase, now: int, frag_user: str | None, notes: list[UserNotification],
                  delivery: Delivery) -> list[str]:
    """Users' mails and commands, last (a dead host may take ``OAR_SSH_CONNECTION_TIMEOUT``); the commands'
    outcome events in a transaction of their own.  Failures are logged and returned, never raised."""
    failures, outcomes = deliver(notes, delivery)
    if outcomes:
        try:
            with db.round_transaction() as conn:
                mdb = MetaDb(db, conn, now, frag_user)
                for o in outcomes:
                    mdb.add_event(o.event, o.job_id, o.description)
        except (SQLAlchemyError, OarschedError) as exc:
            failures.append(f"user notification events not written: {exc}")
            log.error("user notification events not written: %s", first_line(exc))
    return failures


def _after_refused(db: OarDatabase, now: int, frag_user: str | None, result: KaoResult,
                   refused: list[TcpMessage]) -> Outbox:
    outbox = Outbox()
    with db.round_transaction() as conn:
        mdb = MetaDb(db, conn, now, frag_user)
        for msg in refused:
            if msg.on_refused == "lost_session":
                mdb.add_event("LOST_SESSION", msg.job_id,
                              f"kill the interactive job because session is lost {msg.job_id}")
                mdb.frag_job(msg.job_id)
                outbox.qdel()
            elif msg.on_refused == "cannot_notify":
                mdb.add_event("CANNOT_NOTIFY_OARSUB", msg.job_id, f"Can not notify oarsub for the job {msg.job_id}")
                mdb.frag_job(msg.job_id)
                result.exit_code = EXIT_BESTEFFORT_KILL
    return outbox


# -- command line -------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description="OAR3 meta-scheduler round (kao drop-in, internal mode).")
    parser.add_argument("--now", metavar="SEC", help="the round's clock, epoch seconds (default: the database's)")
    return parser.parse_args(argv)


LOCK_WAIT_MIN = 30.0
"""Seconds kao waits at least for the round lock (a queue's external scheduler may hold it for its
whole SCHEDULER_TIMEOUT)."""


def lock_wait(config: OarConfig) -> float:
    """How long kao waits for the round lock: ``SCHEDULER_TIMEOUT``, at least :data:`LOCK_WAIT_MIN`."""
    timeout = config.get_float("SCHEDULER_TIMEOUT")
    return max(LOCK_WAIT_MIN, timeout if timeout > 0 else 0.0)


def database_now(db: OarDatabase) -> int:
    """The database's clock, as OAR3's ``get_date``."""
    from sqlalchemy import text

    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            return int(conn.execute(text("SELECT CAST(strftime('%s','now') AS INTEGER)")).scalar_one())
        return int(conn.execute(text("SELECT EXTRACT(EPOCH FROM current_timestamp)")).scalar_one())


def main(argv: list[str] | None = None, *, server_unavailable: str | None = None,
         open_database: Callable[[str], OarDatabase] = OarDatabase) -> int:
    """One round as ``oarsched-kao`` runs it; the exit status Almighty reads.

    ``server_unavailable``: why the resident server did not run this round (logged as a warning).
    ``open_database``: the database of a URL (the resident server's keeps them open between rounds).
    """
    logging_ready = False
    try:
        args = parse_args(argv)
        now = parse_now(args.now) if args.now is not None else None
        config = OarConfig.load()
        setup_logging(config)
        logging_ready = True
        if server_unavailable:
            log.warning("%s: round run in this process", server_unavailable)
        config.validate()
        mode = config.get("METASCHEDULER_MODE") or "internal"
        if mode != "internal":
            log.warning("METASCHEDULER_MODE=%r: oarsched-kao schedules every queue in this round with its own "
                        "engine (internal mode); the queues' SCHEDULERS_PATH commands are not run", mode)
        db = open_database(config.sqlalchemy_url())
        if now is None:
            now = database_now(db)
        result = run_kao(db, config, now, lock_wait=lock_wait(config))
    except RoundLocked as exc:  # another round holds the database: Almighty runs kao again soon
        return round_locked(f"{exc}: no decision this round", logging_ready, PROG)
    except OarschedError as exc:
        return _fail(f"error: {exc}", logging_ready)
    except SQLAlchemyError as exc:
        return _fail(f"error: database error during the round (nothing written): {exc.__class__.__name__}: "
                     f"{first_line(exc)}", logging_ready)
    except Exception as exc:
        if logging_ready:
            log.debug("unexpected failure", exc_info=True)
        return _fail(f"internal error: {exc.__class__.__name__}: {first_line(exc)}", logging_ready)
    log.info("round at %s: %d launched, %d besteffort killed, %d reservations accepted, %d refused; exit %d",
             now, len(result.launched), len(result.killed), len(result.accepted), len(result.refused),
             result.exit_code)
    return result.exit_code


def _fail(message: str, logged: bool) -> int:
    return fail(message, logged, PROG)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
