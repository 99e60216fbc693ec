"""OAR3 quotas: the rules file, per-slot counters, the window check and the calendar.

This package holds the *model* of OAR3's quotas (``oar/kao/quotas.py``):
:mod:`~oarsched.quotas.rules` (the rules file, :class:`QuotasConfig`),
:mod:`~oarsched.quotas.calendar` (temporal quotas) and
:mod:`~oarsched.quotas.counters` (per-slot counters and the window check).
The engine owns the slots and calls it (:mod:`oarsched.engine.quotas`).  Everything is reproduced from OAR3 (the
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

from oarsched.model.job import AVAILABLE_UPTO_JOB
from oarsched.model.platform import MAX_TIME
from oarsched.quotas.calendar import (
    DAY,
    DEFAULT_QUOTAS_PERIOD,
    DEFAULT_WINDOW_TIME_LIMIT,
    OPEN_END,
    UNASSIGNED_RULES_ID,
    WEEK,
    Calendar,
    Oneshot,
    Periodical,
)
from oarsched.quotas.counters import (
    MSG_JOBS,
    MSG_OK,
    MSG_RESOURCE_TIME,
    MSG_RESOURCES,
    CheckResult,
    Count,
    Counters,
    Limits,
    QuotaJob,
    RuleKey,
    check_window,
    combined_count,
    compare_limits,
    counted_keys,
)
from oarsched.quotas.rules import DEFAULT_ALL_MODE, QuotasConfig, QuotasSettings, Rules

__all__ = [
    "AVAILABLE_UPTO_JOB", "DAY", "DEFAULT_ALL_MODE", "DEFAULT_QUOTAS_PERIOD", "DEFAULT_WINDOW_TIME_LIMIT",
    "MAX_TIME", "MSG_JOBS", "MSG_OK", "MSG_RESOURCES", "MSG_RESOURCE_TIME", "OPEN_END", "UNASSIGNED_RULES_ID",
    "WEEK", "Calendar", "CheckResult", "Count", "Counters", "Limits", "Oneshot", "Periodical", "QuotaJob",
    "QuotasConfig", "QuotasSettings", "RuleKey", "Rules", "check_window", "combined_count", "compare_limits",
    "counted_keys",
]
