"""An ``EXTRA_METASCHED`` function for tests/test_kao.py: records each call's queues and arguments."""
from __future__ import annotations

CALLS: list[dict] = []


def record(conn, prev_queues, platform, scheduled, slot_sets, security_time, queues, now, extra_config):
    CALLS.append({"prev": prev_queues, "queues": queues, "now": now, "config": extra_config,
                  "slot_sets": sorted(slot_sets), "resources": platform.size, "scheduled": [j.id for j in scheduled],
                  "sec": security_time, "waiting": conn.exec_driver_sql(
                      "SELECT count(*) FROM jobs WHERE state = 'Waiting'").scalar()})


def broken(*args):
    raise RuntimeError("site hook bug")
