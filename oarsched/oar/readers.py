"""Reading an OAR3 database for the library, the simulator and the gantt: the platform, the queues.

The database is opened lazily (importing this module costs no SQLAlchemy).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from oarsched.model.platform import RESOURCE_STATES, Platform, Resource

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from oarsched.oar.config import OarConfig
    from oarsched.oar.db import OarDatabase

log = logging.getLogger("oarsched.oar")

NOT_SCHEDULABLE_STATE = "Suspected"
"""What a resource of unknown state counts as: neither schedulable nor Dead (OAR3's treatment)."""


def known_states(resources: list[Resource]) -> list[Resource]:
    """Resources whose state OAR does not know are logged and counted as neither schedulable nor Dead.

    OAR3 only schedules on Alive and Absent resources and counts as dead only
    the Dead ones; :class:`Platform` refuses other states, which would stop the
    whole queue for one bad row.
    """
    for r in resources:
        if r.state not in RESOURCE_STATES:
            log.warning("resource %s: unknown state %r, not schedulable (treated as %s)",
                        r.id, r.state, NOT_SCHEDULABLE_STATE)
            r.state = NOT_SCHEDULABLE_STATE
    return resources


def read_platform(db: OarDatabase, conn: Connection, config: OarConfig,
                  properties: Sequence[str] | None = None) -> Platform:
    """The platform read on an open connection: resources in ``SCHEDULER_RESOURCE_ORDER``, ``HIERARCHY_LABELS``.

    ``properties``: the resource columns to read besides the core ones (default
    all: the simulator evaluates property expressions in memory; the drop-ins
    let the database evaluate them and need only the hierarchy labels).
    A resource whose state OAR does not know is logged and not schedulable.
    """
    resources = known_states(db.read_resources(conn, config.resource_order_terms, properties=properties))
    return Platform(resources, config.hierarchy_labels, config.suspendable_types)


def platform_from_db(config: OarConfig) -> Platform:
    """The platform of the OAR3 database ``config`` names."""
    from oarsched.oar.db import OarDatabase

    db = OarDatabase(config.sqlalchemy_url())
    try:
        with db.engine.connect() as conn:
            return read_platform(db, conn, config)
    finally:
        db.engine.dispose()


def queues_from_db(config: OarConfig) -> dict[str, int]:
    """Active queues of the database ``config`` names: ``{name: priority}``, highest priority first."""
    from sqlalchemy import select

    from oarsched.oar.db import OarDatabase

    db = OarDatabase(config.sqlalchemy_url())
    try:
        queues = db.tables["queues"]
        with db.engine.connect() as conn:
            rows = conn.execute(select(queues.c.queue_name, queues.c.priority, queues.c.state)
                                .order_by(queues.c.priority.desc(), queues.c.queue_name)).all()
    finally:
        db.engine.dispose()
    return {r.queue_name: int(r.priority or 0) for r in rows if (r.state or "Active") == "Active"}


def reservation_ids(db: OarDatabase, conn: Connection) -> frozenset[int]:
    """Ids of the jobs that are advance reservations."""
    from sqlalchemy import select

    jobs = db.tables["jobs"]
    return frozenset(int(r[0]) for r in conn.execute(select(jobs.c.job_id).where(jobs.c.reservation != "None")))
