"""Property expressions compiled to SQLAlchemy conditions over OAR's ``resources`` table.

The model parses a job's property text into an AST
(:mod:`oarsched.model.properties`) and evaluates it in memory; the adapter
compiles the same AST here, with every value a bound parameter and the same
value semantics (a string literal meeting a number column adapts to the
number, a number meeting a text column is compared as text).
"""
from __future__ import annotations

from functools import singledispatch
from typing import Any

import sqlalchemy as sa

from oarsched.errors import PropertyError
from oarsched.model.properties import (
    ID_COLUMNS,
    OPERATORS,
    And,
    Between,
    Column,
    Comparison,
    Constant,
    Expr,
    InList,
    IsNull,
    Like,
    Literal,
    Not,
    Operand,
    Or,
    as_text,
    is_number,
    number_or_error,
)

SqlColumn = sa.ColumnElement[Any]

_INT64_MAX = 2**63 - 1


def to_sqlalchemy(expr: Expr, table: sa.Table) -> sa.ColumnElement[bool]:
    """A SQLAlchemy condition over ``table``; every value is a bound parameter.

    Raises :class:`PropertyError` for a column ``table`` lacks (the message
    lists the table's columns) or a value that cannot meet its column.
    """
    try:
        return _sql(expr, table)
    except PropertyError as error:
        raise PropertyError(f"property expression {str(expr)!r}: {error}") from None


# -- operands ------------------------------------------------------------------------------------

def _resolve_column(table: sa.Table, name: str) -> SqlColumn:
    """The column ``name`` of ``table`` (``id`` and ``resource_id`` are one column)."""
    candidates = ID_COLUMNS if name in ID_COLUMNS else (name,)
    for candidate in candidates:
        if candidate in table.c:
            return table.c[candidate]
    known = ", ".join(sorted(table.c.keys()))
    raise PropertyError(f"unknown column {name!r} (table {table.name} has: {known})")


def _sql_kind(column: SqlColumn) -> str:
    """``number``, ``text`` or ``other``: how a column's literals are coerced."""
    if isinstance(column.type, (sa.Integer, sa.Numeric, sa.Float)):  # Float is no Numeric in SQLAlchemy 2.1
        return "number"
    if isinstance(column.type, sa.String):
        return "text"
    return "other"


def _bound_literal(literal: Literal, against: SqlColumn | None) -> SqlColumn:
    """A bound parameter for ``literal``, coerced to the type of the column it meets."""
    value = literal.value
    if value is None:
        return sa.literal(None, type_=against.type if against is not None else sa.types.NullType())
    kind = _sql_kind(against) if against is not None else "other"
    if kind == "number" and isinstance(value, bool):  # PostgreSQL has no integer = boolean: 1 and 0 on both
        value = int(value)
    elif kind == "number" and isinstance(value, str):
        value = number_or_error(value, f"column {against.key!r}")  # type: ignore[union-attr]
    elif kind == "text" and is_number(value):
        value = as_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64_MAX:
        value = float(value)
    return sa.literal(value)


def _operand(operand: Operand, table: sa.Table, against: SqlColumn | None) -> SqlColumn:
    """The SQLAlchemy element of an operand, a literal being coerced to ``against``."""
    if isinstance(operand, Column):
        return _resolve_column(table, operand.name)
    assert isinstance(operand, Literal)
    return _bound_literal(operand, against)


def _pair(left: Operand, right: Operand, table: sa.Table) -> tuple[SqlColumn, SqlColumn]:
    """Both operands as SQLAlchemy elements, literals coerced to the column they meet."""
    left_col = _operand(left, table, None) if isinstance(left, Column) else None
    right_col = _operand(right, table, None) if isinstance(right, Column) else None
    if left_col is not None and right_col is not None and \
            {_sql_kind(left_col), _sql_kind(right_col)} == {"number", "text"}:
        # PostgreSQL has no operator between them and SQLite's affinity rules are its own: refused on both
        raise PropertyError(f"cannot compare the {_sql_kind(left_col)} column {left_col.key!r} with the "
                            f"{_sql_kind(right_col)} column {right_col.key!r}")
    return (
        left_col if left_col is not None else _operand(left, table, right_col),
        right_col if right_col is not None else _operand(right, table, left_col),
    )


def _constant(value: bool | None) -> sa.ColumnElement[bool]:
    """TRUE, FALSE or a boolean NULL."""
    if value is None:
        return sa.literal(None, type_=sa.Boolean())
    return sa.true() if value else sa.false()


# -- conditions ----------------------------------------------------------------------------------

@singledispatch
def _sql(expr: Expr, table: sa.Table) -> sa.ColumnElement[bool]:
    raise TypeError(f"no SQL form for {type(expr).__name__}")


@_sql.register
def _(expr: Constant, table: sa.Table) -> sa.ColumnElement[bool]:
    return _constant(expr.value)


@_sql.register
def _(expr: And, table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(*(_sql(o, table) for o in expr.operands))


@_sql.register
def _(expr: Or, table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.or_(*(_sql(o, table) for o in expr.operands))


@_sql.register
def _(expr: Not, table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.not_(_sql(expr.operand, table))


@_sql.register
def _(expr: Comparison, table: sa.Table) -> sa.ColumnElement[bool]:
    if expr.is_constant():
        return _constant(expr.evaluate({}))
    left, right = _pair(expr.left, expr.right, table)
    return OPERATORS[expr.op](left, right)


@_sql.register
def _(expr: InList, table: sa.Table) -> sa.ColumnElement[bool]:
    if expr.is_constant():
        return _constant(expr.evaluate({}))
    column = _operand(expr.operand, table, None)
    return column.in_([_bound_literal(v, column) for v in expr.values])


@_sql.register
def _(expr: IsNull, table: sa.Table) -> sa.ColumnElement[bool]:
    if expr.is_constant():
        return _constant(expr.evaluate({}))
    return _operand(expr.operand, table, None).is_(None)


@_sql.register
def _(expr: Between, table: sa.Table) -> sa.ColumnElement[bool]:
    return _sql(expr.halves(), table)


@_sql.register
def _(expr: Like, table: sa.Table) -> sa.ColumnElement[bool]:
    if expr.is_constant():
        return _constant(expr.evaluate({}))
    column = _operand(expr.operand, table, None)
    if _sql_kind(column) != "text":
        column = sa.cast(column, sa.String)
    escape = "\\" if "\\" in expr.pattern else None
    method = column.ilike if expr.case_insensitive else column.like
    return method(sa.literal(expr.pattern), escape=escape)
