"""``python -m benchmarks.report``: measure, and write ``benchmarks/results/`` (tables and plots).

Runs, on this machine, one measurement after the other:

1. the library-level round of every workload, each in a fresh interpreter
   (best of a few rounds; peak RSS of that process), shared and generated,
   up to 20,000 jobs and 100,000 resources, and the load scenario;
2. quotas off and on, on the same workloads (in this process);
3. the whole drop-in process (``oarsched-kamelot``) on SQLite and on
   PostgreSQL, with each phase's share;
4. the compiled core against the plain-Python reference on one step;
5. growth exponents and the project's targets.

Writes ``results.md`` (the tables), ``results.json`` (every figure) and,
when matplotlib is installed, ``time_vs_jobs.png`` and
``time_vs_resources.png``.  ``--quick`` measures a small subset (a smoke
test of the report itself, a minute or so); ``--no-pg`` skips PostgreSQL.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform as _platform
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import measure, workloads

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = {"nodeonly": "NodeOnly", "coreonly": "CoreOnly", "normal": "Normal"}
JOB_SIZES = (100, 200, 500, 1000, 2000, 5000, 10000, 20000)
RESOURCE_SIZES = ("1k", "2k", "5k", "10k", "20k", "50k", "100k")

# oar-scheduler-redox's published NodeOnly figures (10,000 resources, scheduling call only), as read from its
# plots' mean lines in the shared bench folder's oar3-baseline.md; measured on its authors' workstation.
REDOX_NODEONLY = {"Rust called from Python": {100: 0.021, 200: 0.018, 500: 0.064},
                  "Rust (release)": {100: 0.005, 200: 0.024, 500: 0.118}}

# (what, workload(s), limit in seconds or MB or ratio or exponent)
TARGETS = [
    ("NodeOnly 10k/500 round", "nodeonly-10k-500", 0.050),
    ("NodeOnly 10k/2000 round", "nodeonly-10k-2000", 0.250),
    ("CoreOnly 10k/500 round", "coreonly-10k-500", 0.050),
    ("CoreOnly 10k/2000 round", "coreonly-10k-2000", 0.250),
    ("Normal 10k/500 round", "normal-10k-500", 0.300),
    ("Normal 10k/2000 round", "normal-10k-2000", 1.5),
]


# ----------------------------------------------------------------------------- measuring
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure_rounds(names: list[str], repeat: int) -> dict[str, dict]:
    """Each workload's round in a fresh interpreter: the child's JSON plus its peak RSS."""
    out = {}
    for name in names:
        reps = 1 if _is_large(name) else repeat
        run = measure.round_in_child(name, reps)
        if run.rc != 0 or run.output is None:
            log(f"  {name}: failed (exit {run.rc})")
            continue
        out[name] = {**run.output, "peak_mb": run.peak_mb}
        log(f"  {name}: round {run.output['round_s']:.3f} s, peak {run.peak_mb:.0f} MB")
    return out


def _is_large(name: str) -> bool:
    return any(tag in name for tag in ("-10000", "-20000", "-100k-")) or name.startswith("load-")


def measure_quotas(names: list[str], repeat: int = 5) -> dict[str, dict]:
    """Round time with the workload's quotas off and on (best of ``repeat``, this process)."""
    out = {}
    for name in names:
        wl = workloads.load_any(name)
        off = workloads.Workload(**{**wl.__dict__, "quotas": None})
        t_off, _ = measure.best_of(lambda w=off: workloads.run_round(w), repeat)
        t_on, _ = measure.best_of(lambda w=wl: workloads.run_round(w), repeat)
        out[name] = {"off_s": t_off, "on_s": t_on, "ratio": t_on / t_off}
        log(f"  {name}: quotas off {t_off:.4f} s, on {t_on:.4f} s")
    return out


def measure_dropin(names: list[str], repeat: int, conf_for: Callable[[Path], Path | None] | None = None,
                   label: str = "sqlite") -> dict[str, dict]:
    """The whole drop-in process on fresh case copies: best wall time, peak RSS, phases (best run)."""
    bench = workloads.shared_bench_dir()
    out: dict[str, dict] = {}
    if bench is None:
        return out
    for name in names:
        best: dict[str, Any] | None = None
        for _ in range(repeat):
            with measure.case_copy(bench / name) as case:
                conf = conf_for(case) if conf_for else None
                whole = measure.dropin_process(case, conf)
            with measure.case_copy(bench / name) as case:
                conf = conf_for(case) if conf_for else None
                phases = measure.dropin_phases(case, conf)
            row = {"wall_s": whole.wall, "peak_mb": whole.peak_mb, "phases": phases.output,
                   "phases_wall_s": phases.wall}
            if best is None or row["wall_s"] < best["wall_s"]:
                best = row
        out[name] = best
        log(f"  {label} {name}: {best['wall_s']:.2f} s, peak {best['peak_mb']:.0f} MB")
    return out


def measure_dropin_pg(names: list[str], repeat: int) -> dict[str, dict]:
    """As :func:`measure_dropin`, each case copied into a fresh PostgreSQL database first."""
    sys.path.insert(0, str(measure.ROOT))
    from tests.pgserver import PgServer, PgUnavailable, copy_sqlite_to_pg, create_database

    try:
        server = PgServer()
        admin = server.start()
    except (PgUnavailable, OSError) as exc:
        log(f"  no PostgreSQL: {exc}")
        return {}
    try:
        def conf_for(case: Path) -> Path:
            url = create_database(admin, "bench_" + uuid.uuid4().hex[:10])
            copy_sqlite_to_pg(case / "before.sqlite", url)
            return measure.pg_conf(case, url)

        return measure_dropin(names, repeat, conf_for, label="postgresql")
    finally:
        server.stop()


# ----------------------------------------------------------------------------- analysis
def oar3_baseline() -> dict[str, dict]:
    """OAR3's measured figures (``oar3-results.json`` in the shared bench folder), by workload.

    Only OAR3's completed runs are kept; on ``normal-quotas-*``, OAR3's kamelot
    fails as an external scheduler, so its run with quotas enabled by hand
    (``+quotas-workaround``) stands for it.
    """
    bench = workloads.shared_bench_dir()
    path = bench / "oar3-results.json" if bench else None
    raw = json.loads(path.read_text()) if path and path.is_file() else {}
    out = {}
    for name, fig in raw.items():
        if fig.get("status") != "ok":
            continue
        out[name.removesuffix("+quotas-workaround")] = {k: v for k, v in fig.items() if k != "raw"}
    return out


def series_jobs(rounds: dict[str, dict], kind: str) -> list[tuple[int, float]]:
    pts = [(n, rounds[f"{kind}-10k-{n}"]["round_s"]) for n in JOB_SIZES if f"{kind}-10k-{n}" in rounds]
    return sorted(pts)


def series_resources(rounds: dict[str, dict], kind: str) -> list[tuple[int, float]]:
    pts = []
    for r in RESOURCE_SIZES:
        name = f"{kind}-{r}-500"
        if name in rounds:
            pts.append((rounds[name]["resources"], rounds[name]["round_s"]))
    return sorted(pts)


def exponents(rounds: dict[str, dict]) -> dict[str, dict]:
    """Growth exponents per kind: jobs 500→2000, jobs 100…20,000 (fit), resources 1k…100k (fit)."""
    out: dict[str, dict] = {}
    for key, kind in KINDS.items():
        row: dict[str, float] = {}
        jobs = dict(series_jobs(rounds, key))
        if 500 in jobs and 2000 in jobs:
            row["jobs_500_2000"] = measure.growth_exponent([500, 2000], [jobs[500], jobs[2000]])
        pts = series_jobs(rounds, key)
        if len(pts) >= 3:
            row["jobs_fit"] = measure.growth_exponent([p[0] for p in pts], [p[1] for p in pts])
            row["jobs_range"] = f"{pts[0][0]}…{pts[-1][0]}"
        pts = series_resources(rounds, key)
        if len(pts) >= 3:
            row["resources_fit"] = measure.growth_exponent([p[0] for p in pts], [p[1] for p in pts])
        out[kind] = row
    return out


def targets(data: dict) -> list[tuple[str, str, str, bool | None]]:
    """``(target, limit, measured, met)`` rows."""
    rounds, rows = data["rounds"], []
    for what, name, limit in TARGETS:
        if name in rounds:
            v = rounds[name]["round_s"]
            rows.append((what, f"≤ {_ms(limit)}", _ms(v), v <= limit))
    for name, q in data.get("quotas", {}).items():
        if not name.startswith("normal-quotas-"):  # the target is set on the suite's quotas workloads
            continue
        rows.append((f"quotas on/off, {name}", "≤ 1.5×", f"{q['ratio']:.2f}×", q["ratio"] <= 1.5))
    for kind, e in data.get("exponents", {}).items():
        if "jobs_500_2000" in e:
            rows.append((f"{kind} growth 500→2000 jobs", "≤ 1.3", f"{e['jobs_500_2000']:.2f}",
                         e["jobs_500_2000"] <= 1.3))
    sq = data.get("dropin_sqlite", {})
    for name, limit in (("normal-10k-100", 1.0), ("nodeonly-10k-500", 3.0)):
        if name in sq:
            v = sq[name]["wall_s"]
            rows.append((f"drop-in SQLite {name} (whole process)", f"≤ {limit:g} s", f"{v:.2f} s", v <= limit))
    for name in ("nodeonly-10k-2000", "normal-10k-2000", "coreonly-10k-2000"):
        if name in rounds:
            v = rounds[name]["peak_mb"]
            rows.append((f"peak RSS, round {name}", "≤ 200 MB", f"{v:.0f} MB", v <= 200))
    return rows


# ----------------------------------------------------------------------------- writing
def _ms(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(data: dict) -> str:
    """The results as markdown tables."""
    oar3 = data.get("oar3", {})
    parts = [(f"# oarsched benchmark results\n\nMeasured {data['when']} on {data['machine']} "
              f"({data['cpus']} CPUs), Python {data['python']}; `python -m benchmarks.report"
              f"{' --quick' if data.get('quick') else ''}` regenerates this folder.  Times are the best of "
              f"{data['repeat']} runs (one for the largest); the machine is shared, so the best run is the "
              "least disturbed one.\n")]
    parts.append("## Targets\n\n" + _md_table(["target", "limit", "measured", "met"],
                 [[t, lim, v, "yes" if ok else "**no**"] for t, lim, v, ok in targets(data)]))
    rows = []
    for name, r in data["rounds"].items():
        o = oar3.get(name, {})
        oar3_loop = o.get("loop_s")
        rows.append([name, r["jobs"], r["resources"], r["scheduled"], "yes" if r["quotas"] else "",
                     _ms(r["round_s"]), _ms(r.get("round_cpu_s", float("nan"))), _ms(r["load_s"]),
                     f"{r['peak_mb']:.0f} MB",
                     f"{r['placed']}/{r['jobs']}",
                     (f"{oar3_loop:.2f} s ({oar3_loop / r['round_s']:.0f}×)" if isinstance(oar3_loop, (int, float))
                      else "")])
    parts.append("## Library-level round (each in a fresh interpreter)\n\n"
                 "`Scheduler(platform, options).schedule(jobs, now, scheduled)` — the hierarchy tables, the "
                 "slot set and the round (wall time; *CPU*: its CPU time, less sensitive to a busy machine); *load* is "
                 "`workload.json` → `Platform`/`Job` objects, apart.  "
                 "*OAR3 loop* is OAR3's scheduling loop on the same workload (`oar3-results.json`, "
                 "same machine kind) and how many times slower it is.\n\n" + _md_table(
                     ["workload", "jobs", "resources", "in gantt", "quotas", "round", "round (CPU)", "load",
                      "peak RSS",
                      "placed", "OAR3 loop"], rows))
    redox_rows = []
    for n in (100, 200, 500):
        name = f"nodeonly-10k-{n}"
        if name in data["rounds"]:
            o = oar3.get(name, {}).get("loop_s")
            redox_rows.append([n, _ms(data["rounds"][name]["round_s"])]
                              + [_ms(v[n]) for v in REDOX_NODEONLY.values()]
                              + [f"{o:.2f} s" if isinstance(o, (int, float)) else ""])
    if redox_rows:
        parts.append("## NodeOnly, 10,000 resources: against the Rust rewrite\n\n"
                     "oar-scheduler-redox's figures are its published ones (read from its plots, its own machine, "
                     "see the shared `oar3-baseline.md`); OAR3's loop was measured on this machine kind.\n\n"
                     + _md_table(["jobs", "oarsched (Python + Cython)"] + [f"redox: {k}" for k in REDOX_NODEONLY]
                                 + ["OAR3 loop"], redox_rows))
    ex = data.get("exponents", {})
    if ex:
        parts.append("## Growth exponents (time ∝ size^a)\n\n" + _md_table(
            ["kind", "jobs 500→2000", "jobs (fit)", "resources 1k…100k at 500 jobs (fit)"],
            [[k, f"{e.get('jobs_500_2000', float('nan')):.2f}",
              f"{e.get('jobs_fit', float('nan')):.2f} ({e.get('jobs_range', '')})",
              f"{e.get('resources_fit', float('nan')):.2f}"] for k, e in ex.items()]))
    if data.get("quotas"):
        parts.append("## Quotas off and on, same workload\n\n" + _md_table(
            ["workload", "quotas off", "quotas on", "ratio"],
            [[n, _ms(q["off_s"]), _ms(q["on_s"]), f"{q['ratio']:.2f}×"] for n, q in data["quotas"].items()]))
    for key, title in (("dropin_sqlite", "SQLite"), ("dropin_pg", "PostgreSQL")):
        if data.get(key):
            parts.append(_dropin_table(data[key], title, oar3))
    core = data.get("core_vs_reference")
    if core:
        parts.append("## Compiled core vs plain-Python reference (one step, one run)\n\n" + _md_table(
            ["workload", "request", "slots", "windows", "matcher: core", "matcher: reference", "ratio",
             "window search: core", "window search: reference", "ratio"],
            [[c["workload"], c["request"], c["slots"], c["windows"], f"{c['match_core_s'] * 1e6:.0f} µs",
              _ms(c["match_reference_s"]), f"{c['match_ratio']:.0f}×", f"{c['search_core_s'] * 1e6:.0f} µs",
              _ms(c["search_reference_s"]), f"{c['search_ratio']:.0f}×"] for c in core]))
    if data.get("plots"):
        parts.append("## Plots\n\n" + "\n".join(f"![{p}]({p})" for p in data["plots"]))
    return "\n\n".join(parts) + "\n"


def _dropin_table(rows: dict[str, dict], title: str, oar3: dict) -> str:
    out = []
    for name, r in rows.items():
        ph = r["phases"]
        total = ph.get("start", 0) + sum(ph.get(k, 0) for k in measure.PHASES)

        def share(k: str, ph: dict = ph, total: float = total) -> str:
            return f"{ph.get(k, 0):.2f} s ({100 * ph.get(k, 0) / total:.0f} %)" if total else ""

        o = oar3.get(name, {}).get("wall_s") if title == "SQLite" else None
        out.append([name, f"{r['wall_s']:.2f} s", f"{r['peak_mb']:.0f} MB", f"{ph.get('rows', 0):,}",
                    share("start"), share("imports"), share("config"), share("read"), share("schedule"),
                    share("write"), f"{o:.1f} s" if isinstance(o, (int, float)) else ""])
    return (f"## Whole drop-in process, {title}\n\n`oarsched-kamelot QUEUE NOW NOW_SQL` from a fresh copy of the "
            "case, as OAR3's meta-scheduler runs it (wall time and peak RSS of that process).  The phases come "
            "from `benchmarks.phases` (the same round, timed inside; *start* = interpreter start-up and exit).  "
            + ("*OAR3* is OAR3's kamelot, whole process, same case." if title == "SQLite" else "") + "\n\n"
            + _md_table(["case", "whole process", "peak RSS", "gantt rows", "start", "imports", "config", "read",
                         "schedule", "write (+commit)", "OAR3"], out))


def plots(data: dict, out: Path) -> list[str]:
    """Time vs jobs (per kind) and time vs resources, log-log, with OAR3's loop where it finished."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("  matplotlib not installed: no plots")
        return []
    made = []
    oar3 = data.get("oar3", {})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, kind in KINDS.items():
        pts = series_jobs(data["rounds"], key)
        if pts:
            line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"oarsched {kind}")
            o = [(n, oar3[f"{key}-10k-{n}"]["loop_s"]) for n in JOB_SIZES
                 if isinstance(oar3.get(f"{key}-10k-{n}", {}).get("loop_s"), (int, float))]
            if o:
                ax.plot([p[0] for p in o], [p[1] for p in o], "s--", color=line.get_color(), alpha=0.6,
                        label=f"OAR3 {kind}")
    for (label, pts), marker in zip(REDOX_NODEONLY.items(), ("^", "v")):
        ax.plot(list(pts), list(pts.values()), marker, color="gray", alpha=0.8, label=f"redox NodeOnly, {label}*")
    ax.set(xscale="log", yscale="log", xlabel="waiting jobs (10,000 resources)   * redox's published figures",
           ylabel="scheduling round (s)",
           title="Time vs jobs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "time_vs_jobs.png", dpi=110)
    plt.close(fig)
    made.append("time_vs_jobs.png")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, kind in KINDS.items():
        pts = series_resources(data["rounds"], key)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"oarsched {kind}")
    ax.set(xscale="log", yscale="log", xlabel="resources (500 waiting jobs)", ylabel="scheduling round (s)",
           title="Time vs resources")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "time_vs_resources.png", dpi=110)
    plt.close(fig)
    made.append("time_vs_resources.png")
    return made


# ----------------------------------------------------------------------------- main
def round_names(quick: bool) -> list[str]:
    shared = workloads.suite_names()
    if quick:
        return [n for n in ("nodeonly-10k-100", "nodeonly-10k-500", "coreonly-10k-500", "normal-10k-500",
                            "normal-quotas-10k-100") if n in shared] + ["normal-1k-500", "normal-5k-500"]
    gen = [n for n in workloads.GENERATED if n != "load-100k-20000"]
    return shared + [n for n in gen if n not in shared] + ["load-100k-20000"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small subset (smoke test of the report)")
    ap.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL drop-in runs")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept; default 3)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"output folder (default {RESULTS})")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: rewrite results.md and the plots from the folder's results.json")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        data = json.loads((args.out / "results.json").read_text())
        data["oar3"] = oar3_baseline()
        write_results(data, args.out)
        return 0
    shared = set(workloads.suite_names())
    data: dict[str, Any] = {
        "when": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_platform.machine()} {_platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(), "python": _platform.python_version(), "repeat": args.repeat, "quick": args.quick,
    }
    log("rounds:")
    data["rounds"] = measure_rounds(round_names(args.quick), args.repeat)
    data["exponents"] = exponents(data["rounds"])
    log("quotas:")
    data["quotas"] = measure_quotas([n for n in ("normal-quotas-10k-100", "normal-quotas-10k-500")
                                     if n in shared][: 1 if args.quick else 2] + ["mixed-quotas-20k-1000"][: 0 if args.quick else 1])
    dropin = ["normal-10k-100"] if args.quick else [
        "normal-10k-100", "normal-10k-500", "normal-10k-2000", "nodeonly-10k-100", "nodeonly-10k-500",
        "nodeonly-10k-2000", "coreonly-10k-500", "normal-quotas-10k-500"]
    dropin = [n for n in dropin if n in shared]
    log("drop-in, SQLite:")
    data["dropin_sqlite"] = measure_dropin(dropin, 1 if args.quick else min(args.repeat, 2))
    if not args.no_pg:
        log("drop-in, PostgreSQL:")
        data["dropin_pg"] = measure_dropin_pg(dropin[:1] if args.quick else
                                              [n for n in ("normal-10k-100", "nodeonly-10k-500", "normal-10k-500")
                                               if n in shared], 1 if args.quick else min(args.repeat, 2))
    log("core vs reference:")
    data["core_vs_reference"] = [measure.core_vs_reference(n) for n in
                                 (["nodeonly-10k-100"] if "nodeonly-10k-100" in shared else []) + ["normal-1k-500"]]
    data["oar3"] = oar3_baseline()
    write_results(data, args.out)
    return 0


def write_results(data: dict, out: Path) -> None:
    """``results.json``, the plots and ``results.md`` in ``out``."""
    data["plots"] = plots(data, out)
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (out / "results.md").write_text(markdown(data))
    log(f"wrote {out / 'results.md'}")


if __name__ == "__main__":
    sys.exit(main())
