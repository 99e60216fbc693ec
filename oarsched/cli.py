"""``oarsched``: the command line (demo, and the drop-in round on a given oar.conf)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from oarsched.errors import ConfigError, OarschedError


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


def _progress_bar(enabled: bool | None, total: int, desc: str = "simulating"):
    """A tqdm bar on stderr (when asked, or when stderr is a terminal) and its callback; (None, None) otherwise."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        return None, None
    bar = tqdm(total=total, unit="job", desc=desc, file=sys.stderr, leave=False)

    def update(done: int, _total: int) -> None:
        if done > bar.n:
            bar.update(done - bar.n)

    return bar, update


def _sim_setup(args: argparse.Namespace, workload):
    """Platform, configuration and queues of ``oarsched simulate`` from its options (and the SWF header)."""
    from oarsched.errors import UsageError
    from oarsched.oar.config import OarConfig
    from oarsched.sim import load_platform, queues_from_db

    if args.platform and args.db:
        raise UsageError("give the platform with --platform SPEC or --db OAR_CONF (one of them)")
    config = None
    if args.config or args.db:
        config = OarConfig.load(args.config or args.db)
    db_config = OarConfig.load(args.db) if args.db else None
    if args.platform or args.db:
        platform = load_platform(args.platform, config=db_config)
    else:
        platform = _platform_from_header(workload)
    queues = None
    if args.queues:
        queues = _mapping_arg(args.queues, "--queues")
    elif db_config is not None:
        queues = queues_from_db(db_config)
    return platform, _security_time(config, args.security_time), queues


def _platform_from_header(workload):
    """The platform an SWF header describes (``MaxNodes`` nodes of equal size, else ``MaxProcs`` resources)."""
    from oarsched.errors import UsageError
    from oarsched.sim import platform_from_spec

    def number(key: str) -> int:
        try:
            return int(workload.header.get(key, "0").split()[0])
        except (ValueError, IndexError):
            return 0

    procs, nodes = number("MaxProcs"), number("MaxNodes")
    if procs <= 0:
        raise UsageError("give the platform with --platform SPEC or --db OAR_CONF (the workload has no SWF "
                         "MaxProcs header to take it from)")
    spec = f"network_address={nodes}/core={procs // nodes}" if 0 < nodes < procs and procs % nodes == 0 \
        else f"resource_id={procs}"
    print(f"platform: {spec} (from the SWF header: MaxProcs {procs}, MaxNodes {nodes or '-'}; "
          "--platform to change)", file=sys.stderr)
    return platform_from_spec(spec)


def _security_time(config, seconds: int | None):
    """The base configuration with the job security time: ``--security-time``, the file's, else OAR3's 60 s."""
    from oarsched.oar.config import OarConfig

    if seconds is None:
        return config if config is not None else OarConfig.from_mapping({"SCHEDULER_JOB_SECURITY_TIME": 60})
    values = dict(config.values) if config is not None else {}
    values["SCHEDULER_JOB_SECURITY_TIME"] = seconds
    return OarConfig(values=OarConfig.from_mapping(values).values, path=config.path if config else None)


def _oversize(workload, platform) -> list[int]:
    """Jobs asking more resources than the platform has (they will be rejected)."""
    from oarsched.sim.formats import requested_resources

    size = int(platform.schedulable.sum())
    return [j.id for j in workload.jobs if requested_resources(j.request) > size]


def _per_policy(path: str, name: str, many: bool) -> str:
    """``path`` itself for one policy; ``stem-NAME.ext`` for each of several."""
    if not many:
        return path
    stem, ext = os.path.splitext(path)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{stem}-{slug}{ext}"


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from oarsched.sim import load_workload, read_records
    from oarsched.sim.policies import Policy, PolicyComparison, parse_policy, run_policy
    from oarsched.sim.records import RecordJournal

    swf_options = {}
    if args.swf_level:
        swf_options["level"] = args.swf_level
    if args.swf_queues:
        swf_options["queue_names"] = _mapping_arg(args.swf_queues, "--swf-queues", key=int, value=str)
    if swf_options and not args.workload.lower().endswith((".swf", ".swf.txt")):
        from oarsched.errors import UsageError

        raise UsageError("--swf-level and --swf-queues apply to SWF workloads only")
    policies = [parse_policy(p) for p in args.policy] or [
        Policy(name=os.path.basename(args.config) if args.config else "fifo")]
    workload = load_workload(args.workload, **swf_options)
    platform, config, queues = _sim_setup(args, workload)
    quotas = None
    if args.quotas:
        from oarsched.quotas import QuotasConfig

        quotas = QuotasConfig.from_file(args.quotas, nb_resources_all=platform.nb_default_not_dead)
    oversize = _oversize(workload, platform)
    if oversize:
        print(f"warning: {len(oversize)} jobs ask more resources than the platform's {int(platform.schedulable.sum())}"
              f" (they are rejected): {', '.join(map(str, oversize[:10]))}{' ...' if len(oversize) > 10 else ''}",
              file=sys.stderr)
    comparison = PolicyComparison({}, bound=args.bound)
    many = len(policies) > 1
    with _ctrl_c() as stop:
        for policy in policies:
            bar, progress = _progress_bar(args.progress, len(workload), f"simulating {policy.name}")
            out = _per_policy(args.out, policy.name, many) if args.out else None
            checkpoint = out + ".checkpoint" if out else None
            journal = RecordJournal(out, append=args.resume) if out and not out.lower().endswith(".json") else None
            run_options = {"stop": stop, "checkpoint": checkpoint, "checkpoint_every": args.checkpoint_every,
                           "resume": bool(args.resume and checkpoint and os.path.exists(checkpoint)),
                           "on_close": journal.add if journal else None}
            try:
                result, seconds = run_policy(workload, platform, policy, config, queues=queues, quotas=quotas,
                                             period=args.period, requeue_besteffort=args.requeue_besteffort,
                                             **({} if args.max_resubmissions is None
                                                else {"max_resubmissions": args.max_resubmissions}),
                                             until=args.until, progress=progress, run_options=run_options)
            finally:
                if bar is not None:
                    bar.close()
                if journal is not None:
                    journal.close()
            comparison.results[policy.name] = result
            comparison.seconds[policy.name] = seconds
            if result.interrupted_at is not None:
                break
            if checkpoint and os.path.exists(checkpoint):
                os.remove(checkpoint)
    _save_outputs(args, comparison)
    interrupted = [(n, r) for n, r in comparison.results.items() if r.interrupted_at is not None]
    if interrupted:
        name, result = interrupted[0]
        done = sum(1 for r in result.records if r.status not in ("running", "not_started"))
        where = "; resume with the same command and --resume" if args.out else \
            " (give --out to keep a checkpoint and resume)"
        print(f"interrupted: {name} stopped at simulated time {result.interrupted_at} with {done} of "
              f"{len(result.records)} jobs done; what is done is written{where}", file=sys.stderr)
        return 130
    first = next(iter(comparison.results.values()))
    versus = None
    if args.compare:
        versus = first.compare(read_records(args.compare), names=("this run", os.path.basename(args.compare)),
                               bound=args.bound, other_resources=args.compare_resources)
    if args.json:
        data = {"metrics": first.metrics(args.bound).as_dict(), "rounds": first.rounds,
                "skipped": len(first.skipped), "seconds": round(comparison.seconds[policies[0].name], 3),
                "security_time": first.config.job_security_time,
                "policies": {name: {"metrics": r.metrics(args.bound).as_dict(), "rounds": r.rounds}
                             for name, r in comparison.results.items()}}
        if versus is not None:
            data["compared"] = versus.b.as_dict()
        print(json.dumps(data, indent=1))
        return 0
    print(f"{args.workload}: {len(workload)} jobs ({len(first.skipped)} entries skipped) on "
          f"{first.resources} resources; job security time {first.config.job_security_time} s"
          f"{_security_note(args)}")
    for line, job_id, why in first.skipped[:5]:
        print(f"    skipped line {line} (job {job_id}): {why}")
    if len(first.skipped) > 5:
        print(f"    ... and {len(first.skipped) - 5} more")
    for name, result in comparison.results.items():
        print(f"{name}: {result.rounds} scheduling rounds in {comparison.seconds[name]:.2f} s")
    print()
    if versus is not None:
        print(versus.format())
    elif len(comparison.results) > 1:
        print(comparison.table())
    else:
        print(first.metrics(args.bound).format())
    for note in comparison.notes():
        print(f"note: {note}")
    for what, path in (("records", args.out), ("gantt chart", args.gantt), ("metrics plot", args.plot),
                       ("Batsim outputs", args.batsim), ("SWF", args.swf_out)):
        if path:
            print(f"\n{what}: {path}")
    return 0


class _ctrl_c:
    """While simulating, the first Ctrl-C asks the run to stop after the current instant (it then writes
    what is done and its checkpoint); a second one aborts at once."""

    def __enter__(self):
        import signal

        self.asked = False
        self._previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self._previous = None
        return lambda: self.asked

    def _handler(self, signum, frame) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        print("\ninterrupted: stopping after the current instant (Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _security_note(args: argparse.Namespace) -> str:
    if args.security_time is not None:
        return " (--security-time)"
    if args.config or args.db:
        return " (from the configuration)"
    return " (OAR3's default; --security-time 0 to change)"


def _save_outputs(args: argparse.Namespace, comparison) -> None:
    """Records, Batsim CSVs, SWF and charts of every policy run (one file per policy when several)."""
    from oarsched.sim.formats import write_batsim_jobs, write_batsim_schedule, write_swf

    many = len(comparison.results) > 1
    for name, result in comparison.results.items():
        if args.out:
            result.save(_per_policy(args.out, name, many))
        if args.batsim:
            folder = os.path.join(args.batsim, name) if many else args.batsim
            os.makedirs(folder, exist_ok=True)
            write_batsim_jobs(result, os.path.join(folder, "out_jobs.csv"), workload_name=name)
            write_batsim_schedule(result, os.path.join(folder, "out_schedule.csv"), comparison.seconds[name])
        if args.swf_out:
            write_swf(result, _per_policy(args.swf_out, name, many))
        if args.gantt:
            from oarsched.viz import draw_gantt, gantt_from_simulation

            chart = gantt_from_simulation(result, title=f"{os.path.basename(args.workload)}: {name}",
                                          start=args.start, end=args.end)
            draw_gantt(chart, _per_policy(args.gantt, name, many), start=args.start, end=args.end,
                       colour_by=args.colour_by, compress_idle=args.compress_idle)
            if chart.skipped:
                print(f"warning: {len(chart.skipped)} jobs not drawn (no resource on the platform): "
                      f"{', '.join(map(str, chart.skipped[:10]))}", file=sys.stderr)
    if args.plot:
        comparison.plot(args.plot)


def cmd_synth(args: argparse.Namespace) -> int:
    from oarsched.sim.formats import write_workload_swf
    from oarsched.sim.synthetic import synthetic_workload

    workload = synthetic_workload(args.jobs, nodes=args.nodes, cores_per_node=args.cores_per_node, load=args.load,
                                  seed=args.seed, users=args.users)
    write_workload_swf(workload, args.output)
    print(f"{args.output}: {len(workload)} jobs on {args.nodes} nodes x {args.cores_per_node} cores "
          f"(offered load {args.load}, seed {args.seed})")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from oarsched.errors import UsageError
    from oarsched.sim.policies import parse_policy
    from oarsched.sim.sweep import gather, run_task, sweep, sweep_tasks

    for policy in args.policy:
        parse_policy(policy)  # a wrong name stops here, not in every task
    tasks = sweep_tasks(args.traces, args.policy, args.out_dir)
    if args.task is not None:
        if not 0 <= args.task < len(tasks):
            raise UsageError(f"--task {args.task}: the sweep has tasks 0 to {len(tasks) - 1}")
        task = tasks[args.task]
        path = run_task(task, args.platform, args.security_time) if not task.done else str(task.stem) + ".json"
        print(f"task {args.task} ({task.trace}, {task.policy}): {path}")
        return 0
    if not args.gather:
        sweep(tasks, processes=args.jobs, platform=args.platform, security_time=args.security_time)
    print(gather(tasks))
    return 0


def cmd_gantt(args: argparse.Namespace) -> int:
    from oarsched.errors import UsageError
    from oarsched.viz import draw_gantt, gantt_from_db, gantt_from_simulation, load_schedule_json

    if sum(1 for source in (args.db, args.result, args.sim) if source) != 1:
        raise UsageError("give one schedule: --db OAR_CONF, --result RESULT_JSON or --sim RECORDS")
    if args.serve and not args.db:
        raise UsageError("--serve draws a live OAR3 database: give it with --db OAR_CONF")
    if not args.serve and not args.output:
        raise UsageError("give the chart file with -o CHART (.svg, .png or .html), or --serve with --db")
    if args.db:
        from oarsched.oar.config import OarConfig
        from oarsched.oar.db import OarDatabase

        config = OarConfig.load(args.db)
        db = OarDatabase(config.sqlalchemy_url())

        def live_chart():
            now = args.now if args.now is not None else int(time.time())
            return gantt_from_db(db, config, now, title=args.title or "")

        if args.serve:
            return _serve(live_chart, args)
        chart = live_chart()
    elif args.result:
        chart = load_schedule_json(args.result)
    else:
        from oarsched.sim import load_platform, read_records

        platform = load_platform(args.platform) if args.platform else None
        chart = gantt_from_simulation(read_records(args.sim), platform, start=args.start, end=args.end)
    if args.title:
        chart.title = args.title
    if args.epoch is not None:
        chart.epoch = args.epoch
    if args.tz:
        from oarsched.viz.gantt import trace_clock

        _, chart.tz = trace_clock({"TimeZoneString": args.tz})
        if chart.tz != args.tz:
            raise UsageError(f"--tz {args.tz}: not a time zone name (e.g. Europe/Paris, UTC)")
    path = draw_gantt(chart, args.output, max_rows=args.max_rows, width=args.width, start=args.start, end=args.end,
                      colour_by=args.colour_by, compress_idle=args.compress_idle)
    print(f"{path}: {len(chart.jobs) - len(chart.skipped)} jobs drawn")
    if chart.skipped:
        print(f"warning: {len(chart.skipped)} jobs not drawn (none of their resources is on the platform): "
              f"{', '.join(map(str, chart.skipped[:10]))}{' ...' if len(chart.skipped) > 10 else ''}",
              file=sys.stderr)
    return 0


def _serve(make_chart, args: argparse.Namespace) -> int:
    from oarsched.viz.html import serve_gantt

    def ready(server) -> None:
        host, port = server.server_address[:2]
        print(f"serving the gantt of {args.db} at http://{host}:{port}/ (refreshed every {args.refresh} s; "
              "Ctrl-C stops)", flush=True)

    try:
        serve_gantt(make_chart, host="127.0.0.1", port=args.port, refresh=args.refresh, ready=ready)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        from oarsched.errors import UsageError

        raise UsageError(f"--serve: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    return 0


def _add_simulate_parser(sub) -> None:
    p = sub.add_parser("simulate", help="replay a workload (SWF, JSON, CSV) through the scheduler; print metrics",
                       description="Event-driven simulation of OAR's scheduling loop with oarsched's scheduler.")
    p.add_argument("workload", help="workload file: .swf, .json, .jsonl or .csv")
    p.add_argument("--platform", metavar="SPEC",
                   help="'switch=2/network_address=4/core=8' (top level first), or a JSON file of resources "
                   "(default: the SWF header's MaxNodes/MaxProcs)")
    p.add_argument("--db", metavar="OAR_CONF", help="take the platform and the queues from this OAR3 database")
    p.add_argument("--policy", action="append", default=[], metavar="NAME",
                   help="fifo, fairshare, sjf, best-fit, easy, conf=FILE, or a '+' combination; repeat to "
                   "compare several side by side")
    p.add_argument("--security-time", type=int, metavar="S",
                   help="job security time (default: the configuration's, else OAR3's 60 s)")
    p.add_argument("--config", metavar="OAR_CONF", help="oar.conf-like file: JOB_PRIORITY, QUOTAS, "
                   "SCHEDULER_JOB_SECURITY_TIME... (default: the --db file, else defaults with no security time)")
    p.add_argument("--queues", metavar="NAME=PRIO,...", help="queues and priorities "
                   "(default: admin=10,default=2,besteffort=0, or the database's)")
    p.add_argument("--quotas", metavar="RULES_JSON", help="OAR3 quotas rules file (overrides QUOTAS of --config)")
    p.add_argument("--period", type=int, metavar="S", help="also run a scheduling round every S seconds")
    p.add_argument("--requeue-besteffort", action="store_true", help="resubmit preempted besteffort jobs as new "
                   "jobs, as OAR3 resubmits idempotent ones (records link each to its resubmission)")
    p.add_argument("--max-resubmissions", type=int, metavar="N",
                   help="resubmit a workload job at most N times (default 10, the simulator's MAX_RESUBMISSIONS; "
                   "OAR3 has no limit, but two besteffort jobs can kill each other's resubmissions without end)")
    p.add_argument("--until", type=int, metavar="T", help="stop the simulation at time T")
    p.add_argument("--swf-level", metavar="LABEL", help="hierarchy level SWF processors are requested at "
                   "(default resource_id)")
    p.add_argument("--swf-queues", metavar="N=NAME,...", help="SWF queue numbers to queue names")
    p.add_argument("--out", metavar="RECORDS", help="write per-job records (.csv, written as jobs end; or .json); "
                   "a checkpoint RECORDS.checkpoint is kept while running (Ctrl-C writes both)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint "
                   "(same command line)")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="S",
                   help="save the checkpoint every S seconds of wall time (default 60)")
    p.add_argument("--compare", metavar="RECORDS", help="compare with the records of another run")
    p.add_argument("--compare-resources", type=int, metavar="N",
                   help="schedulable resources of the compared run's platform (default: this run's)")
    p.add_argument("--bound", type=int, default=10, metavar="S", help="bounded-slowdown threshold (default 10 s)")
    p.add_argument("--gantt", metavar="CHART", help="also draw the run as a Gantt chart (.svg, .png or .html)")
    _add_chart_options(p, colour="user", prefix="with --gantt: ")
    p.add_argument("--plot", metavar="CHART", help="plot utilization, queue length and per-user slowdown over "
                   "time for every policy (.svg or .png)")
    p.add_argument("--batsim", metavar="DIR", help="write Batsim's out_jobs.csv and out_schedule.csv there")
    p.add_argument("--swf-out", metavar="SWF", help="write the simulated run as an SWF trace")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_simulate)


def _add_chart_options(p, *, colour: str, prefix: str = "") -> None:
    """The time window and the look of a chart (simulate --gantt, gantt)."""
    p.add_argument("--from", dest="start", type=int, metavar="T", help=f"{prefix}left end of the time window")
    p.add_argument("--to", dest="end", type=int, metavar="T", help=f"{prefix}right end of the time window")
    p.add_argument("--colour-by", choices=("state", "user", "queue", "job"), default=colour,
                   help=f"what the colours tell apart (default: {colour}); the legend says it")
    p.add_argument("--compress-idle", type=int, metavar="S",
                   help="cut idle stretches longer than S seconds down to S (static charts), marked on the chart")


def _add_synth_parser(sub) -> None:
    p = sub.add_parser("synth", help="write a synthetic SWF trace shaped like the Parallel Workloads Archive's",
                       description="A deterministic synthetic trace (Poisson arrivals, core and node requests, "
                       "over-estimated walltimes, users of unequal activity) as SWF.")
    p.add_argument("jobs", type=int, help="number of jobs")
    p.add_argument("-o", "--output", required=True, metavar="SWF", help="the trace to write")
    p.add_argument("--nodes", type=int, default=128, help="nodes of the platform (default 128)")
    p.add_argument("--cores-per-node", type=int, default=8, help="cores per node (default 8)")
    p.add_argument("--load", type=float, default=0.85, help="offered load (default 0.85)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--users", type=int, default=20, help="number of users (default 20)")
    p.set_defaults(func=cmd_synth)


def _add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="simulate many traces x policies, one process per run, one table",
                       description="A sweep: every trace under every policy, each run an independent, resumable "
                       "task writing its results in --out-dir; runs over --jobs processes, or one by number "
                       "(--task K) for a job array; --gather prints the table of what is done.")
    p.add_argument("traces", nargs="+", help="workload files (SWF: the platform from the header unless --platform)")
    p.add_argument("--policy", action="append", required=True, metavar="NAME", help="as for simulate; repeat")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="where each run writes its metrics and records")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="processes at a time (default: the machine's cores)")
    p.add_argument("--task", type=int, metavar="K", help="run only task K (0-based, trace-major): for job arrays")
    p.add_argument("--gather", action="store_true", help="only print the table of the runs done")
    p.add_argument("--platform", metavar="SPEC", help="platform of every trace (default: each SWF header's)")
    p.add_argument("--security-time", type=int, default=60, metavar="S", help="job security time (default 60)")
    p.set_defaults(func=cmd_sweep)


def _add_gantt_parser(sub) -> None:
    p = sub.add_parser("gantt", help="draw a schedule as a Gantt chart (SVG, PNG or interactive HTML)",
                       description="Gantt chart of an OAR3 database's gantt, a saved library result or a simulation.")
    p.add_argument("--db", metavar="OAR_CONF", help="the gantt tables of the OAR3 database this oar.conf names")
    p.add_argument("--now", type=int, help="with --db: the current time (default: this machine's clock)")
    p.add_argument("--result", metavar="RESULT_JSON", help="a round saved by oarsched.viz.save_schedule_json")
    p.add_argument("--sim", metavar="RECORDS", help="records of 'oarsched simulate --out'")
    p.add_argument("--platform", metavar="SPEC", help="with --sim: the platform (rows grouped by its hierarchy)")
    p.add_argument("-o", "--output", metavar="CHART",
                   help="output file: .svg, .png, or .html (an interactive page that needs no network)")
    p.add_argument("--serve", action="store_true", help="with --db: serve the interactive page of the live "
                   "database on 127.0.0.1, refreshed as rounds are written")
    p.add_argument("--port", type=int, default=8000, help="with --serve: the port (default 8000)")
    p.add_argument("--refresh", type=int, default=10, metavar="S", help="with --serve: reload every S seconds")
    _add_chart_options(p, colour="state")
    p.add_argument("--max-rows", type=int, default=150, help="rows before aggregating per node (default 150)")
    p.add_argument("--width", type=float, default=14.0, help="width in inches (default 14)")
    p.add_argument("--title", help="chart title")
    p.add_argument("--epoch", type=int, metavar="T", help="with --sim: Unix time of t=0 (an SWF trace's "
                   "UnixStartTime), for a date axis")
    p.add_argument("--tz", metavar="ZONE", help="time zone of the date axis (e.g. Europe/Paris; default UTC)")
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


def cmd_kao_server(args: argparse.Namespace) -> int:
    from oarsched.oar.kao_server import serve

    if args.max_rounds is not None and args.max_rounds < 1:
        raise ConfigError(f"--max-rounds {args.max_rounds}: at least 1")
    return serve(args.socket, max_rounds=args.max_rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oarsched", description="OAR3-compatible scheduler with a compiled core.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build a demo OAR3 database (SQLite), schedule it as OAR3 would, show the result")
    p.add_argument("--dir", help="folder for the demo database and oar.conf (default: a new temporary folder)")
    p.set_defaults(func=cmd_demo)
    _add_simulate_parser(sub)
    _add_synth_parser(sub)
    _add_sweep_parser(sub)
    _add_gantt_parser(sub)
    sub.add_parser("kao", help="one meta-scheduler round on $OARCONFFILE's database (as oarsched-kao)",
                   add_help=False)
    p = sub.add_parser("kao-server", help="serve oarsched-kao rounds from a resident process "
                       "(oarsched-kao --server SOCKET)",
                       description="Serve meta-scheduler rounds on a Unix socket: `oarsched-kao --server SOCKET` "
                       "then runs its round here, without starting an interpreter and reading the schema.")
    p.add_argument("--socket", required=True, help="the Unix socket path to listen on (created private to this user)")
    p.add_argument("--max-rounds", type=int, metavar="N", help="exit after N rounds (a supervisor restarts it)")
    p.set_defaults(func=cmd_kao_server)
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["kao"]:  # the drop-in's own options (--now SEC, --server SOCKET)
        from oarsched.oar.kao_client import main as kao_main

        return kao_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except OarschedError as exc:
        print(f"oarsched: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
