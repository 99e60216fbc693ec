"""The accounting rows the karma needs, read from OAR's ``accounting`` table (SQLAlchemy 2.0 Core)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlalchemy import select

from oarsched.policies.sorting import AccountingRow


def _column(table: Any, *names: str) -> Any:
    for name in names:
        if name in table.c:
            return table.c[name]
    raise KeyError(f"table {table.name!r} has none of the columns {names}")


def load_accounting(
    connection: Any,
    tables: Mapping[str, Any],
    queues: Sequence[str],
    window_start: int,
    now: int,
) -> list[AccountingRow]:
    """Read the accounting rows the karma needs (SQLAlchemy 2.0 Core).

    Rows of ``queues`` with ``window_start >= window_start`` and
    ``window_stop <= now`` (the widest of OAR3's bounds; :func:`compute_karma`
    applies the stricter ``< now`` itself where OAR3 does), in primary-key
    order.  Rows with a NULL consumption are skipped (SQL ``SUM`` ignores them).
    ``tables["accounting"]`` is the ``accounting`` :class:`~sqlalchemy.Table`.
    """
    if not queues:
        return []
    acc = tables["accounting"]
    user = _column(acc, "accounting_user", "user")
    project = _column(acc, "accounting_project", "project")
    key = (acc.c.window_start, acc.c.window_stop, user, project, acc.c.queue_name, acc.c.consumption_type)
    stmt = (
        select(*key, acc.c.consumption)
        .where(acc.c.queue_name.in_(list(queues)))
        .where(acc.c.window_start >= window_start)
        .where(acc.c.window_stop <= now)
        .order_by(*key)  # primary-key order
    )
    return [
        AccountingRow(
            window_start=int(r[0]),
            window_stop=int(r[1]),
            user=r[2],
            project=r[3],
            queue=r[4],
            consumption_type=r[5],
            consumption=int(r[6]),
        )
        for r in connection.execute(stmt)
        if r[6] is not None
    ]
