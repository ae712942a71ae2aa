"""Import a Great Expectations (GX 1.x) expectation suite as lakeforge expectations.

The input is the suite's JSON (what ``ExpectationSuite.to_json_dict()`` writes, or GX 0.x JSON with
``expectation_type`` and ``expectation_suite_name``); nothing here imports ``great_expectations``.

Every GX expectation becomes one lakeforge rule (a built-in type where one means exactly the same thing, else a
SQL ``expr`` in the project's dialect), or an entry in ``unsupported`` with the reason. Nothing is dropped
silently: settings that only change GX's verdict (``mostly``) are listed in ``notes``.

Null semantics follow GX, so a rule's failed-row count equals GX's ``unexpected_count``: GX's column-map
expectations leave out missing values (a null neither passes nor fails, except ``not_null``/``be_null``), while a
lakeforge row fails unless the predicate is TRUE, so the rules read ``col IS NULL OR (...)``. Pair and multi-column
expectations honour ``ignore_row_if`` the same way. Table-level expectations (row count, column aggregates) make
every row of the batch pass or fail together, like the built-in ``row_count``; compare their verdict, not counts.
See docs/data-quality.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import yaml
from sqlglot import exp

from lakeforge.errors import ConfigError
from lakeforge.quality.expectations import ACTIONS, Expectation
from lakeforge.sql import NoLiteral, literal_node

# kwargs that change nothing about which rows fail
_HARMLESS = frozenset({"result_format", "include_config", "catch_exceptions", "batch_id", "meta"})
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]+")


@dataclass
class ImportResult:
    """What ``import_suite`` made of a suite.

    ``expectations``: the lakeforge rules, in suite order. ``unsupported``: one dict per GX expectation that has
    no rule (``index``, ``id``, ``type``, ``kwargs``, ``reason``). ``notes``: settings that were mapped but whose
    effect differs (e.g. ``mostly``). ``origins``: rule name -> the GX expectation it came from (``index``, ``id``,
    ``type``, ``scope``: ``row`` when failed counts equal GX's ``unexpected_count``, ``table`` when only the
    verdict compares).
    """

    suite: str | None
    expectations: list[Expectation] = field(default_factory=list)
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    origins: dict[str, dict[str, Any]] = field(default_factory=dict)

    def header(self) -> str:
        """The ``-- expectations:`` lines of a model header (YAML behind ``-- ``), ready to paste above a SELECT."""
        return "-- expectations:\n" + "".join(f"--   - {_flow(e.model_dump(exclude_none=True))}\n"
                                               for e in self.expectations)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "expectations": [e.model_dump(exclude_none=True) for e in self.expectations],
                "unsupported": self.unsupported, "notes": self.notes, "origins": self.origins}


def merge_into_header(text: str, result: ImportResult) -> str:
    """A model file's text with the imported rules appended to its header's ``expectations``.

    The header (the leading ``--`` lines) is written anew from its YAML, one ``-- key: value`` line per key and
    one line per rule, so comments inside it are not kept; the SQL below it is left byte for byte.
    """
    lines = text.splitlines(keepends=True)
    count = 0  # header lines: up to the last `--` line before the SQL (blank lines after it stay with the SQL)
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("--"):
            count = number
        elif stripped:
            break
    header = yaml.safe_load("\n".join(ln.strip()[2:].removeprefix(" ") for ln in lines[:count])) or {}
    if not isinstance(header, dict):
        raise ValueError("the model header is not a YAML mapping")
    rules = list(header.pop("expectations", None) or [])
    names = {str(r.get("name")) for r in rules if isinstance(r, dict)}
    clash = sorted(names & {e.name for e in result.expectations})
    if clash:
        raise ValueError(f"rules already in the model: {', '.join(clash)} (import with existing= those names)")
    out = [f"-- {key}: {_flow(value)}\n" for key, value in header.items()]
    out.append("-- expectations:\n")
    out += [f"--   - {_flow(rule)}\n" for rule in rules]
    out += [f"--   - {_flow(e.model_dump(exclude_none=True))}\n" for e in result.expectations]
    return "".join(out) + "".join(lines[count:])


def _flow(value: Any) -> str:
    """One line of YAML flow style (JSON, which YAML reads too, when PyYAML would break the line)."""
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=True, width=1_000_000, allow_unicode=True)
    text = text.removesuffix("\n").removesuffix("\n...").strip()
    return json.dumps(value, ensure_ascii=False) if "\n" in text else text


def import_into(suite: Path, *, action: str, dialect: str, model_file: Path | None = None,
                existing: Collection[str] = ()) -> ImportResult:
    """:func:`import_suite` of the suite file, its rules appended to ``model_file``'s header when given
    (``existing``: that model's rule names); an unreadable suite or model file is a :class:`ConfigError`."""
    try:
        result = import_suite(suite, action=action, dialect=dialect, existing=existing)
        if model_file is not None:
            model_file.write_text(merge_into_header(model_file.read_text(encoding="utf-8"), result),
                                  encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot import {suite}: {exc}",
                          hint="pass a suite's JSON (GX: suite.to_json_dict()); see docs/data-quality.md") from None
    return result


class _Unsupported(Exception):
    """This expectation (or one of its settings) has no faithful lakeforge rule."""


def import_suite(suite: dict[str, Any] | str | Path, *, action: str = "warn", dialect: str = "databricks",
                 existing: Collection[str] = ()) -> ImportResult:
    """Map a GX expectation suite onto lakeforge expectations.

    ``suite``: the JSON as a dict, as text, or a path to a ``.json`` file. ``action``: the action of every rule
    (``warn``, ``drop``, ``quarantine``, ``fail``). ``dialect``: the SQL dialect ``expr`` rules are written in,
    the project's ``dialect`` (``databricks`` by default). ``existing``: rule names already in use (the model's
    own rules); imported names avoid them.
    """
    if action not in ACTIONS:
        raise ValueError(f"action {action!r}: use one of {', '.join(ACTIONS)}")
    data = _load(suite)
    items = data.get("expectations")
    if not isinstance(items, list):
        raise ValueError("not a GX expectation suite: no `expectations` list")
    result = ImportResult(suite=data.get("name") or data.get("expectation_suite_name"))
    taken: set[str] = set(existing)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            result.unsupported.append({"index": index, "id": None, "type": None, "kwargs": None,
                                       "reason": f"not an expectation object: {item!r}"})
            continue
        type_ = str(item.get("type") or item.get("expectation_type") or "")
        raw_kwargs = item.get("kwargs")
        kwargs: dict[str, Any] = dict(raw_kwargs) if isinstance(raw_kwargs, Mapping) else {}
        origin = {"index": index, "id": item.get("id"), "type": type_}
        try:
            if not isinstance(raw_kwargs, Mapping | None):
                raise _Unsupported(f"kwargs is not an object: {raw_kwargs!r}")
            mapping = _MAPPINGS.get(type_)
            if mapping is None:
                raise _Unsupported(_UNSUPPORTED.get(type_, "no lakeforge mapping for this GX expectation type"))
            handler, allowed, scope = mapping
            kw = _Kwargs(kwargs, allowed)
            rule, columns, short = handler(kw, dialect)
            kw.check_unused()
        except (_Unsupported, NoLiteral) as exc:  # (NoLiteral: a value of no SQL literal)
            result.unsupported.append({**origin, "kwargs": kwargs, "reason": str(exc)})
            continue
        name = _unique_name("_".join([*columns, short]), taken)
        description = item.get("description")
        text = f"GX {type_}" + (f": {description}" if description else "")
        result.expectations.append(Expectation.model_validate({"name": name, **rule, "action": action,
                                                              "description": text}))
        result.origins[name] = {**origin, "scope": scope}
        mostly = kwargs.get("mostly")
        if mostly is not None and mostly != 1:
            result.notes.append(
                f"{name}: mostly={mostly} ignored (GX would pass with up to {_pct(mostly)} of non-null rows failing; "
                f"lakeforge counts every failing row and applies `{action}` to each)")
    return result


def _pct(mostly: Any) -> str:
    try:
        return f"{(1 - float(mostly)) * 100:g}%"
    except (TypeError, ValueError):
        return "some"


def _load(suite: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(suite, Path):
        data = json.loads(suite.read_text(encoding="utf-8"))
    elif isinstance(suite, str):
        data = json.loads(suite if suite.lstrip().startswith("{") else Path(suite).read_text(encoding="utf-8"))
    else:
        data = suite
    if not isinstance(data, dict):
        raise ValueError("not a GX expectation suite: expected a JSON object")
    return data


def _unique_name(raw: str, taken: set[str]) -> str:
    base = re.sub("_+", "_", _NAME_CHARS.sub("_", raw)).strip("_") or "rule"
    if not (base[0].isalpha() or base[0] == "_") or not base.isascii():
        base = "_" + base
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


class _Kwargs:
    """Read kwargs, refusing suite parameters, row conditions and settings no mapping reads."""

    def __init__(self, kwargs: dict[str, Any], allowed: frozenset[str]) -> None:
        for key, value in kwargs.items():
            if _has_parameter(value):
                raise _Unsupported(f"{key} is a suite parameter ($PARAMETER), resolved by GX at validation time")
        for key in ("row_condition", "condition_parser", "windows"):
            if kwargs.get(key) not in (None, "", [], {}):
                raise _Unsupported(f"{key} is not translated (write the condition into an `expr` rule instead)")
        self.kwargs = kwargs
        self.allowed = allowed | {"mostly", "row_condition", "condition_parser", "windows"} | _HARMLESS

    def check_unused(self) -> None:
        for key, value in self.kwargs.items():
            if key not in self.allowed and value not in (None, False):
                raise _Unsupported(f"setting {key}={value!r} is not understood by the import")

    def get(self, key: str, default: Any = None) -> Any:
        value = self.kwargs.get(key)
        return default if value is None else value

    def column(self, key: str = "column") -> str:
        value = self.kwargs.get(key)
        if not isinstance(value, str) or not value:
            raise _Unsupported(f"{key} must be a column name, got {value!r}")
        return value

    def columns(self, key: str = "column_list") -> list[str]:
        value = self.kwargs.get(key)
        if not isinstance(value, list | tuple) or not value or not all(isinstance(c, str) and c for c in value):
            raise _Unsupported(f"{key} must be a list of column names, got {value!r}")
        return list(value)

    def flag(self, key: str) -> bool:
        value = self.kwargs.get(key)
        if value not in (None, True, False):
            raise _Unsupported(f"{key} must be true or false, got {value!r}")
        return bool(value)

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.kwargs.get(key)
        if value is None:
            return options[0]
        if value not in options:
            raise _Unsupported(f"{key}={value!r}: expected one of {', '.join(options)}")
        return str(value)


def _has_parameter(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "$PARAMETER" in value or any(_has_parameter(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_parameter(v) for v in value)
    return False


# -- SQL building: sqlglot trees rendered in the project's dialect ------------------------------------------------

def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)



def _is_null(e: exp.Expr) -> exp.Expr:
    return exp.Is(this=e.copy(), expression=exp.Null())


def _or(*parts: exp.Expr) -> exp.Expr:
    return exp.or_(*parts, copy=True)


def _and(*parts: exp.Expr) -> exp.Expr:
    return exp.and_(*parts, copy=True)


def _not(e: exp.Expr) -> exp.Expr:
    return exp.Not(this=exp.Paren(this=e.copy()))


def _as_string(e: exp.Expr) -> exp.Expr:
    return exp.cast(e.copy(), exp.DataType.build("STRING"))


def _bounds(target: exp.Expr, kw: _Kwargs, *, what: str) -> exp.Expr:
    """``target`` within min_value / max_value, honouring strict_min / strict_max."""
    low, high = kw.get("min_value"), kw.get("max_value")
    if low is None and high is None:
        raise _Unsupported(f"{what}: min_value and max_value are both missing (GX raises an error for that)")
    parts: list[exp.Expr] = []
    if low is not None:
        parts.append((exp.GT if kw.flag("strict_min") else exp.GTE)(this=target.copy(), expression=literal_node(low)))
    if high is not None:
        parts.append((exp.LT if kw.flag("strict_max") else exp.LTE)(this=target.copy(), expression=literal_node(high)))
    return _and(*parts)


def _regex(column: exp.Expr, pattern: Any) -> exp.Expr:
    """GX's pandas engine uses ``str(value)`` and ``re.search``: a partial match (``regexp_like`` / ``RLIKE``)."""
    if not isinstance(pattern, str):
        raise _Unsupported(f"regex must be a string, got {pattern!r}")
    problem = _re2_problem(pattern)
    if problem:
        raise _Unsupported(f"regex {pattern!r} does not compile in RE2 (DuckDB): {problem}")
    return exp.RegexpLike(this=_as_string(column), expression=exp.Literal.string(pattern))


def _re2_problem(pattern: str) -> str | None:
    """Why DuckDB cannot compile ``pattern``, if it cannot. The connection holds no data: DuckDB's defaults do."""
    import duckdb

    from lakeforge.duckdb_connect import DEFAULTS, connect

    try:
        with connect(settings=DEFAULTS) as con:
            con.execute("SELECT regexp_matches('', $1)", [pattern]).fetchall()
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    return None


def _values(raw: Any) -> list[Any]:
    if not isinstance(raw, list | tuple | set):
        raise _Unsupported(f"value_set must be a list, got {raw!r}")
    # GX leaves null rows out before comparing, so a None in the set changes no verdict
    return [v for v in raw if v is not None]


def _window(func: exp.Expr, partition: Sequence[exp.Expr] = ()) -> exp.Expr:
    return exp.Window(this=func, partition_by=list(partition) or None)


def _distinct_rows(columns: list[str], ignore: str) -> exp.Expr:
    """Rows whose combination of ``columns`` occurs once (window count), with GX's ``ignore_row_if``."""
    cols = [_col(c) for c in columns]
    once = exp.EQ(this=_window(exp.Count(this=exp.Star()), cols), expression=exp.Literal.number(1))
    nulls = [_is_null(c) for c in cols]
    if ignore in ("all_values_are_missing", "both_values_are_missing"):
        return _or(_and(*nulls), once)
    if ignore in ("any_value_is_missing", "either_value_is_missing"):
        return _or(*nulls, once)
    return once


def _pair(kw: _Kwargs, compare: Callable[[exp.Expr, exp.Expr], exp.Expr]) -> exp.Expr:
    a, b = _col(kw.column("column_A")), _col(kw.column("column_B"))
    ignore = kw.choice("ignore_row_if", ("both_values_are_missing", "either_value_is_missing", "neither"))
    # GX on pandas compares with NaN after dropping the ignored rows: a remaining missing value fails
    test = compare(a, b)
    if ignore == "both_values_are_missing":
        return _or(_and(_is_null(a), _is_null(b)), test)
    if ignore == "either_value_is_missing":
        return _or(_is_null(a), _is_null(b), test)
    return test


Rule = tuple[dict[str, Any], list[str], str]  # the Expectation's kind and value, columns for the name, short name
Handler = Callable[[_Kwargs, str], Rule]


def _sql(e: exp.Expr, dialect: str) -> dict[str, Any]:
    return {"expr": e.sql(dialect=dialect)}


def _not_null(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    return {"not_null": c}, [c], "not_null"


def _be_null(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    return _sql(_is_null(_col(c)), dialect), [c], "is_null"


def _number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and float(v) == v and abs(v) < 2**53


def _between(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    low, high = kw.get("min_value"), kw.get("max_value")
    strict = kw.flag("strict_min") or kw.flag("strict_max")
    if not strict and (low is not None or high is not None) and all(v is None or _number(v) for v in (low, high)):
        return {"in_range": {"column": c, "min": low, "max": high}}, [c], "between"
    return _sql(_or(_is_null(_col(c)), _bounds(_col(c), kw, what="between")), dialect), [c], "between"


def _in_set(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    values = _values(kw.kwargs.get("value_set"))
    if values and all(isinstance(v, str | int | float | bool) for v in values):
        return {"in_set": {"column": c, "values": values}}, [c], "in_set"
    if values:
        raise _Unsupported(f"value_set has values without a SQL literal: {values!r}")
    return _sql(_is_null(_col(c)), dialect), [c], "in_set"  # an empty set: every non-null value fails


def _not_in_set(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    values = _values(kw.kwargs.get("value_set"))
    if not values:
        return _sql(exp.true(), dialect), [c], "not_in_set"
    member = exp.In(this=_col(c), expressions=[literal_node(v) for v in values])
    return _sql(_or(_is_null(_col(c)), _not(member)), dialect), [c], "not_in_set"


def _match(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    return _sql(_or(_is_null(_col(c)), _regex(_col(c), kw.kwargs.get("regex"))), dialect), [c], "matches"


def _not_match(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    return _sql(_or(_is_null(_col(c)), _not(_regex(_col(c), kw.kwargs.get("regex")))), dialect), [c], "not_matches"


def _regex_list(kw: _Kwargs) -> list[exp.Expr]:
    patterns = kw.kwargs.get("regex_list")
    if not isinstance(patterns, list) or not patterns:
        raise _Unsupported(f"regex_list must be a non-empty list, got {patterns!r}")
    return [_regex(_col(kw.column()), p) for p in patterns]


def _match_list(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    match_on = kw.choice("match_on", ("any", "all"))
    tests = _regex_list(kw)
    combined = _or(*tests) if match_on == "any" else _and(*tests)
    return _sql(_or(_is_null(_col(c)), combined), dialect), [c], f"matches_{match_on}"


def _not_match_list(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    return _sql(_or(_is_null(_col(c)), _not(_or(*_regex_list(kw)))), dialect), [c], "not_matches_any"


def _unique(kw: _Kwargs, dialect: str) -> Rule:
    # GX leaves nulls out, so (unlike the built-in `unique`) repeated nulls are not duplicates
    c = kw.column()
    return _sql(_distinct_rows([c], "any_value_is_missing"), dialect), [c], "unique"


def _compound_unique(kw: _Kwargs, dialect: str) -> Rule:
    cols = kw.columns()
    ignore = kw.choice("ignore_row_if", ("all_values_are_missing", "any_value_is_missing", "never"))
    return _sql(_distinct_rows(cols, ignore), dialect), cols, "unique"


def _length(column: str) -> exp.Expr:
    return exp.Length(this=_as_string(_col(column)))


def _lengths_between(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    return _sql(_or(_is_null(_col(c)), _bounds(_length(c), kw, what="value lengths")), dialect), [c], "length_between"


def _lengths_equal(kw: _Kwargs, dialect: str) -> Rule:
    c = kw.column()
    value = kw.kwargs.get("value")
    if not _number(value):
        raise _Unsupported(f"value must be a number, got {value!r}")
    test = exp.EQ(this=_length(c), expression=literal_node(int(value) if float(value).is_integer() else value))
    return _sql(_or(_is_null(_col(c)), test), dialect), [c], "length_equals"


def _a_greater(kw: _Kwargs, dialect: str) -> Rule:
    op = exp.GTE if kw.flag("or_equal") else exp.GT
    rule = _pair(kw, lambda a, b: op(this=a.copy(), expression=b.copy()))
    return _sql(rule, dialect), [kw.column("column_A"), kw.column("column_B")], "gte" if op is exp.GTE else "gt"


def _pair_equal(kw: _Kwargs, dialect: str) -> Rule:
    rule = _pair(kw, lambda a, b: exp.EQ(this=a.copy(), expression=b.copy()))
    return _sql(rule, dialect), [kw.column("column_A"), kw.column("column_B")], "equal"


def _count(kw: _Kwargs, key: str) -> int | None:
    value = kw.kwargs.get(key)
    if value is None:
        return None
    if not _number(value) or float(value) != int(value):
        raise _Unsupported(f"{key} must be a whole number, got {value!r}")
    return int(value)


def _row_count_between(kw: _Kwargs, dialect: str) -> Rule:
    low, high = _count(kw, "min_value"), _count(kw, "max_value")
    if low is None and high is None:
        raise _Unsupported("row count: min_value and max_value are both missing")
    low = low + 1 if low is not None and kw.flag("strict_min") else low
    high = high - 1 if high is not None and kw.flag("strict_max") else high
    return {"row_count": {"min": max(low, 0) if low is not None else None, "max": high}}, [], "row_count_between"


def _row_count_equal(kw: _Kwargs, dialect: str) -> Rule:
    value = _count(kw, "value")
    if value is None:
        raise _Unsupported("row count: value is missing")
    return {"row_count": {"min": value, "max": value}}, [], "row_count_equals"


def _aggregate(func: Callable[[exp.Expr], exp.Expr], short: str) -> Handler:
    def handler(kw: _Kwargs, dialect: str) -> Rule:
        c = kw.column()
        return _sql(_bounds(_window(func(_col(c))), kw, what=short), dialect), [c], f"{short}_between"
    return handler


ALLOWED_BETWEEN = frozenset({"column", "min_value", "max_value", "strict_min", "strict_max"})
_MAPPINGS: dict[str, tuple[Handler, frozenset[str], str]] = {
    "expect_column_values_to_not_be_null": (_not_null, frozenset({"column"}), "row"),
    "expect_column_values_to_be_null": (_be_null, frozenset({"column"}), "row"),
    "expect_column_values_to_be_between": (_between, ALLOWED_BETWEEN, "row"),
    "expect_column_values_to_be_in_set": (_in_set, frozenset({"column", "value_set"}), "row"),
    "expect_column_values_to_not_be_in_set": (_not_in_set, frozenset({"column", "value_set"}), "row"),
    "expect_column_values_to_match_regex": (_match, frozenset({"column", "regex"}), "row"),
    "expect_column_values_to_not_match_regex": (_not_match, frozenset({"column", "regex"}), "row"),
    "expect_column_values_to_match_regex_list": (_match_list, frozenset({"column", "regex_list", "match_on"}), "row"),
    "expect_column_values_to_not_match_regex_list": (_not_match_list, frozenset({"column", "regex_list"}), "row"),
    "expect_column_values_to_be_unique": (_unique, frozenset({"column"}), "row"),
    "expect_compound_columns_to_be_unique": (_compound_unique, frozenset({"column_list", "ignore_row_if"}), "row"),
    "expect_column_value_lengths_to_be_between": (_lengths_between, ALLOWED_BETWEEN, "row"),
    "expect_column_value_lengths_to_equal": (_lengths_equal, frozenset({"column", "value"}), "row"),
    "expect_column_pair_values_a_to_be_greater_than_b": (
        _a_greater, frozenset({"column_A", "column_B", "or_equal", "ignore_row_if"}), "row"),
    "expect_column_pair_values_to_be_equal": (_pair_equal, frozenset({"column_A", "column_B", "ignore_row_if"}), "row"),
    "expect_table_row_count_to_be_between": (
        _row_count_between, frozenset({"min_value", "max_value", "strict_min", "strict_max"}), "table"),
    "expect_table_row_count_to_equal": (_row_count_equal, frozenset({"value"}), "table"),
    "expect_column_min_to_be_between": (_aggregate(lambda c: exp.Min(this=c), "min"), ALLOWED_BETWEEN, "table"),
    "expect_column_max_to_be_between": (_aggregate(lambda c: exp.Max(this=c), "max"), ALLOWED_BETWEEN, "table"),
    "expect_column_mean_to_be_between": (_aggregate(lambda c: exp.Avg(this=c), "mean"), ALLOWED_BETWEEN, "table"),
    "expect_column_median_to_be_between": (
        _aggregate(lambda c: exp.Median(this=c), "median"), ALLOWED_BETWEEN, "table"),
    "expect_column_sum_to_be_between": (_aggregate(lambda c: exp.Sum(this=c), "sum"), ALLOWED_BETWEEN, "table"),
    "expect_column_stdev_to_be_between": (
        _aggregate(lambda c: exp.StddevSamp(this=c), "stdev"), ALLOWED_BETWEEN, "table"),
}

_SCHEMA = "a schema check, not a row predicate: declare the columns and types in the model's `contract:`"
_STATISTICAL = "a statistical test over the column's distribution, not a row predicate"
_PYTHON = "the check runs a Python parser (json, dateutil, strftime) with no portable SQL equivalent"
_DISTINCT = "an aggregate over distinct values (DISTINCT window aggregates are not portable to Databricks)"
_UNSUPPORTED: dict[str, str] = {
    "expect_column_values_to_be_of_type": _SCHEMA,
    "expect_column_values_to_be_in_type_list": _SCHEMA,
    "expect_column_type_to_be": _SCHEMA,
    "expect_column_to_exist": _SCHEMA,
    "expect_table_columns_to_match_set": _SCHEMA,
    "expect_table_columns_to_match_ordered_list": _SCHEMA,
    "expect_table_column_count_to_equal": _SCHEMA,
    "expect_table_column_count_to_be_between": _SCHEMA,
    "expect_column_values_to_be_increasing": "depends on row order, which a table does not have; write an `expr` "
                                             "rule with lag() OVER (ORDER BY ...)",
    "expect_column_values_to_be_decreasing": "depends on row order, which a table does not have; write an `expr` "
                                             "rule with lag() OVER (ORDER BY ...)",
    "expect_column_kl_divergence_to_be_less_than": _STATISTICAL,
    "expect_column_bootstrapped_ks_test_p_value_to_be_greater_than": _STATISTICAL,
    "expect_column_chisquare_test_p_value_to_be_greater_than": _STATISTICAL,
    "expect_column_parameterized_distribution_ks_test_p_value_to_be_greater_than": _STATISTICAL,
    "expect_column_pair_cramers_phi_value_to_be_less_than": _STATISTICAL,
    "expect_column_quantile_values_to_be_between": _STATISTICAL,
    "expect_column_value_z_scores_to_be_less_than": _STATISTICAL,
    "expect_column_values_to_not_be_outliers": _STATISTICAL,
    "expect_column_values_to_be_json_parseable": _PYTHON,
    "expect_column_values_to_match_json_schema": _PYTHON,
    "expect_column_values_to_be_dateutil_parseable": _PYTHON,
    "expect_column_values_to_match_strftime_format": _PYTHON,
    "expect_column_values_to_match_like_pattern": "LIKE escaping differs (DuckDB has no default escape, Databricks "
                                                  "uses backslash) and GX's pandas engine has no LIKE to compare with",
    "expect_column_values_to_not_match_like_pattern": "LIKE escaping differs between DuckDB and Databricks",
    "expect_column_values_to_match_like_pattern_list": "LIKE escaping differs between DuckDB and Databricks",
    "expect_column_values_to_not_match_like_pattern_list": "LIKE escaping differs between DuckDB and Databricks",
    "expect_column_distinct_values_to_be_in_set": _DISTINCT,
    "expect_column_distinct_values_to_contain_set": _DISTINCT,
    "expect_column_distinct_values_to_equal_set": _DISTINCT,
    "expect_column_most_common_value_to_be_in_set": _DISTINCT,
    "expect_column_unique_value_count_to_be_between": _DISTINCT,
    "expect_column_proportion_of_unique_values_to_be_between": _DISTINCT,
    "expect_table_row_count_to_equal_other_table": "reads another table; write a `references` or `expr` rule",
    "expect_query_results_to_match_comparison": "runs arbitrary queries; write an `expr` rule",
    "unexpected_rows_expectation": "an arbitrary SQL query over the batch; write its predicate as an `expr` rule",
}
