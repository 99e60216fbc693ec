"""``python -m benchmarks.phases QUEUE NOW_SEC NOW_SQL``: the drop-in round, timed phase by phase.

Does what ``oarsched-kamelot`` does (``$OARCONFFILE``, the same round, the
same transaction) and prints one JSON line with the seconds spent in each
phase: ``imports`` (the adapter and the engine), ``config`` (oar.conf,
logging, connecting and reflecting the schema), then ``read``, ``schedule``
and ``write`` as :func:`oarsched.oar.kamelot.schedule_queue` reports them
(``read`` includes building the platform and the scheduler; ``write``
includes the commit).  The interpreter's own start-up is measured by the
parent (:func:`benchmarks.measure.dropin_phases`).
"""
from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    t0 = time.perf_counter()
    from oarsched.oar.config import OarConfig, setup_logging
    from oarsched.oar.db import OarDatabase
    from oarsched.oar.kamelot import schedule_queue

    t1 = time.perf_counter()
    queue, now = argv[0], int(float(argv[1]))
    config = OarConfig.load()
    setup_logging(config)
    db = OarDatabase(config.sqlalchemy_url())
    t2 = time.perf_counter()
    report = schedule_queue(db, config, queue, now)
    t3 = time.perf_counter()
    timings = dict(report.timings)
    print(json.dumps({
        "imports": t1 - t0, "config": t2 - t1,
        "read": timings.get("read", 0.0), "schedule": timings.get("schedule", 0.0),
        "write": timings.get("write", 0.0), "inside": t3 - t0,
        "placed": len(report.result.assignments), "rows": report.resource_rows,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
