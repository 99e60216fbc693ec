"""Reading OAR's ``oar.conf`` the way OAR3 does, with typed accessors.

File syntax (OAR3's ``Configuration.load_file``, reproduced on purpose):

* each physical line is cut at its first ``#`` -- **even inside quotes**, so a
  ``#`` in a password truncates it (trap T19; a warning is logged when the cut
  happens inside an open quote);
* a line without ``=`` is ignored (oarsched logs a warning when it is not blank);
* the line is split on its first ``=``; key and value are stripped of
  whitespace, then every leading/trailing ``"`` and ``'`` is stripped from the
  value;
* a value that :class:`decimal.Decimal` accepts becomes an ``int`` when
  ``int()`` accepts it, else a ``float`` (``"60"`` -> 60, ``"1e3"`` -> 1000.0,
  ``"nan"`` -> nan); anything else stays a string;
* no interpolation, keys are case-sensitive, the last occurrence wins, and the
  file's values override :data:`DEFAULTS` (OAR3's ``DEFAULT_CONFIG`` for every
  key the scheduler and the meta-scheduler around it read).

Differences from OAR3, all deliberate:

* a line whose key is empty (``= value``) or that is not UTF-8 is an error
  (:class:`~oarsched.errors.ConfigError` naming the file and line); a UTF-8
  byte-order mark is ignored;
* ``Decimal`` accepts ``sNaN`` which neither ``int`` nor ``float`` accept: OAR3
  then stores ``None``; oarsched keeps the string;
* :class:`OarConfig` also keeps the *raw* text of every value read from the file,
  and :meth:`OarConfig.get_str` / :meth:`OarConfig.sqlalchemy_url` use it, so a
  password such as ``0123`` or ``1e3`` is not turned into ``123`` / ``1000.0``;
* ``SCHEDULER_RESOURCE_ORDER`` is parsed into terms instead of being pasted
  into SQL; ``HIERARCHY_LABELS`` entries are stripped of blanks;
* :func:`setup_logging` honours ``LOG_FILE=":stdout:"`` (OAR3 creates a file of
  that name) and rejects a ``LOG_LEVEL`` outside 0-3 with a ConfigError;
* the database URL escapes login and password (see :meth:`OarConfig.sqlalchemy_url`).
"""
from __future__ import annotations

import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from oarsched.errors import ConfigError
from oarsched.policies.sorting import SortingSettings
from oarsched.quotas import QuotasSettings

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULTS",
    "JOB_PRIORITIES",
    "LOG_LEVELS",
    "OarConfig",
    "convert_value",
    "parse_perl_hash",
    "parse_resource_order",
    "read_conf_file",
    "setup_logging",
]

logger = logging.getLogger("oarsched.config")

#: Where OAR looks when ``OARCONFFILE`` is not set.
DEFAULT_CONFIG_FILE = "/etc/oar/oar.conf"

#: OAR3's defaults (``Configuration.DEFAULT_CONFIG``) for the keys read by
#: kamelot, the code it calls and the meta-scheduler around it, with OAR3's
#: types (several numbers are strings there, as in OAR3; use the typed
#: accessors).  Exceptions, marked below: ``CUSTOM_JOB_SORTING_CONFIG`` (OAR3's
#: kamelot sets it to ``"{}"`` when absent) and ``OARSUB_NODES_RESOURCES``.
DEFAULTS: dict[str, Any] = {
    # database (§1.3)
    "DB_TYPE": "Pg",
    "DB_PORT": "5432",
    "SQLALCHEMY_ECHO": False,
    "SQLALCHEMY_POOL_SIZE": None,
    "SQLALCHEMY_POOL_TIMEOUT": None,
    "SQLALCHEMY_POOL_RECYCLE": None,
    "SQLALCHEMY_MAX_OVERFLOW": None,
    # logging
    "LOG_LEVEL": 3,
    "LOG_FILE": ":stderr:",
    "LOG_FORMAT": "[%(levelname)8s] [%(asctime)s] [%(name)s::%(funcName)s:%(lineno)d]: %(message)s",
    # kamelot
    "HIERARCHY_LABELS": "resource_id,network_address",
    "MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND": "1000",
    "SCHEDULER_RESOURCE_ORDER": "resource_id ASC",
    "SCHEDULER_JOB_SECURITY_TIME": "60",
    "SCHEDULER_LOG_JOB_SCHEDULING_TIME": "no",
    "SCHEDULER_JOB_SCHEDULING_TIME_YAML": "",
    "SCHEDULER_AVAILABLE_SUSPENDED_RESOURCE_TYPE": "default",
    # sorting (§7)
    "JOB_PRIORITY": "FIFO",
    "CUSTOM_JOB_SORTING": "",
    "CUSTOM_JOB_SORTING_CONFIG": "{}",  # set by OAR3's kamelot when absent
    "CUSTOM_JOB_SORTING_CONFIG_FILE": "",
    "SCHEDULER_FAIRSHARING_WINDOW_SIZE": 3600 * 30 * 24,
    "SCHEDULER_FAIRSHARING_PROJECT_TARGETS": "{default => 21.0}",
    "SCHEDULER_FAIRSHARING_USER_TARGETS": "{default => 22.0}",
    "SCHEDULER_FAIRSHARING_COEF_PROJECT": "0",
    "SCHEDULER_FAIRSHARING_COEF_USER": "1",
    "SCHEDULER_FAIRSHARING_COEF_USER_ASK": "1",
    "SCHEDULER_FAIRSHARING_MAX_JOB_PER_USER": "30",
    "FAIRSHARING_ENABLED": "no",
    # quotas (§6)
    "QUOTAS": "no",
    "QUOTAS_CONF_FILE": "/etc/oar/quotas_conf.json",
    "QUOTAS_PERIOD": 1296000,
    "QUOTAS_ALL_NB_RESOURCES_MODE": "default_not_dead",
    "QUOTAS_WINDOW_TIME_LIMIT": 4 * 1296000,
    # meta-scheduler
    "METASCHEDULER_MODE": "internal",
    "RESERVATION_WAITING_RESOURCES_TIMEOUT": "300",
    "SCHEDULER_TIMEOUT": "10",
    "EXTRA_METASCHED": "default",
    "EXTRA_METASCHED_CONFIG": "",
    "WALLTIME_CHANGE_ENABLED": "NO",
    "ENERGY_SAVING_INTERNAL": "no",
    # users' exec notifications (oarsub --notify exec:...)
    "OPENSSH_CMD": "/usr/bin/ssh -p 6667",
    "OAR_SSH_CONNECTION_TIMEOUT": 120,
    # submission side; OAR3's DEFAULT_CONFIG says "resource_id", its packaged
    # oar.conf (and oarsched's request parser) say "network_address".
    "OARSUB_NODES_RESOURCES": "network_address",
}

#: ``LOG_LEVEL`` values (OAR3's ``oar.lib.logging.LEVELS``).
LOG_LEVELS: dict[int, int] = {
    0: logging.ERROR,
    1: logging.WARNING,
    2: logging.INFO,
    3: logging.DEBUG,
}

#: Values of ``JOB_PRIORITY`` that select a sorting (compared case-sensitively, as OAR3).
JOB_PRIORITIES = ("FIFO", "FAIRSHARE", "MULTIFACTOR", "CUSTOM")

_DB_SCHEMES = {
    "sqlite": "sqlite",
    "pg": "postgresql+psycopg",
    "psql": "postgresql+psycopg",
    "pgsql": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
}

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- file

def convert_value(text: str) -> str | int | float:
    """Convert a stripped value like OAR3's ``try_convert_decimal``.

    ``"60"`` -> ``60``, ``"1_000"`` -> ``1000``, ``"1e3"`` -> ``1000.0``,
    ``"-2.5"`` -> ``-2.5``, ``"nan"``/``"Infinity"`` -> float; anything
    :class:`~decimal.Decimal` rejects stays the same string.  (``"sNaN"``,
    which ``Decimal`` accepts but ``float`` does not, stays a string where
    OAR3 returns ``None``.)
    """
    try:
        Decimal(text)
    except (InvalidOperation, ValueError):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


MAX_CONFIG_BYTES = 4 << 20
"""Larger is not an oar.conf (OAR's is a few tens of KB): a device or a stream such as /dev/zero is refused."""


def _read_raw(path: str) -> dict[str, str]:
    """Read ``path`` into ``{key: value text}`` (comments cut, quotes stripped, no conversion)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror or e}") from e
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"configuration file {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB: not an oar.conf")
    raw: dict[str, str] = {}
    # bytes.splitlines splits on \n, \r\n and \r only: Python's universal newlines.
    for lineno, bline in enumerate(data.splitlines(), start=1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}, line {lineno}: not valid UTF-8 ({e.reason})") from e
        if lineno == 1:
            line = line.lstrip("\ufeff")  # a BOM would glue itself to the first key in OAR3
        if "#" in line:
            line = line.split("#", 1)[0]
            if "=" in line and _open_quote(line.split("=", 1)[1]):
                logger.warning(
                    "%s, line %d: '#' inside a quoted value starts a comment (OAR rule): "
                    "the value is cut before it",
                    path,
                    lineno,
                )
        if "=" not in line:
            if line.strip():
                logger.warning("%s, line %d: no '=', line ignored: %r", path, lineno, line.strip())
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"{path}, line {lineno}: no key before '='")
        if not _KEY_RE.match(key):
            logger.warning("%s, line %d: unusual key %r (kept as is)", path, lineno, key)
        if key in raw:
            logger.debug("%s, line %d: %s set again, the last value wins", path, lineno, key)
        raw[key] = value.strip().strip("\"'")
    return raw


def _open_quote(text: str) -> bool:
    """True when ``text`` (a value before a ``#``) has an unclosed ``"`` or ``'``."""
    text = text.strip()
    return bool(text) and text[0] in "\"'" and (len(text) == 1 or text.rstrip()[-1] != text[0])


def read_conf_file(path: str | os.PathLike[str]) -> dict[str, str | int | float]:
    """Parse an ``oar.conf`` file with OAR3's rules (see the module docstring).

    Returns only the file's keys (no defaults).  Raises
    :class:`~oarsched.errors.ConfigError` naming the file (and line) when the
    file cannot be read, is not UTF-8, or has a line with an empty key.
    """
    return {k: convert_value(v) for k, v in _read_raw(os.fspath(path)).items()}


# ------------------------------------------------------------------ value parsers

def parse_resource_order(text: str) -> list[tuple[str, str, str | None]]:
    """Parse ``SCHEDULER_RESOURCE_ORDER`` into ``(column, "ASC"|"DESC", "FIRST"|"LAST"|None)``.

    OAR3 pastes this text into ``ORDER BY``; oarsched only accepts a comma
    separated list of ``column [ASC|DESC] [NULLS FIRST|LAST]`` (keywords in
    any case; a column may be written ``resources.col`` or ``"Quoted"``).
    Unquoted column names are lower-cased (SQL folds them; OAR's columns are
    lower case).  Anything else raises :class:`ConfigError`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"SCHEDULER_RESOURCE_ORDER must list at least one column, got {text!r}")
    terms: list[tuple[str, str, str | None]] = []
    for part in text.split(","):
        m = _ORDER_TERM_RE.match(part)
        if not m:
            raise ConfigError(
                f"SCHEDULER_RESOURCE_ORDER: cannot use {part.strip()!r} in {text!r} "
                "(expected 'column [ASC|DESC] [NULLS FIRST|LAST]', comma separated)"
            )
        column = m.group("quoted") if m.group("quoted") is not None else m.group("bare").lower()
        direction = (m.group("dir") or "ASC").upper()
        nulls = m.group("nulls").upper() if m.group("nulls") else None
        terms.append((column, direction, nulls))
    return terms


_ORDER_TERM_RE = re.compile(
    r"""^\s*
        (?:resources\s*\.\s*)?
        (?:"(?P<quoted>[^"]+)"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))
        (?:\s+(?P<dir>ASC|DESC))?
        (?:\s+NULLS\s+(?P<nulls>FIRST|LAST))?
        \s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def parse_perl_hash(text: str) -> dict[str, float]:
    """Parse OAR's Perl-hash syntax for fair-sharing targets: ``"{ alice => 10, default => 21.0 }"``.

    Like OAR3, every blank is removed first (so ``my user`` is the key
    ``myuser``) and the braces are optional.  Unlike OAR3: ``"{}"`` (or an
    empty text) gives an empty dict instead of crashing, a trailing comma is
    allowed, keys quoted Perl-style (``'alice' => 10``) are unquoted, values
    are converted to ``float`` here and a pair that is not ``key => number``
    (finite) raises :class:`ConfigError` (OAR3 raises IndexError/ValueError at use).
    """
    if not isinstance(text, str):
        raise ConfigError(f"expected a Perl hash like '{{name => 10}}', got {text!r}")
    compact = re.sub(r"\s", "", text)
    body = compact
    if body.startswith("{") or body.endswith("}"):
        if not (body.startswith("{") and body.endswith("}")) or len(body) < 2:
            raise ConfigError(f"unbalanced braces in Perl hash {text!r}")
        body = body[1:-1]
    if "{" in body or "}" in body:
        raise ConfigError(f"nested braces are not allowed in Perl hash {text!r}")
    result: dict[str, float] = {}
    pairs = body.split(",")
    for i, pair in enumerate(pairs):
        if pair == "":
            if i == len(pairs) - 1:  # trailing comma or empty hash
                continue
            raise ConfigError(f"empty entry in Perl hash {text!r}")
        kv = pair.split("=>")
        if len(kv) != 2 or not kv[0]:
            raise ConfigError(f"entry {pair!r} of Perl hash {text!r} is not 'key => value'")
        key, value = kv
        if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
            key = key[1:-1]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(
                f"value {value!r} of {key!r} in Perl hash {text!r} is not a finite number"
            )
        result[key] = number
    return result


# ---------------------------------------------------------------------- OarConfig

@dataclass
class OarConfig:
    """``oar.conf`` values merged over :data:`DEFAULTS`, with typed accessors.

    ``values`` holds what OAR3's ``config[...]`` would return (file values
    converted by :func:`convert_value`, defaults with OAR3's types); ``raw``
    holds the unconverted text of the values read from the file.  The typed
    properties raise :class:`ConfigError` naming the key and the file.
    """

    values: dict[str, Any]
    path: str | None = None
    raw: dict[str, str] = field(default_factory=dict, repr=False)

    # -- construction -----------------------------------------------------------
    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] = os.environ
    ) -> "OarConfig":
        """Load a configuration like OAR3's ``init_config``.

        ``path`` given: that file (it must be readable).  Else ``env["OARCONFFILE"]``
        when set and not empty (must be readable), else ``/etc/oar/oar.conf``
        if it exists, else the defaults alone.
        """
        if path is None:
            if env.get("OARCONFFILE"):
                path = env["OARCONFFILE"]
            elif os.path.exists(DEFAULT_CONFIG_FILE):
                path = DEFAULT_CONFIG_FILE
        if path is None:
            return cls.from_mapping({})
        path = os.fspath(path)
        raw = _read_raw(path)
        values = dict(DEFAULTS)
        values.update({k: convert_value(v) for k, v in raw.items()})
        return cls(values=values, path=path, raw=raw)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], path: str | None = None) -> "OarConfig":
        """Defaults overridden by ``values`` (already typed, e.g. in tests); no file."""
        merged = dict(DEFAULTS)
        merged.update(values)
        return cls(values=merged, path=path)

    # -- generic access ---------------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise ConfigError(f"{key} is not set{self._where()}") from None

    def get(self, key: str, default: Any = None) -> Any:
        """The value as OAR3 would see it (``default`` when the key is absent)."""
        return self.values.get(key, default)

    def get_str(self, key: str) -> str:
        """The value as text: the file's raw text when the key comes from the file.

        Raises :class:`ConfigError` when the key is absent or its value is ``None``.
        """
        if key in self.raw and _same_value(self.values.get(key), convert_value(self.raw[key])):
            return self.raw[key]
        value = self[key]
        if value is None:
            raise ConfigError(f"{key} is not set{self._where()}")
        return value if isinstance(value, str) else str(value)

    def get_int(self, key: str) -> int:
        """The value as an ``int``: an int, an integral float or a decimal string.

        Raises ``ConfigError("KEY must be an integer, got '...' (in FILE)")`` otherwise.
        """
        value = self[key]
        result = _as_int(value)
        if result is None:
            raise ConfigError(f"{key} must be an integer, got {self.show_value(key, value)}{self._where()}")
        return result

    def get_float(self, key: str) -> float:
        """The value as a ``float`` (OAR3 applies ``float()``); ConfigError otherwise."""
        value = self[key]
        if isinstance(value, bool) or value is None:
            raise ConfigError(f"{key} must be a number, got {self.show_value(key, value)}{self._where()}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{key} must be a number, got {self.show_value(key, value)}{self._where()}"
            ) from None

    def _where(self) -> str:
        return f" (in {self.path})" if self.path else " (no configuration file)"

    def show_value(self, key: str, value: Any) -> str:
        return repr(self.raw[key]) if key in self.raw else repr(str(value))

    # -- scheduler keys ---------------------------------------------------------
    @property
    def job_security_time(self) -> int:
        """``SCHEDULER_JOB_SECURITY_TIME`` in seconds (>= 0)."""
        value = self.get_int("SCHEDULER_JOB_SECURITY_TIME")
        if value < 0:
            raise ConfigError(f"SCHEDULER_JOB_SECURITY_TIME must be >= 0, got {value}{self._where()}")
        return value

    @property
    def resource_order(self) -> str:
        """``SCHEDULER_RESOURCE_ORDER`` as written (never pasted into SQL: use
        :attr:`resource_order_terms`)."""
        return self.get_str("SCHEDULER_RESOURCE_ORDER")

    @property
    def resource_order_terms(self) -> list[tuple[str, str, str | None]]:
        """``SCHEDULER_RESOURCE_ORDER`` parsed by :func:`parse_resource_order`."""
        try:
            return parse_resource_order(self.resource_order)
        except ConfigError as e:
            raise ConfigError(f"{e}{self._where()}") from None

    @property
    def hierarchy_labels(self) -> list[str]:
        """``HIERARCHY_LABELS`` split on ``,`` (blanks around labels removed, unlike OAR3)."""
        text = self.get_str("HIERARCHY_LABELS")
        labels = [label.strip() for label in text.split(",")]
        if not labels or any(not label for label in labels):
            raise ConfigError(f"HIERARCHY_LABELS has an empty label: {text!r}{self._where()}")
        for label in labels:
            if not _KEY_RE.match(label):
                raise ConfigError(f"HIERARCHY_LABELS: {label!r} is not a column name{self._where()}")
        return labels

    @property
    def max_jobs_per_round(self) -> int | None:
        """``MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND``; None (no cap) when <= 0 or not an int.

        Same rule as OAR3's ``get_max_job_per_queues_group`` (``int()`` of the
        value, so ``12.7`` gives 12); ``inf`` also means no cap (OAR3 crashes).
        """
        key = "MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND"
        if key not in self.values:
            return None
        value = self.values[key]
        try:
            n = int(value)
        except (TypeError, ValueError, OverflowError):
            logger.warning("%s is not an integer: %r (ignored)", key, value)
            return None
        return n if n > 0 else None

    @property
    def job_priority(self) -> str:
        """``JOB_PRIORITY``: FIFO, FAIRSHARE, MULTIFACTOR or CUSTOM; anything else is FIFO.

        The comparison is case-sensitive as in OAR3 (``fairshare`` means FIFO);
        a warning is logged for values OAR3 silently treats as FIFO.
        """
        value = self.values.get("JOB_PRIORITY", "FIFO")
        if value in JOB_PRIORITIES:
            return value
        logger.warning(
            "JOB_PRIORITY=%r is not one of %s: FIFO is used", value, ", ".join(JOB_PRIORITIES)
        )
        return "FIFO"

    @property
    def custom_job_sorting(self) -> str:
        """``CUSTOM_JOB_SORTING``: entry-point name in group ``oar.jobs_sorting_func``."""
        return self.get_str("CUSTOM_JOB_SORTING").strip()

    @property
    def custom_job_sorting_config(self) -> str:
        """``CUSTOM_JOB_SORTING_CONFIG`` text handed to a CUSTOM plugin (``"{}"`` by default)."""
        return self.get_str("CUSTOM_JOB_SORTING_CONFIG")

    @property
    def priority_conf_file(self) -> str | None:
        """``PRIORITY_CONF_FILE`` (MULTIFACTOR weights), None when unset or empty."""
        if self.values.get("PRIORITY_CONF_FILE") in (None, ""):
            return None
        return self.get_str("PRIORITY_CONF_FILE")

    @property
    def fairsharing_window_size(self) -> int:
        """``SCHEDULER_FAIRSHARING_WINDOW_SIZE`` in seconds."""
        return self.get_int("SCHEDULER_FAIRSHARING_WINDOW_SIZE")

    @property
    def fairsharing_project_targets(self) -> dict[str, float]:
        """``SCHEDULER_FAIRSHARING_PROJECT_TARGETS`` (percentages)."""
        return self._perl_hash("SCHEDULER_FAIRSHARING_PROJECT_TARGETS")

    @property
    def fairsharing_user_targets(self) -> dict[str, float]:
        """``SCHEDULER_FAIRSHARING_USER_TARGETS`` (percentages)."""
        return self._perl_hash("SCHEDULER_FAIRSHARING_USER_TARGETS")

    @property
    def fairsharing_coef_project(self) -> float:
        return self.get_float("SCHEDULER_FAIRSHARING_COEF_PROJECT")

    @property
    def fairsharing_coef_user(self) -> float:
        return self.get_float("SCHEDULER_FAIRSHARING_COEF_USER")

    @property
    def fairsharing_coef_user_ask(self) -> float:
        return self.get_float("SCHEDULER_FAIRSHARING_COEF_USER_ASK")

    def _perl_hash(self, key: str) -> dict[str, float]:
        try:
            return parse_perl_hash(self.get_str(key))
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}{self._where()}") from None

    @property
    def quotas_enabled(self) -> bool:
        """``QUOTAS == "yes"`` (exact comparison, as OAR3)."""
        return self.values.get("QUOTAS") == "yes"

    @property
    def quotas_conf_file(self) -> str:
        return self.get_str("QUOTAS_CONF_FILE")

    @property
    def quotas_period(self) -> int:
        """``QUOTAS_PERIOD``: temporal-quotas unrolling horizon in seconds."""
        return self.get_int("QUOTAS_PERIOD")

    @property
    def quotas_window_time_limit(self) -> int:
        """``QUOTAS_WINDOW_TIME_LIMIT`` in seconds."""
        return self.get_int("QUOTAS_WINDOW_TIME_LIMIT")

    @property
    def quotas_all_nb_resources_mode(self) -> str:
        """``QUOTAS_ALL_NB_RESOURCES_MODE`` (``default_not_dead`` by default)."""
        return self.get_str("QUOTAS_ALL_NB_RESOURCES_MODE")

    @property
    def suspendable_types(self) -> list[str]:
        """``SCHEDULER_AVAILABLE_SUSPENDED_RESOURCE_TYPE`` split on blanks."""
        return self.get_str("SCHEDULER_AVAILABLE_SUSPENDED_RESOURCE_TYPE").split()

    @property
    def nodes_label(self) -> str:
        """``OARSUB_NODES_RESOURCES``: the column ``nodes`` stands for in requests."""
        return self.get_str("OARSUB_NODES_RESOURCES").strip()

    @property
    def log_job_scheduling_time(self) -> bool:
        """``SCHEDULER_LOG_JOB_SCHEDULING_TIME == "yes"``."""
        return self.values.get("SCHEDULER_LOG_JOB_SCHEDULING_TIME") == "yes"

    @property
    def log_level(self) -> int:
        """``LOG_LEVEL`` (0 error, 1 warning, 2 info, 3 debug) as a :mod:`logging` level."""
        given = self.values.get("LOG_LEVEL")
        value = _as_int(given)
        if value not in LOG_LEVELS:
            raise ConfigError(
                f"LOG_LEVEL must be 0, 1, 2 or 3, got {self.show_value('LOG_LEVEL', given)}{self._where()}"
            )
        return LOG_LEVELS[value]

    @property
    def db_is_sqlite(self) -> bool:
        """``DB_TYPE`` is SQLite (case-insensitive, unlike OAR3's engine setup: trap T19)."""
        return str(self.values.get("DB_TYPE", "")).strip().lower() == "sqlite"

    def quotas_settings(self) -> QuotasSettings | None:
        """The ``QUOTAS_*`` keys, None when ``QUOTAS`` is not ``yes``."""
        if not self.quotas_enabled:
            return None
        return QuotasSettings(conf_file=self.quotas_conf_file, period=self.quotas_period,
                              window_time_limit=self.quotas_window_time_limit,
                              all_nb_resources_mode=self.quotas_all_nb_resources_mode)

    def sorting_settings(self) -> SortingSettings:
        """The ordering's settings: ``JOB_PRIORITY`` and the keys that policy reads (others keep their defaults)."""
        priority = self.job_priority
        keys: dict[str, Any] = {}
        if priority in ("FAIRSHARE", "MULTIFACTOR"):
            keys.update(
                fairsharing_window_size=self.fairsharing_window_size,
                fairsharing_project_targets=self.fairsharing_project_targets,
                fairsharing_user_targets=self.fairsharing_user_targets,
                fairsharing_coef_project=self.fairsharing_coef_project,
                fairsharing_coef_user=self.fairsharing_coef_user,
                fairsharing_coef_user_ask=self.fairsharing_coef_user_ask,
            )
        if priority == "MULTIFACTOR":
            keys["priority_conf_file"] = self.priority_conf_file
        if priority == "CUSTOM":
            keys.update(custom_job_sorting=self.custom_job_sorting,
                        custom_job_sorting_config=self.custom_job_sorting_config)
        return SortingSettings(job_priority=priority, path=self.path, **keys)

    def validate(self) -> None:
        """Check every key kamelot always reads, and those of the enabled features.

        Raises the first :class:`ConfigError` found.
        """
        self.job_security_time
        self.resource_order_terms
        self.hierarchy_labels
        self.max_jobs_per_round
        self.suspendable_types
        priority = self.job_priority
        if priority in ("FAIRSHARE", "MULTIFACTOR"):
            self.fairsharing_window_size
            self.fairsharing_project_targets
            self.fairsharing_user_targets
            self.fairsharing_coef_project
            self.fairsharing_coef_user
            self.fairsharing_coef_user_ask
        if priority == "MULTIFACTOR" and self.priority_conf_file is None:
            raise ConfigError(f"JOB_PRIORITY=MULTIFACTOR needs PRIORITY_CONF_FILE{self._where()}")
        if priority == "CUSTOM" and not self.custom_job_sorting:
            raise ConfigError(f"JOB_PRIORITY=CUSTOM needs CUSTOM_JOB_SORTING{self._where()}")
        if self.quotas_enabled:
            self.quotas_conf_file
            self.quotas_period
            self.quotas_window_time_limit
            self.quotas_all_nb_resources_mode

    # -- database ---------------------------------------------------------------
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL of the OAR database (OAR3's ``get_sqlalchemy_uri``).

        ``DB_TYPE`` (case-insensitive): ``sqlite`` gives ``sqlite:///`` +
        ``DB_BASE_FILE`` (a relative path is relative to the current directory,
        as in OAR3; ``:memory:`` allowed).  ``Pg``, ``psql``, ``pgsql`` (and
        ``postgresql``) give ``postgresql+psycopg://LOGIN[:PASSWD]@HOST:PORT/NAME``
        (psycopg 3; OAR3's plain ``postgresql://`` means psycopg2); the password
        part is left out when ``DB_BASE_PASSWD`` is missing or empty.  Any
        other ``DB_TYPE`` raises :class:`ConfigError` (OAR3 uses it as the URL
        scheme verbatim), as does a missing ``DB_BASE_NAME``, ``DB_BASE_LOGIN``,
        ``DB_HOSTNAME`` or ``DB_BASE_FILE``.

        Deliberate fixes: login, password and database name are URL-escaped
        (OAR3 pastes them, so a password containing ``@``, ``:``, ``/`` or
        ``%`` breaks the URL), and the values are taken as written in the file
        (OAR3 turns a password ``0123`` into ``123``).  A ``#`` still cuts the
        line, as in OAR3.
        """
        from sqlalchemy.engine import URL

        db_type = self.get_str("DB_TYPE").strip().lower() if "DB_TYPE" in self.values else ""
        if db_type not in _DB_SCHEMES:
            raise ConfigError(
                f"unknown DB_TYPE {self.values.get('DB_TYPE')!r}{self._where()}: "
                "accepted values are sqlite, Pg, psql, pgsql (case-insensitive)"
            )
        if db_type == "sqlite":
            return "sqlite:///" + self._db_key("DB_BASE_FILE")
        port_text = self._db_key("DB_PORT").strip()
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"DB_PORT must be an integer, got {port_text!r}{self._where()}") from None
        password = None
        if self.values.get("DB_BASE_PASSWD") not in (None, ""):
            password = self.get_str("DB_BASE_PASSWD")
        url = URL.create(
            drivername=_DB_SCHEMES[db_type],
            username=self._db_key("DB_BASE_LOGIN"),
            password=password,
            host=self._db_key("DB_HOSTNAME"),
            port=port,
            database=self._db_key("DB_BASE_NAME"),
        )
        return url.render_as_string(hide_password=False)

    def _db_key(self, key: str) -> str:
        if key not in self.values or self.values[key] is None:
            raise ConfigError(f"Cannot find {key}{self._where()}")
        value = self.get_str(key)
        if key in ("DB_BASE_NAME", "DB_BASE_FILE") and not value:
            raise ConfigError(f"{key} is empty{self._where()}")
        return value


def _same_value(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are the same converted value (nan equals nan): the raw text still applies."""
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is one exactly (int, integral float, decimal text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        converted = convert_value(value.strip())
        if isinstance(converted, str):
            return None
        return _as_int(converted)
    return None


# ------------------------------------------------------------------------ logging

#: Handlers installed by :func:`setup_logging` (replaced on each call).
_installed_handlers: list[logging.Handler] = []


def _drop_record(record: logging.LogRecord) -> None:
    """A log that cannot be written (disk full, closed pipe) neither stops the round nor prints
    logging's tracebacks on stderr: the record is dropped."""


def setup_logging(config: OarConfig) -> logging.Logger:
    """Configure and return the ``oarsched`` logger from ``LOG_FILE``/``LOG_LEVEL``/``LOG_FORMAT``.

    ``LOG_FILE``: ``:stderr:`` (default), ``:stdout:`` or a file path (opened
    in append mode, created if needed; a path that cannot be opened raises
    :class:`ConfigError`).  ``LOG_LEVEL``: 0 error, 1 warning, 2 info,
    3 debug (OAR's meaning).  Like OAR3's logger, it does not propagate to the
    root logger.  Calling it again replaces the handlers it installed before.
    """
    level = config.log_level
    fmt = config.get("LOG_FORMAT") or DEFAULTS["LOG_FORMAT"]
    log_file = config.get("LOG_FILE")
    handler: logging.Handler
    if log_file is None or log_file == ":stderr:":
        handler = logging.StreamHandler(sys.stderr)
    elif log_file == ":stdout:":
        handler = logging.StreamHandler(sys.stdout)
    else:
        path = config.get_str("LOG_FILE")
        try:
            handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        except OSError as e:
            raise ConfigError(
                f"LOG_FILE {path!r} cannot be opened: {e.strerror or e}{config._where()}"
            ) from e
    handler.handleError = _drop_record  # type: ignore[method-assign]
    try:
        handler.setFormatter(logging.Formatter(fmt))
    except (ValueError, TypeError) as e:
        handler.close()
        raise ConfigError(f"LOG_FORMAT {fmt!r} is not a logging format: {e}{config._where()}") from e

    log = logging.getLogger("oarsched")
    for old in _installed_handlers:
        log.removeHandler(old)
        old.close()
    _installed_handlers[:] = [handler]
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    return log
