"""Jobs as the scheduler sees them: moldables, resource groups, types, dependencies.

A job is a list of *moldables* (alternative shapes: a walltime and one or more
resource groups); the scheduler picks the one that finishes first.  A resource
group is a hierarchy request (``switch=1/network_address=2/core=4``: one count
per hierarchy level, top to bottom) restricted by an optional property
expression (OAR's SQL-like ``WHERE`` text).

Walltimes here are the walltimes *as submitted*; the engine adds the job
security time itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Hashable, Iterable, Mapping, Sequence, TypeVar

from oarsched.errors import JobError

# OAR stores the keyword counts of a level as negative numbers.
ALL, BEST, HALF_BEST = -1, -2, -3
KEYWORD_COUNTS = {"ALL": ALL, "BEST": BEST, "HALF_BEST": HALF_BEST}

# Placeholder kinds (OAR's ph attribute).
NO_PLACEHOLDER, PLACEHOLDER, ALLOW = 0, 1, 2

Node = TypeVar("Node", bound=Hashable)

# Job types that OAR3 turns into job attributes: they are not "types" for quotas.
ATTRIBUTE_TYPES = frozenset({"timesharing", "placeholder", "allow", "assign", "find", "no_quotas"})

_LEVEL_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([A-Za-z_]+|-?\d+)\s*$")


@dataclass
class ResourceGroup:
    """One ``+``-separated part of a moldable: levels top to bottom and a property filter."""

    levels: list[tuple[str, int]]
    property: str = ""

    def __post_init__(self) -> None:
        self.levels = [(str(label), int(n)) for label, n in self.levels]


@dataclass
class Moldable:
    """One alternative shape of a job."""

    id: int
    walltime: int | None
    """Seconds as submitted; None only when read so from a database (the job is then screened out)."""
    groups: list[ResourceGroup]


@dataclass(frozen=True)
class Dependency:
    """A dependency on another job, with that job's state as OAR records it."""

    job_id: int
    state: str = "Waiting"
    exit_code: int | None = None


@dataclass
class Job:
    """A waiting job.

    ``types`` maps OAR job types to their value (``{"besteffort": "", "inner": "12"}``),
    in the order OAR lists them (quotas look at the first one).  ``request`` and
    ``walltime`` are a shorthand for a single moldable.
    """

    id: int
    moldables: list[Moldable] = field(default_factory=list)
    user: str = ""
    project: str = "default"
    name: str = ""
    queue: str = "default"
    types: dict[str, str] = field(default_factory=dict)
    properties: str = ""
    dependencies: list[Dependency] = field(default_factory=list)
    submission_time: int = 0
    job_type: str = "PASSIVE"
    walltime: int | None = None
    request: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.types, (list, tuple)):
            self.types = parse_job_types(self.types)
        if self.request is not None or self.walltime is not None:
            if self.moldables:
                raise JobError(self.id, "give either moldables or request/walltime, not both")
            if self.walltime is None:
                raise JobError(self.id, "a request needs a walltime")
            groups = parse_request(self.request or "resource_id=1", job_id=self.id)
            self.moldables = [Moldable(id=self.id, walltime=int(self.walltime), groups=groups)]

    # Views of the types, as OAR derives job attributes from them.
    @property
    def besteffort(self) -> bool:
        return "besteffort" in self.types

    @property
    def no_quotas(self) -> bool:
        return "no_quotas" in self.types

    @property
    def timesharing(self) -> tuple[str, str] | None:
        """``(user_key, name_key)`` from ``timesharing=A,B`` or None."""
        return timesharing_of(self.types)

    @property
    def placeholder(self) -> tuple[int, str]:
        """``(kind, name)``: PLACEHOLDER for ``placeholder=N``, ALLOW for ``allow=N``."""
        return placeholder_of(self.types)


def timesharing_of(types: dict[str, str]) -> tuple[str, str] | None:
    """``(user_key, name_key)`` of a ``timesharing=A,B`` type (``*`` where a part is missing), or None."""
    value = types.get("timesharing")
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    user = parts[0] if parts and parts[0] else "*"
    name = parts[1] if len(parts) > 1 and parts[1] else "*"
    return user, name


def placeholder_of(types: dict[str, str]) -> tuple[int, str]:
    """``(kind, name)`` of the ``placeholder=N`` / ``allow=N`` types; ``(NO_PLACEHOLDER, "")`` without them."""
    if "placeholder" in types:
        return PLACEHOLDER, types["placeholder"]
    if "allow" in types:
        return ALLOW, types["allow"]
    return NO_PLACEHOLDER, ""


def timesharing_key(job) -> tuple[str, str] | None:
    """Timesharing key of a job (or a placed job): ``timesharing=user,name`` shares with the same user and name.

    ``*`` stands for "any": ``timesharing=*,*`` shares with every timesharing job.
    """
    ts = timesharing_of(job.types) if job.types else None
    if ts is None:
        return None
    return (job.user if ts[0] == "user" else "*", job.name if ts[1] == "name" else "*")


@dataclass(frozen=True)
class QuotaView:
    """A job as the quotas see it: queue, project, user and its OAR types (the first one counts).

    The types exclude :data:`ATTRIBUTE_TYPES` (OAR3 turns those into job
    attributes).  Built from a waiting or a placed job by :func:`quota_view`.
    """

    queue: str = "default"
    project: str = ""
    user: str = ""
    types: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def quota_view(job) -> QuotaView:
    """The quotas' view of a job (a :class:`Job`, a placed job, anything with queue/project/user/types)."""
    types = {k: v for k, v in job.types.items() if k not in ATTRIBUTE_TYPES}
    return QuotaView(queue=job.queue, project=job.project, user=job.user, types=types)


AVAILABLE_UPTO_JOB = QuotaView()
"""How OAR3 counts the pseudo job holding resources after their ``available_upto``:
user ``""``, project ``""``, queue ``default``, no type (T5)."""


def validate_job(job: Job) -> None:
    """Check the shape of a job read from somewhere else (a database); raise :class:`JobError` naming it.

    Catches what no valid submission produces: no moldable, a walltime that is
    missing (NULL) or not a positive integer, a moldable without resource
    group, a group without levels, a level without a name, a level count of 0
    (a NULL ``res_job_value``) or below ``HALF_BEST``.  Whether the levels
    exist on the platform is the scheduler's business.
    """
    if not job.moldables:
        raise JobError(job.id, "no moldable description")
    for mld in job.moldables:
        walltime = mld.walltime
        if walltime is None:
            raise JobError(job.id, f"moldable {mld.id}: no walltime (NULL moldable_walltime)")
        if isinstance(walltime, bool) or not isinstance(walltime, int) or walltime <= 0:
            raise JobError(job.id, f"moldable {mld.id}: walltime must be a positive number of seconds, "
                                   f"got {walltime!r}")
        if not mld.groups:
            raise JobError(job.id, f"moldable {mld.id}: no resource group")
        for grp in mld.groups:
            if not grp.levels:
                raise JobError(job.id, f"moldable {mld.id}: a resource group has no level")
            for label, count in grp.levels:
                if not label or label == "None":
                    raise JobError(job.id, f"moldable {mld.id}: a resource level has no name")
                if count == 0 or count < HALF_BEST:
                    raise JobError(job.id, f"moldable {mld.id}: level {label!r} asks for {count} "
                                           "(a count is positive, or ALL/BEST/HALF_BEST)")


def dependency_cycles(jobs: Iterable[Job]) -> dict[int, list[int]]:
    """Jobs caught in a cycle of dependencies on waiting jobs: job id -> the jobs of its cycle.

    Only dependencies on ``Waiting`` jobs of ``jobs`` count (others are
    settled or block on their own).  The jobs that depend on each other in a
    loop (a strongly connected component, or a job needing itself) share one
    sorted list of ids.  Such jobs can never be scheduled; jobs depending on
    them without being in the loop are left to the scheduler's dependency
    rules.  Linear in the number of jobs and dependencies.
    """
    jobs = list(jobs)
    ids = {j.id for j in jobs}
    edges = {j.id: sorted({d.job_id for d in j.dependencies if d.state == "Waiting" and d.job_id in ids})
             for j in jobs}
    out: dict[int, list[int]] = {}
    for component in strongly_connected(edges):
        if len(component) == 1 and component[0] not in edges[component[0]]:
            continue
        members = sorted(component)
        for jid in members:
            out[jid] = members
    return out


def strongly_connected(edges: Mapping[Node, Sequence[Node]]) -> list[list[Node]]:
    """Tarjan's strongly connected components of a graph (node -> successors, every node a key), iteratively
    (dependency chains may be long)."""
    index: dict[Node, int] = {}
    low: dict[Node, int] = {}
    on_stack: set[Node] = set()
    stack: list[Node] = []
    components: list[list[Node]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            succ = edges[node]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def parse_job_types(values: Iterable[str]) -> dict[str, str]:
    """Turn OAR ``job_types.type`` strings into a type dict.

    ``name=value`` gives ``{name: value}``; a string with no ``=`` gives an empty
    value.  Like OAR3, a value that itself contains ``=`` becomes ``""`` except
    for ``find``/``assign`` whose arguments use ``k=v``.  ``timesharing``,
    ``placeholder`` and ``allow`` keep their value.
    """
    types: dict[str, str] = {}
    for raw in values:
        raw = raw.strip()
        if not raw:
            continue
        name, sep, value = raw.partition("=")
        name = name.strip()
        if not sep:
            types[name] = ""
        elif name in ("find", "assign") or "=" not in value:
            types[name] = value.strip()
        else:
            types[name] = ""
    return types


def parse_walltime(value: int | str) -> int:
    """Seconds from an int or an ``oarsub`` walltime (``"2"`` = 2 h, ``"1:30"``, ``"0:2:10"``)."""
    if isinstance(value, bool):
        raise JobError(None, f"bad walltime {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise JobError(None, f"bad walltime {value!r}") from None
    if not 1 <= len(parts) <= 3:
        raise JobError(None, f"bad walltime {value!r}")
    h, m, s = (parts + [0, 0])[:3]
    return 3600 * h + 60 * m + s


def parse_level(text: str, job_id: int | None = None) -> tuple[str, int]:
    """``"core=4"`` -> ``("core", 4)``; ``ALL``/``BEST``/``HALF_BEST`` -> -1/-2/-3."""
    m = _LEVEL_RE.match(text)
    if not m:
        raise JobError(job_id, f"malformed resource level {text!r} (expected LABEL=N)")
    label, count = m.group(1), m.group(2)
    if count.upper() in KEYWORD_COUNTS:
        return label, KEYWORD_COUNTS[count.upper()]
    try:
        n = int(count)
    except ValueError:
        raise JobError(job_id, f"bad count {count!r} in resource level {text!r}") from None
    if n <= 0:
        raise JobError(job_id, f"resource count must be positive in {text!r}")
    return label, n


def parse_request(text: str, job_id: int | None = None, nodes_label: str = "network_address") -> list[ResourceGroup]:
    """Parse an ``oarsub -l`` resource part (without ``walltime=``) into groups.

    ``{prop}/switch=1/nodes=2+{prop2}/core=4``: groups separated by ``+``, an
    optional ``{...}`` property per group, levels separated by ``/``.  ``nodes``
    is renamed to ``nodes_label`` (OAR's OARSUB_NODES_RESOURCES).
    """
    if text is None or not text.strip():
        raise JobError(job_id, "empty resource request")
    groups: list[ResourceGroup] = []
    for part in _split_top(text, "+"):
        part = part.strip()
        prop = ""
        if part.startswith("{"):
            end = part.find("}")
            if end < 0:
                raise JobError(job_id, f"unclosed '{{' in resource request {text!r}")
            prop = part[1:end].strip()
            part = part[end + 1 :].lstrip("/").strip()
        if not part:
            raise JobError(job_id, f"resource group without levels in {text!r}")
        levels = []
        for lvl in part.split("/"):
            label, n = parse_level(lvl, job_id)
            if label == "nodes":
                label = nodes_label
            levels.append((label, n))
        keyword_levels = [n for _, n in levels if n < 0]
        if len(keyword_levels) > 1:
            raise JobError(job_id, f"only one ALL/BEST/HALF_BEST level per group in {text!r}")
        groups.append(ResourceGroup(levels=levels, property=prop))
    return groups


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside ``{...}`` property blocks."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts
