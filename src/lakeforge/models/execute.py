"""Running one model: choose the strategy, read only what changed, check in the same pass, commit atomically.

Each model commit carries, per upstream table, the Delta transaction ``(lakeforge:<upstream>, version)`` of the
upstream version it consumed, so progress moves atomically with the data, and the model's fingerprint (its
normalised SQL and output-changing header settings), so an edited model is rebuilt. The strategy comes from the
SQL (:mod:`lakeforge.models.strategy`); every one equals a recomputation:

- ``full``: new, refreshed, edited, or not provably incremental: recompute over the upstream snapshots, overwrite.
- ``append``: row-wise without key: the driver's new rows' output, appended.
- ``merge``: row-wise on a key the SELECT preserves: the new rows' output merged on the key (when driver rows were
  updated or deleted, the keys they name are recomputed from the driver's snapshot instead).
- ``groups``: GROUP BY determining the key: the groups the changed rows (both images of an update, deletes too)
  touch are recomputed from every input and replace the stored ones (a group that is gone is deleted).
- ``partitions``: window functions: the touched PARTITION BY values recomputed whole, likewise.
- ``scd2``: the history of the keys the new rows touch.

A change to a table other than the driver (a joined dimension) recomputes the whole model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakeforge.engines.base import Engine, ModelOutput, Relation
from lakeforge.errors import ModelError
from lakeforge.lakehouse import Catalog
from lakeforge.models import scd
from lakeforge.models.limits import check_limits, null_key_rule
from lakeforge.models.model import Model, error_line
from lakeforge.quality import RuleResult
from lakeforge.results import StageResult
from lakeforge.sql import ident

if TYPE_CHECKING:  # sqlglot and pyarrow, for the models that run (a run with nothing to do needs neither)
    import pyarrow as pa
    from sqlglot import exp

    from lakeforge.models.strategy import Shape

# Files of a clustered full build (see _Work.clustered): delta-rs' target size, of rows in memory; 2 MB wrote files of
# about 24,000 rows of the benchmark's hourly fact (one day of 1,000 machines, 0.9 MB on disk), the size of the
# file a day's run adds. A late file's 17 hours then rewrote 17 such files, not the table's 1.7M rows.
CLUSTERED_FILE_BYTES = 1_000_000


def app_id(upstream: str) -> str:
    return f"lakeforge:{upstream}"


@dataclass
class Decision:
    """What running a model now would do, and why (``lakeforge plan`` prints these)."""

    run: bool
    reason: str
    strategy: str = ""  # "full", or the incremental strategy it runs with (append, merge, groups, ...)
    versions: dict[str, int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    exists: bool = False
    shape: Shape | None = None  # what the SQL allows (None for views and models that wait)
    edits: list[str] = field(default_factory=list)  # fingerprint parts that differ from the stored table's
    rebuild: bool = False  # recomputed whole because it, or a model upstream of it, changed

    @property
    def incremental(self) -> bool:
        return self.run and self.strategy not in ("", "full")

    @property
    def recompute(self) -> str:
        """What a run recomputes: the whole table, or the groups, partitions or rows that changes touch."""
        if not self.run:
            return ""
        if not self.incremental or self.shape is None:
            return "the whole table"
        return self.shape.recompute()


def edits(model: Model, catalog: Catalog) -> list[str]:
    """The parts of the model's fingerprint that differ from the one its table was last committed with: ``SQL
    edited``, or the header settings changed. Nothing for a table whose commits carry no fingerprint (written by
    an older lakeforge: its next commit records one)."""
    recorded = catalog.fingerprint(model.name)
    if recorded is None:
        return []
    current = model.fingerprint()
    return ["SQL edited" if part == "sql" else f"{part} changed"
            for part in current if recorded.get(part) != current[part]]


def decide(model: Model, *, catalog: Catalog, full_refresh: bool, versions: dict[str, int] | None = None,
           rebuilt: Collection[str] = ()) -> Decision:
    """Whether and how the model runs now, up to the upstream tables' latest versions (or ``versions``);
    ``rebuilt``: models this run recomputes whole because they changed (their downstream is rebuilt too)."""
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
    edited = edits(model, catalog) if exists else []
    rebuilt_upstream = [u for u in upstream if u in rebuilt]
    if exists and not full_refresh and not changed and not edited and not rebuilt_upstream:
        return Decision(False, "upstream unchanged", versions=versions, consumed=consumed, exists=True)
    from lakeforge.models.strategy import analyze

    shape = analyze(model, columns=table_columns(catalog))
    decision = Decision(True, "", "full", versions, consumed, exists, shape=shape, edits=edited)
    if not exists:
        decision.reason = "new table"
    elif full_refresh:
        decision.reason = "full refresh asked for"
    elif edited:
        decision.reason, decision.rebuild = "changed: " + ", ".join(edited), True
    elif rebuilt_upstream:
        decision.reason, decision.rebuild = f"upstream {', '.join(rebuilt_upstream)} rebuilt", True
    else:
        decision.reason = "upstream changed: " + ", ".join(
            f"{u} v{consumed.get(u, -1)} -> v{versions[u]}" for u in changed)
        others = [u for u in changed if u != shape.driver]
        if shape.strategy == "full":
            decision.reason += f"; {shape.reason}"
        elif shape.driver is None or consumed.get(shape.driver, -1) < 0:
            decision.reason += "; the driver was never consumed: recomputed whole"
        elif others:
            decision.reason += f"; {', '.join(others)} (not the driver) changed: recomputed whole"
        else:
            decision.strategy = shape.strategy
    return decision


def table_columns(catalog: Catalog) -> Callable[[str], list[str] | None]:
    """Column names of lakehouse tables, for resolving a joined query's unqualified columns."""
    def columns(name: str) -> list[str] | None:
        try:
            return [f.name for f in catalog.table(name).schema().fields] if catalog.exists(name) else None
        except Exception:  # a table that cannot be read now only leaves its columns unknown (full, not wrong)
            return None
    return columns


def run_model(model: Model, *, catalog: Catalog, engine: Engine, run_id: str, full_refresh: bool,
              upstream_keys: dict[str, list[str]] | None = None, versions: dict[str, int] | None = None,
              rebuilt: set[str] | None = None) -> StageResult:
    """Run one model; ``upstream_keys`` (model name -> unique_key) lets a row updated several times upstream
    arrive once, as it is now. ``versions``: read the upstream tables as of these versions, not the latest.
    ``rebuilt``: the models this run rebuilds because they changed; this model is added when it is one."""
    started = time.perf_counter()
    result = StageResult(name=model.name, kind="model")
    decision = decide(model, catalog=catalog, full_refresh=full_refresh, versions=versions, rebuilt=rebuilt or ())
    if not decision.run:
        result.status = "skipped"
        result.detail = decision.reason
        return result
    if decision.rebuild and rebuilt is not None:
        rebuilt.add(model.name)
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
    assert decision.shape is not None
    work = _Work(model, decision, catalog=catalog, engine=engine)
    if decision.incremental:
        work.read_changes(upstream_keys=upstream_keys or {})
    result.strategy = work.strategy
    result.detail = work.detail
    if engine.capabilities.arrow_native:  # counting a distributed relation costs a job: its rows_in instead
        result.rows_read = sum(engine.rows(r) for r in work.relations.values())
    output = _run_sql(model, work, engine=engine)
    try:
        check_limits(model, output, engine=engine, catalog=catalog)
        _commit(model, output, catalog=catalog, strategy=work.strategy, transactions=work.transactions,
                run_id=run_id, result=result, engine=engine, rebuild=work.strategy in ("full", "scd2-full"),
                replace=work.replace, clustered=work.clustered)
    finally:
        output.release()
    result.rows_out = result.rows_in - result.rows_dropped - result.rows_quarantined
    result.rows_read = result.rows_read or result.rows_in
    result.seconds = time.perf_counter() - started
    return result


class _Work:
    """The relations a model runs over, and how its rows are committed, once the driver's changes are read."""

    def __init__(self, model: Model, decision: Decision, *, catalog: Catalog, engine: Engine) -> None:
        assert decision.shape is not None
        self.model, self.decision, self.shape = model, decision, decision.shape
        self.catalog, self.engine = catalog, engine
        self.transactions = {app_id(u): v for u, v in decision.versions.items()}
        self.relations: dict[str, Relation] = {u: catalog.dataset(u, version=decision.versions[u])
                                               for u in model.upstream()}
        self.strategy = decision.strategy if decision.incremental else "full"
        if self.strategy == "full" and self.shape.strategy == "scd2":
            self.strategy = "scd2-full"  # history is rebuilt from every upstream row
        self.detail = decision.reason
        self.replace: _Replace | None = None  # the stored rows a recomputation replaces (groups, partitions)

    @property
    def clustered(self) -> bool:
        """A full build written in ``cluster_by`` order, in small files (:data:`CLUSTERED_FILE_BYTES`): an aggregate
        (``groups``, ``partitions``) whose rows come out of the engine in hash order, so that a later recompute of a
        few groups (a late file's hours) rewrites the few files that hold them, not the table. (A row-wise model
        keeps its driver's order, and sorting its whole output costs more: 7 s more for 10M rows.)"""
        return (self.strategy == "full" and self.shape.strategy in ("groups", "partitions")
                and bool(self.model.config.cluster_by))

    def read_changes(self, *, upstream_keys: dict[str, list[str]]) -> None:
        driver = self.shape.driver
        assert driver is not None
        since, until = self.decision.consumed[driver], self.decision.versions[driver]
        images, rewritten = self.catalog.change_images(driver, since=since, until=until)
        if rewritten and self.engine.rows(images) > self.engine.rows(self.relations[driver]):  # an overwrite
            return self._whole(driver, f"most of {driver} was rewritten (v{since} -> v{until})")
        strategy = self.strategy
        if strategy in ("append", "merge", "scd2") and not rewritten:
            changes, _ = self.catalog.changes(driver, since=since, until=until, keys=upstream_keys.get(driver))
            self.relations[driver] = changes
            return None
        if strategy == "append":
            return self._whole(driver, f"rows of {driver} were updated or deleted, which an append cannot take back")
        if strategy == "scd2":
            return self._whole(driver, f"rows of {driver} were updated or deleted: the history is rebuilt")
        if strategy == "merge":
            self.detail += f"; rows of {driver} were updated or deleted: their keys are recomputed"
        by = self.shape.touched_by
        from lakeforge.models import touched as touching

        full = self.relations[driver]
        read = touching.read_by(self.model, list(full.schema.names)) if hasattr(full, "schema") else None
        self.relations[driver] = touching.touched(self.engine, driver, full, images, by, columns=read)
        self.replace = _Replace(images=images, by=by, partitions=self.shape.strategy == "partitions")
        return None

    def _whole(self, driver: str, why: str) -> None:
        """Recompute the whole model after all (the driver's snapshot, already bound, stays its relation)."""
        self.strategy = "scd2-full" if self.shape.strategy == "scd2" else "full"
        self.detail += f"; {why}: recomputed whole"


@dataclass
class _Replace:
    """A recomputation of touched groups or partitions: the driver's changed rows (every image) and what
    identifies the stored rows they touch (output column -> expression over the driver)."""

    images: Relation
    by: dict[str, exp.Expr]
    partitions: bool  # the stored rows of touched partitions (else: of touched keys)


def _run_sql(model: Model, work: _Work, *, engine: Engine) -> ModelOutput:
    dialect = engine.capabilities.dialect
    expectations = [(e, model.transpile(e.expr, dialect=dialect) if e.expr is not None else e.sql(dialect))
                    for e in model.config.expectations]
    dedup = work.shape.dedup and model.config.scd != 2
    null_key = None
    if dedup and model.config.unique_key:  # a NULL key is no duplicate of another: its row is quarantined
        null_key, predicate = null_key_rule(model, model.config.unique_key, dialect=dialect)
        expectations.append((null_key, predicate))
    sql = model.sql_for(dialect)
    if work.clustered:
        order = ", ".join(ident(c, dialect=dialect) for c in model.config.cluster_by)
        sql = f"SELECT * FROM ({sql}) AS __lf_clustered ORDER BY {order}"
    try:
        output = engine.run_model(sql, model=model.name, relations=work.relations,
                                  expectations=expectations,
                                  unique_key=model.config.unique_key if dedup else [],
                                  order_by=model.config.order_by,
                                  keep="first" if model.config.on_conflict == "keep_first" else "last")
    except ModelError as exc:
        line = error_line(model, exc.message)
        raise ModelError(f"{exc.message} (in {model.path}, line {line})", hint=exc.hint) from None
    if null_key is not None:  # reported when a row failed it (like duplicate_key among the drops)
        output.rules = [r for r in output.rules if r.rule != null_key.name or r.failed]
    if model.config.contract is not None and output.schema is not None:
        drift = contract_drift(model.config.contract, output.schema, engine=engine)
        if drift:
            output.release()
            raise ModelError(f"model {model.name} breaks its contract: {'; '.join(drift)}; nothing was committed",
                             hint=f"change the SQL or the `contract:` in the header of {model.path}")
    return output


def _commit(model: Model, output: ModelOutput, *, catalog: Catalog, strategy: str, transactions: dict[str, int],
            run_id: str, result: StageResult, engine: Engine, rebuild: bool, replace: _Replace | None = None,
            clustered: bool = False) -> None:
    """Quarantine first, then the table; both commits carry the consumed upstream versions (idempotent), the
    table's the model's fingerprint too."""
    fingerprint = model.fingerprint()
    if output.rows_quarantined:
        _quarantine(catalog, model, engine.to_arrow(output.quarantined()), run_id=run_id, transactions=transactions)
    if strategy.startswith("scd2"):
        result.rows_written = _commit_history(model, output, catalog=catalog, engine=engine, rebuild=rebuild,
                                              transactions=transactions, fingerprint=fingerprint)
    elif strategy in ("merge", "groups", "partitions"):
        kept = engine.materialize(output.kept())
        from lakeforge.models import touched as touching

        gone = None if replace is None else touching.gone(
            engine, model, kept, images=replace.images, by=replace.by, partitions=replace.partitions, catalog=catalog)
        written = 0
        n_kept = engine.rows(kept)
        if n_kept or (gone is not None and engine.rows(gone)):
            # a recomputation replaces what it recomputed, whatever on_conflict says: it saw every row of the key
            update = replace is not None or model.config.on_conflict == "update"
            metrics = catalog.merge(model.name, kept, keys=model.config.unique_key, update=update,
                                    transactions=transactions, delete=gone, fingerprint=fingerprint)
            written = int(metrics.get("num_target_rows_inserted", 0)) + int(metrics.get("num_target_rows_updated", 0))
            existing = n_kept - written if not update else 0
            if existing:
                output.dropped_by["duplicate_key"] = output.dropped_by.get("duplicate_key", 0) + existing
                output.rows_dropped += existing
        if any(catalog.consumed(model.name, app) < v for app, v in transactions.items()):
            # nothing changed in the table (or the engine skipped an empty merge): still record the progress
            catalog.record(model.name, transactions=transactions, fingerprint=fingerprint)
        result.rows_written = written
    else:
        mode: Any = "overwrite" if strategy == "full" else "append"
        catalog.write(model.name, output.kept(), mode=mode, transactions=transactions,
                      partition_by=model.config.partition_by or None, fingerprint=fingerprint,
                      target_file_size=CLUSTERED_FILE_BYTES if clustered else None)
        result.rows_written = output.rows_kept
    result.strategy = "scd2" if strategy.startswith("scd2") else strategy
    result.rows_in = output.rows_in
    result.rows_dropped = output.rows_dropped
    result.rows_quarantined = output.rows_quarantined
    result.dropped_by = dict(output.dropped_by)
    result.rules = output.rules


def _commit_history(model: Model, output: ModelOutput, *, catalog: Catalog, engine: Engine, rebuild: bool,
                    transactions: dict[str, int], fingerprint: dict[str, str]) -> int:
    """SCD2 dimensions: small, so their history is computed beside the driver, in Arrow. Returns rows written."""
    cfg = model.config
    new = engine.to_arrow(output.kept())
    track = cfg.track or [c for c in new.column_names
                          if c not in cfg.unique_key and c != cfg.updated_at and not c.startswith("_")]
    old = None if rebuild else Catalog.dataset(catalog, model.name)
    versions, written = scd.history(engine.local, new=new, old=old, keys=cfg.unique_key,
                                    updated_at=cfg.updated_at or "", track=track)
    if rebuild:
        catalog.write(model.name, versions, mode="overwrite", transactions=transactions, fingerprint=fingerprint)
    else:
        if versions.num_rows:
            catalog.merge(model.name, versions, keys=[*cfg.unique_key, "valid_from"], update=True,
                          transactions=transactions, fingerprint=fingerprint)
        if any(catalog.consumed(model.name, app) < v for app, v in transactions.items()):
            catalog.record(model.name, transactions=transactions, fingerprint=fingerprint)
    unchanged = new.num_rows - written
    if unchanged > 0:  # a version equal to the one before it adds nothing
        output.dropped_by["unchanged_version"] = unchanged
        output.rows_dropped += unchanged
    return written


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


def _quarantine(catalog: Catalog, model: Model, rows: pa.Table, *, run_id: str, transactions: dict[str, int]) -> None:
    """Append quarantined rows once per consumed upstream version (a rerun after a crash writes nothing twice)."""
    import pyarrow as pa

    name = model.quarantine_table
    if catalog.exists(name) and all(catalog.consumed(name, a) >= v for a, v in transactions.items()):
        return
    n = rows.num_rows
    table = (rows.append_column("_model", pa.repeat(pa.scalar(model.name), n))
             .append_column("_run_id", pa.repeat(pa.scalar(run_id), n))
             .append_column("_quarantined_at",
                            pa.repeat(pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", "UTC")), n)))
    catalog.write(name, table, mode="append", transactions=transactions)
