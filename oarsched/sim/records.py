"""What happened to each job of a simulation, and how it is saved (CSV or JSON).

A :class:`JobRecord` is the final outcome of one job id; a :class:`Run` is one
stretch of time a job held resources (every job id has at most one run).

**Resubmissions.**  A besteffort job preempted and requeued (the simulator's
``requeue_besteffort``, or a job of type ``idempotent``) is resubmitted as
OAR3's bipbip does it: a **new job**, of a new id (after every workload id and
every id issued before), with the same request, walltime, run time, queue and
types, and the **submission time of the job it resubmits** (OAR3's copy keeps
``submission_time``).  The preempted job's record ends there (status
``preempted``, ``resubmitted_as`` its resubmission's id); the resubmission's
record has ``resubmit_of`` (OAR3's ``resubmit_job_id``: the id it resubmits)
and its own run.  A workload job is thus a chain of records, whose last one
(no ``resubmitted_as``) holds its outcome: :func:`final_records` keeps those
and :func:`workload_ids` names each record's workload job.  Since a
resubmission keeps the submission time, its ``wait`` is counted from the
workload job's submission (what OAR3's database shows for it).

Statuses:

``completed``
    ran its whole run time;
``killed``
    reached its walltime before the end of its run time and was killed there;
``preempted``
    a besteffort job killed because a job about to start needs its
    resources (``resubmitted_as`` names its resubmission when it was requeued);
``rejected``
    never queued: an advance reservation whose slot was not free at
    submission, a job that does not fit the platform even empty, or a job
    the scheduler cannot understand (``reason`` says which);
``not_started``
    still waiting when the simulation ended (a dependency that can never be
    satisfied, or the ``until`` limit);
``running``
    still running at the ``until`` limit (``end`` is empty).

CSV columns (JSON keys are the same; ``resources`` is a list in JSON and
``1-8,17``-style ranges in CSV; empty cells mean "none")::

    id,user,queue,submit,start,end,wait,run,walltime,nb_resources,resources,
    status,killed,reservation,besteffort,preemptions,reason,resubmit_of,resubmitted_as

``preemptions`` counts the preemptions of the workload job up to this record
(a resubmission's count includes those of the jobs it resubmits: the last
record of a chain has the total).  ``resubmit_of`` and ``resubmitted_as`` are
empty for a job that is no resubmission / was not resubmitted.  Files written
before these two columns existed read as records without resubmissions.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oarsched.errors import OarschedError

__all__ = ["COLUMNS", "STATUSES", "JobRecord", "RecordJournal", "RecordsError", "Run", "final_records",
           "format_ranges", "parse_ranges", "read_records", "workload_ids", "write_records"]

STATUSES = ("completed", "killed", "preempted", "rejected", "not_started", "running")

COLUMNS = ("id", "user", "queue", "submit", "start", "end", "wait", "run", "walltime", "nb_resources",
           "resources", "status", "killed", "reservation", "besteffort", "preemptions", "reason",
           "resubmit_of", "resubmitted_as")


class RecordsError(OarschedError):
    """A records file cannot be read: names the file, the line and the column."""


@dataclass
class JobRecord:
    """The outcome of one job of a simulation."""

    id: int
    submit: int
    walltime: int
    status: str
    start: int | None = None
    end: int | None = None
    resources: list[int] = field(default_factory=list)
    user: str = ""
    queue: str = "default"
    reservation: bool = False
    besteffort: bool = False
    preemptions: int = 0
    reason: str = ""
    resubmit_of: int | None = None
    """The id of the job this one resubmits (OAR3's ``resubmit_job_id``); None for a workload job."""
    resubmitted_as: int | None = None
    """The id of this job's resubmission; None when it was not resubmitted (the last record of its chain)."""

    @property
    def wait(self) -> int | None:
        """``start - submit`` (None when the job never started)."""
        return None if self.start is None else self.start - self.submit

    @property
    def run(self) -> int | None:
        """Time it held its resources: ``end - start``."""
        return None if self.start is None or self.end is None else self.end - self.start

    @property
    def killed(self) -> bool:
        """Ended by the system: walltime reached, or besteffort preemption."""
        return self.status in ("killed", "preempted")

    @property
    def nb_resources(self) -> int:
        return len(self.resources)

    @property
    def started(self) -> bool:
        return self.start is not None

    def as_dict(self) -> dict[str, Any]:
        """The record with every column (``resources`` as a list)."""
        return {"id": self.id, "user": self.user, "queue": self.queue, "submit": self.submit,
                "start": self.start, "end": self.end, "wait": self.wait, "run": self.run,
                "walltime": self.walltime, "nb_resources": self.nb_resources, "resources": list(self.resources),
                "status": self.status, "killed": self.killed, "reservation": self.reservation,
                "besteffort": self.besteffort, "preemptions": self.preemptions, "reason": self.reason,
                "resubmit_of": self.resubmit_of, "resubmitted_as": self.resubmitted_as}


@dataclass(frozen=True)
class Run:
    """One stretch ``[start, end)`` during which a job held ``resources``; ``outcome`` is how it ended."""

    job_id: int
    start: int
    end: int
    resources: tuple[int, ...]
    outcome: str


def final_records(records: Iterable[JobRecord]) -> list[JobRecord]:
    """The last record of each workload job: the records not resubmitted (see the module docstring)."""
    return [r for r in records if r.resubmitted_as is None]


def workload_ids(records: Iterable[JobRecord]) -> dict[int, int]:
    """``{record id: id of the workload job it resubmits}`` (a workload job's record maps to itself)."""
    of = {r.id: r.resubmit_of for r in records}
    out: dict[int, int] = {}
    for job_id in of:
        root = job_id
        for _ in range(len(of)):  # bounded: a malformed file's cycle ends
            parent = of.get(root)
            if parent is None:
                break
            root = parent
        out[job_id] = root
    return out


# ------------------------------------------------------------------------- ranges

def format_ranges(ids: Iterable[int], sep: str = ",") -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"`` (``sep=" "``: ``"1-3 7"``, Batsim's and procset's interval text)."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return sep.join(f"{a}-{b}" if b != a else f"{a}" for a, b in runs)


def parse_ranges(text: str) -> list[int]:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``; raises ValueError on anything else."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ValueError(f"descending range {part!r}")
        ids.extend(range(first, last + 1))
    return ids


# ---------------------------------------------------------------------- writing

def write_records(records: Sequence[JobRecord], path: str | os.PathLike[str]) -> None:
    """Save records as JSON (``.json``) or CSV (anything else)."""
    target = os.fspath(path)
    if target.lower().endswith(".json"):
        Path(target).write_text(json.dumps([r.as_dict() for r in records], indent=1) + "\n", encoding="utf-8")
        return
    with open(target, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in records:
            d = r.as_dict()
            d["resources"] = format_ranges(r.resources)
            writer.writerow(["" if d[c] is None else _cell(d[c]) for c in COLUMNS])


class RecordJournal:
    """Records appended to a CSV file as jobs end (flushed every ``flush_every`` seconds), so that an
    interrupted or killed run leaves what it did; the complete file is written at the end by
    :func:`write_records`.  ``append=True`` continues a file (a resumed run)."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False, flush_every: float = 2.0) -> None:
        import time

        target = os.fspath(path)
        fresh = not (append and os.path.exists(target))
        self._clock = time.monotonic
        self._fh = open(target, "w" if fresh else "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        if fresh:
            self._writer.writerow(COLUMNS)
        self._every = flush_every
        self._flushed = self._clock()

    def add(self, record: JobRecord) -> None:
        d = record.as_dict()
        d["resources"] = format_ranges(record.resources)
        self._writer.writerow(["" if d[c] is None else _cell(d[c]) for c in COLUMNS])
        if self._clock() - self._flushed >= self._every:
            self._fh.flush()
            self._flushed = self._clock()

    def close(self) -> None:
        self._fh.close()


def _cell(value: Any) -> Any:
    return ("yes" if value else "no") if isinstance(value, bool) else value


# ---------------------------------------------------------------------- reading

def read_records(path: str | os.PathLike[str]) -> list[JobRecord]:
    """Load records written by :func:`write_records` (JSON or CSV, by extension)."""
    source = os.fspath(path)
    try:
        if source.lower().endswith(".json"):
            data = json.loads(Path(source).read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise RecordsError(f"{source}: expected a list of job records")
            return [_record(source, f"entry {i + 1}", item) for i, item in enumerate(data)]
        with open(source, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("id", "submit", "start", "end", "walltime", "resources", "status")
                       if c not in (reader.fieldnames or [])]
            if missing:
                raise RecordsError(f"{source}, line 1: missing column(s) {', '.join(missing)}")
            return [_record(source, f"line {reader.line_num}", row) for row in reader]
    except OSError as exc:
        raise RecordsError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise RecordsError(f"{source}, line {exc.lineno}: not JSON: {exc.msg}") from None


def _record(source: str, where: str, item: Any) -> JobRecord:
    if not isinstance(item, dict):
        raise RecordsError(f"{source}, {where}: expected an object")

    def fail(column: str, value: Any) -> RecordsError:
        return RecordsError(f"{source}, {where}: column {column!r}: cannot read {value!r}")

    def integer(column: str) -> int:
        value = item.get(column)
        try:
            if isinstance(value, bool) or value is None:
                raise TypeError(value)
            return int(value)
        except (TypeError, ValueError):
            raise fail(column, value) from None

    def optional(column: str) -> int | None:
        return None if item.get(column) in (None, "") else integer(column)

    def flag(column: str) -> bool:
        value = item.get(column, False)
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("yes", "true", "1"):
            return True
        if str(value).strip().lower() in ("no", "false", "0", ""):
            return False
        raise fail(column, value)

    status = item.get("status")
    if status not in STATUSES:
        raise fail("status", status)
    resources = item.get("resources") or []
    try:
        rids = parse_ranges(resources) if isinstance(resources, str) else [int(r) for r in resources]
    except (TypeError, ValueError):
        raise fail("resources", resources) from None
    return JobRecord(
        id=integer("id"), submit=integer("submit"), walltime=integer("walltime"), status=status,
        start=optional("start"), end=optional("end"), resources=rids,
        user=str(item.get("user") or ""), queue=str(item.get("queue") or "default"),
        reservation=flag("reservation"), besteffort=flag("besteffort"),
        preemptions=optional("preemptions") or 0, reason=str(item.get("reason") or ""),
        resubmit_of=optional("resubmit_of"), resubmitted_as=optional("resubmitted_as"),
    )
