"""The embedded engine: DuckDB computes over Arrow; Delta tables are read and written with delta-rs.

Lakehouse tables are bound as views in in-memory catalogs named after the layers, so model SQL addresses
them as ``bronze.telemetry`` exactly as it would on Spark.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from lakeforge.config.models import DuckDBEngineConfig, SourceConfig
from lakeforge.engines.base import EngineCapabilities, FileRead, ModelOutput, Relation
from lakeforge.errors import ExpectationFailed, ModelError
from lakeforge.lakehouse.catalog import LAYERS
from lakeforge.quality import Expectation, RuleResult
from lakeforge.storage import FileInfo, Location

CAPABILITIES = EngineCapabilities(
    name="duckdb", formats=("jsonl", "csv", "parquet"), arrow_native=True, distributed=False
)
_EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "csv",
               ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".zst")
# Errors that mean "this input cannot be parsed" (the file is quarantined); anything else is a bug and raises.
_BAD_INPUT = (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.IOException, pa.ArrowInvalid)


def file_format(path: str, declared: str) -> str | None:
    if declared != "auto":
        return declared
    name = path.lower()
    for suffix in _COMPRESSIONS:
        name = name.removesuffix(suffix)
    return _EXTENSIONS.get(Path(name).suffix)


def sql_type(type_name: str) -> str:
    """A type as written in the project (Databricks names welcome) → DuckDB type."""
    return exp.DataType.build(type_name, dialect="databricks").sql(dialect="duckdb")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBEngine:
    capabilities = CAPABILITIES

    def __init__(self, config: DuckDBEngineConfig) -> None:
        self.config = config
        self.con = duckdb.connect(config={"threads": config.threads or os.cpu_count() or 1})
        self.con.execute("SET TimeZone='UTC'")
        if config.memory_limit:
            self.con.execute(f"SET memory_limit={_lit(config.memory_limit)}")
        for layer in LAYERS:
            self.con.execute(f"ATTACH ':memory:' AS {layer}")
        self._bound: set[str] = set()

    def close(self) -> None:
        self.con.close()

    # -- binding lakehouse tables ---------------------------------------------------------------
    def bind(self, relations: Mapping[str, Relation]) -> None:
        for name, relation in relations.items():
            layer, table = name.split(".", 1)
            alias = f"__lf_{layer}_{table}"
            self.con.register(alias, relation)
            self.con.execute(f"CREATE OR REPLACE VIEW {layer}.main.{_ident(table)} AS SELECT * FROM {alias}")
            self._bound.add(name)

    # -- ingestion ----------------------------------------------------------------------------
    def read_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig) -> FileRead:
        groups: dict[str, list[FileInfo]] = {}
        bad: dict[str, str] = {}
        for info in files:
            fmt = file_format(info.path, source.format)
            if info.size == 0:
                bad[info.path] = "empty file (0 bytes)"
            elif fmt is None:
                bad[info.path] = (f"unknown file type {Path(info.path).suffix!r}; set the source's format "
                                  "or use .jsonl, .csv or .parquet")
            else:
                groups.setdefault(fmt, []).append(info)
        tables: list[pa.Table] = []
        for fmt, group in groups.items():
            try:
                tables.append(self._read(fmt, group, location=location, source=source))
            except _BAD_INPUT:
                for info in group:  # isolate the files that cannot be read; the rest proceed
                    try:
                        tables.append(self._read(fmt, [info], location=location, source=source))
                    except _BAD_INPUT as exc:
                        bad[info.path] = _first_line(str(exc))
        table = pa.concat_tables(tables, promote_options="permissive") if tables else None
        return FileRead(table=table, rows_per_file={}, bad_files=bad)

    def _read(self, fmt: str, files: list[FileInfo], *, location: Location, source: SourceConfig) -> pa.Table:
        paths = "[" + ", ".join(_lit(location.join(f.path)) for f in files) + "]"
        if fmt == "jsonl":
            names = self._columns(f"read_json({paths}, format='newline_delimited', union_by_name=true)")
            cols = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
            scan = f"read_json({paths}, format='newline_delimited', columns={cols}, filename='_source_file')"
        elif fmt == "csv":
            opts = [f"header={'true' if source.header else 'false'}", f"delim={_lit(source.delimiter)}",
                    "all_varchar=true", "union_by_name=true", "filename='_source_file'"]
            if source.columns:
                opts.append("names=[" + ", ".join(_lit(c) for c in source.columns) + "]")
            scan = f"read_csv({paths}, {', '.join(opts)})"
        else:
            scan = f"read_parquet({paths}, union_by_name=true, filename='_source_file')"
        return self.con.sql(self._hinted_select(scan, source)).to_arrow_table()

    def _columns(self, scan: str) -> list[str]:
        return [str(row[0]) for row in self.con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()]

    def _hinted_select(self, scan: str, source: SourceConfig) -> str:
        """Typed hinted columns (always present); a value that does not fit goes to ``_rescued_data``."""
        if not source.schema_hints:
            return f"SELECT * FROM {scan}"
        present = set(self._columns(scan))
        casts, added, checks, entries = [], [], [], []
        for column, type_name in source.schema_hints.items():
            col = _ident(column)
            duck_type = sql_type(type_name)
            if column not in present:
                added.append(f"CAST(NULL AS {duck_type}) AS {col}")
                continue
            if source.timestamp_format and duck_type.startswith("TIMESTAMP"):
                typed = (f"TRY_CAST(TRY_STRPTIME(CAST({col} AS VARCHAR), {_lit(source.timestamp_format)}) "
                         f"AS {duck_type})")
            else:
                typed = f"TRY_CAST({col} AS {duck_type})"
            casts.append(f"{typed} AS {col}")
            failed = f"({col} IS NOT NULL AND {typed} IS NULL)"
            checks.append(failed)
            entries.append(f"{{'k': {_lit(column)}, 'v': CASE WHEN {failed} THEN CAST({col} AS VARCHAR) END}}")
        select = ["*"]
        if casts:
            select = [f"* REPLACE ({', '.join(casts)})"]
        select += added
        if entries:
            listed = f"list_filter([{', '.join(entries)}], lambda x: x.v IS NOT NULL)"
            select.append(f"CASE WHEN {' OR '.join(checks)} THEN CAST(to_json(map_from_entries({listed})) AS VARCHAR) "
                          "END AS _rescued_data")
        else:
            select.append("CAST(NULL AS VARCHAR) AS _rescued_data")
        return f"SELECT {', '.join(select)} FROM (SELECT * FROM {scan}) AS raw"

    # -- models -------------------------------------------------------------------------------
    def run_model(
        self,
        sql: str,
        *,
        model: str,
        relations: Mapping[str, Relation],
        expectations: list[tuple[Expectation, str]],
        unique_key: list[str],
        latest_by: str | None,
    ) -> ModelOutput:
        self.bind(relations)
        rules = [f"coalesce(({pred}), false) AS __lf_r{i}" for i, (_, pred) in enumerate(expectations)]
        blocking = [f"__lf_r{i}" for i, (e, _) in enumerate(expectations) if e.action in ("drop", "quarantine")]
        failed_names = ", ".join(f"CASE WHEN NOT __lf_r{i} THEN {_lit(e.name)} END"
                                 for i, (e, _) in enumerate(expectations))
        outer = ["*"]
        if expectations:
            all_ok = " AND ".join(f"__lf_r{i}" for i in range(len(expectations)))
            outer.append(f"CASE WHEN NOT ({all_ok}) THEN list_filter([{failed_names}], lambda x: x IS NOT NULL) "
                         "END AS __lf_failed")
        if unique_key:
            keys = ", ".join(_ident(k) for k in unique_key)
            order = [f"({' AND '.join(blocking)}) DESC"] if blocking else []
            if latest_by:
                order.append(f"{_ident(latest_by)} DESC NULLS LAST")
            order_by = f" ORDER BY {', '.join(order)}" if order else ""
            outer.append(f"row_number() OVER (PARTITION BY {keys}{order_by}) AS __lf_rn")
        inner = f"SELECT *{''.join(', ' + r for r in rules)} FROM ({sql}) AS __lf_model"
        query = f"SELECT {', '.join(outer)} FROM ({inner}) AS __lf_checked"
        try:
            result = self.con.sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise ModelError(f"model {model} failed: {_first_line(str(exc))}", hint="fix the model's SQL") from None
        return _split(result, model=model, expectations=[e for e, _ in expectations], unique_key=unique_key)

    def register(self, alias: str, relation: Relation) -> None:
        self.con.register(alias, relation)

    def query_arrow(self, sql: str, *, relations: Mapping[str, Relation]) -> pa.Table:
        self.bind(relations)
        return self.con.sql(sql).to_arrow_table()

    def execute(self, sql: str, *, relations: Mapping[str, Relation] | None = None) -> list[tuple[Any, ...]]:
        if relations:
            self.bind(relations)
        return self.con.execute(sql).fetchall()


def _split(result: pa.Table, *, model: str, expectations: list[Expectation], unique_key: list[str]) -> ModelOutput:
    rows_in = result.num_rows
    internal = [c for c in result.column_names if c.startswith("__lf_")]
    n = len(expectations)
    rule_ok = [result[f"__lf_r{i}"] for i in range(n)]
    results = []
    for expectation, ok in zip(expectations, rule_ok, strict=True):
        failed = rows_in - int(pc.sum(ok).as_py() or 0)
        results.append(RuleResult(model=model, rule=expectation.name, action=expectation.action,
                                  passed=rows_in - failed, failed=failed))
    for expectation, res in zip(expectations, results, strict=True):
        if expectation.action == "fail" and res.failed:
            raise ExpectationFailed(
                f"model {model}: expectation {expectation.name!r} ({expectation.expr}) failed for "
                f"{res.failed} of {rows_in} rows; nothing was committed",
                hint="fix the upstream data, or change the rule's action to warn, drop or quarantine",
            )
    false = pa.array([False] * rows_in) if rows_in else pa.array([], pa.bool_())
    quarantine = false
    drop = false
    dropped_by: dict[str, int] = {}
    for expectation, ok in zip(expectations, rule_ok, strict=True):
        if expectation.action == "quarantine":
            quarantine = pc.or_(quarantine, pc.invert(ok))
    for expectation, ok in zip(expectations, rule_ok, strict=True):
        if expectation.action == "drop":
            newly = pc.and_(pc.invert(ok), pc.invert(pc.or_(quarantine, drop)))
            dropped_by[f"expectation:{expectation.name}"] = int(pc.sum(newly).as_py() or 0)
            drop = pc.or_(drop, newly)
    if unique_key:
        dup = pc.and_(pc.greater(result["__lf_rn"], 1), pc.invert(pc.or_(quarantine, drop)))
        dropped_by["duplicate_key"] = int(pc.sum(dup).as_py() or 0)
        drop = pc.or_(drop, dup)
    keep = pc.invert(pc.or_(quarantine, drop))
    data_cols = [c for c in result.column_names if c not in internal]
    kept = result.filter(keep).select(data_cols)
    quarantined = None
    if n and rows_in:
        q_rows = result.filter(quarantine)
        if q_rows.num_rows:
            quarantined = q_rows.select(data_cols).append_column("_failed_rules", q_rows["__lf_failed"])
    return ModelOutput(
        kept=kept,
        quarantined=quarantined,
        rows_in=rows_in,
        rows_dropped=sum(dropped_by.values()),
        rules=results,
        dropped_by={k: v for k, v in dropped_by.items() if v},
    )


def _first_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else message

