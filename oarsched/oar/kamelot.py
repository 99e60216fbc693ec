"""``oarsched-kamelot``: the drop-in external scheduler for OAR3.

OAR3's meta-scheduler runs ``<SCHEDULERS_PATH>/<policy> QUEUE NOW_SEC NOW_SQL``
for each active queue; the scheduler reads the database named by oar.conf,
writes its decisions into ``gantt_jobs_predictions`` / ``gantt_jobs_resources``
and exits 0.  A non-zero exit makes OAR3 disable the queue, so a bad job is
reported and skipped, never fatal; only a broken setup (config, database)
exits non-zero.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field


from oarsched.engine.constraints import GroupConstraints
from oarsched.engine.scheduler import Scheduler, SchedulerOptions, ScheduleResult
from oarsched.errors import OarschedError
from oarsched.model.job import Job
from oarsched.model.platform import Platform
from oarsched.oar.config import OarConfig, setup_logging
from oarsched.oar.db import OarDatabase, job_message

log = logging.getLogger("oarsched.kamelot")


@dataclass
class RoundReport:
    """What a round did (for logs, the demo and tests)."""

    queue: str
    now: int
    result: ScheduleResult = field(default_factory=ScheduleResult)
    jobs: list[Job] = field(default_factory=list)
    platform: Platform | None = None
    skipped: dict[int, str] = field(default_factory=dict)
    """Jobs that could not be read (malformed rows)."""
    resource_rows: int = 0
    karma: dict[int, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def schedule_queue(db: OarDatabase, config: OarConfig, queue: str, now: int, *, write: bool = True) -> RoundReport:
    """One kamelot round for ``queue`` at ``now``: read, order, schedule, write (one transaction)."""
    from oarsched.policies.sorting import order_jobs

    report = RoundReport(queue=queue, now=now)
    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        rows = db.read_waiting_jobs(conn, [queue], config.nodes_label)
        report.skipped = dict(rows.errors)
        if not rows.jobs:
            log.info("no waiting job in queue %s", queue)
            return report
        resources = db.read_resources(conn, config.resource_order_terms)
        platform = Platform(resources, config.hierarchy_labels, config.suspendable_types)
        report.platform = platform
        accounting = []
        if config.job_priority in ("FAIRSHARE", "MULTIFACTOR"):
            accounting = db.read_accounting(conn, [queue], now - config.get_int("SCHEDULER_FAIRSHARING_WINDOW_SIZE"), now)
        order, karma = order_jobs(rows.jobs, accounting, [queue], now, config)
        by_id = {j.id: j for j in rows.jobs}
        cap = config.max_jobs_per_round
        if cap is not None:
            order = order[:cap]
        jobs = [by_id[i] for i in order]
        report.jobs = jobs
        scheduled = db.read_scheduled_jobs(conn, now)
        quotas = _quota_state(config, platform)
        options = SchedulerOptions(
            job_security_time=config.job_security_time,
            besteffort_round=(queue == "besteffort"),
            quotas=quotas,
        )
        constraints = GroupConstraints(platform, select=lambda expr: db.resource_ids_matching(conn, expr))
        scheduler = Scheduler(platform, options, constraints=constraints)
        t2 = time.perf_counter()
        result = scheduler.schedule(jobs, now, scheduled)
        report.result = result
        t3 = time.perf_counter()
        messages = {}
        placed_karma = {}
        for jid, a in result.assignments.items():
            job_type, q, name = rows.message_info[jid]
            k = karma.get(jid) if karma else None
            if k is not None:
                placed_karma[jid] = k
            messages[jid] = job_message(nb_resources=a.nb_resources, walltime=a.walltime, job_type=job_type,
                                        queue=q, name=name, karma=k)
        report.karma = placed_karma
        if write:
            report.resource_rows = db.write_decisions(conn, result, messages, placed_karma)
    report.timings = {"read": t2 - t0, "schedule": t3 - t2, "write": time.perf_counter() - t3}  # write includes the commit
    for jid, why in result.unscheduled.items():
        log.info("job %s not scheduled: %s", jid, why)
    log.info("queue %s: %d placed, %d not placed, %d skipped (read %.3fs, schedule %.3fs, write %.3fs)",
             queue, len(result.assignments), len(result.unscheduled), len(report.skipped),
             report.timings["read"], report.timings["schedule"], report.timings["write"])
    return report


def _quota_state(config: OarConfig, platform: Platform):
    if not config.quotas_enabled:
        return None
    from oarsched.engine.quotas import QuotaState

    return QuotaState.from_config(config, platform)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="oarsched-kamelot",
        description="OAR3 external scheduler (kamelot drop-in): schedule QUEUE at NOW_SEC.",
    )
    parser.add_argument("queue", nargs="?", default="default", help="queue to schedule (default: default)")
    parser.add_argument("now", nargs="?", help="current time, epoch seconds (default: this machine's clock)")
    parser.add_argument("now_sql", nargs="?", help="current time as SQL text (ignored, as by OAR3)")
    args = parser.parse_args(argv)
    if args.now is None:
        args.now = int(time.time())
    else:
        try:
            args.now = int(float(args.now))
        except ValueError:
            parser.error(f"NOW_SEC must be a number of seconds, got {args.now!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = OarConfig.load()
        setup_logging(config)
        db = OarDatabase(config.sqlalchemy_url())
        schedule_queue(db, config, args.queue, args.now)
    except OarschedError as exc:
        log.error("%s", exc)
        print(f"oarsched-kamelot: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # keep the message short for the meta-scheduler's log; details at debug
        log.debug("unexpected failure", exc_info=True)
        print(f"oarsched-kamelot: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
