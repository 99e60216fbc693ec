"""``oarsched``: the command line (demo, and the drop-in round on a given oar.conf)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

from oarsched.errors import OarschedError


def _ranges(ids: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    out, start, prev = [], None, None
    for i in sorted(ids):
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = i
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(out)


def gantt_table(db, now: int) -> str:
    """A readable table of what the gantt tables hold now."""
    from sqlalchemy import select

    t = db.tables
    jobs, gp, gr, m = t["jobs"], t["gantt_jobs_predictions"], t["gantt_jobs_resources"], t["moldable_job_descriptions"]
    hosts = {}
    with db.engine.connect() as conn:
        for rid, host in conn.execute(select(t["resources"].c.resource_id, t["resources"].c.network_address)):
            hosts[int(rid)] = host
        rows = conn.execute(
            select(jobs.c.job_id, jobs.c.queue_name, jobs.c.state, jobs.c.job_user, jobs.c.reservation,
                   gp.c.start_time, m.c.moldable_walltime, gr.c.resource_id)
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(jobs, jobs.c.job_id == m.c.moldable_job_id)
            .join(gr, gr.c.moldable_job_id == gp.c.moldable_job_id)
            .order_by(gp.c.start_time, jobs.c.job_id)
        ).all()
        waiting = conn.execute(
            select(jobs.c.job_id, jobs.c.queue_name, jobs.c.message).where(jobs.c.state == "Waiting")
        ).all()
    by_job: dict[int, dict] = {}
    for r in rows:
        j = by_job.setdefault(r.job_id, {"queue": r.queue_name, "state": r.state, "user": r.job_user,
                                         "ar": r.reservation, "start": r.start_time, "wall": r.moldable_walltime,
                                         "res": []})
        j["res"].append(int(r.resource_id))
    lines = [f"{'job':>4}  {'queue':<10} {'state':<9} {'user':<6} {'start (+s from now)':<27} {'walltime':>8}  "
             f"{'#res':>4}  nodes: resource ids"]
    for jid, j in by_job.items():
        start = datetime.fromtimestamp(j["start"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        state = "AR" if j["ar"] == "Scheduled" else j["state"]
        by_host: dict[str, list[int]] = {}
        for rid in j["res"]:
            by_host.setdefault(str(hosts.get(rid)), []).append(rid)
        where = " ".join(f"{h}:{_ranges(ids)}" for h, ids in by_host.items())
        lines.append(f"{jid:>4}  {j['queue']:<10} {state:<9} {j['user'] or '':<6} {start} ({j['start'] - now:+7d}s)    "
                     f"{j['wall']:>8}  {len(j['res']):>4}  {where}")
    unplaced = [w for w in waiting if w.job_id not in by_job]
    if unplaced:
        lines.append("")
        lines.append("not placed: " + ", ".join(f"{w.job_id} ({w.queue_name})" for w in unplaced))
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    from oarsched.oar import demo
    from oarsched.oar.config import OarConfig, setup_logging
    from oarsched.oar.db import OarDatabase
    from oarsched.oar.kamelot import schedule_queue

    folder = args.dir or tempfile.mkdtemp(prefix="oarsched-demo-")
    os.makedirs(folder, exist_ok=True)
    db_path = os.path.join(folder, "oar.sqlite")
    info = demo.build_demo_db(db_path, overwrite=True)
    conf_path = os.path.join(folder, "oar.conf")
    with open(conf_path, "w") as fh:
        fh.write(demo.demo_oar_conf(db_path))
    config = OarConfig.load(conf_path)
    setup_logging(config)
    db = OarDatabase(config.sqlalchemy_url())
    now = info.get("now", demo.NOW)
    print(f"demo OAR3 database: {db_path}\noar.conf: {conf_path}\n")
    total = 0.0
    for queue in ("admin", "default", "besteffort"):  # the meta-scheduler's order: priority, highest first
        t0 = time.perf_counter()
        report = schedule_queue(db, config, queue, now)
        total += time.perf_counter() - t0
        placed, unplaced = len(report.result.assignments), len(report.result.unscheduled)
        print(f"oarsched-kamelot {queue} {now}: {placed} placed, {unplaced} not placed")
        for jid, why in sorted(report.result.unscheduled.items()):
            print(f"    job {jid}: {why}")
    print(f"\nscheduling took {total * 1000:.1f} ms in all\n")
    print(gantt_table(db, now))
    print(f"\nthe same round as OAR3 runs it: OARCONFFILE={conf_path} oarsched-kamelot default {now}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oarsched", description="OAR3-compatible scheduler with a compiled core.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build a demo OAR3 database (SQLite), schedule it as OAR3 would, show the result")
    p.add_argument("--dir", help="folder for the demo database and oar.conf (default: a new temporary folder)")
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except OarschedError as exc:
        print(f"oarsched: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
