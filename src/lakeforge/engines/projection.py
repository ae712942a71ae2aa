"""The typed/rescue projection of ingestion: one sqlglot tree, rendered for DuckDB, Spark and the Databricks
pipeline export (issue 21).

Raw columns (text from JSON lines and CSV, Parquet's own types) become the bronze columns of a :class:`ReadPlan`:

- a typed column absent from the files is ``CAST(NULL AS type)``;
- a column already of its type (text that stays text, a column the reader typed) is kept as it is;
- a timestamp read as text, with the source's ``timestamp_format``, is parsed with that format (DuckDB's
  ``TRY_STRPTIME``, Spark's ``TRY_TO_TIMESTAMP`` with the pattern :func:`java_pattern` makes); anything else is
  ``TRY_CAST``;
- a value present whose typed value is NULL goes to ``_rescued_data``, a JSON object ``{column: original text}``,
  and so does each ``plan.rescue`` column, whole; rescued and ignored columns are left out;
- ``_rescued_data`` is NULL when nothing of the row was rescued, and absent when the plan types, rescues and
  ignores nothing.

Names go into the tree as quoted identifiers and string literals (:mod:`lakeforge.sql`), so sqlglot quotes them
for each dialect. :func:`render` writes a node in a dialect, the timestamp parse with lakeforge's own pattern
converter (sqlglot's would translate the format by itself).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from lakeforge.engines.base import ReadPlan
from lakeforge.errors import ConfigError
from lakeforge.sql import ident_node, literal_node

RESCUED = "_rescued_data"
_TEXT = exp.DataType.build("string")
_TIMESTAMPS = (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ,
               exp.DataType.Type.TIMESTAMPNTZ)
_ENTRY = "__lf_entry"  # the lambda's variable (no column is in its scope)

# strptime directives (DuckDB, Python) -> Java DateTimeFormatter pattern letters (Spark)
STRPTIME = {"%Y": "yyyy", "%y": "yy", "%m": "MM", "%d": "dd", "%H": "HH", "%I": "hh", "%M": "mm", "%S": "ss",
            "%f": "SSSSSS", "%p": "a", "%b": "MMM", "%B": "MMMM", "%a": "EEE", "%A": "EEEE", "%j": "DDD",
            "%z": "XX", "%Z": "z", "%T": "HH:mm:ss", "%F": "yyyy-MM-dd"}
# literal text a Java pattern reads as a letter or as syntax (optional sections, reserved) is quoted
_JAVA_SYNTAX = re.compile(r"[^\W\d_]|['\[\]{}#]")


def bronze_type(type_name: str) -> exp.DataType:
    """A type as written in the project (Databricks names: ``bigint``, ``timestamp``, ``decimal(10,2)``)."""
    return exp.DataType.build(type_name, dialect="databricks")


def spark_type(type_name: str) -> str:
    """A project type as Spark SQL writes it (``varchar`` is Spark's ``STRING``)."""
    built = bronze_type(type_name)
    return "STRING" if _is_text(built) else built.sql(dialect="spark")


def raw_type(type_name: str, *, dialect: str) -> exp.DataType | None:
    """The type a reader gave a column (as ``dialect`` names it): None for text; a type sqlglot cannot read is
    kept as unknown (cast like any other)."""
    try:
        built = exp.DataType.build(type_name, dialect=dialect)
    except Exception:  # sqlglot's ParseError, or a ValueError for a name it does not know
        return exp.DataType(this=exp.DataType.Type.UNKNOWN)
    return None if _is_text(built) else built


def _is_text(data_type: exp.DataType) -> bool:
    return data_type.is_type(*exp.DataType.TEXT_TYPES)


@dataclass(frozen=True)
class Projection:
    """The bronze columns of a plan, as sqlglot expressions named as their columns, and ``_rescued_data``.

    ``planned`` is False for a plan that types, rescues and ignores nothing: the raw columns pass as they are,
    without ``_rescued_data``."""

    columns: tuple[exp.Expr, ...]
    rescued: exp.Expr
    planned: bool

    def expressions(self, *, with_rescued: bool | None = None) -> list[exp.Expr]:
        """The select list; ``with_rescued`` overrides whether ``_rescued_data`` is in it (default: if planned)."""
        keep = self.planned if with_rescued is None else with_rescued
        return [*self.columns, *([exp.alias_(self.rescued, ident_node(RESCUED))] if keep else [])]

    def sql(self, *, dialect: str, with_rescued: bool | None = None) -> list[str]:
        """The select list written in ``dialect`` (``duckdb``, ``spark``, ``databricks``)."""
        return [render(e, dialect=dialect) for e in self.expressions(with_rescued=with_rescued)]

    def select(self, source: exp.Expr, *, with_rescued: bool | None = None) -> exp.Select:
        """``SELECT <the projection> FROM source``, as a tree (:func:`render` it)."""
        return exp.select(*self.expressions(with_rescued=with_rescued)).from_(source)


def projection(columns: Mapping[str, exp.DataType | None], plan: ReadPlan, *,
               timestamp_format: str | None = None) -> Projection:
    """The projection of ``plan`` over the raw columns present, in their order, each with the type its reader gave
    it (None: read as text; see :func:`raw_type`)."""
    if not plan.types and not plan.rescue and not plan.ignore:
        return Projection(columns=tuple(_column(c) for c in columns), rescued=_null(_TEXT), planned=False)
    left_out = set(plan.rescue) | set(plan.ignore)
    typed: dict[str, exp.Expr] = {}
    entries: list[tuple[str, exp.Expr]] = []  # (column, the condition its text is rescued on)
    for column, type_name in plan.types.items():
        if column not in columns:
            continue
        target = bronze_type(type_name)
        value = _typed_value(_column(column), raw=columns[column], target=target, timestamp_format=timestamp_format)
        if value is not None:
            typed[column] = value
            entries.append((column, exp.and_(_present(_column(column)), exp.Is(this=value, expression=exp.Null()))))
    entries += [(c, _present(_column(c))) for c in plan.rescue if c in columns and c not in plan.types]
    selected = [exp.alias_(typed.get(c, _column(c)), ident_node(c)) for c in columns if c not in left_out]
    added = [exp.alias_(_null(bronze_type(t)), ident_node(c)) for c, t in plan.types.items() if c not in columns]
    return Projection(columns=(*selected, *added), rescued=_rescued(entries), planned=True)


def _typed_value(column: exp.Expr, *, raw: exp.DataType | None, target: exp.DataType,
                 timestamp_format: str | None) -> exp.Expr | None:
    """The typed value of a present column; None when it is kept as it is (already of its type)."""
    if (raw is None and _is_text(target)) or (raw is not None and raw == target):
        return None
    if raw is None and timestamp_format and target.is_type(*_TIMESTAMPS):
        parsed = exp.StrToTime(this=column, format=exp.Literal.string(timestamp_format), safe=True)
        return exp.TryCast(this=parsed, to=target.copy(), safe=True)
    return exp.TryCast(this=column, to=target.copy(), safe=True)


def _rescued(entries: list[tuple[str, exp.Expr]]) -> exp.Expr:
    """``{column: text}`` of the entries whose condition holds, as JSON; NULL when none holds."""
    if not entries:
        return _null(_TEXT)
    pairs = [exp.If(this=condition, true=exp.Struct(expressions=[
        exp.PropertyEQ(this=exp.to_identifier("k"), expression=literal_node(column)),
        exp.PropertyEQ(this=exp.to_identifier("v"), expression=exp.cast(_column(column), _TEXT.copy())),
    ])) for column, condition in entries]
    found = exp.ArrayFilter(this=exp.Array(expressions=[exp.Case(ifs=[pair]) for pair in pairs]),
                            expression=exp.Lambda(this=_present(exp.to_identifier(_ENTRY)),
                                                  expressions=[exp.to_identifier(_ENTRY)], colon=True))
    json = exp.JSONFormat(this=exp.MapFromEntries(this=found))
    return exp.Case(ifs=[exp.If(this=exp.or_(*[condition for _, condition in entries]), true=json)])


def _column(name: str) -> exp.Column:
    return exp.Column(this=ident_node(name))


def _present(value: exp.Expr) -> exp.Expr:
    return exp.not_(exp.Is(this=value, expression=exp.Null()))


def _null(data_type: exp.DataType) -> exp.Expr:
    return exp.Cast(this=exp.Null(), to=data_type.copy())


def render(node: exp.Expr, *, dialect: str) -> str:
    """``node`` in ``dialect``, its timestamp parses written with lakeforge's pattern converter: DuckDB's
    ``TRY_STRPTIME`` takes the strptime format itself, Spark's ``TRY_TO_TIMESTAMP`` its Java pattern."""

    def parse(found: exp.Expr) -> exp.Expr:
        if not isinstance(found, exp.StrToTime):
            return found
        strptime = found.args["format"].name
        if dialect == "duckdb":
            return exp.Anonymous(this="TRY_STRPTIME", expressions=[found.this, exp.Literal.string(strptime)])
        if dialect in ("spark", "databricks"):
            pattern = exp.Literal.string(java_pattern(strptime))
            return exp.Anonymous(this="TRY_TO_TIMESTAMP", expressions=[found.this, pattern])
        return found

    return node.copy().transform(parse).sql(dialect=dialect)


def java_pattern(strptime: str) -> str:
    """A strptime ``timestamp_format`` as the Java DateTimeFormatter pattern Spark parses with: directives become
    pattern letters; literal text stays as it is unless a pattern would read it (letters, ``'[]{}#``), then it is
    quoted the Java way (``''`` for a quote; pattern syntax, not SQL, so not :mod:`lakeforge.sql`)."""
    out, text = [], ""
    for part in re.split(r"(%.?)", strptime, flags=re.DOTALL):
        if part == "%%":
            text += "%"
        elif part.startswith("%"):
            if part not in STRPTIME:
                raise ConfigError(f"timestamp_format {strptime!r}: {part or '%'} has no Spark equivalent",
                                  hint=f"use the directives {' '.join(sorted([*STRPTIME, '%%']))} and literal "
                                       "text, or drop timestamp_format")
            out.append(_java_text(text))
            out.append(STRPTIME[part])
            text = ""
        else:
            text += part
    return "".join([*out, _java_text(text)])


def _java_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'" if _JAVA_SYNTAX.search(text) else text
