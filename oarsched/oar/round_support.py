"""What the two entry points (``oarsched-kamelot``, ``oarsched-kao``) share around a round.

The one-line exits (:func:`fail`, :func:`round_locked`) and the error text
they print (:func:`first_line`, :func:`one_line`), the property-expression
query guarded against the database's refusals (:func:`guarded_select`), and
the quotas of ``oar.conf`` built for the engine (:func:`quota_state`).
"""
from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, Callable

from sqlalchemy.exc import DBAPIError

from oarsched.engine.quotas import QuotaState
from oarsched.errors import ConfigError, PropertyError

if TYPE_CHECKING:
    from oarsched.model.platform import Platform
    from oarsched.oar.config import OarConfig
    from oarsched.oar.db import OarDatabase


def round_locked(message: str, logged: bool, prog: str) -> int:
    """Another round holds the database: say so on one line (a warning), write nothing; return 0."""
    if logged:
        logging.getLogger("oarsched").warning("%s", message)
    print(f"{prog}: {message}", file=sys.stderr)
    return 0


def fail(message: str, logged: bool, prog: str) -> int:
    """Print ``PROG: MESSAGE`` (one line) on stderr, log it once logging is set up; return 1."""
    line = one_line(message)
    if logged:
        logging.getLogger("oarsched").error("%s", line)
    print(f"{prog}: {line}", file=sys.stderr)
    return 1


_SQLALCHEMY_TAIL = re.compile(r"\s*(\[SQL: |\[parameters: |\(Background on this error at: ).*", re.S)


def one_line(message: str) -> str:
    """``message`` on one line, without the SQL text and parameters SQLAlchemy appends to its errors."""
    return " ".join(_SQLALCHEMY_TAIL.sub("", message).split())


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def guarded_select(db: OarDatabase, conn) -> Callable[[object], list[int]]:
    """Resource ids a job's property expression selects; a query the database refuses is that job's error.

    The expressions are in the accepted grammar, but the database may still
    refuse one (``gpu_ok = 1`` on a site's boolean column in PostgreSQL).  On
    PostgreSQL an error aborts the whole transaction, so each query runs in a
    savepoint; on SQLite a failed SELECT leaves the transaction as it was.
    """
    nested = db.engine.dialect.name != "sqlite"

    def select_ids(expr) -> list[int]:
        try:
            if not nested:
                return db.resource_ids_matching(conn, expr)
            with conn.begin_nested():
                return db.resource_ids_matching(conn, expr)
        except DBAPIError as exc:  # the expression's fault (SQLite: too deep, too many terms...); a lost connection is not
            if exc.connection_invalidated or conn.invalidated or conn.closed:
                raise
            raise PropertyError(f"the database refused {expr}: {one_line(first_line(exc))}") from None

    return select_ids


def quota_state(config: OarConfig, platform: Platform) -> QuotaState | None:
    """The quotas ``oar.conf`` turns on, for the engine (None when they are off)."""
    settings = config.quotas_settings()
    if settings is None:
        return None
    try:
        return QuotaState.from_settings(settings, platform)
    except UnicodeDecodeError as exc:  # the rules reader catches OSError and bad JSON, not bad bytes
        raise ConfigError(f"quotas rules file {settings.conf_file}: not UTF-8 text ({exc.reason} "
                          f"at byte {exc.start})") from None
