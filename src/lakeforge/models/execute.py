"""Running one model: choose the strategy, read only what changed, check in the same pass, commit atomically.

Each model commit carries, per upstream table, the Delta transaction ``(lakeforge:<upstream>, version)`` of the
upstream version it consumed, so progress moves atomically with the data. Strategies:

- ``full``: the table is new, refreshed, or ``materialized``: recompute over the upstream snapshots, overwrite.
- ``append``: incremental without key: the driver's new rows, appended.
- ``merge``: incremental with ``unique_key``: the driver's new rows, merged on the key.
- ``groups``: incremental aggregate whose GROUP BY covers ``unique_key``: the groups the new rows touch are
  recomputed from the driver's full snapshot and merged, so late rows correct their groups.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlglot import exp

from lakeforge.engines.base import Engine, ModelOutput, Relation
from lakeforge.errors import ModelError
from lakeforge.lakehouse import Catalog
from lakeforge.models import scd
from lakeforge.models.model import Model, error_line
from lakeforge.ops.results import StageResult
from lakeforge.quality import RuleResult


def app_id(upstream: str) -> str:
    return f"lakeforge:{upstream}"


@dataclass
class Decision:
    """What running a model now would do, and why (``lakeforge plan`` prints these)."""

    run: bool
    reason: str
    strategy: str = ""  # "full" or "incremental" when it runs
    versions: dict[str, int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    exists: bool = False


def decide(model: Model, *, catalog: Catalog, full_refresh: bool, versions: dict[str, int] | None = None) -> Decision:
    """Whether and how the model runs now, up to the upstream tables' latest versions (or ``versions``)."""
    if model.config.kind == "view":
        return Decision(False, "view: not stored; its query runs inside the models that read it")
    upstream = model.upstream()
    versions = dict(versions) if versions is not None else {u: catalog.version(u) for u in upstream}
    missing = [u for u, v in versions.items() if v < 0]
    if missing:
        return Decision(False, f"waiting for {', '.join(missing)} (no data yet)")
    schemaless = [u for u in upstream if u.startswith("bronze.") and not catalog.data_columns(u)]
    if schemaless:
        return Decision(False, f"waiting for {', '.join(schemaless)} (no file with rows has arrived yet)")
    exists = catalog.exists(model.name)
    consumed = {u: catalog.consumed(model.name, app_id(u)) for u in upstream} if exists else {}
    changed = [u for u, v in versions.items() if consumed.get(u, -1) < v]
    if exists and not full_refresh and not changed:
        return Decision(False, "upstream unchanged", versions=versions, consumed=consumed, exists=True)
    driver = model.driver()
    # a materialized aggregate whose GROUP BY covers its unique_key refreshes incrementally too: only the
    # groups new rows touch are recomputed ("incrementally where the query allows")
    refreshable = model.config.kind == "incremental" or (
        model.config.kind == "materialized" and model.group_keys() is not None)
    incremental = (refreshable and exists and not full_refresh
                   and driver is not None and consumed.get(driver, -1) >= 0)
    if not exists:
        reason = "new table"
    elif full_refresh:
        reason = "full refresh asked for"
    else:
        reason = "upstream changed: " + ", ".join(f"{u} v{consumed.get(u, -1)} -> v{versions[u]}" for u in changed)
    return Decision(True, reason, "incremental" if incremental else "full", versions, consumed, exists)


def run_model(model: Model, *, catalog: Catalog, engine: Engine, run_id: str, full_refresh: bool,
              upstream_keys: dict[str, list[str]] | None = None, versions: dict[str, int] | None = None) -> StageResult:
    """Run one model; ``upstream_keys`` (model name -> unique_key) lets a row updated several times upstream
    arrive once, as it is now. ``versions``: read the upstream tables as of these versions, not the latest."""
    started = time.perf_counter()
    result = StageResult(name=model.name, kind="model")
    decision = decide(model, catalog=catalog, full_refresh=full_refresh, versions=versions)
    if not decision.run:
        result.status = "skipped"
        result.detail = decision.reason
        return result
    crashed = None if versions is not None or full_refresh else _crashed_range(model, catalog, decision)
    if crashed is not None:
        # a run died between this model's quarantine commit and its table commit, and the upstream moved on since:
        # first exactly the range that run had read (its quarantined rows are there: not written again), then
        # the rest; one pass over both would quarantine that range's rows a second time
        done = run_model(model, catalog=catalog, engine=engine, run_id=run_id, full_refresh=False,
                         upstream_keys=upstream_keys, versions=crashed)
        rest = run_model(model, catalog=catalog, engine=engine, run_id=run_id, full_refresh=False,
                         upstream_keys=upstream_keys)
        return _joined(done, rest, seconds=time.perf_counter() - started)
    upstream = model.upstream()
    versions, consumed = decision.versions, decision.consumed
    result.detail = decision.reason
    driver = model.driver()
    transactions = {app_id(u): v for u, v in versions.items()}
    incremental = decision.strategy == "incremental"
    relations: dict[str, Relation] = {u: catalog.dataset(u, version=versions[u]) for u in upstream}
    strategy = "full"
    if incremental:
        assert driver is not None
        keys = model.group_keys()
        # groups: an updated row may have left a group that its new image does not name, and only the new
        # images are read; recomputing just the groups they name would leave the old group stale
        changes, has_deletes = catalog.changes(driver, since=consumed[driver], until=versions[driver],
                                               keys=(upstream_keys or {}).get(driver),
                                               updates_as_deletes=keys is not None)
        if has_deletes:
            strategy = "full"  # the upstream was rewritten (or, for groups, rows moved): recompute everything
        elif model.config.scd == 2:
            strategy = "scd2"
            relations[driver] = changes
        elif keys:
            strategy = "groups"
            relations[driver] = _touched(engine, driver, relations[driver], changes, keys)
        else:
            strategy = "merge" if model.config.unique_key else "append"
            relations[driver] = changes
    if strategy == "full" and model.config.scd == 2:
        strategy = "scd2"  # history is rebuilt from every upstream row
    result.strategy = strategy
    if engine.capabilities.arrow_native:  # counting a distributed relation costs a job: its rows_in instead
        result.rows_read = sum(engine.rows(r) for r in relations.values())
    dialect = engine.capabilities.dialect
    expectations = [(e, model.transpile(e.expr, dialect=dialect) if e.expr is not None else e.sql(dialect))
                    for e in model.config.expectations]
    try:
        output = engine.run_model(model.sql_for(dialect), model=model.name, relations=relations,
                                  expectations=expectations,
                                  # an aggregate's GROUP BY already makes its key unique, and SCD2 keeps
                                  # every version: no dedup pass
                                  unique_key=[] if model.group_keys() or model.config.scd == 2
                                  else model.config.unique_key,
                                  order_by=model.config.order_by,
                                  keep="first" if model.config.on_conflict == "keep_first" else "last")
    except ModelError as exc:
        line = error_line(model, exc.message)
        raise ModelError(f"{exc.message} (in {model.path}, line {line})", hint=exc.hint) from None
    if model.config.contract is not None and output.schema is not None:
        drift = contract_drift(model.config.contract, output.schema, engine=engine)
        if drift:
            output.release()
            raise ModelError(f"model {model.name} breaks its contract: {'; '.join(drift)}; nothing was committed",
                             hint=f"change the SQL or the `contract:` in the header of {model.path}")
    try:
        _commit(model, output, catalog=catalog, strategy=strategy, transactions=transactions, run_id=run_id,
                result=result, engine=engine, rebuild=not decision.exists or decision.strategy == "full")
    finally:
        output.release()
    result.rows_out = result.rows_in - result.rows_dropped - result.rows_quarantined
    result.rows_read = result.rows_read or result.rows_in
    result.seconds = time.perf_counter() - started
    return result


def _commit(model: Model, output: ModelOutput, *, catalog: Catalog, strategy: str, transactions: dict[str, int],
            run_id: str, result: StageResult, engine: Engine, rebuild: bool) -> None:
    """Quarantine first, then the table; both commits carry the consumed upstream versions (idempotent)."""
    if output.rows_quarantined:
        _quarantine(catalog, model, engine.to_arrow(output.quarantined()), run_id=run_id, transactions=transactions)
    if strategy == "scd2":  # dimensions: small, so their history is computed beside the driver, in Arrow
        cfg = model.config
        new = engine.to_arrow(output.kept())
        track = cfg.track or [c for c in new.column_names
                              if c not in cfg.unique_key and c != cfg.updated_at and not c.startswith("_")]
        old = None if rebuild else Catalog.dataset(catalog, model.name)
        versions, written = scd.history(engine.local, new=new, old=old, keys=cfg.unique_key,
                                        updated_at=cfg.updated_at or "", track=track)
        if rebuild:
            catalog.write(model.name, versions, mode="overwrite", transactions=transactions)
        else:
            if versions.num_rows:
                catalog.merge(model.name, versions, keys=[*cfg.unique_key, "valid_from"], update=True,
                              transactions=transactions)
            if any(catalog.consumed(model.name, app) < v for app, v in transactions.items()):
                catalog.record(model.name, transactions=transactions)
        unchanged = new.num_rows - written
        if unchanged > 0:  # a version equal to the one before it adds nothing
            output.dropped_by["unchanged_version"] = unchanged
            output.rows_dropped += unchanged
        result.rows_written = written
    elif strategy in ("merge", "groups"):
        kept = engine.materialize(output.kept())
        written = 0
        n_kept = engine.rows(kept)
        if n_kept:
            update = strategy == "groups" or model.config.on_conflict == "update"
            metrics = catalog.merge(model.name, kept, keys=model.config.unique_key, update=update,
                                    transactions=transactions)
            written = int(metrics.get("num_target_rows_inserted", 0)) + int(metrics.get("num_target_rows_updated", 0))
            existing = n_kept - written if not update else 0
            if existing:
                output.dropped_by["duplicate_key"] = output.dropped_by.get("duplicate_key", 0) + existing
                output.rows_dropped += existing
        if any(catalog.consumed(model.name, app) < v for app, v in transactions.items()):
            # nothing changed in the table (or the engine skipped an empty merge): still record the progress
            catalog.record(model.name, transactions=transactions)
        result.rows_written = written
    else:
        mode: Any = "overwrite" if strategy == "full" else "append"
        catalog.write(model.name, output.kept(), mode=mode, transactions=transactions,
                      partition_by=model.config.partition_by or None)
        result.rows_written = output.rows_kept
    result.rows_in = output.rows_in
    result.rows_dropped = output.rows_dropped
    result.rows_quarantined = output.rows_quarantined
    result.dropped_by = dict(output.dropped_by)
    result.rules = output.rules


def _crashed_range(model: Model, catalog: Catalog, decision: Decision) -> dict[str, int] | None:
    """The upstream versions a run that died between this model's quarantine commit and its table commit had
    read — its quarantine commit records them, the table does not — if the upstream has moved on since; else None.
    (In normal runs the quarantine records the same versions as the table, or older ones: it is written only
    when rows are quarantined.)"""
    name = model.quarantine_table
    if not catalog.exists(name):
        return None
    recorded = {u: catalog.consumed(name, app_id(u)) for u in decision.versions}
    consumed = {u: decision.consumed.get(u, -1) for u in decision.versions}
    ahead = any(recorded[u] > consumed[u] for u in recorded)
    within = all(consumed[u] <= recorded[u] <= decision.versions[u] for u in recorded)
    return recorded if ahead and within and recorded != decision.versions else None


def _joined(first: StageResult, second: StageResult, *, seconds: float) -> StageResult:
    """One model's result over two consecutive ranges of its upstream."""
    first.detail = f"finished the range a crashed run had read ({first.detail})"
    if second.status == "skipped":
        first.seconds = seconds
        return first
    rules: dict[str, RuleResult] = {}
    for rule in [*first.rules, *second.rules]:
        seen = rules.get(rule.rule)
        rules[rule.rule] = rule if seen is None else dataclasses.replace(
            seen, passed=seen.passed + rule.passed, failed=seen.failed + rule.failed)
    dropped = dict(first.dropped_by)
    for reason, n in second.dropped_by.items():
        dropped[reason] = dropped.get(reason, 0) + n
    return StageResult(
        name=first.name, kind=first.kind, status="ok", rows_in=first.rows_in + second.rows_in,
        rows_out=first.rows_out + second.rows_out, rows_dropped=first.rows_dropped + second.rows_dropped,
        rows_quarantined=first.rows_quarantined + second.rows_quarantined,
        rows_read=first.rows_read + second.rows_read, rows_written=first.rows_written + second.rows_written,
        seconds=seconds, strategy=f"{first.strategy}+{second.strategy}", detail=f"{first.detail}, then {second.detail}",
        dropped_by=dropped, rules=list(rules.values()))


def contract_drift(contract: dict[str, str], schema: pa.Schema, *, engine: Engine) -> list[str]:
    """Differences between a model's declared columns and types and what its SQL produces."""
    declared = {f.name: f.type for f in engine.typed_schema(contract) if f.name in contract}
    actual = {f.name: f.type for f in schema}
    drift = [f"missing column {name} ({contract[name]})" for name in declared if name not in actual]
    drift += [f"column {name} is {actual[name]}, the contract says {contract[name]}"
              for name, type_ in declared.items() if name in actual and actual[name] != type_]
    drift += [f"column {name} ({actual[name]}) is not in the contract" for name in actual if name not in declared]
    return drift


def _touched(engine: Engine, driver: str, full: Relation, changes: Relation,
             keys: dict[str, exp.Expr]) -> Relation:
    """Rows of ``driver`` in the groups that ``changes`` touch."""
    exprs = [_unqualified(e).sql(dialect=engine.capabilities.dialect) for e in keys.values()]
    tuple_sql = "(" + ", ".join(exprs) + ")" if len(exprs) > 1 else exprs[0]
    # DuckDB compares a row with a row-valued subquery; Spark with a subquery of as many columns
    listed = tuple_sql if engine.capabilities.dialect == "duckdb" else ", ".join(exprs)
    engine.register("__lf_changes", changes)
    engine.register("__lf_full", full)
    bounds = _bounds(engine, keys)
    return engine.query(
        f"SELECT * FROM __lf_full WHERE {bounds}{tuple_sql} IN (SELECT DISTINCT {listed} FROM __lf_changes)",
        relations={},
    )


_TRUNCATIONS = (exp.TimestampTrunc, exp.DateTrunc, exp.TsOrDsToDate, exp.Date)


def _bounds(engine: Engine, keys: dict[str, exp.Expr]) -> str:
    """Column ranges that every row of a touched group lies in, as ``col >= lit AND ...`` (or ``""``): plain
    comparisons of a column with a constant, which the engine pushes into the scan, so that the driver's files
    (row groups) outside the range are skipped and the work follows the new rows, not the table's size.

    A key that is a column ``c``: ``c BETWEEN min AND max`` of the changes. A key that truncates a timestamp or date
    column (``date_trunc('HOUR', ts)``, ``CAST(ts AS DATE)``, ``to_date(ts)``): ``ts >= min(key)``, since a
    truncation is never above its input. Other keys add nothing (the groups are still found, by a full read)."""
    dialect = engine.capabilities.dialect
    wanted: list[tuple[str, str, str]] = []  # (column, bound kind, aggregate SQL over the changes)
    for expression in keys.values():
        bare = _unqualified(expression)
        if isinstance(bare, exp.Column):
            name = bare.sql(dialect=dialect)
            wanted += [(name, ">=", f"min({name})"), (name, "<=", f"max({name})")]
            continue
        columns = list(bare.find_all(exp.Column))
        truncation = isinstance(bare, _TRUNCATIONS) or (isinstance(bare, exp.Cast) and bare.to.is_type("date"))
        if truncation and len(columns) == 1 and bare.this == columns[0]:
            name = columns[0].sql(dialect=dialect)
            wanted.append((name, ">=", f"min({bare.sql(dialect=dialect)})"))
            wanted.append((name, "type", f"min({name})"))  # the column's type, to cast the bound to it
    if not wanted:
        return ""
    select = ", ".join(f"{agg} AS b{i}" for i, (_, _, agg) in enumerate(wanted))
    row = engine.to_arrow(engine.query(f"SELECT {select} FROM __lf_changes", relations={}))
    types = {column: row.schema.field(f"b{i}").type for i, (column, kind, _) in enumerate(wanted) if kind == "type"}
    conditions = []
    for i, (column, kind, _) in enumerate(wanted):
        value = row.column(f"b{i}")[0].as_py() if row.num_rows else None
        type_ = types.get(column, row.schema.field(f"b{i}").type)
        if kind == "type" or value is None or not (pa.types.is_integer(type_) or pa.types.is_temporal(type_)
                                                   or pa.types.is_string(type_)):
            continue
        if pa.types.is_timestamp(type_) and type(value) is dt.date:  # CAST(ts AS DATE): compare as a timestamp
            # (both engines' sessions are in UTC, so a date starts at UTC midnight)
            value = dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC if type_.tz else None)
        if isinstance(value, dt.datetime) and pa.types.is_timestamp(type_) and bool(type_.tz) != bool(value.tzinfo):
            continue  # a bound of another kind than the column: no range rather than a wrong one
        conditions.append(f"{column} {kind} {exp.convert(value).sql(dialect=dialect)}")
    return "".join(f"{c} AND " for c in conditions)


def _unqualified(expression: exp.Expr) -> exp.Expr:
    copy = expression.copy()
    for column in copy.find_all(exp.Column):
        column.set("table", None)
    return copy


def _quarantine(catalog: Catalog, model: Model, rows: pa.Table, *, run_id: str, transactions: dict[str, int]) -> None:
    """Append quarantined rows once per consumed upstream version (a rerun after a crash writes nothing twice)."""
    name = model.quarantine_table
    if catalog.exists(name) and all(catalog.consumed(name, a) >= v for a, v in transactions.items()):
        return
    n = rows.num_rows
    table = (rows.append_column("_model", pa.repeat(pa.scalar(model.name), n))
             .append_column("_run_id", pa.repeat(pa.scalar(run_id), n))
             .append_column("_quarantined_at",
                            pa.repeat(pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", "UTC")), n)))
    catalog.write(name, table, mode="append", transactions=transactions)
