"""Property expressions: the SQL ``WHERE`` text that restricts a job's resources.

OAR jobs carry two kinds of resource filters written in SQL over the columns of
the ``resources`` table: the job-wide ``jobs.properties`` (``oarsub -p`` plus
what admission rules append) and one ``job_resource_groups.res_group_property``
per resource group (``oarsub -l "{...}/nodes=2"``).  OAR3 pastes that text into
``SELECT resource_id FROM resources WHERE <job> AND <group>``; oarsched never
sends job-supplied text to the database.  Instead, the text is parsed with
sqlglot (PostgreSQL dialect), the syntax tree is checked against a small
whitelist, and it is converted into the immutable AST of this module.  That AST
can then be

* compiled to a SQLAlchemy condition whose values are all bound parameters
  by the database adapter (:func:`oarsched.oar.property_sql.to_sqlalchemy`), or
* evaluated in Python with SQL three-valued logic (:meth:`Expr.evaluate`,
  :func:`select_resources`).

Accepted grammar (keywords are case-insensitive)::

    condition  := condition OR condition | condition AND condition
                | NOT condition | ( condition ) | TRUE | FALSE
                | operand (= | <> | != | < | <= | > | >=) operand
                | operand [NOT] IN ( literal [, literal]... )
                | operand IS [NOT] NULL
                | operand [NOT] BETWEEN operand AND operand
                | operand [NOT] (LIKE | ILIKE) 'pattern' [ESCAPE 'c']
    operand    := column | "quoted column" | resources.column | literal | ( operand )
    literal    := 'string' | number | -number | TRUE | FALSE | NULL

Everything else (sub-queries, function calls, casts, arithmetic, ``||``,
parameters, comments, several statements...) raises
:class:`~oarsched.errors.PropertyError`.

Value semantics (shared by the SQL and the Python paths):

* A string literal compared with a number adapts to the number, as PostgreSQL
  does for an integer column compared with ``'3'``; a string that does not look
  like a number is an error there (PostgreSQL refuses it too).
* A number literal compared with a text column is compared as text (SQLite's
  behaviour; PostgreSQL would refuse the query).
* ``TRUE`` and ``FALSE`` compared with a number are 1 and 0 (SQLite's
  behaviour; PostgreSQL has no integer = boolean operator), on both backends.
* A number column compared with a text column: evaluated in Python row by row
  (the text becomes a number when it spells one, else the number becomes
  text); the database adapter refuses it (:class:`PropertyError`, the job is
  reported), on SQLite as on PostgreSQL, which has no such operator.
* ``LIKE`` is case-sensitive and ``\\`` is its default escape character, as in
  PostgreSQL.  (On SQLite the compiled ``LIKE`` keeps SQLite's own
  case-insensitivity for ASCII, which is what OAR3 does on SQLite.)
"""
from __future__ import annotations

import functools
import importlib
import math
import operator
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from oarsched.errors import PropertyError
from oarsched.model.platform import Resource


class _LazyModule:
    """A module imported at its first attribute access: sqlglot takes ≈0.1 s to import, and a scheduling
    round whose jobs and resources carry no property expression never parses one."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self._name), attr)
        setattr(self, attr, value)
        return value


if TYPE_CHECKING:
    import sqlglot
    from sqlglot import errors as sqlglot_errors
    from sqlglot import exp
    from sqlglot import tokens as sqlglot_tokens
else:
    sqlglot = _LazyModule("sqlglot")
    exp = _LazyModule("sqlglot.expressions")
    sqlglot_errors = _LazyModule("sqlglot.errors")
    sqlglot_tokens = _LazyModule("sqlglot.tokens")

__all__ = [
    "And",
    "Between",
    "Column",
    "Comparison",
    "Constant",
    "Expr",
    "InList",
    "IsNull",
    "Like",
    "Literal",
    "Not",
    "Operand",
    "Or",
    "ResourceRow",
    "combine",
    "parse_property",
    "select_resources",
]

MAX_LENGTH = 65536
"""Longest property text accepted (OAR's columns are TEXT; real ones are tiny)."""

MAX_DEPTH = 100
"""Deepest nesting of conditions accepted."""

ID_COLUMNS = ("resource_id", "id")
"""The two names of the resource id (SQL column / OAR ORM attribute)."""

CORE_COLUMNS = frozenset({"resource_id", "id", "state", "type", "available_upto"})
"""Columns every :class:`~oarsched.model.platform.Resource` has."""

LiteralValue = str | int | float | bool | None

_DIALECT = "postgres"
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER_RE = re.compile(r"[+-]?\d+", re.ASCII)
_SIMPLE_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")
_TABLE_NAME = "resources"


# =============================================================================
# Value helpers (shared by evaluate and to_sqlalchemy)
# =============================================================================
def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal))


def _parse_number(text: str) -> int | float | None:
    """The number a string spells (surrounding blanks allowed), else None."""
    text = text.strip()
    if not _NUMBER_RE.fullmatch(text):
        return None
    if _INTEGER_RE.fullmatch(text):
        return int(text)
    return float(text)


def as_text(value: Any) -> str:
    """The text form of a number (``3``, ``2.5``, ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def number_or_error(text: str, other: str) -> int | float:
    number = _parse_number(text)
    if number is None:
        raise PropertyError(f"cannot compare {other} with the non-numeric string {_quote(text)}")
    return number


def _align(a: Any, a_is_literal: bool, b: Any, b_is_literal: bool) -> tuple[Any, Any]:
    """Bring two non-NULL values to a common type before comparing them.

    Values of the same kind are left alone; a number meeting a text goes
    through :func:`_align_mixed`.
    """
    if is_number(a) == is_number(b):
        return a, b
    if is_number(a):
        return _align_mixed(a, a_is_literal, b, b_is_literal)
    number, text = _align_mixed(b, b_is_literal, a, a_is_literal)
    return text, number


def _align_mixed(
    number: Any, number_is_literal: bool, text: Any, text_is_literal: bool
) -> tuple[Any, Any]:
    """``(number, text)`` brought to one type.

    A string literal becomes a number (an error if it does not spell one), as
    in PostgreSQL; a number literal becomes text, as in SQLite; between two
    columns, the text becomes a number when it spells one, else the number
    becomes text.
    """
    if not isinstance(text, str):
        return number, text
    if text_is_literal:
        return number, number_or_error(text, as_text(number))
    as_number = None if number_is_literal else _parse_number(text)
    if as_number is None:
        return as_text(number), text
    return number, as_number


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(op: str, a: Any, a_is_literal: bool, b: Any, b_is_literal: bool) -> bool | None:
    """``a <op> b`` in SQL: NULL if either side is NULL."""
    if a is None or b is None:
        return None
    a, b = _align(a, a_is_literal, b, b_is_literal)
    try:
        return bool(OPERATORS[op](a, b))
    except TypeError:
        raise PropertyError(f"cannot compare {a!r} with {b!r} using {op}") from None


def _and3(values: Iterator[bool | None]) -> bool | None:
    """SQL AND of three-valued operands (short-circuits on False)."""
    result: bool | None = True
    for value in values:
        if value is False:
            return False
        if value is None:
            result = None
    return result


def _or3(values: Iterator[bool | None]) -> bool | None:
    """SQL OR of three-valued operands (short-circuits on True)."""
    result: bool | None = False
    for value in values:
        if value is True:
            return True
        if value is None:
            result = None
    return result


def _not3(value: bool | None) -> bool | None:
    return None if value is None else not value


@functools.lru_cache(maxsize=1024)
def _like_regex(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    """The regex of a LIKE pattern whose escape character is a backslash."""
    parts: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars)))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.compile("".join(parts), flags)


def _canonical_like_pattern(pattern: str, escape: str) -> str:
    """Rewrite a LIKE pattern with escape character ``escape`` ("" = none)
    into the equivalent pattern that uses PostgreSQL's default backslash."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if escape and char == escape:
            if index + 1 == len(pattern):
                raise PropertyError(
                    f"LIKE pattern {_quote(pattern)} must not end with its escape character"
                )
            index += 1
            out.append("\\" + pattern[index])
        elif char == "\\":
            out.append("\\\\")
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@functools.lru_cache(maxsize=1024)
def _identifier(name: str) -> str:
    """A column name as SQL text: bare when it reads back as itself, else quoted."""
    if _SIMPLE_NAME_RE.fullmatch(name):
        try:
            node = sqlglot.condition(f"{name} = 1", dialect=_DIALECT)
        except sqlglot_errors.SqlglotError:
            node = None
        if (
            isinstance(node, exp.EQ)
            and isinstance(node.this, exp.Column)
            and node.this.name == name
            and not node.this.args.get("table")
        ):
            return name
    return '"' + name.replace('"', '""') + '"'


# =============================================================================
# The AST: operands
# =============================================================================
class Operand(ABC):
    """A value in an expression: a column or a literal."""

    __slots__ = ()

    @abstractmethod
    def columns(self) -> set[str]:
        """The column names this operand reads."""

    @abstractmethod
    def read(self, row: Mapping[str, Any]) -> Any:
        """The operand's value on ``row`` (None is NULL)."""

    @property
    def is_literal(self) -> bool:
        return isinstance(self, Literal)


@dataclass(frozen=True, slots=True)
class Column(Operand):
    """A column of the ``resources`` table (unquoted names are lower-cased)."""

    name: str

    def columns(self) -> set[str]:
        return {self.name}

    def read(self, row: Mapping[str, Any]) -> Any:
        if self.name in ID_COLUMNS:
            return row["resource_id"] if "resource_id" in row else row.get("id")
        return row.get(self.name)

    def __str__(self) -> str:
        return _identifier(self.name)


@dataclass(frozen=True, slots=True, eq=False)
class Literal(Operand):
    """A string, number, boolean or NULL constant.

    Equality takes the Python type into account (``1``, ``1.0`` and ``TRUE``
    are different literals).
    """

    value: LiteralValue

    def columns(self) -> set[str]:
        return set()

    def read(self, row: Mapping[str, Any]) -> Any:
        return self.value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Literal):
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def __str__(self) -> str:
        value = self.value
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, str):
            return _quote(value)
        if isinstance(value, float) and math.isinf(value):
            return "-1e999" if value < 0 else "1e999"
        return repr(value)


# =============================================================================
# The AST: conditions
# =============================================================================
class Expr(ABC):
    """A condition on one row of the ``resources`` table."""

    __slots__ = ()

    @abstractmethod
    def columns(self) -> set[str]:
        """The column names the condition reads (as written; ``id`` stays ``id``)."""

    @abstractmethod
    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        """The condition on ``row`` in SQL three-valued logic (None is NULL).

        A missing key reads as NULL.  Raises :class:`PropertyError` when two
        values cannot be compared (an integer against ``'abc'``).
        """

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Whether a ``WHERE`` clause keeps ``row`` (only TRUE does)."""
        return self.evaluate(row) is True

    def negated_str(self) -> str | None:
        """SQL text of ``NOT self`` when it has its own form (``IS NOT NULL``...)."""
        return None

    def is_constant(self) -> bool:
        """No column read: the condition has one value whatever the row."""
        return not self.columns()


@dataclass(frozen=True, slots=True)
class Constant(Expr):
    """``TRUE`` or ``FALSE``."""

    value: bool

    def columns(self) -> set[str]:
        return set()

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        return self.value

    def __str__(self) -> str:
        return "TRUE" if self.value else "FALSE"


@dataclass(frozen=True, slots=True)
class And(Expr):
    """Conjunction of two or more conditions."""

    operands: tuple[Expr, ...]

    def columns(self) -> set[str]:
        return set().union(*(o.columns() for o in self.operands))

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        return _and3(o.evaluate(row) for o in self.operands)

    def __str__(self) -> str:
        return " AND ".join(f"({o})" if isinstance(o, Or) else str(o) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Or(Expr):
    """Disjunction of two or more conditions."""

    operands: tuple[Expr, ...]

    def columns(self) -> set[str]:
        return set().union(*(o.columns() for o in self.operands))

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        return _or3(o.evaluate(row) for o in self.operands)

    def __str__(self) -> str:
        return " OR ".join(str(o) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Not(Expr):
    """Negation (``NOT IN``, ``NOT LIKE``, ``IS NOT NULL``... are ``Not`` of the positive form)."""

    operand: Expr

    def columns(self) -> set[str]:
        return self.operand.columns()

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        return _not3(self.operand.evaluate(row))

    def __str__(self) -> str:
        negated = self.operand.negated_str()
        return negated if negated is not None else f"NOT ({self.operand})"


@dataclass(frozen=True, slots=True)
class Comparison(Expr):
    """``left <op> right`` with op one of ``= <> < <= > >=``."""

    op: str
    left: Operand
    right: Operand

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise PropertyError(f"unknown comparison operator {self.op!r}")

    def columns(self) -> set[str]:
        return self.left.columns() | self.right.columns()

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        return _compare(
            self.op,
            self.left.read(row),
            self.left.is_literal,
            self.right.read(row),
            self.right.is_literal,
        )

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True, slots=True)
class InList(Expr):
    """``operand IN (literal, ...)``."""

    operand: Operand
    values: tuple[Literal, ...]

    def columns(self) -> set[str]:
        return self.operand.columns()

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        value = self.operand.read(row)
        literal = self.operand.is_literal
        return _or3(_compare("=", value, literal, v.value, True) for v in self.values)

    def __str__(self) -> str:
        return f"{self.operand} IN ({self._list()})"

    def negated_str(self) -> str:
        return f"{self.operand} NOT IN ({self._list()})"

    def _list(self) -> str:
        return ", ".join(str(v) for v in self.values)


@dataclass(frozen=True, slots=True)
class IsNull(Expr):
    """``operand IS NULL`` (never NULL itself)."""

    operand: Operand

    def columns(self) -> set[str]:
        return self.operand.columns()

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        return self.operand.read(row) is None

    def __str__(self) -> str:
        return f"{self.operand} IS NULL"

    def negated_str(self) -> str:
        return f"{self.operand} IS NOT NULL"


@dataclass(frozen=True, slots=True)
class Between(Expr):
    """``operand BETWEEN low AND high``, i.e. ``operand >= low AND operand <= high``."""

    operand: Operand
    low: Operand
    high: Operand

    def halves(self) -> And:
        return And((
            Comparison(">=", self.operand, self.low),
            Comparison("<=", self.operand, self.high),
        ))

    def columns(self) -> set[str]:
        return self.operand.columns() | self.low.columns() | self.high.columns()

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        return self.halves().evaluate(row)

    def __str__(self) -> str:
        return f"{self.operand} BETWEEN {self.low} AND {self.high}"

    def negated_str(self) -> str:
        return f"{self.operand} NOT BETWEEN {self.low} AND {self.high}"


@dataclass(frozen=True, slots=True)
class Like(Expr):
    """``operand LIKE pattern`` (``ILIKE`` when ``case_insensitive``).

    ``pattern`` uses ``%``, ``_`` and a backslash escape (PostgreSQL's default);
    an explicit ``ESCAPE`` clause is rewritten into that form by the parser.
    Non-text values are matched through their text form.
    """

    operand: Operand
    pattern: str
    case_insensitive: bool = False

    def __post_init__(self) -> None:
        _canonical_like_pattern(self.pattern, "\\")  # validates a trailing escape

    def columns(self) -> set[str]:
        return self.operand.columns()

    def evaluate(self, row: Mapping[str, Any]) -> bool | None:
        value = self.operand.read(row)
        if value is None:
            return None
        text = value if isinstance(value, str) else as_text(value)
        return _like_regex(self.pattern, self.case_insensitive).fullmatch(text) is not None

    def __str__(self) -> str:
        return f"{self.operand} {self._keyword()} {_quote(self.pattern)}"

    def negated_str(self) -> str:
        return f"{self.operand} NOT {self._keyword()} {_quote(self.pattern)}"

    def _keyword(self) -> str:
        return "ILIKE" if self.case_insensitive else "LIKE"


# =============================================================================
# From sqlglot's tree to the AST
# =============================================================================
@functools.cache
def _comparisons() -> dict[type[exp.Expr], str]:
    return {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}


@functools.cache
def _refused_kinds() -> tuple[tuple[tuple[type[exp.Expr], ...], str], ...]:
    return (
        ((exp.Query, exp.Subquery, exp.Exists, exp.Any, exp.All), "a sub-query or ANY/ALL"),
        ((exp.Cast, exp.TryCast), "a cast"),
        ((exp.DPipe, exp.Concat), "string concatenation"),
        ((exp.Placeholder, exp.Parameter), "a parameter placeholder"),
        ((exp.Collate,), "COLLATE"),
        ((exp.Func,), "a function call"),
        ((exp.Binary, exp.Unary), "an operator"),
    )


def _refusal_label(node: exp.Expr) -> str | None:
    """How an error names a refused kind of node (None: no special name)."""
    return next((label for kinds, label in _refused_kinds() if isinstance(node, kinds)), None)


class _Converter:
    """Checks a sqlglot condition tree against the whitelist and builds the AST."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.depth = 0

    # -- errors ---------------------------------------------------------------
    def refuse(self, node: exp.Expr, what: str | None = None) -> PropertyError:
        """The error for a node outside the grammar."""
        if what is None:
            what = _refusal_label(node) or f"the {type(node).__name__} construct"
        try:
            snippet = node.sql(dialect=_DIALECT)
        except Exception:  # noqa: BLE001 - only used to decorate the message
            snippet = type(node).__name__
        if len(snippet) > 80:
            snippet = snippet[:77] + "..."
        return PropertyError(f"property expression {self.text!r}: {what} is not allowed: {snippet}")

    def check_args(self, node: exp.Expr, allowed: frozenset[str]) -> None:
        """Refuse a node carrying any argument the grammar does not use."""
        extra = [key for key, value in node.args.items() if value and key not in allowed]
        if extra:
            raise self.refuse(node, f"{type(node).__name__} with {', '.join(sorted(extra))}")

    # -- conditions -----------------------------------------------------------
    def condition(self, node: exp.Expr) -> Expr:
        """Convert a node that must be a condition."""
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise PropertyError(f"property expression {self.text!r}: nested too deeply")
            return self.condition_node(node)
        finally:
            self.depth -= 1

    def condition_node(self, node: exp.Expr) -> Expr:
        """Dispatch on the kind of a condition node."""
        if isinstance(node, exp.Paren):
            self.check_args(node, _THIS)
            return self.condition(node.this)
        if isinstance(node, (exp.And, exp.Or)):
            return self.connective(node)
        if isinstance(node, exp.Not):
            self.check_args(node, _THIS)
            return Not(self.condition(node.this))
        if isinstance(node, exp.Boolean):
            return Constant(bool(node.this))
        op = _comparisons().get(type(node))
        if op is not None:
            self.check_args(node, _BINARY)
            return Comparison(op, self.operand(node.this), self.operand(node.expression))
        builder = _condition_builders().get(type(node))
        if builder is not None:
            return builder(self, node)
        if isinstance(node, (exp.Column, exp.Literal, exp.Null, exp.Neg)):
            raise self.refuse(node, "a bare value in place of a condition")
        raise self.refuse(node)

    def connective(self, node: exp.And | exp.Or) -> Expr:
        """AND/OR chains, flattened (without recursion on the chain itself)."""
        kind = type(node)
        parts: list[exp.Expr] = []
        stack: list[exp.Expr] = [node]
        while stack:
            current = stack.pop()
            while isinstance(current, exp.Paren) and isinstance(current.this, kind):
                current = current.this
            if isinstance(current, kind):
                self.check_args(current, _BINARY)
                stack.append(current.expression)
                stack.append(current.this)
            else:
                parts.append(current)
        operands = tuple(self.condition(p) for p in parts)
        return And(operands) if kind is exp.And else Or(operands)

    def in_list(self, node: exp.In) -> Expr:
        if node.args.get("query") or node.args.get("unnest"):
            raise self.refuse(node, "a sub-query")
        self.check_args(node, frozenset({"this", "expressions"}))
        if not node.expressions:
            raise self.refuse(node, "an empty IN list")
        return InList(self.operand(node.this), tuple(self.literal(v) for v in node.expressions))

    def is_null(self, node: exp.Is) -> Expr:
        self.check_args(node, frozenset({"this", "expression", "negate"}))
        if not isinstance(node.expression, exp.Null):
            raise self.refuse(node, "IS other than IS [NOT] NULL")
        expr = IsNull(self.operand(node.this))
        return Not(expr) if node.args.get("negate") else expr

    def between(self, node: exp.Between) -> Expr:
        self.check_args(node, frozenset({"this", "low", "high"}))
        low, high = node.args["low"], node.args["high"]
        return Between(self.operand(node.this), self.operand(low), self.operand(high))

    def like(self, node: exp.Expr, escape: str = "\\") -> Expr:
        self.check_args(node, frozenset({"this", "expression", "negate"}))
        pattern = self.string(node.expression, "a LIKE pattern other than a string literal")
        try:
            canonical = _canonical_like_pattern(pattern, escape)
        except PropertyError as error:
            raise PropertyError(f"property expression {self.text!r}: {error}") from None
        case_insensitive = isinstance(node, exp.ILike)
        expr = Like(self.operand(node.this), canonical, case_insensitive=case_insensitive)
        return Not(expr) if node.args.get("negate") else expr

    def escape(self, node: exp.Escape) -> Expr:
        self.check_args(node, _BINARY)
        if not isinstance(node.this, (exp.Like, exp.ILike)):
            raise self.refuse(node, "ESCAPE outside LIKE")
        escape = self.string(node.expression, "an ESCAPE other than a string literal")
        if len(escape) > 1:
            raise self.refuse(node, "an ESCAPE of more than one character")
        return self.like(node.this, escape)

    # -- operands -------------------------------------------------------------
    def operand(self, node: exp.Expr) -> Operand:
        """Convert a node that must be a column or a literal."""
        while isinstance(node, exp.Paren):
            self.check_args(node, _THIS)
            node = node.this
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, (exp.Literal, exp.Boolean, exp.Null, exp.Neg)):
            return self.literal(node)
        if isinstance(node, _condition_kinds()):
            raise self.refuse(node, "a condition in place of a value")
        raise self.refuse(node)

    def column(self, node: exp.Column) -> Column:
        self.check_args(node, frozenset({"this", "table"}))
        table = node.args.get("table")
        own_table = isinstance(table, exp.Identifier) and table.name.lower() == _TABLE_NAME
        if table is not None and not own_table:
            raise self.refuse(node, f"a column of a table other than {_TABLE_NAME}")
        ident = node.this
        if not isinstance(ident, exp.Identifier):
            raise self.refuse(node)
        self.check_args(ident, frozenset({"this", "quoted"}))
        name = ident.name if ident.args.get("quoted") else ident.name.lower()
        if not name:
            raise self.refuse(node, "an empty column name")
        return Column(name)

    def literal(self, node: exp.Expr) -> Literal:
        """Convert a node that must be a literal (string, number, boolean, NULL)."""
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Null):
            return Literal(None)
        if isinstance(node, exp.Boolean):
            return Literal(bool(node.this))
        if isinstance(node, exp.Neg):
            self.check_args(node, _THIS)
            inner = self.literal(node.this)
            if not is_number(inner.value) or isinstance(inner.value, bool):
                raise self.refuse(node, "unary minus on a non-number")
            return Literal(-inner.value)  # type: ignore[operator]
        if type(node) is exp.Literal:
            self.check_args(node, frozenset({"this", "is_string"}))
            if node.is_string:
                return Literal(node.this)
            return Literal(self.number(node))
        if isinstance(node, exp.Column):
            raise self.refuse(node, "a column in place of a literal")
        raise self.refuse(node)

    def number(self, node: exp.Literal) -> int | float:
        number = _parse_number(node.this) if isinstance(node.this, str) else None
        if number is None:
            raise self.refuse(node, "this number syntax")
        return number

    def string(self, node: exp.Expr, what: str) -> str:
        if type(node) is exp.Literal and node.is_string:
            self.check_args(node, frozenset({"this", "is_string"}))
            return node.this
        raise self.refuse(node, what)


_THIS = frozenset({"this"})
_BINARY = frozenset({"this", "expression"})

@functools.cache
def _condition_builders() -> dict[type[exp.Expr], Callable[[_Converter, Any], Expr]]:
    return {
        exp.In: _Converter.in_list,
        exp.Is: _Converter.is_null,
        exp.Between: _Converter.between,
        exp.Like: _Converter.like,
        exp.ILike: _Converter.like,
        exp.Escape: _Converter.escape,
    }


@functools.cache
def _condition_kinds() -> tuple[type[exp.Expr], ...]:
    return (*_comparisons(), *_condition_builders(), exp.And, exp.Or, exp.Not)


# =============================================================================
# Parsing
# =============================================================================
def _tokenize(text: str) -> list[sqlglot_tokens.Token]:
    """sqlglot tokens of ``text``; refuses comments and statement separators."""
    dialect = sqlglot.Dialect.get_or_raise(_DIALECT)
    try:
        tokens = dialect.tokenize(text)
    except sqlglot_errors.TokenError:
        raise PropertyError(
            f"property expression {text!r}: cannot be tokenized (unbalanced quote?)"
        ) from None
    position = 0
    for token in tokens:
        gap = text[position : token.start]
        if gap.strip() or token.comments:
            raise PropertyError(f"property expression {text!r}: comments are not allowed")
        if token.token_type == sqlglot_tokens.TokenType.SEMICOLON:
            raise PropertyError(
                f"property expression {text!r}: ';' (several statements) is not allowed"
            )
        position = max(position, token.end + 1)
    if text[position:].strip():
        raise PropertyError(f"property expression {text!r}: comments are not allowed")
    return tokens


def _syntax_error(text: str, error: sqlglot_errors.ParseError) -> PropertyError:
    details = error.errors[0] if error.errors else {}
    description = details.get("description") or "invalid syntax"
    description = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", description)
    where = f" near column {details['col']}" if details.get("col") else ""
    return PropertyError(f"property expression {text!r}: syntax error{where}: {description}")


def _parse_tree(text: str) -> exp.Expr:
    """The sqlglot tree of one condition."""
    tokens = _tokenize(text)
    parser = sqlglot.Dialect.get_or_raise(_DIALECT).parser()
    try:
        trees = parser.parse_into(exp.Condition, tokens, text)
    except sqlglot_errors.ParseError as error:
        cause = error.__cause__ if isinstance(error.__cause__, sqlglot_errors.ParseError) else error
        raise _syntax_error(text, cause) from None
    if len(trees) != 1 or trees[0] is None:
        raise PropertyError(f"property expression {text!r}: exactly one condition is expected")
    return trees[0]


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Expr:
    try:
        tree = _parse_tree(text)
        return _Converter(text).condition(tree)
    except PropertyError:
        raise
    except RecursionError:
        raise PropertyError(f"property expression {text[:80]!r}...: nested too deeply") from None
    except Exception as error:  # noqa: BLE001 - sqlglot must not leak other errors
        raise PropertyError(f"property expression {text!r}: cannot be parsed ({error})") from error


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def parse_property(text: str | None) -> Expr | None:
    """Parse an OAR property expression (SQL ``WHERE`` text) into an :class:`Expr`.

    ``None``, ``""`` or blanks mean "no constraint" and give ``None``.  Raises
    :class:`PropertyError` (quoting the text and saying what was refused) for
    anything outside the grammar of this module.  Results are cached.
    """
    if _is_blank(text):
        return None
    if not isinstance(text, str):
        raise PropertyError(f"property expression must be a string, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise PropertyError(
            f"property expression of {len(text)} characters is too long (max {MAX_LENGTH})"
        )
    if "\x00" in text:
        raise PropertyError(f"property expression {text!r}: NUL characters are not allowed")
    return _parse_cached(text)


def combine(
    job_properties: str | None,
    group_property: str | None,
    *,
    oar_precedence: bool = True,
) -> Expr | None:
    """The filter of a resource group: the job's properties AND the group's property.

    Either part may be empty (then the other is the result; both empty gives
    None).  OAR3 glues the two *texts* with ``" AND "`` and no parentheses, so
    ``a OR b`` + ``c`` means ``a OR (b AND c)``; with ``oar_precedence`` (the
    default) the result reproduces that, otherwise it is ``(a OR b) AND c``.
    Each part must parse on its own.
    """
    job = parse_property(job_properties)
    group = parse_property(group_property)
    if job is None or group is None:
        return job if group is None else group
    if not oar_precedence:
        return And(_conjuncts(job) + _conjuncts(group))
    return parse_property(f"{job_properties} AND {group_property}")


def _conjuncts(expr: Expr) -> tuple[Expr, ...]:
    return expr.operands if isinstance(expr, And) else (expr,)


# =============================================================================
# Selecting resources
# =============================================================================
class ResourceRow(Mapping[str, Any]):
    """A :class:`~oarsched.model.platform.Resource` seen as a row of ``resources``."""

    __slots__ = ("resource",)

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def __getitem__(self, column: str) -> Any:
        if column in CORE_COLUMNS or column in self.resource.properties:
            return self.resource.value(column)
        raise KeyError(column)

    def __iter__(self) -> Iterator[str]:
        yield from sorted(CORE_COLUMNS)
        yield from (k for k in self.resource.properties if k not in CORE_COLUMNS)

    def __len__(self) -> int:
        return len(CORE_COLUMNS) + sum(1 for k in self.resource.properties if k not in CORE_COLUMNS)


def _check_known_columns(expr: Expr, resources: Sequence[Resource]) -> None:
    """Refuse columns no resource has (the database would refuse them too)."""
    known = set(CORE_COLUMNS)
    for resource in resources:
        known.update(resource.properties)
    unknown = sorted(expr.columns() - known)
    if unknown:
        raise PropertyError(
            f"property expression {str(expr)!r}: unknown column {unknown[0]!r} "
            f"(resources have: {', '.join(sorted(known))})"
        )


def select_resources(
    expr: Expr | None, resources: Sequence[Resource], *, strict: bool = True
) -> list[int]:
    """Positions in ``resources`` of the resources the expression keeps.

    ``None`` keeps them all.  With ``strict`` (the default), a column that is
    neither a core column nor a property of any resource raises
    :class:`PropertyError`, as the database would; otherwise it reads as NULL.
    """
    if expr is None:
        return list(range(len(resources)))
    if strict and resources:
        _check_known_columns(expr, resources)
    return [i for i, resource in enumerate(resources) if expr.matches(ResourceRow(resource))]
