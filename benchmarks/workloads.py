"""Benchmark workloads: load ``workload.json`` files, generate bigger ones, run a round, digest it.

A workload (format ``oarsched-bench-workload/1``, described in the shared
bench folder's README) is a platform, waiting jobs in scheduling order and
the round's settings.  This module turns one into the library's objects
(:class:`~oarsched.model.platform.Platform`, :class:`~oarsched.model.job.Job`)
and runs the round the way ``oarsched-kamelot`` would on the matching
drop-in case (same security time, FIFO order, quotas from the same rules).

:func:`generate` makes workloads of the same shapes at other sizes (up to
100,000 resources and 20,000 jobs), optionally with running jobs and
advance reservations already in the gantt (the optional ``"scheduled"`` key,
an extension of the format: ``[{"id", "moldable_id", "start_time",
"walltime", "resources": [rid, ...], "state", "types"}]``).

:func:`decision_digest` hashes a round's decisions (every placed job's id,
moldable, start time and resources, and the ids left unplaced) so that an
optimisation can be checked to change no decision.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oarsched.engine.scheduler import ScheduledJob, Scheduler, ScheduleResult, SchedulerOptions
from oarsched.model.job import Job, Moldable, ResourceGroup
from oarsched.model.platform import Platform, Resource

FORMAT = "oarsched-bench-workload/1"
NOW = 1735689600
JOB_SECURITY_TIME = 60
HIERARCHY_LABELS = ["resource_id", "network_address", "cpu", "core", "switch"]
COLUMNS = ["resource_id", "switch", "network_address", "cpu", "core"]

KINDS = ("NodeOnly", "CoreOnly", "Normal")
"""Workload kinds of the shared suite (redox's job kinds)."""


# ----------------------------------------------------------------------------- locating
def shared_bench_dir() -> Path | None:
    """The shared bench folder (``$OARSCHED_SHARED/bench`` or ``../shared/bench``), None if absent."""
    env = os.environ.get("OARSCHED_SHARED")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    bench = root / "bench"
    return bench if (bench / "index.json").is_file() else None


def suite_names() -> list[str]:
    """Names of the shared workloads (``index.json`` order); empty without the shared folder."""
    bench = shared_bench_dir()
    if bench is None:
        return []
    index = json.loads((bench / "index.json").read_text())
    return [w["name"] for w in index["workloads"] if (bench / w["name"] / "workload.json").is_file()]


# ----------------------------------------------------------------------------- the model
@dataclass
class Workload:
    """A workload as library objects, ready for :func:`run_round`."""

    name: str
    kind: str
    now: int
    job_security_time: int
    platform: Platform
    jobs: list[Job]
    quotas: dict | None = None
    scheduled: list[ScheduledJob] = field(default_factory=list)

    @property
    def nb_resources(self) -> int:
        return self.platform.size


def read_spec(path: str | os.PathLike) -> dict:
    """The raw JSON document of a workload file."""
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} workload (format {doc.get('format')!r})")
    return doc


def load(name_or_path: str | os.PathLike) -> Workload:
    """A shared workload by name (``nodeonly-10k-500``) or any ``workload.json`` path."""
    path = Path(name_or_path)
    if not path.suffix:
        bench = shared_bench_dir()
        if bench is None:
            raise FileNotFoundError("the shared bench folder is missing (set OARSCHED_SHARED)")
        path = bench / str(name_or_path) / "workload.json"
    return from_spec(read_spec(path))


def from_spec(doc: Mapping[str, Any]) -> Workload:
    """Library objects from a workload document."""
    cfg = doc["config"]
    platform = platform_from_spec(doc["platform"], cfg["hierarchy_labels"])
    return Workload(
        name=doc["name"], kind=doc["kind"], now=int(doc["now"]),
        job_security_time=int(cfg["job_security_time"]),
        platform=platform, jobs=jobs_from_spec(doc["jobs"]),
        quotas=doc.get("quotas") if cfg.get("quotas") else None,
        scheduled=scheduled_from_spec(doc.get("scheduled") or []),
    )


def platform_from_spec(spec: Mapping[str, Any], hierarchy_labels: Sequence[str]) -> Platform:
    """The platform of a workload: its resource rows, in ``resource_id`` order."""
    columns = list(spec["columns"])
    rid_at = columns.index("resource_id")
    others = [(i, c) for i, c in enumerate(columns) if c != "resource_id"]
    resources = [Resource(id=int(row[rid_at]), properties={c: row[i] for i, c in others})
                 for row in sorted(spec["resources"], key=lambda r: r[rid_at])]
    return Platform(resources, hierarchy_labels)


def jobs_from_spec(specs: Sequence[Mapping[str, Any]]) -> list[Job]:
    """Waiting jobs, in the listed (scheduling) order."""
    jobs = []
    for j in specs:
        moldables = [
            Moldable(id=int(m["id"]), walltime=int(m["walltime"]),
                     groups=[ResourceGroup(levels=[(lbl, int(n)) for lbl, n in m["levels"]],
                                           property=m.get("property") or "")])
            for m in j["moldables"]
        ]
        jobs.append(Job(id=int(j["id"]), moldables=moldables, user=j.get("user", ""),
                        project=j.get("project", ""), queue=j.get("queue", "default"),
                        types=list(j.get("types", [])), submission_time=int(j.get("submission_time", 0))))
    return jobs


def scheduled_from_spec(specs: Sequence[Mapping[str, Any]]) -> list[ScheduledJob]:
    """Jobs already in the gantt (running jobs, reservations)."""
    out = []
    for s in specs:
        out.append(ScheduledJob(
            id=int(s["id"]), start_time=int(s["start_time"]), walltime=int(s["walltime"]),
            resources=list(s["resources"]), moldable_id=int(s.get("moldable_id", s["id"])),
            types={t: "" for t in s.get("types", [])}, user=s.get("user", "bench"),
            project=s.get("project", "default"), queue=s.get("queue", "default"),
            state=s.get("state", "Running"),
        ))
    return out


# ----------------------------------------------------------------------------- running
def make_scheduler(wl: Workload) -> Scheduler:
    """The scheduler ``oarsched-kamelot`` would build for this workload's drop-in case."""
    quota_state = None
    if wl.quotas is not None:
        from oarsched.engine.quotas import QuotaState

        quota_state = QuotaState.from_rules(wl.quotas, wl.platform)
    options = SchedulerOptions(job_security_time=wl.job_security_time, quotas=quota_state)
    return Scheduler(wl.platform, options)


def run_round(wl: Workload, scheduler: Scheduler | None = None) -> ScheduleResult:
    """One scheduling round of the workload (a fresh scheduler unless one is given)."""
    return (scheduler or make_scheduler(wl)).schedule(wl.jobs, wl.now, wl.scheduled)


def decision_digest(result: ScheduleResult) -> str:
    """SHA-256 of every decision: ``job moldable start lo-hi,...`` per placed job, then the unplaced ids."""
    h = hashlib.sha256()
    for jid in sorted(result.assignments):
        a = result.assignments[jid]
        ranges = ",".join(f"{lo}-{hi}" for lo, hi in _ranges(a.rids))
        h.update(f"{jid} {a.moldable_id} {a.start_time} {ranges}\n".encode())
    h.update(("unplaced " + " ".join(str(j) for j in sorted(result.unscheduled)) + "\n").encode())
    return h.hexdigest()


def _ranges(ids: np.ndarray) -> Iterator[tuple[int, int]]:
    arr = np.sort(np.asarray(ids, dtype=np.int64))
    if arr.size == 0:
        return
    brk = np.nonzero(np.diff(arr) != 1)[0]
    for s, e in zip(np.concatenate(([0], brk + 1)), np.concatenate((brk, [arr.size - 1]))):
        yield int(arr[s]), int(arr[e])


# ----------------------------------------------------------------------------- generating
@dataclass(frozen=True)
class Shape:
    """Cores numbered 1..N, grouped by consecutive ids into cpus, nodes and switches."""

    resources: int
    cores_per_cpu: int = 64
    cpus_per_node: int = 4
    nodes_per_switch: int = 24

    @property
    def per_node(self) -> int:
        return self.cores_per_cpu * self.cpus_per_node

    @property
    def per_switch(self) -> int:
        return self.per_node * self.nodes_per_switch

    def rows(self) -> list[list]:
        """``[resource_id, switch, network_address, cpu, core]`` of every core."""
        n_nodes = -(-self.resources // self.per_node)
        n_switches = -(-self.resources // self.per_switch)
        nw, sw = len(str(n_nodes)), len(str(n_switches))
        return [[rid, f"sw-{(rid - 1) // self.per_switch + 1:0{sw}d}",
                 f"node-{(rid - 1) // self.per_node + 1:0{nw}d}", (rid - 1) // self.cores_per_cpu + 1, rid]
                for rid in range(1, self.resources + 1)]

    def limits(self) -> dict:
        """Largest count of each level a request may ask for, alone or inside one (the largest) block above."""
        n = self.resources
        switch = min(self.per_switch, n)
        return {
            "nodes": -(-n // self.per_node),
            ("cores", "switches"): switch,
            ("cpus", "switches"): -(-switch // self.cores_per_cpu),
            ("nodes", "switches"): -(-switch // self.per_node),
            ("cores", "nodes"): min(self.per_node, n),
        }


# (job type, walltime minutes (min, max, step), count (min, max, step), level, within, share)
_FAMILIES: dict[str, list[tuple[str, tuple[int, int, int], tuple[int, int, int], str, str, str]]] = {
    "Normal": [
        ("smalljobs", (5, 120, 5), (1, 64, 1), "cores", "nodes", "2/5"),
        ("midjobs", (5, 180, 5), (1, 32, 1), "cpus", "switches", "2/5"),
        ("longrun", (120, 840, 15), (1, 8, 1), "nodes", "switches", "1/10"),
        ("longrun", (480, 840, 30), (4, 24, 2), "nodes", "switches", "rest"),
    ],
    "NodeOnly": [("nodeonly", (60, 1440, 60), (1, 39, 1), "nodes", "", "rest")],
    "CoreOnly": [("coreonly", (60, 1440, 60), (64, 2496, 1), "cores", "switches", "rest")],
}
_LEVEL = {"switches": "switch", "nodes": "network_address", "cpus": "cpu", "cores": "core"}


def _draw(rng: random.Random, grid: tuple[int, int, int]) -> int:
    lo, hi, step = grid
    return lo + rng.randrange((hi - lo) // step + 1) * step


def generate_jobs(kind: str, n: int, seed: int, shape: Shape) -> list[dict]:
    """``n`` job requests of a kind in scheduling order: ``{"type", "walltime" (s), "levels"}``.

    The same families as the shared suite; a count larger than the platform
    can give (small platforms) is clipped to what one block holds, so that
    every job fits.
    """
    families = _FAMILIES[kind]
    counts = [int(s.split("/")[0]) * n // int(s.split("/")[1]) for *_, s in families if s != "rest"]
    counts.append(n - sum(counts))
    limits = shape.limits()
    jobs: list[dict] = []
    rng = random.Random(seed)
    for k, ((jtype, wgrid, rgrid, level, within, _), count) in enumerate(zip(families, counts)):
        rng = random.Random(seed + k)
        cap = limits[(level, within)] if within else limits[level]
        for _ in range(count):
            walltime = _draw(rng, wgrid) * 60
            nb = min(_draw(rng, rgrid), cap)
            levels = ([[_LEVEL[within], 1]] if within else []) + [[_LEVEL[level], nb]]
            jobs.append({"type": jtype, "walltime": walltime, "levels": levels})
    if len(families) > 1:
        random.Random(rng.getrandbits(64)).shuffle(jobs)
    return jobs


def quotas_rules(nb_resources: int) -> dict:
    """The suite's quotas (redox's mock rules)."""
    cap = nb_resources * 8 // 10
    return {
        "quotas": {"*,*,besteffort,*": [-1, -1, -1], "*,*,smalljobs,*": [cap, -1, -1],
                   "*,*,midjobs,*": [cap, -1, -1], "*,*,longrun,*": [-1, 5, -1]},
        "job_types": ["besteffort", "smalljobs", "midjobs", "longrun"],
    }


def generate(kind: str, jobs: int, resources: int = 10_000, *, seed: int = 26, quotas: bool = False,
             running: int = 0, reservations: int = 0, now: int = NOW, name: str | None = None) -> dict:
    """A workload document of ``kind`` with ``jobs`` waiting jobs on ``resources`` cores (10k's shape).

    ``running`` jobs started before ``now`` and ``reservations`` accepted
    advance reservations (starting within two days) are put in the gantt
    (``"scheduled"``), each on whole nodes drawn at random without overlap
    between two running jobs.
    """
    shape = Shape(resources)
    name = name or f"{kind.lower()}{'-quotas' if quotas else ''}-{_size(resources)}-{jobs}"
    reqs = generate_jobs(kind, jobs, seed, shape)
    first_id = running + reservations + 1
    job_docs = [{
        "id": first_id + i, "queue": "default", "user": "bench", "project": "default",
        "types": [r["type"]], "submission_time": now - jobs + i,
        "moldables": [{"id": first_id + i, "walltime": r["walltime"],
                       "request": "/".join(f"{lbl}={c}" for lbl, c in r["levels"]),
                       "levels": r["levels"], "property": ""}],
    } for i, r in enumerate(reqs)]
    return {
        "format": FORMAT, "name": name, "kind": kind, "seed": seed, "queue": "default", "now": now,
        "config": {"job_security_time": JOB_SECURITY_TIME, "hierarchy_labels": HIERARCHY_LABELS,
                   "resource_order": "resource_id ASC", "job_priority": "FIFO",
                   "max_jobs_per_round": 0, "quotas": quotas},
        "quotas": quotas_rules(resources) if quotas else None,
        "platform": {"nb_resources": resources,
                     "shape": {"cores_per_cpu": shape.cores_per_cpu, "cpus_per_node": shape.cpus_per_node,
                               "nodes_per_switch": shape.nodes_per_switch},
                     "columns": COLUMNS, "resources": shape.rows()},
        "jobs": job_docs,
        "scheduled": _scheduled(shape, running, reservations, now, seed),
    }


def _scheduled(shape: Shape, running: int, reservations: int, now: int, seed: int) -> list[dict]:
    rng = random.Random(seed ^ 0x5EED)
    n_nodes = -(-shape.resources // shape.per_node)
    free_nodes = list(range(n_nodes))
    rng.shuffle(free_nodes)
    out = []
    for i in range(running + reservations):
        is_running = i < running
        if is_running:
            if not free_nodes:
                break
            nodes = [free_nodes.pop()]
            start = now - rng.randrange(60, 6 * 3600)
        else:
            nodes = rng.sample(range(n_nodes), k=min(n_nodes, rng.randint(1, 4)))
            start = now + rng.randrange(3600, 2 * 86400, 600)
        rids = [rid for nd in sorted(nodes)
                for rid in range(nd * shape.per_node + 1, min((nd + 1) * shape.per_node, shape.resources) + 1)]
        out.append({"id": i + 1, "moldable_id": i + 1, "start_time": start,
                    "walltime": rng.randrange(1, 25) * 3600, "resources": rids,
                    "state": "Running" if is_running else "Waiting", "types": []})
    return out


def _size(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def write(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a workload document (compact JSON)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    return p


# ----------------------------------------------------------------------------- the generated suite
def _generated() -> dict[str, dict]:
    specs: dict[str, dict] = {}
    for kind in KINDS:
        for n in (5000, 10000, 20000):  # growth with the number of jobs, 10k resources
            specs[f"{kind.lower()}-10k-{n}"] = {"kind": kind, "jobs": n, "resources": 10_000}
    for kind in KINDS:
        for r in (1000, 2000, 5000, 20_000, 50_000, 100_000):  # growth with the platform, 500 jobs
            specs[f"{kind.lower()}-{_size(r)}-500"] = {"kind": kind, "jobs": 500, "resources": r}
    specs["mixed-quotas-20k-1000"] = {"kind": "Normal", "jobs": 1000, "resources": 20_000, "quotas": True,
                                      "running": 40, "reservations": 10}
    specs["mixed-nodeonly-20k-1000"] = {"kind": "NodeOnly", "jobs": 1000, "resources": 20_000,
                                        "running": 40, "reservations": 10}
    # the load scenario: 100,000 resources, 20,000 waiting jobs, running jobs and reservations
    specs["load-100k-20000"] = {"kind": "Normal", "jobs": 20_000, "resources": 100_000, "running": 200,
                                "reservations": 50}
    return specs


GENERATED: dict[str, dict] = _generated()
"""Generated workloads by name: keyword arguments of :func:`generate` (seed 26)."""


def load_any(name: str) -> Workload:
    """A workload by name: a generated one (:data:`GENERATED`) or a shared one."""
    if name in GENERATED:
        return from_spec(generate(name=name, **GENERATED[name]))
    return load(name)


def tiered_params(quick, regular, slow) -> list:
    """pytest params for workload names: ``quick`` ones run in CI (marker ``quick``), ``slow`` ones only with ``-m slow``."""
    import pytest

    return ([pytest.param(n, marks=pytest.mark.quick, id=n) for n in quick]
            + [pytest.param(n, id=n) for n in regular]
            + [pytest.param(n, marks=pytest.mark.slow, id=n) for n in slow])
