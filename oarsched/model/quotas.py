"""OAR3 quotas: the rules file, per-slot counters, the window check and the calendar.

This module holds the *model* of OAR3's quotas (``oar/kao/quotas.py``); the
engine owns the slots and calls it.  Everything is reproduced from OAR3 (the
reference marks it R), with the corrections listed under "Corrections".

Rules file
==========

A JSON object (``QUOTAS_CONF_FILE``)::

    {"quotas":     {"queue,project,job_type,user": [max_resources, max_jobs, max_hours], ...},
     "job_types":  ["besteffort", ...],
     "periodical": [["08:00-19:00 mon-fri * *", "rules_a", "comment"], ["* * * *", "rules_b", ""]],
     "oneshot":    [["2025-07-23 19:30", "2025-08-29 08:30", "rules_c", "comment"]],
     "rules_a": {...same shape as "quotas"...}, ...}

* A key has exactly four comma-separated fields, kept verbatim (no space
  stripping, as OAR3): a value, ``*`` (everybody together) or ``/`` (one
  counter per distinct value).
* A limit is an int, a numeric string, ``"ALL"`` or ``"x*ALL"``; it is
  evaluated as a float then truncated (``"34.5"`` -> 34, ``"0.5*ALL"`` with ALL=5
  -> 2).  The third field is in hours and is truncated *before* the
  multiplication by 3600 (0.5 h -> 0 s, 1.5 h -> 3600 s; trap T16).  A negative
  limit means "no limit".
* ``ALL`` is ``nb_resources_all`` as the caller gives it.  OAR3 takes, in mode
  ``QUOTAS_ALL_NB_RESOURCES_MODE="default_not_dead"`` (the default), the number
  of resources of type ``default`` whose state is not Dead; in any other mode
  its buggy ``nb_resources_default``, which is 1 when some default resource is
  Alive/Absent and 0 otherwise.  :meth:`QuotasConfig.from_dict` applies
  ``min(1, nb_resources_all)`` in those other modes, so pass the number of
  default Alive/Absent resources there.
* ``job_types``: the types counted besides ``"*"`` (``QuotasConfig.job_types``
  is ``["*"] + listed``, duplicates kept: OAR3 then counts twice).
* Only ``quotas``, ``job_types``, ``periodical``, ``oneshot`` and the rule-set
  names those two reference are accepted at the top level.

A malformed file raises :class:`oarsched.errors.ConfigError` naming the key or
entry at fault (OAR3 crashes or exits on most of these, or silently ignores a
few; see "Rejected specs" below).

Counters (one :class:`Counters` per slot)
=========================================

``counters[(queue, project, job_type, user)] = (resources, jobs, resource_seconds)``.
:meth:`Counters.update` counts a job placed over the slot, as OAR3's
``Quotas.update``: for each ``t`` of ``QuotasConfig.job_types`` that is ``"*"``
or a key of ``job.types``, the eight keys ``{queue,*} x {project,*} x {t} x
{user,*}`` get ``+nb_res``, ``+1`` and ``+nb_res * walltime``.  ``nb_res`` is the
number of resources of type ``default`` in the job's allocation and
``walltime`` the job's *full* walltime including the security time, whatever
part of it the slot covers (trap T5).

``job`` is any object with ``.queue``, ``.project``, ``.user`` and ``.types``
(a dict; its FIRST key is the type used for the rule lookup).  The caller
passes ``types`` already filtered the way OAR3 builds ``job.types``:
``timesharing``, ``placeholder``, ``allow``, ``assign``, ``find`` and
``no_quotas`` are job attributes in OAR3, not types.  Jobs of type
``container`` are never counted (the engine does not call ``update`` for
them), their inner jobs are, in the container's own slot set.  ``no_quotas``
jobs skip the check but are counted.  The pseudo-jobs OAR3 makes for the
resources' ``available_upto`` count as a job of user ``""``, project ``""``,
queue ``"default"`` with no types (T5): :data:`AVAILABLE_UPTO_JOB` is such an
object.

Rule lookup and window check
============================

One rule applies to a job, found by a greedy descent queue -> project -> type
-> user: at each level the job's own value, else ``/``, else ``*``; a dead end
means no rule (no limit), there is no backtracking.  The type level looks only
at the first key of ``job.types`` (``*`` when the job has none).  The counter
key is the rule key with ``/`` replaced by the job's value (never for the type
level: a ``/`` type key matches no counter, so it never limits).

:func:`check_window` checks a candidate window ``L..R`` the way OAR3's
``check_slots_quotas`` does: the slots are grouped by rules id (in order of
first appearance); within a group the counters are combined, resources and
jobs by **max**, resource-seconds by **sum** (so a job spanning k slots of the
window counts k times its full resource-seconds, T5); the candidate job
(``nb_res``, 1, ``nb_res * walltime``) is added and the group's rule checked:
it fails when ``limit > -1 and limit < counter`` (resources first, then jobs,
then resource-seconds).  The first failing group gives the answer.  A counter
key no slot of the group and not the candidate touched passes (e.g. a rule on
a type not listed in ``job_types``).  A rule set that is empty falls back to
the default rules.  A slot whose rules id is ``-1`` uses the default rules
without a calendar; with a calendar such a slot is one beyond the calendar
horizon not split yet, and OAR3 gives it (through ``set_rules(-1)`` when the
slot is copied on a split) the **last** rule set of the calendar, or the
default rules when that set is empty: :meth:`QuotasConfig.slot_rules`
reproduces this.

Calendar (temporal quotas)
==========================

Rule sets named in ``periodical`` (second field) then ``oneshot`` (third
field) get ids 0, 1, ... in order of first appearance.  A periodical spec is
``"HH:MM-HH:MM days * *"`` (``*`` hours = the whole day, end ``00:00`` =
midnight; days ``*``, ``mon,wed`` or ``mon-fri``; with ``*`` hours a day range
is one entry and may wrap, e.g. ``fri-mon``).  Entries are offsets in a week
that starts on **Monday 00:00 local time**; an entry crossing Sunday 24:00 is
cut in two.  ``"* * * *"`` or ``"default"`` fills every gap of the week with
its rule set.  Where the week has a gap left, the default rules apply (a
dedicated rules id, :attr:`Calendar.gap_rules_id`).  A oneshot
``"YYYY-MM-DD hh:mm"`` pair (local time) overrides the periodicals over
``[begin, end)``; one starting inside a period cuts that period short.

Local time is that of ``tz`` when given (a :class:`datetime.tzinfo`, e.g.
``zoneinfo.ZoneInfo("Europe/Paris")``), else the process's local time (the
``TZ`` environment variable), as OAR3 does.  The conformance corpus runs with
``TZ=UTC``.  Offsets are in seconds from the local Monday 00:00, so around a
DST change a period is shifted by the change until the next week, as in OAR3.

The engine splits its slots along the calendar: :meth:`Calendar.segments`
gives the pieces of a slot ``[b, e]`` with their rules id, up to the horizon
(the local Monday 00:00 of ``b`` plus ``QUOTAS_PERIOD``); the part after the
last piece stays unassigned (rules id ``-1``) and is split lazily when a
window's last slot is such a slot (see "Engine protocol").

Corrections (OAR3 bugs the conformance corpus expects fixed)
============================================================

* **T6, period at now.**  OAR3's ``periodical_rules_at(t)`` takes the first
  period whose begin is at or after ``t`` (and computes the remaining time as
  ``duration - offset``), so inside a period it applies the next period's rules
  and can return a negative remaining time (assertion failure in
  ``SlotSet``).  :meth:`Calendar.rules_at` returns the period *containing*
  ``t`` and the time left in it (always > 0).  :meth:`Calendar.next_rules`
  is stateless (the period containing ``t``), where OAR3 cycles an index set by
  the last ``rules_at``: the two agree whenever OAR3's index is right (after
  the T6 fix, no oneshot, contiguous week); with a oneshot spanning a period
  boundary, or with gaps in the week, OAR3's index drifts (its unit test
  ``test_temporal_slotSet_oneshot`` records Thursday-Saturday under the
  Monday-Wednesday rules) and ours follows the calendar.
* **Window time limit.**  OAR3 gives up on a job as soon as a window ``L..R``
  has ``R.e > L.b + QUOTAS_WINDOW_TIME_LIMIT``.  The last slot of a slot set
  ends at ``MAX_TIME = 2**31`` (or at ``2**31 - 2`` when the resources'
  default ``available_upto = 2**31 - 1`` pseudo-job occupies the very end), so
  every window reaching it fails and no job can be placed beyond the unrolled
  calendar horizon.  Reading of the corpus: ``quotas_temporal_window_limit``
  (no ``oar3_bugs`` entry: OAR3's decisions are the expected ones) shows that
  for a bounded slot the limit is measured with the *real end of the
  window's last slot*, not with the job's end: job 5 stays unscheduled because
  its first wide-enough window from 1700003333 reaches a slot ending days
  later, although the job itself would end within the limit (measured on the
  job's end, or from now as oar-scheduler-redox does, job 5 would be placed
  at 1700004362).  Windows do reach the open tail in ``quotas_temporal_days``
  and ``quotas_temporal_oneshot``, for jobs no period's rules ever admit, so
  they stay unscheduled whatever the tail rule.  Hence
  :meth:`Calendar.window_limit_reached` keeps OAR3's test for every bounded
  slot and, for the open-ended tail (a slot ending at or after
  :data:`OPEN_END`), gives the job up only if it would end after
  ``now + limit``.  Measuring the tail to the job's end instead would let a
  job no rule admits scan lazily split weeks up to 2038.  This changes no
  decision of the corpus (all 13 quotas cases replayed, see
  ``tests/test_quotas_model.py``).
* ``"ALL"`` in a temporal rule set: OAR3 evaluates those sets without the
  ALL value and crashes (``TypeError``); here ALL has the same value in every
  rule set.
* Back-to-back oneshots: at the instant a oneshot ends, OAR3 does not see a
  oneshot starting at that instant (see :meth:`Calendar._apply_oneshots`);
  here it applies, as the period containing that instant.
* A calendar with no periodical (only oneshots, or an empty list) makes OAR3
  crash (unbound loop index); here the whole week is a gap (default rules).

Rejected specs
==============

Besides what makes OAR3 crash or exit (bad JSON, keys not of four fields,
values not lists of three, unknown day names, ``mday``/``month`` fields other
than ``*``, bad oneshot dates, a rule set name not defined), these raise
:class:`ConfigError` although OAR3 accepts them and then misbehaves: an
unknown top-level key, a value list longer than three, an hour range that
ends before it begins (overnight ``19:00-08:00``: OAR3 makes a negative
duration) or is empty, hours past 24:00, a day range that wraps with explicit
hours (``fri-mon``: OAR3 silently makes no entry), periodicals overlapping each
other, a oneshot ending before it begins.

Engine protocol
===============

* Build the config once per round: ``QuotasConfig.from_file(path,
  nb_resources_all=..., period=QUOTAS_PERIOD,
  window_time_limit=QUOTAS_WINDOW_TIME_LIMIT,
  all_mode=QUOTAS_ALL_NB_RESOURCES_MODE)``.
* Every slot carries a rules id (``-1`` at creation) and a :class:`Counters`
  (``config.new_counters()``).  A slot split copies both
  (``counters.copy()``).
* A new slot set with a calendar (the default one from ``now``, a new
  container's inner one) is split along ``calendar.segments(b, e)`` of its
  first slot: each piece gets the piece's rules id, the rest keeps ``-1``.
* When a job is placed (and for every running job, reservation, job of a
  higher-priority queue and ``available_upto`` pseudo-job inserted before the
  round), call ``counters.update(job, nb_res, W)`` on every slot it spans
  (not for ``container`` jobs; ``no_quotas`` jobs are counted).
* Quotas path (quotas on and the job not ``no_quotas``), for each window
  ``(L, R)`` wide enough, in OAR3's order:

  1. with a calendar: if ``calendar.window_limit_reached(L.b, R.e, L.b + W - 1,
     now)``, give the job up (not just this window);
  2. with a calendar, if ``R``'s rules id is ``-1``: split ``R`` along
     ``calendar.segments(R.b, R.e)``.  ``R`` shrinks to the first piece.  OAR3
     then checks the shrunk window although the job goes on over the next
     pieces; the replay in the tests instead walks ``R`` on to the slot
     holding ``L.b + W - 1`` (splitting again any ``-1`` slot met, each new
     ``R`` going through step 1) so the whole job is checked: same corpus
     decisions, and needed once jobs can go past the horizon;
  3. match resources on ``L..R``; when found, ``check_window(config,
     [(rules_id, counters) for the slots L..R], job, nb_res, W)``; not ok ->
     next window.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
import re
import time as _time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any, Protocol

from oarsched.errors import ConfigError
from oarsched.model.job import AVAILABLE_UPTO_JOB  # noqa: F401  (re-exported)
from oarsched.model.platform import MAX_TIME


@dataclass(frozen=True)
class QuotasSettings:
    """Where the quotas rules are and how to apply them (oar.conf's ``QUOTAS_*`` keys, OAR3's defaults).

    Built from oar.conf by :meth:`oarsched.oar.config.OarConfig.quotas_settings`.
    """

    conf_file: str = "/etc/oar/quotas_conf.json"
    """[QUOTAS_CONF_FILE] the rules (JSON)."""
    period: int = 1296000
    """[QUOTAS_PERIOD] temporal-quotas unrolling horizon, seconds."""
    window_time_limit: int = 4 * 1296000
    """[QUOTAS_WINDOW_TIME_LIMIT] seconds."""
    all_nb_resources_mode: str = "default_not_dead"
    """[QUOTAS_ALL_NB_RESOURCES_MODE] what ``ALL`` counts."""


OPEN_END = MAX_TIME - 2
"""A slot ending at or after this instant is the open-ended tail of a slot set
(``MAX_TIME``, or the second before the ``available_upto = 2**31 - 1``
pseudo-job)."""

DEFAULT_QUOTAS_PERIOD = 1296000
"""``QUOTAS_PERIOD``: how far (from the local Monday 00:00 of the slot set's
begin) the calendar is unrolled when a slot set is made: 15 days."""

DEFAULT_WINDOW_TIME_LIMIT = 4 * 1296000
"""``QUOTAS_WINDOW_TIME_LIMIT`` default: 60 days."""

DEFAULT_ALL_MODE = "default_not_dead"

UNASSIGNED_RULES_ID = -1
"""Rules id of a slot without calendar rules: the default rules without a
calendar, a slot past the calendar horizon with one."""

DAY = 86400
WEEK = 7 * DAY

_TOP_LEVEL_KEYS = ("quotas", "job_types", "periodical", "oneshot")
_DEFAULT_SPECS = ("* * * *", "default")
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_ONESHOT_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{1,2})\s*$")

RuleKey = tuple[str, str, str, str]
"""``(queue, project, job_type, user)`` as written in the rules file."""

Limits = tuple[int, int, int]
"""``(max_resources, max_jobs, max_resource_seconds)``; negative = no limit."""

Count = tuple[int, int, int]
"""``(resources, jobs, resource_seconds)``."""

CheckResult = tuple[bool, str, RuleKey | None, int | None]

MSG_OK = "quotas ok"
MSG_RESOURCES = "nb resources quotas failed"
MSG_JOBS = "nb jobs quotas failed"
MSG_RESOURCE_TIME = "resources hours quotas failed"


class QuotaJob(Protocol):
    """What the quotas read of a job (attributes, read-only is enough)."""

    @property
    def queue(self) -> str: ...

    @property
    def project(self) -> str: ...

    @property
    def user(self) -> str: ...

    @property
    def types(self) -> Mapping[str, str]: ...




# ---------------------------------------------------------------------------
# Rule sets
# ---------------------------------------------------------------------------


class Rules:
    """One rule set: limits by key, and OAR3's greedy lookup of a job's rule."""

    __slots__ = ("_found", "_tree", "limits")

    def __init__(self, limits: Mapping[RuleKey, Limits]) -> None:
        self.limits: dict[RuleKey, Limits] = dict(limits)
        self._tree: dict[str, Any] = {}
        for key, value in self.limits.items():
            level: dict[str, Any] = self._tree
            for part in key[:-1]:
                level = level.setdefault(part, {})
            level[key[-1]] = value
        self._found: dict[
            tuple[Any, Any, Any, Any], tuple[Limits | None, RuleKey | None, tuple]
        ] = {}

    def __bool__(self) -> bool:
        return bool(self.limits)

    def __len__(self) -> int:
        return len(self.limits)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rules) and other.limits == self.limits

    def __repr__(self) -> str:
        return f"Rules({self.limits!r})"

    def find(self, job: QuotaJob) -> tuple[Limits | None, RuleKey | None, tuple]:
        """The rule applying to ``job``: ``(limits, rule_key, counter_key)``.

        ``limits`` and ``rule_key`` are None when the descent hits a dead end
        (then ``counter_key`` is meaningless).  See the module docstring.
        """
        job_type = next(iter(job.types), "*")
        memo = (job.queue, job.project, job_type, job.user)
        found = self._found.get(memo)
        if found is None:
            found = self._descend(*memo)
            self._found[memo] = found
        return found

    def _descend(self, queue: Any, project: Any, job_type: Any, user: Any) -> tuple:
        values = (queue, project, job_type, user)
        chosen: list[Any] = []
        level: Any = self._tree
        for value in values:
            step = _pick_field(level, value)
            if not step:  # OAR3 tests truthiness: an empty-string field is a dead end too
                return None, None, ()
            chosen.append(step)
            level = level[step]
        rule_key: RuleKey = tuple(chosen)  # type: ignore[assignment]
        counter_key = (
            queue if chosen[0] == "/" else chosen[0],
            project if chosen[1] == "/" else chosen[1],
            chosen[2],
            user if chosen[3] == "/" else chosen[3],
        )
        return level, rule_key, counter_key


def _pick_field(level: Mapping[str, Any], value: Any) -> Any:
    """One step of the descent: the value itself, else ``/``, else ``*``, else None."""
    if value in level:
        return value
    if "/" in level:
        return "/"
    if "*" in level:
        return "*"
    return None


# ---------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------


class Counters:
    """Quota counters of one slot: ``{(queue, project, type, user): (res, jobs, res_seconds)}``."""

    __slots__ = ("_counts", "job_types")

    def __init__(
        self, job_types: Sequence[str] = ("*",), counts: Mapping[tuple, Count] | None = None
    ) -> None:
        self.job_types: tuple[str, ...] = tuple(job_types)
        self._counts: dict[tuple, Count] = dict(counts) if counts else {}

    def copy(self) -> Counters:
        """An independent copy (for a slot split)."""
        clone = Counters.__new__(Counters)
        clone.job_types = self.job_types
        clone._counts = self._counts.copy()
        return clone

    def update(self, job: QuotaJob, nb_res: int, walltime: int) -> None:
        """Count ``job`` (``nb_res`` default resources for ``walltime`` seconds) in this slot."""
        counts = self._counts
        work = nb_res * walltime
        for key in _counted_keys(job, self.job_types):
            r, j, s = counts.get(key, (0, 0, 0))
            counts[key] = (r + nb_res, j + 1, s + work)

    def get(self, key: tuple) -> Count | None:
        """The counter of ``key``, None when no job touched it."""
        return self._counts.get(key)

    def items(self) -> Iterable[tuple[tuple, Count]]:
        return self._counts.items()

    def __len__(self) -> int:
        return len(self._counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counters) and other._counts == self._counts

    def __repr__(self) -> str:
        return f"Counters({self._counts!r})"


def _counted_keys(job: QuotaJob, job_types: Sequence[str]) -> Iterator[tuple]:
    """The keys OAR3's ``Quotas.update`` increments for ``job``, with repetitions."""
    queue, project, user, types = job.queue, job.project, job.user, job.types
    for t in job_types:
        if t == "*" or t in types:
            for q in (queue, "*"):
                for p in (project, "*"):
                    for u in (user, "*"):
                        yield (q, p, t, u)


# ---------------------------------------------------------------------------
# Window check
# ---------------------------------------------------------------------------


def check_window(
    config: QuotasConfig,
    window: Sequence[tuple[int, Counters]],
    job: QuotaJob,
    nb_res: int,
    walltime: int,
) -> CheckResult:
    """Check whether ``job`` fits the quotas over a window (OAR3's ``check_slots_quotas``).

    ``window`` lists ``(rules_id, counters)`` for each slot ``L..R`` in time
    order; ``nb_res`` is the number of default-type resources the job would
    get and ``walltime`` its walltime with the security time.  Returns
    ``(True, "quotas ok", None, None)`` or ``(False, message, rule_key,
    limit)`` for the first group of slots (by rules id, in order of first
    appearance) whose rule is exceeded.
    """
    if not window:
        raise ValueError("check_window needs at least one slot")
    groups: dict[int, list[Counters]] = {}
    for rules_id, counters in window:
        groups.setdefault(rules_id, []).append(counters)
    for rules_id, slots in groups.items():
        result = _check_group(
            config.slot_rules(rules_id), slots, config.job_types, job, nb_res, walltime
        )
        if not result[0]:
            return result
    return (True, MSG_OK, None, None)


def _check_group(
    rules: Rules,
    slots: Sequence[Counters],
    job_types: Sequence[str],
    job: QuotaJob,
    nb_res: int,
    walltime: int,
) -> CheckResult:
    """Check one group of slots sharing a rule set."""
    limits, rule_key, counter_key = rules.find(job)
    if limits is None:
        return (True, MSG_OK, None, None)
    count = _combined_count(slots, counter_key)
    repeats = sum(1 for key in _counted_keys(job, job_types) if key == counter_key)
    if repeats:
        r, j, s = count or (0, 0, 0)
        count = (r + repeats * nb_res, j + repeats, s + repeats * nb_res * walltime)
    if count is None:  # a counter nobody touched (e.g. a type not in job_types)
        return (True, MSG_OK, None, None)
    return _compare(limits, count, rule_key)


def _combined_count(slots: Sequence[Counters], key: tuple) -> Count | None:
    """Counters of ``key`` over slots: max of resources and jobs, sum of resource-seconds."""
    combined: Count | None = None
    for counters in slots:
        value = counters.get(key)
        if value is None:
            continue
        if combined is None:
            combined = value
        else:
            combined = (
                max(combined[0], value[0]),
                max(combined[1], value[1]),
                combined[2] + value[2],
            )
    return combined


def _compare(limits: Limits, count: Count, rule_key: RuleKey | None) -> CheckResult:
    """OAR3's test: fail when ``limit > -1 and limit < counter``."""
    for limit, value, message in zip(limits, count, (MSG_RESOURCES, MSG_JOBS, MSG_RESOURCE_TIME)):
        if limit > -1 and limit < value:
            return (False, message, rule_key, limit)
    return (True, MSG_OK, None, None)


# ---------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Periodical:
    """A weekly period: ``[begin, begin + duration)`` seconds after Monday 00:00."""

    begin: int
    duration: int
    rules_id: int
    spec: str

    @property
    def end(self) -> int:
        return self.begin + self.duration


@dataclass(frozen=True)
class Oneshot:
    """A dated period ``[begin, end)`` (epoch seconds) overriding the periodicals."""

    begin: int
    end: int
    rules_id: int
    description: str = ""


class Calendar:
    """The temporal quotas calendar: which rule set applies when.

    ``periodicals`` must tile parts of the week without overlapping (gaps get
    ``gap_rules_id``); ``oneshots`` are sorted by begin here.
    """

    def __init__(
        self,
        periodicals: Sequence[Periodical],
        oneshots: Sequence[Oneshot],
        rule_set_names: Sequence[str],
        *,
        period: int = DEFAULT_QUOTAS_PERIOD,
        window_time_limit: int = DEFAULT_WINDOW_TIME_LIMIT,
        tz: _dt.tzinfo | None = None,
        gap_rules_id: int | None = None,
    ) -> None:
        self.periodicals: list[Periodical] = sorted(periodicals, key=lambda p: p.begin)
        self.oneshots: list[Oneshot] = sorted(oneshots, key=lambda o: o.begin)
        self.rule_set_names: list[str] = list(rule_set_names)
        self.period = int(period)
        self.window_time_limit = int(window_time_limit)
        self.tz = tz
        self.gap_rules_id = len(self.rule_set_names) if gap_rules_id is None else gap_rules_id
        self.period_end = 0
        """Horizon of the last :meth:`rules_at` call (OAR3's ``period_end``)."""

    # -- time -------------------------------------------------------------

    def week_origin(self, t: int) -> int:
        """Epoch of the local Monday 00:00 of the week containing ``t``."""
        if self.tz is None:
            day = _dt.datetime.fromtimestamp(t).date()
            monday = day - _dt.timedelta(days=day.weekday())
            return int(_dt.datetime.combine(monday, _dt.time.min).timestamp())
        day = _dt.datetime.fromtimestamp(t, self.tz).date()
        monday = day - _dt.timedelta(days=day.weekday())
        return int(_dt.datetime.combine(monday, _dt.time.min, tzinfo=self.tz).timestamp())

    def horizon(self, t: int) -> int:
        """How far the calendar is unrolled from ``t``: its week's Monday 00:00 + the period."""
        return self.week_origin(t) + self.period

    # -- rules ------------------------------------------------------------

    def rules_at(self, t: int) -> tuple[int, int]:
        """``(rules_id, remaining)``: the period containing ``t`` and the seconds left in it (> 0).

        Also records ``period_end = horizon(t)`` for :meth:`next_rules`.
        """
        origin = self.week_origin(t)
        self.period_end = origin + self.period
        rules_id, remaining = self._periodical_at(t, origin)
        return self._apply_oneshots(t, rules_id, remaining)

    def next_rules(self, t: int, horizon: int | None = None) -> tuple[int | None, int]:
        """``(rules_id, duration)`` of the period starting at ``t`` (a period end),
        ``(None, 0)`` once ``t`` reaches the horizon (``period_end`` by default)."""
        if t >= (self.period_end if horizon is None else horizon):
            return (None, 0)
        rules_id, remaining = self._periodical_at(t, self.week_origin(t))
        return self._apply_oneshots(t, rules_id, remaining)

    def segments(self, begin: int, end: int) -> list[tuple[int, int, int]]:
        """Pieces ``(b, e, rules_id)`` (inclusive ends) of a slot ``[begin, end]``.

        As OAR3's ``temporal_quotas_split_slot``: from the period containing
        ``begin``, period after period, until ``end`` or until a period would
        start at or after ``horizon(begin)``; then ``[last e + 1, end]`` is
        left unassigned (rules id -1).
        """
        horizon = self.horizon(begin)
        rules_id, remaining = self.rules_at(begin)
        pieces: list[tuple[int, int, int]] = []
        b = begin
        while True:
            if end - b + 1 <= remaining:
                pieces.append((b, end, rules_id))
                return pieces
            pieces.append((b, b + remaining - 1, rules_id))
            b += remaining
            next_id, remaining = self.next_rules(b, horizon)
            if next_id is None:
                return pieces
            rules_id = next_id

    def window_limit_reached(self, left_begin: int, right_end: int, job_end: int, now: int) -> bool:
        """Corrected ``QUOTAS_WINDOW_TIME_LIMIT`` test for a window ``L..R``; True: give up the job.

        OAR3: ``R.e > L.b + limit``, kept as is while ``R`` is bounded.  When
        ``R`` is the open-ended tail (``R.e >= OPEN_END``, OAR3 always gives up
        there), the job is given up only if it would end after
        ``now + limit`` (``job_end = L.b + W - 1``), so jobs can be placed past
        the unrolled calendar but the search stays bounded.
        """
        if right_end >= OPEN_END:
            return job_end > now + self.window_time_limit
        return right_end > left_begin + self.window_time_limit

    # -- internals ----------------------------------------------------------

    def _periodical_at(self, t: int, origin: int) -> tuple[int, int]:
        """Rules id and time left of the periodical containing ``t`` (in a gap: the default rules).

        Offsets count seconds from the local Monday 00:00 ``origin``.  A week
        where the clock goes back is one hour longer than :data:`WEEK`: its last
        hour belongs to the period that ends the week.
        """
        offset = t - origin
        if offset >= WEEK:
            rules_id, _ = self._periodical_at(origin + WEEK - 1, origin)
            next_origin = self.week_origin(origin + WEEK + 2 * 3600)
            return rules_id, max(next_origin - t, 1)
        next_begin = WEEK
        for p in self.periodicals:
            if p.begin <= offset < p.end:
                return p.rules_id, p.end - offset
            if p.begin > offset:
                next_begin = p.begin
                break
        return self.gap_rules_id, next_begin - offset

    def _apply_oneshots(self, t: int, rules_id: int, remaining: int) -> tuple[int, int]:
        """OAR3's ``oneshot_at``: a oneshot containing ``t`` overrides; one starting
        before the end of the current period cuts it.  The first such oneshot (by
        begin) decides.

        A oneshot covers ``[begin, end)``.  OAR3 tests ``begin <= t <= end``
        and, at ``t == end``, stops there with nothing to apply, so a oneshot
        starting exactly where an earlier one ends is missed (entirely, when it
        is shorter than the period around it); here that earlier one is skipped.
        """
        for o in self.oneshots:
            if o.begin <= t < o.end:
                return o.rules_id, o.end - t
            if t < o.begin < t + remaining:
                return rules_id, o.begin - t
        return rules_id, remaining


# ---------------------------------------------------------------------------
# The whole configuration
# ---------------------------------------------------------------------------


class QuotasConfig:
    """The quotas configuration of a round: default rules, counted types, calendar."""

    def __init__(
        self,
        default_rules: Rules,
        job_types: Sequence[str],
        rule_sets: Sequence[Rules] = (),
        calendar: Calendar | None = None,
        all_value: int = 0,
    ) -> None:
        self.default_rules = default_rules
        self.job_types: list[str] = list(job_types)
        self.rule_sets: list[Rules] = list(rule_sets)
        self.calendar = calendar
        self.all_value = all_value
        self._job_types_tuple = tuple(self.job_types)

    @classmethod
    def from_dict(
        cls,
        rules: Mapping[str, Any],
        *,
        nb_resources_all: int,
        period: int = DEFAULT_QUOTAS_PERIOD,
        window_time_limit: int = DEFAULT_WINDOW_TIME_LIMIT,
        all_mode: str = DEFAULT_ALL_MODE,
        tz: _dt.tzinfo | None = None,
    ) -> QuotasConfig:
        """Build from the parsed rules JSON; raise ConfigError on a malformed one."""
        if not isinstance(rules, Mapping):
            raise ConfigError(
                f"quotas rules: expected a JSON object at the top level, got {_kind(rules)}"
            )
        all_value = (
            int(nb_resources_all) if all_mode == DEFAULT_ALL_MODE else min(1, int(nb_resources_all))
        )
        names = _referenced_rule_sets(rules)
        _reject_unknown_keys(rules, names)
        default_rules = (
            _parse_rule_set(rules["quotas"], all_value, '"quotas"')
            if "quotas" in rules
            else Rules({})
        )
        job_types = ["*"] + _parse_job_types(rules.get("job_types", []))
        rule_sets = [
            _parse_rule_set(rules[name], all_value, f"rule set {name!r}") for name in names
        ]
        calendar = None
        if "periodical" in rules or "oneshot" in rules:
            calendar = _parse_calendar(
                rules, names, period=period, window_time_limit=window_time_limit, tz=tz
            )
            rule_sets.append(
                default_rules
            )  # id calendar.gap_rules_id: parts of the week no period covers
        return cls(default_rules, job_types, rule_sets, calendar, all_value)

    @classmethod
    def from_file(cls, path: str | PathLike[str], **kw: Any) -> QuotasConfig:
        """Read ``QUOTAS_CONF_FILE``; ``kw`` as for :meth:`from_dict`."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(
                f"quotas rules file {path}: cannot read it: {e.strerror or e}"
            ) from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"quotas rules file {path}: not UTF-8 text (byte {e.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"quotas rules file {path}: bad JSON: {e}") from None
        try:
            return cls.from_dict(data, **kw)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def rules(self, rules_id: int) -> Rules:
        """The rule set of a rules id (-1: the default rules, ``"quotas"``)."""
        if rules_id == UNASSIGNED_RULES_ID:
            return self.default_rules
        return self.rule_sets[rules_id]

    def slot_rules(self, rules_id: int) -> Rules:
        """The rules OAR3's check applies to a slot with this rules id.

        An empty rule set falls back to the default rules; with a calendar, a
        slot still at -1 (past the horizon) uses the last rule set of the
        calendar (OAR3's ``set_rules(-1)`` on copy).
        """
        if (
            rules_id == UNASSIGNED_RULES_ID
            and self.calendar is not None
            and self.calendar.rule_set_names
        ):
            rules = self.rule_sets[len(self.calendar.rule_set_names) - 1]
        else:
            rules = self.rules(rules_id)
        return rules if rules else self.default_rules

    def new_counters(self) -> Counters:
        """Empty counters counting this configuration's job types."""
        return Counters(self._job_types_tuple)

    @property
    def rule_set_names(self) -> list[str]:
        """Names of the calendar's rule sets, by rules id."""
        return self.calendar.rule_set_names if self.calendar else []


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _referenced_rule_sets(rules: Mapping[str, Any]) -> list[str]:
    """Rule-set names in order of first appearance: periodical 2nd field, then oneshot 3rd."""
    names: list[str] = []
    for section, min_len, index in (
        ("periodical", 2, 1),
        ("oneshot", 3, 2),
    ):  # + an optional comment
        entries = rules.get(section, [])
        if not isinstance(entries, list):
            raise ConfigError(
                f'quotas rules: "{section}" must be a list of entries, got {_kind(entries)}'
            )
        for i, entry in enumerate(entries):
            where = f'"{section}" entry {i} {json.dumps(entry)}'
            if not isinstance(entry, list) or len(entry) not in (min_len, min_len + 1):
                shape = (
                    "[spec, rule_set, comment]"
                    if section == "periodical"
                    else "[begin, end, rule_set, comment]"
                )
                raise ConfigError(f"quotas rules: {where}: expected a list {shape}")
            name = entry[index]
            if not isinstance(name, str):
                raise ConfigError(f"quotas rules: {where}: the rule set name must be a string")
            if name not in rules:
                raise ConfigError(f"quotas rules: {where}: rule set {name!r} is not defined")
            if name not in names:
                names.append(name)
    return names


def _reject_unknown_keys(rules: Mapping[str, Any], names: Sequence[str]) -> None:
    for key in rules:
        if key not in _TOP_LEVEL_KEYS and key not in names:
            raise ConfigError(
                f"quotas rules: unknown top-level key {key!r} (expected quotas, job_types, "
                "periodical, "
                "oneshot or a rule set named in periodical/oneshot)"
            )


def _parse_job_types(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ConfigError(
            f'quotas rules: "job_types" must be a list of strings, got {json.dumps(value)}'
        )
    return list(value)


def _parse_rule_set(value: Any, all_value: int, where: str) -> Rules:
    """A ``{"q,p,t,u": [res, jobs, hours]}`` object -> :class:`Rules`."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"quotas rules: {where} must be an object of rules, got {_kind(value)}")
    limits: dict[RuleKey, Limits] = {}
    for key, triple in value.items():
        fields = tuple(key.split(","))
        if len(fields) != 4:
            raise ConfigError(
                f"quotas rules: {where}: key {key!r} must have 4 comma-separated fields "
                f"(queue,project,job_type,user), it has {len(fields)}"
            )
        if not isinstance(triple, list) or len(triple) != 3:
            raise ConfigError(
                f"quotas rules: {where}: value of {key!r} must be a list "
                f"[max_resources, max_jobs, max_resource_hours], got {json.dumps(triple)}"
            )
        res, jobs, hours = (
            _parse_limit(v, all_value, f"{where}: {key!r}[{i}]") for i, v in enumerate(triple)
        )
        limits[fields] = (res, jobs, int(3600 * hours))  # type: ignore[index]
    return Rules(limits)


def _parse_limit(value: Any, all_value: int, where: str) -> int:
    """OAR3's ``alphanum_to_int``: int | number | "number" | "ALL" | "x*ALL" -> truncated int."""
    if isinstance(value, int):
        return int(value)
    try:
        if isinstance(value, float):
            number = value
        elif isinstance(value, str):
            number = _eval_limit_text(value, all_value)
        else:
            raise TypeError(type(value))
        if not math.isfinite(number):
            raise ValueError(number)
        return int(number)
    except (TypeError, ValueError):
        raise ConfigError(
            f"quotas rules: {where}: bad limit {json.dumps(value)} "
            '(expected an integer, a number, "ALL" or "x*ALL")'
        ) from None


def _eval_limit_text(text: str, all_value: int) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    factor = 1.0
    if "*" in text:
        factor_text, text = text.split("*")  # more than one '*' -> ValueError
        factor = float(factor_text)
    if text == "ALL":
        return factor * all_value
    return factor * float(text)


def _parse_calendar(
    rules: Mapping[str, Any],
    names: Sequence[str],
    *,
    period: int,
    window_time_limit: int,
    tz: _dt.tzinfo | None,
) -> Calendar:
    ids = {name: i for i, name in enumerate(names)}
    periodicals: list[Periodical] = []
    default_id: int | None = None
    for i, entry in enumerate(rules.get("periodical", [])):
        spec, name = entry[0], entry[1]
        where = f'"periodical" entry {i} {json.dumps(spec)}'
        if not isinstance(spec, str):
            raise ConfigError(f"quotas rules: {where}: the period spec must be a string")
        if spec in _DEFAULT_SPECS:
            default_id = ids[name]
        else:
            periodicals.extend(_parse_periodical(spec, ids[name], where))
    periodicals.sort(key=lambda p: p.begin)
    _check_no_overlap(periodicals)
    if default_id is not None:
        periodicals = _fill_gaps(periodicals, default_id)
    oneshots = [
        _parse_oneshot(entry, ids[entry[2]], i, tz)
        for i, entry in enumerate(rules.get("oneshot", []))
    ]
    return Calendar(
        periodicals, oneshots, names, period=period, window_time_limit=window_time_limit, tz=tz
    )


def _parse_periodical(spec: str, rules_id: int, where: str) -> list[Periodical]:
    """``"HH:MM-HH:MM days * *"`` -> week entries (an entry crossing Sunday 24:00 is cut)."""
    fields = spec.split()
    if len(fields) != 4:
        raise ConfigError(f'quotas rules: {where}: expected 4 fields "hours days mday month"')
    hours, days, mday, month = fields
    if mday != "*" or month != "*":
        raise ConfigError(
            f"quotas rules: {where}: only '*' is supported for day of month and month"
        )
    whole_day = hours == "*"
    begin, duration = (0, DAY) if whole_day else _parse_hour_range(hours, where)
    starts, duration = _parse_days(days, whole_day, duration, where)
    entries: list[Periodical] = []
    for day in starts:
        start = day * DAY + begin
        overflow = start + duration - WEEK
        if overflow > 0:
            entries.append(Periodical(0, overflow, rules_id, spec))
            entries.append(Periodical(start, duration - overflow, rules_id, spec))
        else:
            entries.append(Periodical(start, duration, rules_id, spec))
    return entries


def _parse_hour_range(text: str, where: str) -> tuple[int, int]:
    """``"08:00-19:00"`` -> (begin, duration) in seconds; an end of 00:00 is midnight."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ConfigError(f"quotas rules: {where}: bad hour range {text!r} (expected HH:MM-HH:MM)")
    begin = _parse_clock(parts[0], where)
    end = _parse_clock(parts[1], where)
    if end == 0:
        end = DAY
    if begin >= DAY or end > DAY:
        raise ConfigError(f"quotas rules: {where}: hours must lie within 00:00-24:00 in {text!r}")
    if end < begin:
        raise ConfigError(
            f"quotas rules: {where}: hour range {text!r} ends before it begins "
            "(split an overnight range in two entries, e.g. 19:00-00:00 and 00:00-08:00 "
            "of the next days)"
        )
    if end == begin:
        raise ConfigError(f"quotas rules: {where}: empty hour range {text!r}")
    return begin, end - begin


def _parse_clock(text: str, where: str) -> int:
    """OAR3's ``hms_str_to_duration``: ``H``, ``H:M`` or ``H:M:S`` -> seconds."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"quotas rules: {where}: bad time of day {text!r} (expected HH:MM)")
    scale = (3600, 60, 1)
    return sum(int(p) * s for p, s in zip(parts, scale))


def _parse_days(text: str, whole_day: bool, duration: int, where: str) -> tuple[list[int], int]:
    """Start days of the entries and their duration (a whole-day range is one long entry)."""
    if text == "*":
        return list(range(7)), duration
    if "-" in text:
        parts = text.split("-")
        if len(parts) != 2:
            raise ConfigError(f"quotas rules: {where}: bad day range {text!r}")
        first, last = (_weekday(d, where) for d in parts)
        if whole_day:
            if first > last:
                last += 7
            return [first], DAY * (last - first + 1)
        if first > last:
            raise ConfigError(
                f"quotas rules: {where}: day range {text!r} wraps around the week "
                "with explicit hours "
                "(OAR3 ignores such an entry); split it, e.g. fri-sun and mon"
            )
        return list(range(first, last + 1)), duration
    return [_weekday(d, where) for d in text.split(",")], duration


def _weekday(name: str, where: str) -> int:
    if name not in _WEEKDAYS:
        raise ConfigError(
            f"quotas rules: {where}: unknown day {name!r} (expected mon, tue, ..., sun)"
        )
    return _WEEKDAYS[name]


def _check_no_overlap(periodicals: Sequence[Periodical]) -> None:
    for previous, current in itertools.pairwise(periodicals):
        if current.begin < previous.end:
            raise ConfigError(
                f'quotas rules: "periodical": {current.spec!r} overlaps {previous.spec!r} '
                f"(week offsets {current.begin} < {previous.end})"
            )


def _fill_gaps(periodicals: Sequence[Periodical], default_id: int) -> list[Periodical]:
    """OAR3's ``"* * * *"``: every uncovered part of the week gets the default entry's rules."""
    filled: list[Periodical] = []
    t = 0
    for p in periodicals:
        if p.begin != t:
            filled.append(Periodical(t, p.begin - t, default_id, "* * * *"))
        filled.append(p)
        t = p.end
    if t != WEEK:
        filled.append(Periodical(t, WEEK - t, default_id, "* * * *"))
    return filled


def _parse_oneshot(entry: list, rules_id: int, index: int, tz: _dt.tzinfo | None) -> Oneshot:
    where = f'"oneshot" entry {index} {json.dumps(entry)}'
    begin = _parse_local_minute(entry[0], where, tz)
    end = _parse_local_minute(entry[1], where, tz)
    if end < begin:
        raise ConfigError(f"quotas rules: {where}: ends before it begins")
    description = entry[3] if len(entry) > 3 else ""
    return Oneshot(begin, end, rules_id, str(description))


def _parse_local_minute(text: Any, where: str, tz: _dt.tzinfo | None) -> int:
    """``"YYYY-MM-DD hh:mm"`` in local time -> epoch seconds (OAR3: ``time.mktime``)."""
    m = _ONESHOT_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(
            f'quotas rules: {where}: bad date {json.dumps(text)} (expected "YYYY-MM-DD hh:mm")'
        )
    year, month, day, hour, minute = (int(g) for g in m.groups())
    try:
        moment = _dt.datetime(year, month, day, hour, minute)
    except ValueError as e:
        raise ConfigError(f"quotas rules: {where}: bad date {text!r}: {e}") from None
    if tz is None:
        return int(_time.mktime(moment.timetuple()))
    return int(moment.replace(tzinfo=tz).timestamp())
