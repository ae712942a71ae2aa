"""Backfill: recompute the rows of a date range of some models from their upstream tables as they are now.

``lakeforge backfill --from 2024-01-02 --to 2024-01-03 [--select ...]``: for each selected stored model, in graph
order (gold is recomputed from the silver just backfilled), the rows whose *window column* falls in the range are
replaced, in one Delta commit per model (delta-rs ``overwrite`` with a ``predicate``: replaceWhere), by what the
model's SQL gives for them now (no commit when neither side has a row in the range). The rows are written in a
fixed order, so running the same backfill twice leaves identical tables. Then the warehouse loads.

- The window column of a model: its first DATE/TIMESTAMP column among ``unique_key``, else its first DATE/TIMESTAMP
  column (lakeforge's ``_`` columns excepted). A DATE is in the range when ``from <= d <= to``; a TIMESTAMP when
  ``from 00:00 <= ts < to + 1 day 00:00`` (UTC).
- The upstream read: the model's SQL runs over the upstream tables at their current versions. Where the column
  lineage of the window column proves it safe (it is an upstream column passed through casts to DATE/TIMESTAMP
  or truncations to at most a day; no window function, LIMIT, reused CTE, or dedup key without the column), the
  upstream table it comes from is read only in the range; every other table is read in full. The result is then
  cut to the range: the same rows a full recomputation would give for it.
- Rows outside the range are not touched. A model whose rows outside the range depend on upstream rows inside it
  (e.g. a per-machine "last seen") needs ``lakeforge run --full-refresh --select ...`` instead.
- Models without such a column (dimensions, SCD type 2 history) are recomputed in full only when selected
  explicitly (``--select``); otherwise they are listed as skipped, with the reason. Views are not stored.
- Expectations are checked as in a run (quarantined and dropped rows are left out, ``fail`` fails the
  backfill) but nothing is appended to quarantine again: those rows were quarantined when they arrived.
- Incremental progress: a model that had consumed its upstream tables up to date before the backfill, and whose
  changed upstream tables were backfilled over the same range on the column it reads them by, records their new
  versions (the next run has nothing to redo); otherwise it keeps the versions it had consumed, and the next run
  recomputes what it must from the upstream changes (the backfill's deletes make that a full recomputation).

A backfill takes the run lock (never beside a run), leaves a crash marker like a run, and writes a run row to
the event log with the detail ``backfill <from>..<to>``; each model and the warehouse load are retried on
transient errors like a run's stages.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import CommitProperties, Transaction, write_deltalake
from sqlglot import exp
from sqlglot.lineage import lineage

from lakeforge.engines.base import Engine, Relation
from lakeforge.errors import ConfigError, ModelError
from lakeforge.lakehouse.catalog import Catalog, user_metadata
from lakeforge.models.execute import app_id, contract_drift, run_model
from lakeforge.models.limits import check_limits, null_key_rule
from lakeforge.models.model import Model, error_line
from lakeforge.pipeline import warehouse
from lakeforge.pipeline.hooks import Observer
from lakeforge.pipeline.session import RunSession
from lakeforge.results import StageResult
from lakeforge.sql import DUCKDB, ident

if TYPE_CHECKING:
    from lakeforge.workspace import Workspace

DATE_FORMAT = "%Y-%m-%d"
# truncations that keep every value inside the UTC day it came from
_DAY_UNITS = frozenset({"MICROSECOND", "MICROSECONDS", "US", "MILLISECOND", "MILLISECONDS", "MS", "SECOND",
                        "SECONDS", "SS", "S", "MINUTE", "MINUTES", "MI", "HOUR", "HOURS", "HH", "DAY", "DAYS",
                        "DD", "D"})
_TIME_TYPES = (exp.DataType.Type.DATE, exp.DataType.Type.DATETIME, exp.DataType.Type.TIMESTAMP,
               exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ, exp.DataType.Type.TIMESTAMPNTZ)


@dataclass(frozen=True)
class Window:
    """The days ``start`` .. ``end``, both included."""

    start: dt.date
    end: dt.date

    @property
    def stop(self) -> dt.date:
        """The first day after the window."""
        return self.end + dt.timedelta(days=1)

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def bounds(self, type_: pa.DataType) -> tuple[pa.Scalar, pa.Scalar, bool]:
        """Arrow scalars of the window in a column's type, and whether the upper one is included."""
        if pa.types.is_date(type_):
            return pa.scalar(self.start, type_), pa.scalar(self.end, type_), True
        assert pa.types.is_timestamp(type_), type_
        tz = dt.UTC if type_.tz else None
        low = dt.datetime.combine(self.start, dt.time(), tzinfo=tz)
        high = dt.datetime.combine(self.stop, dt.time(), tzinfo=tz)
        return pa.scalar(low, type_), pa.scalar(high, type_), False

    def expression(self, column: str, type_: pa.DataType) -> pc.Expression:
        low, high, inclusive = self.bounds(type_)
        field_ = pc.field(column)
        return (field_ >= low) & ((field_ <= high) if inclusive else (field_ < high))

    def mask(self, array: pa.Array | pa.ChunkedArray, type_: pa.DataType) -> Any:
        low, high, inclusive = self.bounds(type_)
        upper = pc.less_equal(array, high) if inclusive else pc.less(array, high)
        return pc.fill_null(pc.and_(pc.greater_equal(array, low), upper), False)

    def predicate(self, column: str, type_: pa.DataType) -> str:
        """The window as a delta-rs (DataFusion SQL) predicate: which rows a commit replaces."""
        name = DUCKDB.ident(column)  # DataFusion quotes identifiers as DuckDB does
        if pa.types.is_date(type_):
            return f"{name} >= '{self.start.isoformat()}' AND {name} <= '{self.end.isoformat()}'"
        zone = "Z" if type_.tz else ""
        return (f"{name} >= '{self.start.isoformat()}T00:00:00{zone}' AND "
                f"{name} < '{self.stop.isoformat()}T00:00:00{zone}'")

    def sql(self, column: str, type_: pa.DataType, *, dialect: str) -> str:
        """The window as a WHERE condition in an engine's dialect (for relations that are not Arrow datasets)."""
        col = ident(column, dialect=dialect)
        if pa.types.is_date(type_):
            return (f"{col} >= CAST('{self.start.isoformat()}' AS DATE) AND "
                    f"{col} <= CAST('{self.end.isoformat()}' AS DATE)")
        return (f"{col} >= CAST('{self.start.isoformat()} 00:00:00' AS TIMESTAMP) AND "
                f"{col} < CAST('{self.stop.isoformat()} 00:00:00' AS TIMESTAMP)")


def parse_window(start: str, end: str) -> Window:
    """``--from`` and ``--to`` as a window; bad input is a ConfigError that says what to write."""
    example = "e.g. lakeforge backfill --from 2024-01-01 --to 2024-01-31"
    if not start or not end:
        raise ConfigError("a backfill needs the first and the last day of the range (--from and --to)",
                          hint=example)
    days = []
    for option, text in (("--from", start), ("--to", end)):
        try:
            days.append(dt.datetime.strptime(text.strip(), DATE_FORMAT).date())
        except ValueError:
            raise ConfigError(f"{option} {text!r} is not a date of the form YYYY-MM-DD", hint=example) from None
    window = Window(days[0], days[1])
    if window.end < window.start:
        raise ConfigError(f"--to {end} is before --from {start}",
                          hint=f"swap them: --from {end} --to {start} (both days are included)")
    return window


def is_time(type_: pa.DataType) -> bool:
    return bool(pa.types.is_date(type_) or pa.types.is_timestamp(type_))


def window_column(model: Model, schema: pa.Schema) -> str | None:
    """The column a model's rows are windowed by: its first date/timestamp column among ``unique_key``, else its
    first date/timestamp column (lakeforge's own ``_`` columns never); None when it has none."""
    types = {f.name: f.type for f in schema if not f.name.startswith("_")}
    for key in model.config.unique_key:
        if key in types and is_time(types[key]):
            return key
    return next((name for name, type_ in types.items() if is_time(type_)), None)


def _sql_type(type_: pa.DataType) -> str:
    if pa.types.is_timestamp(type_):
        return "TIMESTAMP"
    if pa.types.is_date(type_):
        return "DATE"
    if pa.types.is_integer(type_):
        return "BIGINT"
    if pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "DOUBLE"
    if pa.types.is_boolean(type_):
        return "BOOLEAN"
    return "STRING"


def _day_preserving(node: exp.Expr) -> bool:
    """Whether an expression over one column keeps each value in the UTC day it came from."""
    while isinstance(node, exp.Paren | exp.Alias):
        node = node.this
    if isinstance(node, exp.Column):
        return True
    if isinstance(node, exp.Cast):  # TryCast is a Cast
        return bool(node.to.is_type(*_TIME_TYPES)) and _day_preserving(node.this)
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc | exp.DatetimeTrunc):
        unit = node.args.get("unit")
        return unit is not None and unit.name.upper() in _DAY_UNITS and _day_preserving(node.this)
    if isinstance(node, exp.TsOrDsToDate | exp.Date):
        return len([a for a in node.args.values() if a is not None]) == 1 and _day_preserving(node.this)
    return False


def pushdown(model: Model, column: str, schemas: dict[str, pa.Schema]) -> dict[str, str]:
    """Upstream table -> the date/timestamp column it may be read by in the window without changing the rows the
    model gives for the window (from the window column's lineage); tables not named are read in full."""
    tree = model.tree
    if any(tree.find_all(exp.Window, exp.Limit, exp.Offset, exp.Fetch)):
        return {}  # window functions and limits see the rows outside the window too
    dedup = model.config.unique_key and model.group_keys() is None and model.config.scd != 2
    if dedup and column not in model.config.unique_key:
        return {}  # the dedup keeps one row per key: which one depends on rows outside the window
    ctes = [c.alias_or_name for c in tree.find_all(exp.CTE)]
    refs: dict[str, int] = {}
    for ref in tree.find_all(exp.Table):
        key = f"{ref.db}.{ref.name}" if ref.db else ref.name
        refs[key] = refs.get(key, 0) + 1
    if any(refs.get(c, 0) > 1 for c in ctes):
        return {}  # a CTE read twice would see the window in both places
    references = {t for e in model.config.expectations for t in e.tables()}
    mapping: dict[str, dict[str, dict[str, str]]] = {}
    for name, schema in schemas.items():
        layer, short = name.split(".", 1)
        mapping.setdefault(layer, {})[short] = {f.name: _sql_type(f.type) for f in schema}
    try:
        root = lineage(column, tree, schema=mapping, dialect=model.dialect)
    except Exception:  # lineage that sqlglot cannot follow: read everything (always right, only slower)
        return {}
    found: dict[str, str] = {}
    for node in root.walk():
        if isinstance(node.expression, exp.Table):
            table = node.expression
            name = f"{table.db}.{table.name}"
            source = node.name.rsplit(".", 1)[-1]
            schema = schemas.get(name)
            if (schema is None or refs.get(name, 0) != 1 or name in references or source not in schema.names
                    or not is_time(schema.field(source).type) or found.get(name, source) != source):
                continue
            found[name] = source
        elif not _day_preserving(node.expression):
            return {}
    return found


class BackfilledModel(TypedDict):
    """A model's line of the result: its window column (``*``: recomputed in full), the rows replaced, and the
    upstream tables read only in the window (table -> their column)."""

    model: str
    column: str
    strategy: Literal["window", "full"]
    rows_deleted: int
    rows_written: int
    upstream_filters: dict[str, str]
    seconds: float


class SkippedModel(TypedDict):
    model: str
    reason: str


class WarehouseLoad(TypedDict):
    status: str
    detail: str
    rows: int
    attempts: int


# ``lakeforge backfill``: what was replaced, what was skipped and why, the warehouse load (``from`` is a keyword:
# the functional form)
BackfillResult = TypedDict("BackfillResult", {
    "run_id": str, "status": str, "from": str, "to": str, "models": list[BackfilledModel],
    "skipped": list[SkippedModel], "warehouse": WarehouseLoad, "crashed_runs": list[str], "seconds": float})


@dataclass
class Backfilled:
    """What backfilling one model did."""

    item: BackfilledModel
    stage: StageResult
    column: str | None  # the window column (None: recomputed in full)
    filters: dict[str, str] = field(default_factory=dict)


def _arrow_schema(catalog: Catalog, name: str) -> pa.Schema:
    schema = pa.schema(catalog.table(name).schema().to_arrow())
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    return pa.schema([f.with_type(plain.get(f.type, f.type)) for f in schema], metadata=schema.metadata)


def _sort_columns(schema: pa.Schema, first: list[str]) -> list[str]:
    """Columns to sort rows by: ``first``, then every other column of a type that sorts (not nested)."""
    names = list(dict.fromkeys([c for c in first if c in schema.names] + schema.names))
    return [n for n in names if not pa.types.is_nested(schema.field(n).type)]


def _commit_properties(transactions: dict[str, int], window: Window, run_id: str) -> CommitProperties:
    custom = {"lakeforge.backfill": window.label, "lakeforge.run_id": run_id}
    recorded = user_metadata(transactions)
    if recorded:
        custom["userMetadata"] = recorded
    return CommitProperties(app_transactions=[Transaction(a, int(v)) for a, v in transactions.items()] or None,
                            custom_metadata=custom)


def _restricted(engine: Engine, relation: Relation, *, column: str, type_: pa.DataType, window: Window,
                alias: str) -> Relation:
    """An upstream relation cut to the window (lazily for an Arrow dataset)."""
    if isinstance(relation, pads.Dataset):
        return relation.filter(window.expression(column, type_))
    engine.register(alias, relation)
    return engine.query(f"SELECT * FROM {alias} WHERE {window.sql(column, type_, dialect=engine.capabilities.dialect)}",
                        relations={})


def backfill_model(model: Model, *, workspace: Workspace, window: Window, run_id: str, column: str,
                   start_versions: dict[str, int], backfilled: dict[str, str | None]) -> Backfilled:
    """Replace ``model``'s rows in the window by what its SQL gives for them now: one Delta commit."""
    started = time.perf_counter()
    catalog, engine = workspace.catalog, workspace.engine
    name = model.name
    target = _arrow_schema(catalog, name)
    type_ = target.field(column).type
    upstream = model.upstream()
    versions = {u: catalog.version(u) for u in upstream}
    schemas = {u: _arrow_schema(catalog, u) for u in upstream}
    filters = pushdown(model, column, schemas)
    relations: dict[str, Relation] = {}
    for u in upstream:
        relation = workspace.run_catalog.dataset(u, version=versions[u])
        if u in filters:
            relation = _restricted(engine, relation, column=filters[u], type_=schemas[u].field(filters[u]).type,
                                   window=window, alias=f"__lf_backfill_{len(relations)}")
        relations[u] = relation
    rows_deleted = catalog.dataset(name).count_rows(filter=window.expression(column, type_))

    dialect = engine.capabilities.dialect
    expectations = [(e, model.transpile(e.expr, dialect=dialect) if e.expr is not None else e.sql(dialect))
                    for e in model.config.expectations]
    unique_key = [] if model.group_keys() or model.config.scd == 2 else model.config.unique_key
    if unique_key:  # as a run does: a row whose key is NULL is quarantined, no duplicate
        expectations.append(null_key_rule(model, unique_key, dialect=dialect))
    try:
        output = engine.run_model(model.sql_for(dialect), model=name, relations=relations, expectations=expectations,
                                  unique_key=unique_key,
                                  order_by=model.config.order_by,
                                  keep="first" if model.config.on_conflict == "keep_first" else "last")
    except ModelError as exc:
        raise ModelError(f"{exc.message} (in {model.path}, line {error_line(model, exc.message)})",
                         hint=exc.hint) from None
    try:
        if model.config.contract is not None and output.schema is not None:
            drift = contract_drift(model.config.contract, output.schema, engine=engine)
            if drift:
                raise ModelError(f"model {name} breaks its contract: {'; '.join(drift)}; nothing was backfilled",
                                 hint=f"change the SQL or the `contract:` in the header of {model.path}")
        check_limits(model, output, engine=engine, catalog=catalog)
        kept = output.kept()
        source = kept if isinstance(kept, pa.RecordBatchReader) else engine.to_arrow(kept).to_batches()
        chunks = []
        for batch in source:
            missing = [c for c in target.names if c not in batch.schema.names]
            extra = [c for c in batch.schema.names if c not in target.names]
            if missing or extra:
                raise ModelError(
                    f"model {name} now gives other columns than its table holds (missing: "
                    f"{', '.join(missing) or 'none'}; new: {', '.join(extra) or 'none'}); nothing was backfilled",
                    hint=f"rebuild the table with the new columns: lakeforge run --full-refresh --select {name}")
            try:
                batch = batch.select(target.names).cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ModelError(f"model {name} now gives columns of other types than its table holds ({exc}); "
                                 "nothing was backfilled",
                                 hint=f"rebuild the table: lakeforge run --full-refresh --select {name}") from None
            batch = batch.filter(window.mask(batch.column(column), type_))
            if batch.num_rows:
                chunks.append(batch)
        # the window's rows in one order whatever order the engine gave them in: a second backfill writes the
        # same files, and what reads them (sums of floats) sees the rows in the same order
        rows = pa.Table.from_batches(chunks, schema=target)
        rows = rows.take(pc.sort_indices(rows, sort_keys=[(c, "ascending") for c in _sort_columns(
            target, [column, *model.config.unique_key])]))
        written = rows.num_rows

        consumed = {u: catalog.consumed(name, app_id(u)) for u in upstream}
        up_to_date = all(consumed[u] == start_versions.get(u, -1) for u in upstream)
        aligned = all(versions[u] == start_versions.get(u, -1)
                      or (backfilled.get(u) is not None and backfilled.get(u) == filters.get(u)) for u in upstream)
        recorded = {u: v for u, v in consumed.items() if v >= 0}
        progress = versions if up_to_date and aligned else recorded
        partitions = catalog.table(name).metadata().partition_columns
        if rows_deleted or written or progress != recorded:  # else nothing would change: no empty commit
            with catalog.errors(f"write {window.label} of {name}"):
                write_deltalake(catalog.uri(name), rows, mode="overwrite", predicate=window.predicate(column, type_),
                                partition_by=partitions or None, storage_options=catalog.location.storage_options,
                                commit_properties=_commit_properties({app_id(u): v for u, v in progress.items()},
                                                                     window, run_id))
    finally:
        output.release()
    outside = output.rows_kept - written
    stage = StageResult(name=name, kind="model", strategy="backfill",
                        detail=f"{column} in {window.label}: {rows_deleted} rows replaced by {written}",
                        rows_in=output.rows_in, rows_quarantined=output.rows_quarantined,
                        rows_dropped=output.rows_dropped + outside, rows_written=written,
                        dropped_by={**output.dropped_by, **({"outside_window": outside} if outside else {})},
                        rules=output.rules)
    stage.rows_out = stage.rows_in - stage.rows_dropped - stage.rows_quarantined
    stage.rows_read = stage.rows_in
    stage.seconds = time.perf_counter() - started
    item: BackfilledModel = {"model": name, "column": column, "strategy": "window", "rows_deleted": rows_deleted,
                             "rows_written": written, "upstream_filters": filters, "seconds": round(stage.seconds, 3)}
    return Backfilled(item=item, stage=stage, column=column, filters=filters)


def recompute_model(model: Model, *, workspace: Workspace, run_id: str) -> Backfilled:
    """A model that cannot be windowed, selected explicitly: recomputed in full (as ``--full-refresh``)."""
    rows_before = workspace.catalog.info(model.name).rows
    keys = {m.name: m.config.unique_key for m in workspace.graph().ordered() if m.config.unique_key}
    stage = run_model(model, catalog=workspace.run_catalog, engine=workspace.engine, run_id=run_id, full_refresh=True,
                      upstream_keys=keys)
    item: BackfilledModel = {"model": model.name, "column": "*", "strategy": "full", "rows_deleted": rows_before,
                             "rows_written": stage.rows_written, "upstream_filters": {},
                             "seconds": round(stage.seconds, 3)}
    return Backfilled(item=item, stage=stage, column=None)


def plan(workspace: Workspace, select: list[str] | None) -> tuple[list[tuple[Model, str | None]], list[SkippedModel]]:
    """The models to backfill with their window column (None: in full), and the skipped ones with the reason."""
    explicit = select is not None
    chosen: list[tuple[Model, str | None]] = []
    skipped: list[SkippedModel] = []
    for model in workspace.graph().select(select):
        name = model.name
        if model.config.kind == "view":
            if explicit:
                skipped.append({"model": name, "reason": "a view: not stored, its query runs inside its readers"})
            continue
        missing = [u for u in model.upstream() if not workspace.catalog.exists(u)]
        if not workspace.catalog.exists(name) or missing:
            why = f"its upstream {', '.join(missing)} has no data yet" if missing else "its table is not built yet"
            skipped.append({"model": name, "reason": f"{why}: run `lakeforge run` first"})
            continue
        column = None if model.config.scd == 2 else window_column(model, _arrow_schema(workspace.catalog, name))
        if column is not None:
            chosen.append((model, column))
        elif explicit:
            chosen.append((model, None))
        else:
            what = "SCD type 2 history" if model.config.scd == 2 else "no date or timestamp column to window by"
            skipped.append({"model": name, "reason": f"{what}: recomputed only in full, when selected explicitly "
                                                     f"(--select {name})"})
    return chosen, skipped


def backfill(workspace: Workspace, *, start: str, end: str, select: list[str] | None = None,
             observers: Sequence[Observer] = ()) -> BackfillResult:
    """Backfill the days ``start`` .. ``end`` of the selected models (all stored windowable ones by default), then
    load the warehouse: a run session like a run's (the lock, the records, the retries, the observers), recorded
    in the event log as ``backfill <from>..<to>``. See the module's docstring."""
    window = parse_window(start, end)
    items: list[BackfilledModel] = []
    label = f"the backfill of {window.label}"
    extra = {"backfill": {"from": window.start.isoformat(), "to": window.end.isoformat()}}
    chosen, skipped = plan(workspace, select)
    with RunSession(workspace, label=label, detail=f"backfill {window.label}", extra=extra,
                    observers=observers) as session:
        start_versions = {n: workspace.catalog.version(n) for n in workspace.catalog.names()}
        backfilled: dict[str, str | None] = {}
        for model, column in chosen:
            if column is None:
                work = functools.partial(recompute_model, model, workspace=workspace, run_id=session.run_id)
            else:
                work = functools.partial(backfill_model, model, workspace=workspace, window=window,
                                         run_id=session.run_id, column=column, start_versions=start_versions,
                                         backfilled=backfilled)
            done = session.stage(model.name, "model", work, stage_of=lambda done: done.stage)
            backfilled[model.name] = done.column
            items.append(done.item)
        loaded = session.stage("warehouse", "load", lambda: warehouse.load(
            workspace, run_id=session.run_id, models=workspace.graph().ordered()))
    result = session.result
    assert result is not None
    return {"run_id": result.run_id, "status": result.status, "from": window.start.isoformat(),
            "to": window.end.isoformat(), "models": items, "skipped": skipped,
            "warehouse": {"status": loaded.status, "detail": loaded.detail, "rows": loaded.rows_written,
                          "attempts": loaded.attempts},
            "crashed_runs": result.crashed_runs, "seconds": round(result.seconds, 3)}
