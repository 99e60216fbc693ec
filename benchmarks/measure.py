"""Measurements shared by the pytest benchmarks and the report.

Everything that needs a clean process (peak memory, the drop-in's whole
run) is measured in a child process; library-level times are taken in the
current process, as the best of a few runs (the machine is shared: the best
run is the least disturbed one).

* :func:`round_in_child` — one workload's round in a fresh interpreter:
  load time, round time, decisions digest and peak RSS.
* :func:`dropin_process` — ``oarsched-kamelot`` on a copy of a drop-in case,
  as OAR3's meta-scheduler runs it: wall time and peak RSS.
* :func:`dropin_phases` — the same round through :mod:`benchmarks.phases`,
  which times interpreter start, imports, configuration, database read,
  scheduling and database write.
* :func:`core_vs_reference` — the compiled matcher and window search against
  the plain-Python reference (:mod:`oarsched.engine.reference`) on one step.
* :func:`growth_exponent` — least-squares slope of log(time) on log(size).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WRAPPER = r"""
import json, resource, subprocess, sys, time
out_path, argv = sys.argv[1], sys.argv[2:]
with open(out_path, "w") as out:
    t = time.perf_counter()
    rc = subprocess.call(argv, stdout=out)
    wall = time.perf_counter() - t
print(json.dumps({"rc": rc, "wall": wall, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


@dataclass
class ProcessRun:
    """A child process: exit code, wall time (s), peak resident memory (MB) and its JSON output if any."""

    rc: int
    wall: float
    peak_mb: float
    output: dict | None = None


def run_measured(argv: Sequence[str], *, cwd: str | os.PathLike | None = None, env: dict | None = None,
                 timeout: float = 1800) -> ProcessRun:
    """Run ``argv`` under a small wrapper that times it and reads its peak RSS (``getrusage``).

    The wrapper's own start-up is not counted: its clock starts right before
    the child is spawned.  The child's standard output, when it is one JSON
    line, is returned in ``output``.
    """
    fd, out_path = tempfile.mkstemp(prefix="oarsched-bench-", suffix=".out")
    os.close(fd)
    try:
        proc = subprocess.run([sys.executable, "-c", _WRAPPER, out_path, *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"measuring {argv!r} failed: {proc.stderr.strip()[-2000:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        text = Path(out_path).read_text().strip()
    finally:
        os.unlink(out_path)
    if info["rc"] != 0:
        sys.stderr.write(proc.stderr[-4000:])
    output = None
    if text:
        try:
            output = json.loads(text.splitlines()[-1])
        except json.JSONDecodeError:
            output = None
    return ProcessRun(rc=info["rc"], wall=info["wall"], peak_mb=info["maxrss_kb"] / 1024, output=output)


def child_env() -> dict:
    """The environment for children: this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


# ----------------------------------------------------------------------------- library level
def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls of ``fn`` and the last result."""
    best, result = math.inf, None
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def round_in_child(name: str, repeat: int = 3, timeout: float = 1800) -> ProcessRun:
    """One workload's round in a fresh interpreter (:mod:`benchmarks.round_child`): times, digest, peak RSS."""
    return run_measured([sys.executable, "-m", "benchmarks.round_child", name, str(repeat)],
                        cwd=ROOT, env=child_env(), timeout=timeout)


# ----------------------------------------------------------------------------- drop-in cases
@contextmanager
def case_copy(case_dir: str | os.PathLike) -> Iterator[Path]:
    """A fresh copy of a drop-in case folder (the scheduler writes into its database)."""
    tmp = Path(tempfile.mkdtemp(prefix="oarsched-case-"))
    try:
        dst = tmp / Path(case_dir).name
        shutil.copytree(case_dir, dst)
        yield dst
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_argv(case: Path) -> list[str]:
    """The arguments OAR3's meta-scheduler passes for this case (``case.json``)."""
    return list(json.loads((case / "case.json").read_text())["argv"])


def kamelot_command() -> list[str]:
    """``oarsched-kamelot`` as installed, else the module run by this interpreter."""
    exe = shutil.which("oarsched-kamelot")
    return [exe] if exe else [sys.executable, "-m", "oarsched.oar.kamelot"]


def dropin_process(case: Path, conf: Path | None = None) -> ProcessRun:
    """``oarsched-kamelot QUEUE NOW NOW_SQL`` on a case copy, from its folder: wall time and peak RSS."""
    env = child_env()
    env["OARCONFFILE"] = str(conf or case / "oar.conf")
    run = run_measured([*kamelot_command(), *case_argv(case)], cwd=case, env=env)
    if run.rc != 0:
        raise RuntimeError(f"oarsched-kamelot failed on {case} (exit {run.rc})")
    return run


def dropin_phases(case: Path, conf: Path | None = None) -> ProcessRun:
    """The round through :mod:`benchmarks.phases` on a case copy: ``output`` has each phase's seconds.

    ``output["start"]`` is what the phases do not account for: the
    interpreter's start-up and exit.
    """
    env = child_env()
    env["OARCONFFILE"] = str(conf or case / "oar.conf")
    run = run_measured([sys.executable, "-m", "benchmarks.phases", *case_argv(case)], cwd=case, env=env)
    if run.rc != 0 or run.output is None:
        raise RuntimeError(f"benchmarks.phases failed on {case} (exit {run.rc})")
    inside = sum(v for k, v in run.output.items() if k in PHASES)
    run.output["start"] = max(0.0, run.wall - inside)
    return run


PHASES = ("imports", "config", "read", "schedule", "write")
"""Phases :mod:`benchmarks.phases` times inside the process (``start`` is the rest)."""


def pg_conf(case: Path, url: str) -> Path:
    """An ``oar.conf`` for ``case`` pointing at the PostgreSQL database ``url`` (``oar.pg.conf``)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    lines = [ln for ln in (case / "oar.conf").read_text().splitlines() if not ln.startswith(("DB_", "#"))]
    lines += ['DB_TYPE="Pg"', f'DB_HOSTNAME="{u.host}"', f'DB_PORT="{u.port}"', f'DB_BASE_NAME="{u.database}"',
              f'DB_BASE_LOGIN="{u.username}"', f'DB_BASE_PASSWD="{u.password}"']
    conf = case / "oar.pg.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


# ----------------------------------------------------------------------------- the core vs the reference
def core_vs_reference(name: str = "nodeonly-10k-100", jobs: int = 40, windows: int = 40) -> dict:
    """The compiled core and the plain-Python reference on the same step, from one run.

    The step: the round of the workload's first ``jobs`` jobs fills a slot
    set; then, for the next job's request, (1) the matcher on the free
    resources of the first ``windows`` windows, (2) the whole window search.
    Both implementations answer the same question on the same data (checked).
    """
    from benchmarks import workloads
    from oarsched._core import bitset
    from oarsched.engine import reference
    from oarsched.engine.slots import Occupation, new_slot_set, occupy

    wl = workloads.load_any(name)
    sched = workloads.make_scheduler(wl)
    result = sched.schedule(wl.jobs[:jobs], wl.now)
    ss = new_slot_set(sched.nbits, wl.now, sched.schedulable.copy())
    for a in sorted(result.assignments.values(), key=lambda a: a.start_time):
        occupy(ss, Occupation(start_time=a.start_time, walltime=a.walltime, resources=a.res))
    probe = wl.jobs[jobs]
    mld = sched._compile(probe)[0]
    request, w = mld[2], mld[1]
    everything = set(range(sched.nbits))
    ref_groups = [(grp.levels, everything) for grp in probe.moldables[0].groups]
    levels = {lbl: [frozenset(b.tolist()) for b in wl.platform.level(lbl)] for lbl in wl.platform.hierarchy_labels}
    ids = [s for s, _, _ in ss.slots()]
    slots = [(b, e, set(bitset.to_indices(ss.free_of(s)).tolist())) for s, b, e in ss.slots()]
    frees = []
    for i in range(min(windows, len(slots))):
        j = i
        while j < len(slots) and slots[j][1] - slots[i][0] + 1 < w:
            j += 1
        if j == len(slots):
            break
        frees.append((ss.window_free(ids[i], ids[j]), set.intersection(*(s[2] for s in slots[i : j + 1]))))

    t_core, got = best_of(lambda: [request.find(f) for f, _ in frees], 5)
    t_ref, want = best_of(lambda: [reference.find_request(f, ref_groups, levels) for _, f in frees], 1)
    for g, r in zip(got, want):
        assert (g is None and not r) or set(bitset.to_indices(g).tolist()) == r, "core and reference disagree"
    t_core_s, found = best_of(lambda: ss.find_first(0, w, request), 5)
    t_ref_s, ref_found = best_of(lambda: reference.find_first_window(slots, w, ref_groups, levels), 1)
    assert (found is None) == (ref_found is None), "core and reference disagree"
    if found is not None:
        assert ss.slot(found[0])[0] == ref_found[0] and set(bitset.to_indices(found[2]).tolist()) == ref_found[1]
    return {
        "workload": name, "request": mld[3] and "/".join(f"{lbl}={n}" for lbl, n in probe.moldables[0].groups[0].levels),
        "slots": len(slots), "windows": len(frees),
        "match_core_s": t_core, "match_reference_s": t_ref, "match_ratio": t_ref / t_core,
        "search_core_s": t_core_s, "search_reference_s": t_ref_s, "search_ratio": t_ref_s / t_core_s,
    }


# ----------------------------------------------------------------------------- growth
def growth_exponent(sizes: Sequence[float], times: Sequence[float]) -> float:
    """Slope ``a`` of ``time ∝ size^a`` (least squares on log-log)."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in times]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")
