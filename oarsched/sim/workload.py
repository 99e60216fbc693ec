"""Workloads for the simulator: jobs with a submit time and an actual run time.

Three on-disk forms are read, each into a :class:`Workload`:

**SWF** (the Standard Workload Format of the Parallel Workloads Archive):
header lines start with ``;`` (``; Key: value`` pairs are kept in
:attr:`Workload.header`), every other non-blank line has 18 numeric fields.
The fields are mapped as follows (1-based, as in the SWF definition):

====  ===========================  ==================================================
 #    SWF field                    simulated job
====  ===========================  ==================================================
 1    job number                   ``id``
 2    submit time                  ``submit`` (seconds; SWF times are relative to
                                   the header's ``UnixStartTime``)
 4    run time                     ``runtime`` (what the job really runs)
 5    allocated processors         fallback when field 8 is -1
 8    requested processors         ``request = "<level>=N"`` (``resource_id`` by default)
 9    requested time               ``walltime``; fallback: the run time (at least 1 s)
 11   status                       see below
 12   user id                      ``user = "u<id>"`` (empty when -1)
 13   group id                     ``project = "g<id>"`` (``"default"`` when -1)
 15   queue number                 ``queue``: ``queue_names[n]``, else ``"default"``
====  ===========================  ==================================================

Fields 3 (wait time of the original system), 6, 7, 10, 14, 16, 17 and 18 are
not used by the simulation.  Status and unknown values (``-1``):

* a job whose run time is known (>= 0) is simulated whatever its status:
  completed (1), failed (0) and cancelled-after-start (5) jobs all held their
  processors for that long;
* a job with run time ``-1`` never ran in the original system (typically a
  cancelled job, status 5, or a failed submission): it is **skipped** and
  listed in :attr:`Workload.skipped` with the reason;
* a job with neither requested (8) nor allocated (5) processors is skipped
  likewise;
* a requested time shorter than the run time is kept: the simulator kills the
  job at its walltime, as OAR does.

**JSON** (a list of objects, or ``{"jobs": [...]}``) and **JSON Lines**
(``.jsonl``/``.ndjson``, one object per line), and **CSV** (a header row
naming the columns).  Keys/columns: ``id``, ``submit``, ``runtime``
(required); ``walltime`` (seconds or ``h:m:s``; default: the run time, at
least 1 s), ``request`` (an ``oarsub -l`` resource part such as
``network_address=2/core=4``; default ``resource_id=1``), ``user``,
``project``, ``queue`` (default ``default``), ``name``, ``properties`` (a
job-wide property expression), ``types`` (a list, or ``;``-separated text in
CSV: ``besteffort;timesharing=*,*``), ``reservation`` (an advance
reservation's start time) and ``depends`` (ids of jobs to wait for; a list, or
``;``-separated in CSV).

A malformed line or entry raises :class:`WorkloadError` naming the file, the
line (the entry's position for a JSON list) and the field.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oarsched.errors import JobError, OarschedError
from oarsched.model.job import parse_job_types, parse_request, parse_walltime

__all__ = [
    "SWF_FIELDS",
    "Workload",
    "WorkloadError",
    "WorkloadJob",
    "load_workload",
    "read_csv",
    "read_json",
    "read_swf",
]

DEFAULT_REQUEST = "resource_id=1"

SWF_FIELDS = (
    "job number", "submit time", "wait time", "run time", "allocated processors",
    "average CPU time", "used memory", "requested processors", "requested time",
    "requested memory", "status", "user id", "group id", "executable number",
    "queue number", "partition number", "preceding job", "think time",
)
"""Names of the 18 SWF fields, in order (used in error messages)."""

SWF_CANCELLED = 5


class WorkloadError(OarschedError):
    """A workload file cannot be read: names the file, the line (or entry) and the field."""

    def __init__(self, source: str, where: str, message: str) -> None:
        self.source = source
        self.where = where
        self.message = message
        super().__init__(f"{source}, {where}: {message}" if where else f"{source}: {message}")


@dataclass
class WorkloadJob:
    """One job of a workload: what is submitted, when, and how long it really runs.

    ``walltime`` is the requested time (the job is killed when it runs longer);
    ``runtime`` the time it actually runs.  ``reservation`` makes it an
    advance reservation starting then.  Besteffort is both a queue and a type
    (OAR's admission rules couple them): a job in queue ``besteffort`` gets the
    type, a job of type ``besteffort`` goes to that queue.
    """

    id: int
    submit: int
    runtime: int
    walltime: int
    request: str = DEFAULT_REQUEST
    user: str = ""
    project: str = "default"
    queue: str = "default"
    name: str = ""
    properties: str = ""
    types: dict[str, str] = field(default_factory=dict)
    reservation: int | None = None
    depends: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.types, (list, tuple)):
            self.types = parse_job_types(self.types)
        self.depends = tuple(int(d) for d in self.depends)
        if self.queue == "besteffort":
            self.types.setdefault("besteffort", "")
        elif "besteffort" in self.types:
            self.queue = "besteffort"
        for name in ("submit", "runtime", "walltime"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise JobError(self.id, f"{name} must be an integer number of seconds, got {value!r}")
        if self.submit < 0:
            raise JobError(self.id, f"submit must be >= 0, got {self.submit}")
        if self.runtime < 0:
            raise JobError(self.id, f"runtime must be >= 0, got {self.runtime}")
        if self.walltime <= 0:
            raise JobError(self.id, f"walltime must be > 0, got {self.walltime}")
        if self.reservation is not None and self.reservation < 0:
            raise JobError(self.id, f"reservation must be a start time >= 0, got {self.reservation}")
        if self.reservation is not None and self.besteffort:
            raise JobError(self.id, "reservation: an advance reservation cannot be besteffort")
        parse_request(self.request, job_id=self.id)  # fails early, naming the job

    @property
    def besteffort(self) -> bool:
        return "besteffort" in self.types


@dataclass
class Workload:
    """Jobs in submission order, the lines skipped on purpose and the file's header."""

    jobs: list[WorkloadJob]
    source: str = "<memory>"
    skipped: list[tuple[int, int | None, str]] = field(default_factory=list)
    """``(line, job id, reason)`` of the entries left out (SWF jobs that never ran...)."""
    header: dict[str, str] = field(default_factory=dict)
    """SWF ``; Key: value`` header lines."""

    def __post_init__(self) -> None:
        self.jobs = sorted(self.jobs, key=lambda j: (j.submit, j.id))
        seen: set[int] = set()
        for job in self.jobs:
            if job.id in seen:
                raise WorkloadError(self.source, f"job {job.id}", "duplicated job id")
            seen.add(job.id)
        for job in self.jobs:
            unknown = [d for d in job.depends if d not in seen]
            if unknown:
                raise WorkloadError(self.source, f"job {job.id}", f"field 'depends': unknown job ids {unknown}")

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self):
        return iter(self.jobs)


# ----------------------------------------------------------------------------- SWF

def read_swf(path: str | os.PathLike[str], *, level: str = "resource_id",
             queue_names: Mapping[int, str] | None = None) -> Workload:
    """Read a Standard Workload Format file (see the module docstring for the mapping).

    ``level`` is the hierarchy level the processors are requested at
    (``resource_id=N`` by default: any N resources); ``queue_names`` maps SWF
    queue numbers (field 15) to queue names (unmapped numbers go to ``default``).
    """
    source = os.fspath(path)
    jobs: list[WorkloadJob] = []
    skipped: list[tuple[int, int | None, str]] = []
    header: dict[str, str] = {}
    seen_lines: dict[int, int] = {}
    for lineno, line in _lines(source):
        text = line.strip()
        if not text:
            continue
        if text.startswith(";"):
            key, sep, value = text[1:].partition(":")
            if sep and key.strip():
                header[key.strip()] = value.strip()
            continue
        values = _swf_values(source, lineno, text)
        job_id = values[0]
        if job_id in seen_lines:
            raise WorkloadError(source, f"line {lineno}", f"job number {job_id} already on line {seen_lines[job_id]}")
        seen_lines[job_id] = lineno
        try:
            job, reason = _swf_job(values, level, queue_names or {})
        except JobError as exc:
            raise WorkloadError(source, f"line {lineno}", exc.message) from None
        if job is None:
            skipped.append((lineno, job_id, reason))
            continue
        jobs.append(job)
    return Workload(jobs=jobs, source=source, skipped=skipped, header=header)


def _swf_values(source: str, lineno: int, text: str) -> list[int]:
    parts = text.split()
    if len(parts) != len(SWF_FIELDS):
        raise WorkloadError(source, f"line {lineno}", f"expected {len(SWF_FIELDS)} fields, got {len(parts)}")
    values = []
    for index, raw in enumerate(parts):
        try:
            number = float(raw)
        except ValueError:
            raise WorkloadError(source, f"line {lineno}",
                                f"field {index + 1} ({SWF_FIELDS[index]}): {raw!r} is not a number") from None
        if not math.isfinite(number):
            raise WorkloadError(source, f"line {lineno}",
                                f"field {index + 1} ({SWF_FIELDS[index]}): {raw!r} is not a finite number")
        values.append(int(number))
    if values[0] < 0:
        raise WorkloadError(source, f"line {lineno}", f"field 1 (job number): {parts[0]!r} is negative")
    if values[1] < 0:
        raise WorkloadError(source, f"line {lineno}", f"field 2 (submit time): {parts[1]!r} is negative")
    return values


def _swf_job(v: list[int], level: str, queue_names: Mapping[int, str]) -> tuple[WorkloadJob | None, str]:
    """The simulated job of an SWF record, or None and the reason it is skipped."""
    job_id, submit, runtime, allocated, requested, req_time, status = v[0], v[1], v[3], v[4], v[7], v[8], v[10]
    if runtime < 0:
        what = "cancelled" if status == SWF_CANCELLED else f"status {status}"
        return None, f"{what}, run time unknown (-1): the job never ran"
    procs = requested if requested > 0 else allocated
    if procs <= 0:
        return None, "no processor count (fields 8 and 5 are both unknown)"
    walltime = req_time if req_time > 0 else max(runtime, 1)
    user, group, queue = v[11], v[12], v[14]
    job = WorkloadJob(
        id=job_id, submit=submit, runtime=runtime, walltime=walltime, request=f"{level}={procs}",
        user=f"u{user}" if user >= 0 else "", project=f"g{group}" if group >= 0 else "default",
        queue=queue_names.get(queue, "default"),
    )
    return job, ""


def _lines(source: str) -> Iterable[tuple[int, str]]:
    try:
        with open(source, encoding="utf-8", errors="strict") as fh:
            yield from enumerate(fh, start=1)
    except OSError as exc:
        raise WorkloadError(source, "", f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(source, "", f"not UTF-8 text ({exc.reason})") from None


# ---------------------------------------------------------------------- JSON / CSV

_REQUIRED = ("id", "submit", "runtime")
_KNOWN = frozenset(_REQUIRED + ("walltime", "request", "user", "project", "queue", "name", "properties",
                                "types", "reservation", "depends"))


def read_json(path: str | os.PathLike[str]) -> Workload:
    """Read a JSON list of job objects (or ``{"jobs": [...]}``), or JSON Lines for ``.jsonl``/``.ndjson``."""
    source = os.fspath(path)
    if source.endswith((".jsonl", ".ndjson")):
        entries = []
        for lineno, line in _lines(source):
            if line.strip():
                try:
                    entries.append((f"line {lineno}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise WorkloadError(source, f"line {lineno}", f"not JSON: {exc.msg}") from None
    else:
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as exc:
            raise WorkloadError(source, "", f"cannot read it: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise WorkloadError(source, f"line {exc.lineno}", f"not JSON: {exc.msg}") from None
        if isinstance(data, Mapping):
            data = data.get("jobs")
        if not isinstance(data, list):
            raise WorkloadError(source, "", "expected a list of jobs (or an object with a 'jobs' list)")
        entries = [(f"entry {i + 1}", item) for i, item in enumerate(data)]
    jobs = [_job_from_mapping(source, where, item, csv_form=False) for where, item in entries]
    return Workload(jobs=jobs, source=source)


def read_csv(path: str | os.PathLike[str]) -> Workload:
    """Read a CSV file whose first row names the columns (see the module docstring)."""
    source = os.fspath(path)
    try:
        with open(source, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise WorkloadError(source, "line 1", f"missing column(s) {', '.join(missing)} in the header")
            jobs = []
            for row in reader:
                if not any((v or "").strip() for k, v in row.items() if k is not None):
                    continue
                if None in row:
                    raise WorkloadError(source, f"line {reader.line_num}", "more values than header columns")
                item = {k: v for k, v in row.items() if v is not None and v.strip() != ""}
                jobs.append(_job_from_mapping(source, f"line {reader.line_num}", item, csv_form=True))
    except OSError as exc:
        raise WorkloadError(source, "", f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(source, "", f"not UTF-8 text ({exc.reason})") from None
    return Workload(jobs=jobs, source=source)


def load_workload(path: str | os.PathLike[str], **swf_options: Any) -> Workload:
    """Read a workload, choosing the form by extension: ``.swf`` (and ``.swf.txt``), ``.json``/``.jsonl``, ``.csv``."""
    source = os.fspath(path)
    lower = source.lower()
    if lower.endswith((".swf", ".swf.txt")):
        return read_swf(source, **swf_options)
    if lower.endswith((".json", ".jsonl", ".ndjson")):
        return read_json(source)
    if lower.endswith(".csv"):
        return read_csv(source)
    raise WorkloadError(source, "", "unknown workload form: name it .swf, .json, .jsonl or .csv")


def _job_from_mapping(source: str, where: str, item: Any, *, csv_form: bool) -> WorkloadJob:
    if not isinstance(item, Mapping):
        raise WorkloadError(source, where, f"expected an object, got {type(item).__name__}")
    missing = [k for k in _REQUIRED if k not in item]
    if missing:
        raise WorkloadError(source, where, f"missing field(s) {', '.join(repr(m) for m in missing)}")
    unknown = sorted(set(item) - _KNOWN)
    if unknown:
        raise WorkloadError(source, where, f"unknown field(s) {', '.join(repr(u) for u in unknown)} "
                                           f"(known: {', '.join(sorted(_KNOWN))})")
    get = _FieldReader(source, where, item)
    runtime = get.integer("runtime")
    walltime = get.walltime("walltime") if "walltime" in item else max(runtime, 1)
    kwargs: dict[str, Any] = {
        "id": get.integer("id"), "submit": get.integer("submit"), "runtime": runtime, "walltime": walltime,
        "request": get.text("request", DEFAULT_REQUEST), "user": get.text("user", ""),
        "project": get.text("project", "default"), "queue": get.text("queue", "default"),
        "name": get.text("name", ""), "properties": get.text("properties", ""),
        "types": get.listing("types", csv_form),
        "reservation": get.integer("reservation") if item.get("reservation") is not None else None,
        "depends": tuple(get.int_listing("depends", csv_form)),
    }
    try:
        return WorkloadJob(**kwargs)
    except JobError as exc:
        raise WorkloadError(source, where, _field_hint(exc.message)) from None


def _field_hint(message: str) -> str:
    """Name the field in a job validation message (``walltime must be...`` -> ``field 'walltime': ...``)."""
    head = message.split(" ", 1)[0]
    if head in _KNOWN:
        return f"field {head!r}: {message}"
    if "request" in message or "resource" in message:
        return f"field 'request': {message}"
    return message


class _FieldReader:
    """Typed access to one entry's fields, with errors naming the field."""

    def __init__(self, source: str, where: str, item: Mapping[str, Any]) -> None:
        self.source, self.where, self.item = source, where, item

    def fail(self, name: str, message: str) -> WorkloadError:
        return WorkloadError(self.source, self.where, f"field {name!r}: {message}")

    def integer(self, name: str) -> int:
        value = self.item[name]
        if isinstance(value, bool):
            raise self.fail(name, f"{value!r} is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise self.fail(name, f"{value!r} is not an integer")

    def walltime(self, name: str) -> int:
        value = self.item[name]
        if isinstance(value, str) and ":" in value:
            try:
                return parse_walltime(value)
            except JobError:
                raise self.fail(name, f"{value!r} is neither seconds nor h:m:s") from None
        return self.integer(name)

    def text(self, name: str, default: str) -> str:
        value = self.item.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(name, f"expected text, got {value!r}")
        return value.strip()

    def listing(self, name: str, csv_form: bool) -> list[str]:
        value = self.item.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(";") if v.strip()] if csv_form or ";" in value else [value]
        if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            return list(value)
        if isinstance(value, Mapping):
            return [f"{k}={v}" if v not in ("", None) else str(k) for k, v in value.items()]
        raise self.fail(name, f"expected a list of text, got {value!r}")

    def int_listing(self, name: str, csv_form: bool) -> list[int]:
        value = self.item.get(name)
        if value is None:
            return []
        parts = value.split(";") if isinstance(value, str) else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts = [value]
        out = []
        for part in parts:
            try:
                if isinstance(part, bool):
                    raise TypeError(part)
                out.append(int(part.strip()) if isinstance(part, str) else int(part))
            except (TypeError, ValueError):
                raise self.fail(name, f"{part!r} is not a job id") from None
        return out
