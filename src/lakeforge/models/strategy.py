"""Which incremental strategy a model's SQL allows, decided from the SQL (sqlglot), never guessed.

A strategy is chosen only when it provably gives what a recomputation would (the invariant of
docs/transforms.md); everything else is recomputed whole, with the reason. The rules, for the outer SELECT (the
*driver* is the table in its FROM; it must be read nowhere else in the query):

- ``append``: row-wise (no aggregate, window, DISTINCT, LIMIT, set operation), no ``unique_key``: the output of
  the driver's new rows is appended (other tables are joined whole).
- ``merge``: row-wise with a ``unique_key`` whose every column is an expression over the driver's columns (the
  SELECT preserves the key): the new rows' output is merged on the key.
- ``groups``: GROUP BY (or DISTINCT) where every key column is a grouping expression over the driver's columns:
  the groups the changed rows touch are recomputed from all the driver's rows of those groups and every other
  input, then replace the stored groups (a group that no longer exists is deleted).
- ``partitions``: window functions whose PARTITION BY columns are driver columns that the output keeps and the
  key contains: the partitions the changed rows touch are recomputed whole, and replace the stored ones.
- ``scd2``: ``scd: 2`` history (models/scd.py).
- ``full``: anything not proven above (a CTE or subquery in the outer FROM, the driver read twice, UNION, LIMIT,
  non-deterministic functions, an aggregate whose GROUP BY does not map onto the key, ...).

A header that demands a strategy the SQL does not allow (``kind: append`` over a GROUP BY, ``strategy: groups``
without one) is an error naming the file, the line and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import sqlglot
from sqlglot import exp

from lakeforge.errors import ModelError

if TYPE_CHECKING:
    from lakeforge.models.model import Model

StrategyName = Literal["append", "merge", "groups", "partitions", "scd2", "full"]
Columns = Callable[[str], "list[str] | None"]  # a table's column names, or None when not known

# functions whose value differs between two evaluations of the same row
_RANDOM = (exp.Rand, exp.Randn, exp.Uuid, exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime,
           exp.CurrentDatetime)
_RANDOM_NAMES = frozenset({"random", "rand", "randn", "uuid", "now", "current_timestamp", "current_date",
                           "localtimestamp", "shuffle", "monotonically_increasing_id", "spark_partition_id",
                           "input_file_name", "gen_random_uuid", "uuidv4", "uuidv7", "setseed"})


@dataclass(frozen=True)
class Shape:
    """The strategy a model's SQL allows, why, and what it is keyed by."""

    strategy: StrategyName
    reason: str
    driver: str | None = None
    keys: dict[str, exp.Expr] = field(default_factory=dict)  # unique_key column -> expression over the driver
    scope: dict[str, exp.Expr] = field(default_factory=dict)  # partitions: output column -> PARTITION BY expr
    dedup: bool = True  # the output needs the unique_key dedup pass (a GROUP BY of exactly the key does not)
    line: int = 0  # the line of the construct that decided it (0: none)

    @property
    def touched_by(self) -> dict[str, exp.Expr]:
        """What identifies the stored rows a change touches: the key (merge, groups) or the partition."""
        return self.scope if self.strategy == "partitions" else self.keys

    def recompute(self) -> str:
        """What an incremental run recomputes, for ``plan``."""
        if self.strategy == "groups":
            return f"the groups ({', '.join(self.keys)}) that changed rows of {self.driver} touch"
        if self.strategy == "partitions":
            return f"the partitions ({', '.join(self.scope)}) that changed rows of {self.driver} touch"
        if self.strategy == "merge":
            return f"the new rows of {self.driver}, merged on ({', '.join(self.keys)})"
        if self.strategy == "append":
            return f"the new rows of {self.driver}, appended"
        if self.strategy == "scd2":
            return f"the history of the keys that new rows of {self.driver} touch"
        return "the whole table"


def analyze(model: Model, *, columns: Columns | None = None) -> Shape:
    """The strategy the model's header asks for, checked against what its SQL allows (``columns`` resolves
    unqualified columns of joined queries). Raises :class:`ModelError` when the header demands one it does not."""
    cfg = model.config
    if cfg.scd == 2:
        return Shape("scd2", "scd: 2 keeps every version of a key", driver=model.driver())
    allowed = provable(model, columns=columns)
    demanded = cfg.strategy
    if demanded == "full":
        return Shape("full", "strategy: full in the header", driver=allowed.driver)
    if demanded != "auto" and demanded != allowed.strategy:
        raise _refused(model, demanded, allowed)
    if cfg.kind == "materialized" and allowed.strategy == "append":
        return Shape("full", "materialized without unique_key: recomputed whole", driver=allowed.driver)
    return allowed


def provable(model: Model, *, columns: Columns | None = None) -> Shape:
    """The cheapest strategy that provably equals a recomputation, or ``full`` with the reason none does."""
    tree = model.tree
    if not isinstance(tree, exp.Select):
        kind = type(tree).__name__.upper()
        return Shape("full", f"a {kind} of queries is recomputed whole", line=_line(model, kind))
    driver = model.driver()
    if driver is None:
        return Shape("full", "the outer FROM reads a CTE or subquery, not a table: recomputed whole",
                     line=_line(model, "FROM"))
    reads = sum(1 for t in tree.find_all(exp.Table) if f"{t.db}.{t.name}" == driver)
    if reads > 1:
        return Shape("full", f"{driver} is read more than once: recomputed whole", driver=driver)
    random = _random(tree)
    if random is not None:
        return Shape("full", f"{random}() gives another value on every run: recomputed whole", driver=driver,
                     line=_line(model, random))
    batch = _batch_rule(model)
    if batch is not None:
        return Shape("full", f"expectation {batch} judges a run's rows together and drops or quarantines them: "
                     "recomputed whole", driver=driver)
    for arg, what in (("limit", "LIMIT"), ("offset", "OFFSET")):
        if tree.args.get(arg) is not None:
            return Shape("full", f"{what} picks rows from the whole result: recomputed whole", driver=driver,
                         line=_line(model, what))
    resolver = _Resolver(tree, driver=driver, columns=columns)
    windows = _windows(tree)
    grouped = tree.args.get("group") is not None or tree.args.get("distinct") is not None or _aggregates(tree)
    if grouped and windows:
        return Shape("full", "window functions over an aggregate: recomputed whole", driver=driver,
                     line=_line(model, "OVER"))
    if grouped:
        return _groups(model, tree, resolver)
    if windows:
        return _partitions(model, tree, resolver, windows)
    return _rowwise(model, tree, resolver)


def _rowwise(model: Model, tree: exp.Select, resolver: _Resolver) -> Shape:
    driver = resolver.driver
    keys = model.config.unique_key
    if not keys:
        return Shape("append", f"row-wise over {driver}: new rows' output appended", driver=driver)
    mapped = resolver.keys(tree, keys)
    foreign = [k for k in keys if k not in mapped]
    if foreign:
        return Shape("full", f"unique_key {', '.join(foreign)} is not a column of {driver} the SELECT keeps: "
                     "recomputed whole", driver=driver, line=_line(model, foreign[0]))
    return Shape("merge", f"row-wise over {driver}, keyed by its columns: new rows' output merged on the key",
                 driver=driver, keys=mapped)


def _groups(model: Model, tree: exp.Select, resolver: _Resolver) -> Shape:
    driver = resolver.driver
    keys = model.config.unique_key
    line = _line(model, "GROUP BY" if tree.args.get("group") is not None else "DISTINCT")
    group = _grouping(tree)
    if group is None:
        return Shape("full", "GROUPING SETS, ROLLUP, CUBE or DISTINCT ON: recomputed whole", driver=driver,
                     line=line)
    if not group:
        return Shape("full", "an aggregate without GROUP BY is one group: recomputed whole", driver=driver,
                     line=line)
    if not keys:
        return Shape("full", "an aggregate without unique_key: recomputed whole (declare unique_key: [the GROUP BY "
                     "columns] to recompute only the groups new rows touch)", driver=driver, line=line)
    mapped = resolver.keys(tree, keys)
    grouped = {_text(g) for g in group}
    loose = [k for k in keys if k not in mapped or _text(mapped[k]) not in grouped]
    if loose:
        return Shape("full", f"the GROUP BY does not determine unique_key {', '.join(loose)} from columns of "
                     f"{driver}: recomputed whole", driver=driver, line=line)
    covered = {_text(mapped[k]) for k in keys}
    # a grouping expression of key columns only (year(date) beside date) adds no group
    determined = {_text(g) for g in group if {_text(c) for c in g.find_all(exp.Column)} <= covered}
    covered |= determined
    split = [g for g in group if _text(g) not in covered and resolver.touches_driver(g)]
    if split:
        return Shape("full", f"GROUP BY {split[0].sql()} splits a unique_key into several groups of {driver} rows: "
                     "recomputed whole", driver=driver, line=line)
    return Shape("groups", f"GROUP BY determines ({', '.join(keys)}) from {driver}: the groups changed rows touch are "
                 "recomputed from every input", driver=driver, keys=mapped, dedup=not grouped <= covered, line=line)


def _partitions(model: Model, tree: exp.Select, resolver: _Resolver, windows: list[exp.Window]) -> Shape:
    driver = resolver.driver
    line = _line(model, "OVER")
    common: dict[str, exp.Expr] | None = None
    for window in windows:
        parts = {_text(p): p for p in window.args.get("partition_by") or []}
        common = parts if common is None else {k: v for k, v in common.items() if k in parts}
    if not common:
        return Shape("full", "a window function without a PARTITION BY that every window shares: recomputed whole",
                     driver=driver, line=line)
    keys = model.config.unique_key
    mapped = resolver.keys(tree, keys) if keys else {}
    scope = {k: e for k, e in mapped.items() if _text(e) in common}
    if not keys or len(mapped) < len(keys) or {_text(e) for e in scope.values()} != set(common):
        return Shape("full", "window functions are recomputed by partition only when unique_key contains the "
                     f"PARTITION BY columns ({', '.join(common)}) as columns of {driver}: recomputed whole",
                     driver=driver, line=line)
    return Shape("partitions", f"windows over PARTITION BY ({', '.join(scope)}): the partitions changed rows touch "
                 "are recomputed whole", driver=driver, keys=mapped, scope=scope, line=line)


class _Resolver:
    """Which columns of the outer SELECT come from the driver."""

    def __init__(self, tree: exp.Select, *, driver: str, columns: Columns | None) -> None:
        self.driver = driver
        from_ = tree.args["from_"].this
        self.alias = from_.alias_or_name
        self.joined = [j.this for j in tree.args.get("joins") or []]
        self.columns = columns
        own = columns(driver) if columns else None
        self.own = {c.lower() for c in own} if own is not None else None

    def is_driver(self, column: exp.Column) -> bool:
        if column.table:
            return column.table == self.alias
        if not self.joined:
            return True
        if self.own is None or column.name.lower() not in self.own:
            return False
        return all(self._lacks(other, column.name) for other in self.joined)

    def _lacks(self, source: exp.Expr, name: str) -> bool:
        """Whether a joined table or subquery surely has no column ``name``."""
        if isinstance(source, exp.Table) and source.db and self.columns is not None:
            found = self.columns(f"{source.db}.{source.name}")
            return found is not None and name.lower() not in {c.lower() for c in found}
        if isinstance(source, exp.Subquery) and isinstance(source.this, exp.Select):
            names = [p.alias_or_name for p in source.this.expressions]
            return "*" not in names and name.lower() not in {n.lower() for n in names}
        return False

    def touches_driver(self, expression: exp.Expr) -> bool:
        """Whether some column of the expression may be the driver's."""
        return any(c.table == self.alias or not c.table for c in expression.find_all(exp.Column))

    def over_driver(self, expression: exp.Expr) -> bool:
        """An expression of the driver's columns only (no aggregate, window or subquery)."""
        if any(expression.find_all(exp.AggFunc, exp.Window, exp.Subquery, exp.Select)):
            return False
        cols = list(expression.find_all(exp.Column))
        return bool(cols) and all(self.is_driver(c) for c in cols)

    def keys(self, tree: exp.Select, keys: list[str]) -> dict[str, exp.Expr]:
        """unique_key column -> its expression over the driver, for the keys the SELECT computes from it."""
        projections: dict[str, exp.Expr] = {}
        stars = False
        for p in tree.expressions:
            if isinstance(p, exp.Star):
                stars = True
                continue
            if isinstance(p, exp.Column) and isinstance(p.this, exp.Star):
                stars = stars or p.table == self.alias
                continue
            projections.setdefault(p.alias_or_name.lower(), p.this if isinstance(p, exp.Alias) else p)
        found: dict[str, exp.Expr] = {}
        for key in keys:
            expression = projections.get(key.lower())
            if expression is None and stars and (self.own is None or key.lower() in self.own) and not self.joined:
                expression = exp.column(key)
            if expression is not None and self.over_driver(expression):
                found[key] = expression
        return found


def _grouping(tree: exp.Select) -> list[exp.Expr] | None:
    """The GROUP BY expressions (ordinals and aliases resolved; DISTINCT: every projection); None when they are
    grouping sets, ROLLUP or CUBE, or DISTINCT ON."""
    projections = [p.this if isinstance(p, exp.Alias) else p for p in tree.expressions]
    distinct = tree.args.get("distinct")
    if distinct is not None:
        if distinct.args.get("on") is not None or tree.args.get("group") is not None:
            return None
        return projections
    group = tree.args.get("group")
    if group is None:
        return []
    if any(group.args.get(k) for k in ("grouping_sets", "cube", "rollup", "totals")):
        return None
    if group.args.get("all"):
        return [p for p in projections if not _has_aggregate(p)]
    aliases = {p.alias.lower(): p.this for p in tree.expressions if isinstance(p, exp.Alias)}
    found = []
    for g in group.expressions:
        if isinstance(g, exp.Cube | exp.Rollup | exp.GroupingSets):
            return None
        if isinstance(g, exp.Literal) and not g.is_string:
            position = int(g.name)
            if not 1 <= position <= len(projections):
                return None
            found.append(projections[position - 1])
        elif isinstance(g, exp.Column) and not g.table and g.name.lower() in aliases:
            found.append(aliases[g.name.lower()])
        else:
            found.append(g)
    return found


def _outer(tree: exp.Select) -> Iterator[exp.Expr]:
    """Nodes of the outer SELECT's own clauses, not of subqueries, CTEs or joined tables."""
    parts: list[exp.Expr] = [*tree.expressions]
    for arg in ("where", "group", "having", "qualify", "order"):
        if tree.args.get(arg) is not None:
            parts.append(tree.args[arg])
    parts += tree.args.get("windows") or []
    for part in parts:
        yield from part.walk(prune=lambda n: isinstance(n, exp.Select | exp.Subquery))


def _windows(tree: exp.Select) -> list[exp.Window]:
    """The window functions of the outer SELECT, named windows (``OVER w``) resolved to their definition."""
    named = {w.name.lower(): w for w in tree.args.get("windows") or [] if isinstance(w.this, exp.Identifier)}
    found = []
    for node in _outer(tree):
        if isinstance(node, exp.Window) and not isinstance(node.this, exp.Identifier):
            alias = node.args.get("alias")
            ref = named.get(str(alias.name if isinstance(alias, exp.Expr) else alias).lower()) if alias else None
            found.append(ref if ref is not None and not node.args.get("partition_by") else node)
    return found


def _aggregates(tree: exp.Select) -> bool:
    return any(_has_aggregate(p) for p in tree.expressions) or tree.args.get("having") is not None


def _has_aggregate(expression: exp.Expr) -> bool:
    for node in expression.walk(prune=lambda n: isinstance(n, exp.Window | exp.Select | exp.Subquery)):
        if isinstance(node, exp.AggFunc) and not isinstance(node.parent, exp.Window):
            return True
    return False


def _batch_rule(model: Model) -> str | None:
    """A dropping or quarantining rule whose verdict on a row depends on the other rows of the run (``unique``,
    ``row_count``, ``freshness``; a predicate with an aggregate, window, subquery or non-deterministic function):
    on new rows alone it would decide otherwise than on all of them."""
    for rule in model.config.expectations:
        if rule.action not in ("drop", "quarantine"):
            continue
        if rule.kind in ("unique", "row_count", "freshness"):
            return rule.name
        if rule.expr is not None:
            try:
                tree = sqlglot.parse_one(rule.expr, read=model.dialect)
            except sqlglot.errors.ParseError:
                return rule.name
            if any(tree.find_all(exp.AggFunc, exp.Window, exp.Subquery, exp.Select)) or _random(tree):
                return rule.name
    return None


def _random(tree: exp.Expr) -> str | None:
    for node in tree.walk():
        if isinstance(node, _RANDOM):
            return str(node.key)
        if isinstance(node, exp.Anonymous) and str(node.name).lower() in _RANDOM_NAMES:
            return str(node.name).lower()
    return None


def _text(expression: exp.Expr) -> str:
    """An expression compared without table qualifiers (``t.ts`` and ``ts`` are the driver's same column)."""
    copy = expression.copy()
    for column in copy.find_all(exp.Column):
        column.set("table", None)
    return copy.sql().lower()


def _line(model: Model, token: str) -> int:
    """The first line of the model file (after its header) that mentions ``token`` (0: none)."""
    words = r"\s+".join(re.escape(word) for word in token.split())
    pattern = re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
    lines = model.sql.splitlines()
    for number, line in enumerate(lines, start=model.line_offset + 1):
        if pattern.search(line.split("--", 1)[0]):
            return number
    return model.line_offset + 1


_FIXES: dict[str, str] = {
    "append": "use `kind: incremental` (lakeforge then picks a strategy that equals a recomputation) or "
              "`kind: materialized`",
    "merge": "use `kind: incremental` without `strategy:` (lakeforge picks a correct one), or key the model by "
             "columns of the table in its FROM",
    "groups": "GROUP BY the unique_key's columns (computed from the table in FROM), or drop `strategy: groups`",
    "partitions": "PARTITION BY columns of the table in FROM that unique_key contains, or drop `strategy: partitions`",
}


def _refused(model: Model, demanded: str, allowed: Shape) -> ModelError:
    line = allowed.line or model.line_offset + 1
    return ModelError(
        f"model {model.name} ({model.path}, line {line}): the header asks for the `{demanded}` strategy, which would "
        "not equal a "
        f"recomputation of this SQL: {allowed.reason} (lakeforge would use `{allowed.strategy}`)",
        hint=_FIXES.get(demanded, "remove the `strategy:` line"))
