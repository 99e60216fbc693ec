"""``oarsched-kamelot``: the drop-in external scheduler for OAR3.

OAR3's meta-scheduler runs ``<SCHEDULERS_PATH>/<policy> QUEUE NOW_SEC NOW_SQL``
for each active queue; the scheduler reads the database named by oar.conf,
writes its decisions into ``gantt_jobs_predictions`` / ``gantt_jobs_resources``
and exits 0.  A non-zero exit makes OAR3 disable the queue, so a bad job is
reported and skipped, never fatal; only a broken setup exits non-zero.

What the entrypoint guarantees (tested in ``tests/test_bad_input.py`` and
``tests/test_faults.py``):

* **exit 0** when the round is written, whatever the jobs hold: a job that
  cannot be read or understood (no moldable, walltime NULL or <= 0, a level
  count of 0, an unknown hierarchy level, a property expression outside the
  grammar, an ``inner`` naming no container, a dependency cycle) is logged at
  ERROR level with its id and left unscheduled; the other jobs are scheduled
  as usual.  A resource whose state is not one of OAR's four is logged and
  treated as OAR3 treats it: neither schedulable nor Dead.  A queue with no
  waiting job, or that does not exist, is a round with nothing to place.
* **exit 1 and one line** ``oarsched-kamelot: error: ...`` on stderr (also
  logged) when the setup is broken: bad arguments, unreadable or invalid
  ``oar.conf`` or quotas rules, database unreachable, wrong credentials, not
  an OAR3 schema, connection lost during the round.  Nothing is written then:
  the round runs in one transaction, rolled back on any error.
* **SCHEDULER_TIMEOUT** (seconds, OAR3's default 10; <= 0 disables it; OAR3's
  own meta-scheduler does not enforce it on external schedulers): the
  placement loop stops taking new jobs once half of it has elapsed since the
  scheduler started, leaving the other half to write the decisions.  The jobs
  placed so far are written as usual (each placement is final, so they are
  exactly what the full round would have decided for them); the jobs not
  considered are logged and keep waiting for the next round, which considers
  them again in priority order.  The first job of the round is always
  considered, so every round makes progress.  A job whose placement is still
  evaluating new property expressions when the placement budget runs out is
  given up for this round (logged with its id) and marked in
  ``jobs.scheduler_info``: later rounds place it after the other jobs.  The
  budget counts from the process start; on PostgreSQL every lock wait and
  statement is bounded by what is left of it.
* **one round at a time per database** (:meth:`OarDatabase.round_transaction`):
  a round that cannot get the round lock within its budget writes nothing
  and exits 0 with one line.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from oarsched.engine.constraints import GroupConstraints
from oarsched.engine.result import ScheduleResult
from oarsched.engine.round import RoundOptions, RoundOutcome, run_round
from oarsched.engine.search import SchedulerOptions
from oarsched.errors import OarschedError, UsageError
from oarsched.model.job import Job
from oarsched.model.platform import MAX_TIME, Platform
from oarsched.oar.config import OarConfig, setup_logging
from oarsched.oar.db import OarDatabase, RoundLocked, job_message
from oarsched.oar.readers import read_platform
from oarsched.oar.round_support import fail, first_line, guarded_select, quota_state, round_locked

log = logging.getLogger("oarsched.kamelot")

PROG = "oarsched-kamelot"

PLACEMENT_SHARE = 0.5
"""Share of ``SCHEDULER_TIMEOUT`` the placement loop may use; the rest is left for writing."""

MIN_WAIT = 1.0
"""Seconds a lock wait or a statement may always take, however little of the budget is left."""


@dataclass
class RoundReport:
    """What a round did (for logs, the demo and tests)."""

    queue: str
    now: int
    result: ScheduleResult = field(default_factory=ScheduleResult)
    jobs: list[Job] = field(default_factory=list)
    platform: Platform | None = None
    skipped: dict[int, str] = field(default_factory=dict)
    """Jobs left out before placement (rows that could not be read, invalid jobs): id -> why."""
    not_considered: list[int] = field(default_factory=list)
    """Jobs the placement loop did not reach before the deadline (SCHEDULER_TIMEOUT)."""
    never_fit: list[int] = field(default_factory=list)
    """Jobs that found no place and would find none on an empty platform."""
    resource_rows: int = 0
    karma: dict[int, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class Deadline:
    """A point in time after which the placement loop takes no new job.

    ``clock`` is :func:`time.monotonic` by default (tests pass their own).
    """

    def __init__(self, at: float, clock: Callable[[], float] = time.monotonic,
                 timeout: float | None = None, end: float | None = None) -> None:
        self.at = at
        self.clock = clock
        self.timeout = timeout
        self.end = end if end is not None else at
        """When the whole round's budget (``SCHEDULER_TIMEOUT``) runs out."""

    @classmethod
    def from_config(cls, config: OarConfig, started: float,
                    clock: Callable[[], float] = time.monotonic) -> Deadline | None:
        """From ``SCHEDULER_TIMEOUT`` (seconds since ``started``, a ``clock()`` value); None when <= 0."""
        timeout = config.get_float("SCHEDULER_TIMEOUT")
        if not timeout > 0:  # also NaN
            return None
        return cls(started + PLACEMENT_SHARE * timeout, clock, timeout, end=started + timeout)

    def expired(self) -> bool:
        return self.clock() >= self.at

    def remaining(self) -> float:
        """Seconds left of the round's whole budget, at least :data:`MIN_WAIT` (what a lock wait or a
        statement is allowed: a round started late still gets a chance to run)."""
        return max(MIN_WAIT, self.end - self.clock())

    def describe(self) -> str:
        if self.timeout is None:
            return "the deadline was reached"
        share = PLACEMENT_SHARE * self.timeout
        return f"SCHEDULER_TIMEOUT={self.timeout:g}s: placement stops after {share:g}s"


def schedule_queue(db: OarDatabase, config: OarConfig, queue: str, now: int, *, write: bool = True,
                   deadline: Deadline | None = None) -> RoundReport:
    """One kamelot round for ``queue`` at ``now``: read, order, schedule, write (one transaction).

    ``deadline``: stop taking new jobs when it expires (see the module docstring).
    """
    report = RoundReport(queue=queue, now=now)
    t0 = time.perf_counter()
    with db.round_transaction(deadline.remaining() if deadline is not None else None) as conn:
        rows = db.read_waiting_jobs(conn, [queue], config.nodes_label)
        report.skipped = dict(rows.errors)
        if not rows.jobs:
            _log_empty_queue(db, conn, queue, report)
            return report
        platform = read_platform(db, conn, config, properties=config.hierarchy_labels)
        report.platform = platform
        scheduled = db.read_scheduled_jobs(conn, now)
        options = RoundOptions(
            now=now, queues=[queue], ordering=config.sorting_settings(),
            accounting=lambda start, stop: db.read_accounting(conn, [queue], start, stop),
            max_jobs=config.max_jobs_per_round,
            scheduler=SchedulerOptions(
                job_security_time=config.job_security_time,
                besteffort_round=(queue == "besteffort"),
                quotas=quota_state(config, platform),
            ),
            constraints=GroupConstraints(platform, select=guarded_select(db, conn),
                                         should_stop=deadline.expired if deadline is not None else None),
            deferred=db.read_given_up(conn, [queue]),
        )
        t2 = time.perf_counter()
        outcome = run_round(platform, rows.jobs, scheduled, options,
                            should_stop=deadline.expired if deadline is not None else None)
        result = outcome.result
        report.result = result
        report.jobs = outcome.jobs
        report.skipped.update(outcome.skipped)
        report.never_fit = outcome.never_fit
        report.not_considered = _not_considered(outcome, deadline)
        karma = outcome.karma
        t3 = time.perf_counter()
        messages, placed_karma = decision_messages(result, rows.message_info, karma)
        report.karma = placed_karma
        if write:
            log.info("queue %s: writing %d decisions", queue, len(result.assignments))
            report.resource_rows = db.write_decisions(conn, result, messages, placed_karma,
                                                      outcome.considered_starts())
            db.mark_given_up(conn, _given_up_marks(options, result, now))
    report.timings = {"read": t2 - t0, "schedule": t3 - t2, "write": time.perf_counter() - t3}  # write includes the commit
    _log_round(report)
    return report


def _given_up_marks(options: RoundOptions, result: ScheduleResult, now: int) -> dict[int, str]:
    """``jobs.scheduler_info`` to write: the jobs given up on this round are marked (the next rounds place
    them after the others, so that one costly job cannot hold the head of the queue round after round);
    the marked jobs placed this round are cleared."""
    given_up = options.constraints.given_up if isinstance(options.constraints, GroupConstraints) else set()
    marks = {jid: f"round at {now}: out of time while placing it" for jid in given_up if jid in result.errors}
    marks.update({jid: "" for jid in options.deferred if jid in result.assignments})
    return marks


def decision_messages(result: ScheduleResult, message_info: dict[int, tuple[str, str, str]],
                      karma: dict[int, float]) -> tuple[dict[int, str], dict[int, float]]:
    """``jobs.message`` of every placed job (``R=..,W=..,J=..,Q=..[,N=..][ (Karma=..)]``) and its karma."""
    messages, placed_karma = {}, {}
    for jid, a in result.assignments.items():
        job_type, q, name = message_info[jid]
        k = karma.get(jid) if karma else None
        if k is not None:
            placed_karma[jid] = k
        messages[jid] = job_message(nb_resources=a.nb_resources, walltime=a.walltime, job_type=job_type,
                                    queue=q, name=name, karma=k)
    return messages, placed_karma


def _log_empty_queue(db: OarDatabase, conn, queue: str, report: RoundReport) -> None:
    """Nothing to place: say why (OAR3 just finds no waiting job, an unknown queue included)."""
    queues = db.tables.get("queues")
    if queues is not None and "queue_name" in queues.c:
        known = conn.execute(select(queues.c.queue_name).where(queues.c.queue_name == queue)).first()
        if known is None:
            log.warning("queue %r is not in the queues table: nothing to schedule", queue)
            return
    log.info("no waiting job in queue %s%s", queue,
             f" ({len(report.skipped)} unreadable)" if report.skipped else "")


def _not_considered(outcome: RoundOutcome, deadline: Deadline | None) -> list[int]:
    """Jobs the deadline stopped the loop before: logged, and told why in the result."""
    missed = outcome.not_considered
    if missed and deadline is not None:
        log.warning("%s: %d of %d jobs not considered this round (first: %s); they keep waiting",
                    deadline.describe(), len(missed), len(outcome.jobs), ", ".join(map(str, missed[:20])))
        for jid in missed:
            outcome.result.unscheduled[jid] = f"not considered: {deadline.describe()}"
    return missed


def _log_round(report: RoundReport) -> None:
    result = report.result
    told = set(report.not_considered) | set(result.errors) | set(report.never_fit)
    for jid, why in result.unscheduled.items():
        if jid not in told:
            log.info("job %s not scheduled: %s", jid, why)
    log.info("queue %s: %d placed, %d not placed, %d skipped, %d not considered "
             "(read %.3fs, schedule %.3fs, write %.3fs)",
             report.queue, len(result.assignments), len(result.unscheduled) - len(report.not_considered),
             len(report.skipped), len(report.not_considered),
             report.timings["read"], report.timings["schedule"], report.timings["write"])


# ------------------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    """Argument errors become :class:`UsageError` (one line, exit 1) instead of argparse's exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """``QUEUE [NOW_SEC [NOW_SQL]]`` as OAR3's kamelot reads them (NOW_SEC through ``int(float(...))``).

    Without NOW_SEC the machine's clock is used (as OAR3).  Raises
    :class:`UsageError` when NOW_SEC is not a number of seconds in ``[0, 2**31)``.
    """
    parser = _Parser(
        prog=PROG,
        description="OAR3 external scheduler (kamelot drop-in): schedule QUEUE at NOW_SEC.",
    )
    parser.add_argument("queue", nargs="?", default="default", help="queue to schedule (default: default)")
    parser.add_argument("now", nargs="?", help="current time, epoch seconds (default: this machine's clock)")
    parser.add_argument("now_sql", nargs="?", help="current time as SQL text (ignored, as by OAR3)")
    args = parser.parse_args(argv)
    args.now = int(time.time()) if args.now is None else parse_now(args.now)
    return args


def parse_now(text: str) -> int:
    """NOW_SEC as OAR3 reads it (``int(float(text))``), within OAR's time range."""
    try:
        now = int(float(text))
    except (ValueError, OverflowError):
        raise UsageError(f"NOW_SEC must be a number of seconds, got {text!r}") from None
    if not 0 <= now < MAX_TIME:
        raise UsageError(f"NOW_SEC must be between 0 and {MAX_TIME - 1}, got {text!r}")
    return now


def main(argv: list[str] | None = None) -> int:
    """One round as OAR3's meta-scheduler runs it: 0 when written, 1 (one line on stderr) when the setup is broken."""
    started = time.monotonic()
    logging_ready = False
    try:
        args = parse_args(argv)
        config = OarConfig.load()
        setup_logging(config)
        logging_ready = True
        config.validate()
        deadline = Deadline.from_config(config, started)
        db = OarDatabase(config.sqlalchemy_url(), budget=deadline.remaining() if deadline is not None else None)
        schedule_queue(db, config, args.queue, args.now, deadline=deadline)
    except RoundLocked as exc:  # not a broken setup: exit 1 would make OAR3 disable the queue
        return round_locked(f"{exc}: no decision this round, the queue's jobs keep waiting", logging_ready, PROG)
    except OarschedError as exc:
        return fail(f"error: {exc}", logging_ready, PROG)
    except SQLAlchemyError as exc:  # connection lost, lock timeout...: the round's transaction is not committed
        return fail(f"error: database error during the round: {exc.__class__.__name__}: {first_line(exc)}",
                    logging_ready, PROG)
    except KeyboardInterrupt:  # SIGINT: the round's transaction is rolled back
        return fail("interrupted (SIGINT): nothing written", logging_ready, PROG)
    except Exception as exc:  # keep the message short for the meta-scheduler's log; details at debug
        if logging_ready:
            log.debug("unexpected failure", exc_info=True)
        return fail(f"internal error: {exc.__class__.__name__}: {first_line(exc)}", logging_ready, PROG)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
