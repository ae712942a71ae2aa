"""Expectations: a named SQL boolean predicate over a model's output rows, and what to do with failures.

A row *passes* a rule only when the predicate is TRUE; FALSE and NULL both fail it (write
``col IS NULL OR ...`` to let NULLs through). Actions, from mildest:

- ``warn``: count the failures, keep the rows.
- ``drop``: leave the row out of the table (counted as dropped, with the rule's name in the run's results).
- ``quarantine``: write the row to ``quarantine.<layer>_<model>`` with the names of every rule it failed.
- ``fail``: fail the model; nothing of it is committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lakeforge.sql import DUCKDB, ident, literal

Action = Literal["warn", "drop", "quarantine", "fail"]
ACTIONS: tuple[Action, ...] = ("warn", "drop", "quarantine", "fail")
_RULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InRange(_Param):
    column: str
    min: float | None = None
    max: float | None = None


class InSet(_Param):
    column: str
    values: list[str | int | float | bool]


class Matches(_Param):
    column: str
    pattern: str


class Freshness(_Param):
    column: str
    max_age_hours: float = Field(gt=0)


class RowCount(_Param):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class References(_Param):
    column: str
    table: str  # layer.table
    key: str


BUILT_INS = ("not_null", "in_range", "in_set", "matches", "unique", "freshness", "row_count", "references")


class Expectation(BaseModel):
    """A rule: ``expr`` (a SQL predicate in the project's dialect) or one built-in type, compiled to SQL.

    Built-ins are row predicates evaluated in the model's pass; ``unique``, ``row_count`` and ``freshness``
    look at the whole batch through window functions (every row of the batch passes or fails together for the
    last two); ``references`` reads the referenced table, which becomes an upstream of the model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    expr: str | None = Field(default=None, description="SQL boolean predicate, in the project's dialect")
    not_null: str | list[str] | None = None
    in_range: InRange | None = None
    in_set: InSet | None = None
    matches: Matches | None = None
    unique: str | list[str] | None = None
    freshness: Freshness | None = None
    row_count: RowCount | None = None
    references: References | None = None
    action: Action = "warn"
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE.match(value):
            raise ValueError(f"rule name {value!r}: use letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        kinds = [k for k in ("expr", *BUILT_INS) if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"expectation {self.name!r} needs exactly one of expr, {', '.join(BUILT_INS)} "
                             f"(found {', '.join(kinds) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("expr", *BUILT_INS) if getattr(self, k) is not None)

    def tables(self) -> list[str]:
        return [self.references.table] if self.references else []

    def describe(self) -> str:
        return self.expr if self.expr is not None else f"{self.kind}: {getattr(self, self.kind)}"

    def sql(self, dialect: str) -> str:
        """The predicate of a built-in type in an engine's dialect (written for DuckDB, transpiled by sqlglot;
        Spark gets its own form where the meaning would change or Spark refuses it: a full regex match, an age
        in seconds, and a reference check without an IN-subquery, which Spark allows only in filters)."""
        if dialect == "duckdb":
            return self.duckdb_sql()
        if self.matches is not None:
            c = ident(self.matches.column, dialect=dialect)
            anchored = literal(f"^(?:{self.matches.pattern})$", dialect=dialect)
            return f"{c} IS NULL OR CAST({c} AS STRING) RLIKE {anchored}"
        if self.freshness is not None:  # Spark's intervals take whole hours: count in seconds
            seconds = round(self.freshness.max_age_hours * 3600)
            column = ident(self.freshness.column, dialect=dialect)
            return f"max({column}) OVER () >= current_timestamp() - INTERVAL '{seconds}' SECOND"
        if self.references is not None:
            ref = self.references
            column, key = ident(ref.column, dialect=dialect), ident(ref.key, dialect=dialect)
            return f"{column} IS NULL OR array_contains((SELECT collect_set({key}) FROM {ref.table}), {column})"
        import sqlglot

        return sqlglot.transpile(self.duckdb_sql(), read="duckdb", write=dialect)[0]

    def duckdb_sql(self) -> str:
        """The predicate of a built-in type, as DuckDB SQL (``expr`` is transpiled by the model instead)."""
        if self.not_null is not None:
            cols = [self.not_null] if isinstance(self.not_null, str) else self.not_null
            return " AND ".join(f"{DUCKDB.ident(c)} IS NOT NULL" for c in cols)
        if self.in_range is not None:
            r, c = self.in_range, DUCKDB.ident(self.in_range.column)
            bounds = [f"{c} >= {r.min}" if r.min is not None else "", f"{c} <= {r.max}" if r.max is not None else ""]
            return f"{c} IS NULL OR ({' AND '.join(b for b in bounds if b) or 'true'})"
        if self.in_set is not None:
            values = ", ".join(DUCKDB.literal(v) for v in self.in_set.values)
            return f"{DUCKDB.ident(self.in_set.column)} IS NULL OR {DUCKDB.ident(self.in_set.column)} IN ({values})"
        if self.matches is not None:
            c = DUCKDB.ident(self.matches.column)
            return f"{c} IS NULL OR regexp_full_match(CAST({c} AS VARCHAR), {DUCKDB.literal(self.matches.pattern)})"
        if self.unique is not None:
            cols = [self.unique] if isinstance(self.unique, str) else self.unique
            return f"count(*) OVER (PARTITION BY {', '.join(DUCKDB.ident(c) for c in cols)}) = 1"
        if self.freshness is not None:
            c = DUCKDB.ident(self.freshness.column)
            return (f"max({c}) OVER () >= CAST(now() AS TIMESTAMPTZ) - "
                    f"INTERVAL '{self.freshness.max_age_hours} hours'")
        if self.row_count is not None:
            rc = self.row_count
            bounds = [f"count(*) OVER () >= {rc.min}" if rc.min is not None else "",
                      f"count(*) OVER () <= {rc.max}" if rc.max is not None else ""]
            return " AND ".join(b for b in bounds if b) or "true"
        if self.references is not None:
            ref = self.references
            return (f"{DUCKDB.ident(ref.column)} IS NULL OR {DUCKDB.ident(ref.column)} IN "
                    f"(SELECT {DUCKDB.ident(ref.key)} FROM {ref.table})")
        raise ValueError(f"expectation {self.name!r} has no built-in type")


@dataclass
class RuleResult:
    """Outcome of one rule over one run of one model."""

    model: str
    rule: str
    action: str
    passed: int
    failed: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "rule": self.rule, "action": self.action,
                "passed": self.passed, "failed": self.failed}
