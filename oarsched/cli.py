"""``oarsched``: the command line (demo, and the drop-in round on a given oar.conf)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from oarsched.errors import OarschedError


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
    print(demo.gantt_table(db, now))
    _demo_gantt(db, config, now, folder)
    print(f"\nthe same round as OAR3 runs it: OARCONFFILE={conf_path} oarsched-kamelot default {now}")
    _demo_meta_round(db, config, now, conf_path)
    return 0


def _demo_meta_round(db, config, now: int, conf_path: str) -> None:
    """The whole meta-scheduler round on the demo database: what a site would see (nothing is sent)."""
    from oarsched.oar.kao import run_kao

    t0 = time.perf_counter()
    result = run_kao(db, config, now, notify=False)
    took = (time.perf_counter() - t0) * 1000
    print(f"\nthe whole meta-scheduler round (oarsched-kao), {took:.1f} ms, exit status {result.exit_code}:")
    out = result.outbox
    for label, ids in (("launched now (toLaunch, OARRUN to the bipbip commander)", result.launched),
                       ("besteffort jobs to kill first (frag_jobs; nothing launched this round)", result.killed),
                       ("advance reservations accepted", result.accepted),
                       ("advance reservations refused", result.refused)):
        print(f"  {label}: {', '.join(map(str, ids)) if ids else 'none'}")
    told = [f"job {m.job_id}: {m.text.strip()!r}" for m in out.tcp]
    print(f"  Almighty would get: {[m['cmd'] for m in out.almighty] or 'nothing'}; oarsub sockets: "
          f"{'; '.join(told) if told else 'nothing'}")
    print(f"  as Almighty runs it: OARCONFFILE={conf_path} oarsched-kao --now {now}")


# ------------------------------------------------------------------ simulate / gantt

def _mapping_arg(text: str, what: str, key=str, value=int) -> dict:
    """``"a=1,b=2"`` -> ``{"a": 1, "b": 2}``; a UsageError naming ``what`` otherwise."""
    from oarsched.errors import UsageError

    out = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[key(name.strip())] = value(raw.strip())
        except ValueError:
            raise UsageError(f"{what}: cannot read {part.strip()!r} in {text!r} (expected NAME=VALUE,...)") from None
    return out


def _progress_bar(enabled: bool | None, total: int):
    """A tqdm bar on stderr (when asked, or when stderr is a terminal) and its callback; (None, None) otherwise."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        return None, None
    bar = tqdm(total=total, unit="job", desc="simulating", file=sys.stderr, leave=False)

    def update(done: int, _total: int) -> None:
        if done > bar.n:
            bar.update(done - bar.n)

    return bar, update


def _sim_setup(args: argparse.Namespace):
    """Platform, configuration and queues of ``oarsched simulate`` from its options."""
    from oarsched.errors import UsageError
    from oarsched.oar.config import OarConfig
    from oarsched.sim import load_platform, queues_from_db

    if bool(args.platform) == bool(args.db):
        raise UsageError("give the platform with --platform SPEC or --db OAR_CONF (one of them)")
    config = None
    if args.config or args.db:
        config = OarConfig.load(args.config or args.db)
    db_config = OarConfig.load(args.db) if args.db else None
    platform = load_platform(args.platform, config=db_config)
    queues = None
    if args.queues:
        queues = _mapping_arg(args.queues, "--queues")
    elif db_config is not None:
        queues = queues_from_db(db_config)
    return platform, config, queues


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from oarsched.sim import Simulator, load_workload, read_records

    swf_options = {}
    if args.swf_level:
        swf_options["level"] = args.swf_level
    if args.swf_queues:
        swf_options["queue_names"] = _mapping_arg(args.swf_queues, "--swf-queues", key=int, value=str)
    if swf_options and not args.workload.lower().endswith((".swf", ".swf.txt")):
        from oarsched.errors import UsageError

        raise UsageError("--swf-level and --swf-queues apply to SWF workloads only")
    workload = load_workload(args.workload, **swf_options)
    platform, config, queues = _sim_setup(args)
    quotas = None
    if args.quotas:
        from oarsched.quotas import QuotasConfig

        quotas = QuotasConfig.from_file(args.quotas, nb_resources_all=platform.nb_default_not_dead)
    simulator = Simulator(platform, config=config, queues=queues, quotas=quotas, period=args.period,
                          requeue_besteffort=args.requeue_besteffort)
    bar, progress = _progress_bar(args.progress, len(workload))
    t0 = time.perf_counter()
    try:
        result = simulator.run(workload, until=args.until, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    if args.out:
        result.save(args.out)
    if args.gantt:
        from oarsched.viz import draw_gantt, gantt_from_simulation

        draw_gantt(gantt_from_simulation(result, title=os.path.basename(args.workload)), args.gantt)
    comparison = None
    if args.compare:
        comparison = result.compare(read_records(args.compare), names=("this run", os.path.basename(args.compare)),
                                    bound=args.bound, other_resources=args.compare_resources)
    if args.json:
        data = {"metrics": result.metrics(args.bound).as_dict(), "rounds": result.rounds,
                "skipped": len(result.skipped), "seconds": round(elapsed, 3)}
        if comparison is not None:
            data["compared"] = comparison.b.as_dict()
        print(json.dumps(data, indent=1))
        return 0
    print(f"{args.workload}: {len(workload)} jobs ({len(result.skipped)} entries skipped) on "
          f"{result.resources} resources; {result.rounds} scheduling rounds in {elapsed:.2f} s")
    for line, job_id, why in result.skipped[:5]:
        print(f"    skipped line {line} (job {job_id}): {why}")
    if len(result.skipped) > 5:
        print(f"    ... and {len(result.skipped) - 5} more")
    print()
    print(comparison.format() if comparison is not None else result.metrics(args.bound).format())
    for what, path in (("records", args.out), ("gantt chart", args.gantt)):
        if path:
            print(f"\n{what}: {path}")
    return 0


def cmd_gantt(args: argparse.Namespace) -> int:
    from oarsched.errors import UsageError
    from oarsched.viz import draw_gantt, gantt_from_db, gantt_from_simulation, load_schedule_json

    if sum(1 for source in (args.db, args.result, args.sim) if source) != 1:
        raise UsageError("give one schedule: --db OAR_CONF, --result RESULT_JSON or --sim RECORDS")
    if args.db:
        from oarsched.oar.config import OarConfig
        from oarsched.oar.db import OarDatabase

        config = OarConfig.load(args.db)
        now = args.now if args.now is not None else int(time.time())
        chart = gantt_from_db(OarDatabase(config.sqlalchemy_url()), config, now, title=args.title or "")
    elif args.result:
        chart = load_schedule_json(args.result)
    else:
        from oarsched.sim import load_platform, read_records

        platform = load_platform(args.platform) if args.platform else None
        chart = gantt_from_simulation(read_records(args.sim), platform, start=args.start, end=args.end)
    if args.title:
        chart.title = args.title
    path = draw_gantt(chart, args.output, max_rows=args.max_rows, width=args.width, start=args.start, end=args.end)
    print(f"{path}: {len(chart.jobs) - len(chart.skipped)} jobs drawn")
    return 0


def _add_simulate_parser(sub) -> None:
    p = sub.add_parser("simulate", help="replay a workload (SWF, JSON, CSV) through the scheduler; print metrics",
                       description="Event-driven simulation of OAR's scheduling loop with oarsched's scheduler.")
    p.add_argument("workload", help="workload file: .swf, .json, .jsonl or .csv")
    p.add_argument("--platform", metavar="SPEC",
                   help="'switch=2/network_address=4/core=8' (top level first), or a JSON file of resources")
    p.add_argument("--db", metavar="OAR_CONF", help="take the platform and the queues from this OAR3 database")
    p.add_argument("--config", metavar="OAR_CONF", help="oar.conf-like file: JOB_PRIORITY, QUOTAS, "
                   "SCHEDULER_JOB_SECURITY_TIME... (default: the --db file, else defaults with no security time)")
    p.add_argument("--queues", metavar="NAME=PRIO,...", help="queues and priorities "
                   "(default: admin=10,default=2,besteffort=0, or the database's)")
    p.add_argument("--quotas", metavar="RULES_JSON", help="OAR3 quotas rules file (overrides QUOTAS of --config)")
    p.add_argument("--period", type=int, metavar="S", help="also run a scheduling round every S seconds")
    p.add_argument("--requeue-besteffort", action="store_true", help="put preempted besteffort jobs back in queue")
    p.add_argument("--until", type=int, metavar="T", help="stop the simulation at time T")
    p.add_argument("--swf-level", metavar="LABEL", help="hierarchy level SWF processors are requested at "
                   "(default resource_id)")
    p.add_argument("--swf-queues", metavar="N=NAME,...", help="SWF queue numbers to queue names")
    p.add_argument("--out", metavar="RECORDS", help="write per-job records (.csv, or .json)")
    p.add_argument("--compare", metavar="RECORDS", help="compare with the records of another run")
    p.add_argument("--compare-resources", type=int, metavar="N",
                   help="schedulable resources of the compared run's platform (default: this run's)")
    p.add_argument("--bound", type=int, default=10, metavar="S", help="bounded-slowdown threshold (default 10 s)")
    p.add_argument("--gantt", metavar="CHART", help="also draw the run as a Gantt chart (.svg or .png)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_simulate)


def _add_gantt_parser(sub) -> None:
    p = sub.add_parser("gantt", help="draw a schedule as a Gantt chart (SVG or PNG)",
                       description="Gantt chart of an OAR3 database's gantt, a saved library result or a simulation.")
    p.add_argument("--db", metavar="OAR_CONF", help="the gantt tables of the OAR3 database this oar.conf names")
    p.add_argument("--now", type=int, help="with --db: the current time (default: this machine's clock)")
    p.add_argument("--result", metavar="RESULT_JSON", help="a round saved by oarsched.viz.save_schedule_json")
    p.add_argument("--sim", metavar="RECORDS", help="records of 'oarsched simulate --out'")
    p.add_argument("--platform", metavar="SPEC", help="with --sim: the platform (rows grouped by its hierarchy)")
    p.add_argument("-o", "--output", required=True, metavar="CHART", help="output file, .svg or .png")
    p.add_argument("--from", dest="start", type=int, metavar="T", help="left end of the time window")
    p.add_argument("--to", dest="end", type=int, metavar="T", help="right end of the time window")
    p.add_argument("--max-rows", type=int, default=150, help="rows before aggregating per node (default 150)")
    p.add_argument("--width", type=float, default=14.0, help="width in inches (default 14)")
    p.add_argument("--title", help="chart title")
    p.set_defaults(func=cmd_gantt)


def _demo_gantt(db, config, now: int, folder: str) -> None:
    """Draw the demo's gantt as ``gantt.svg`` in its folder (a hint instead when matplotlib is missing)."""
    from oarsched.viz import GanttError, draw_gantt, gantt_from_db

    path = os.path.join(folder, "gantt.svg")
    try:
        draw_gantt(gantt_from_db(db, config, now, title="oarsched demo"), path)
    except GanttError as exc:
        print(f"\nno Gantt chart: {exc}")
        return
    print(f"\ngantt chart: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oarsched", description="OAR3-compatible scheduler with a compiled core.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build a demo OAR3 database (SQLite), schedule it as OAR3 would, show the result")
    p.add_argument("--dir", help="folder for the demo database and oar.conf (default: a new temporary folder)")
    p.set_defaults(func=cmd_demo)
    _add_simulate_parser(sub)
    _add_gantt_parser(sub)
    sub.add_parser("kao", help="one meta-scheduler round on $OARCONFFILE's database (as oarsched-kao)",
                   add_help=False)
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["kao"]:  # the drop-in's own options (--now SEC)
        from oarsched.oar.kao import main as kao_main

        return kao_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except OarschedError as exc:
        print(f"oarsched: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
