"""The embedded engine: DuckDB computes over Arrow; Delta tables are read and written with delta-rs.

Lakehouse tables are bound as views in in-memory catalogs named after the layers, so model SQL addresses
them as ``bronze.telemetry`` exactly as it would on Spark.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from lakeforge import duckdb_connect
from lakeforge.config.models import DuckDBEngineConfig, SourceConfig
from lakeforge.engines.base import EngineCapabilities, ModelOutput, ReadPlan, Relation
from lakeforge.engines.duckdb.errors import stream_failure
from lakeforge.engines.rules import RulePlan, rule_outcome, rule_plan
from lakeforge.errors import EngineError, LakeforgeError, ModelError
from lakeforge.lakehouse.catalog import LAYERS, Catalog
from lakeforge.quality import Expectation
from lakeforge.sql import DUCKDB
from lakeforge.storage import FileInfo, Location
from lakeforge.storage.errors import storage_error

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

CAPABILITIES = EngineCapabilities(
    name="duckdb", formats=("jsonl", "csv", "parquet"), arrow_native=True, distributed=False, dialect="duckdb"
)
STAGE = "memory.main.__lf_stage"
DISK_STAGE = "__lf_disk.main.__lf_stage"  # the stage in a temporary DuckDB file (see :meth:`DuckDBEngine._stage_on`)
DUPS = "memory.main.__lf_dups"  # rowids of the staged rows that a better row of their key replaces
# Bytes a staged value takes in DuckDB's memory: fixed-width types their width; a string a 16-byte header plus
# its text when longer than 12 bytes (counted as 32 more); anything else (lists, structs) counted as 64.
_WIDTHS = {"BOOLEAN": 1, "TINYINT": 1, "UTINYINT": 1, "SMALLINT": 2, "USMALLINT": 2, "INTEGER": 4, "UINTEGER": 4,
           "BIGINT": 8, "UBIGINT": 8, "HUGEINT": 16, "FLOAT": 4, "DOUBLE": 8, "DATE": 4, "TIME": 8, "TIMESTAMP": 8,
           "TIMESTAMP WITH TIME ZONE": 8, "TIMESTAMP_NS": 8, "TIMESTAMP_MS": 8, "TIMESTAMP_S": 8, "UUID": 16,
           "INTERVAL": 16, "VARCHAR": 48, "BLOB": 48}
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 10**3, "MB": 10**6,
          "GB": 10**9, "TB": 10**12}
STREAM_BATCH_ROWS = 256 * 1024
SAMPLE_ROWS = 4096  # rows of each file that schema inference looks at
SOURCE_FILE = DUCKDB.ident("_source_file")  # the scan's file name column (the metadata join replaces it)


def project_type(duckdb_type: str) -> str:
    """A DuckDB type as inferred from files → the widest safe project type (int → bigint, float → double)."""
    base = duckdb_type.split("(")[0].upper()
    if base in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"):
        return "bigint"
    if base in ("FLOAT", "DOUBLE", "DECIMAL", "HUGEINT", "UBIGINT"):
        return "double"
    if base == "BOOLEAN":
        return "boolean"
    if base in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return "timestamp"
    if base == "DATE":
        return "date"
    return "string"


def _paths(files: list[FileInfo], location: Location) -> str:
    """The files as a DuckDB list literal, each read as named: DuckDB's readers expand ``*``, ``?`` and ``[...]``
    in a path, so a landing file called ``a[1].jsonl`` would read ``a1.jsonl`` instead (rows lost and others
    doubled) and ``x*.jsonl`` every file starting with ``x``. Each such character is matched literally (``[*]``)."""
    return "[" + ", ".join(DUCKDB.literal(_GLOB_CHARS.sub(r"[\1]", location.join(f.path))) for f in files) + "]"


_GLOB_CHARS = re.compile(r"([\[*?])")


class DuckDBEngine:
    capabilities = CAPABILITIES

    def __init__(self, config: DuckDBEngineConfig) -> None:
        self.config = config
        self._open: list[pa.RecordBatchReader] = []
        self._stage = STAGE
        self._stage_dir: str | None = None

    @cached_property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The database, opened on first use: a run with nothing to do never imports DuckDB (~0.1 s). Opened by
        :func:`lakeforge.duckdb_connect.connect` with the engine's threads, memory limit and temporary directory."""
        con = duckdb_connect.connect(settings=self.config)
        con.execute("SET enable_progress_bar=false")  # lakeforge reports progress itself
        for layer in (*LAYERS, "_lakeforge"):  # _lakeforge: lakeforge's own tables (the event log)
            con.execute(f"ATTACH ':memory:' AS {layer}")
        return con

    def close(self) -> None:
        if "con" not in self.__dict__:  # never opened
            return
        self.release()
        self.con.close()  # drops the in-memory tables and detaches a disk stage; its folder goes next
        if self._stage_dir is not None:
            shutil.rmtree(self._stage_dir, ignore_errors=True)
            self._stage_dir = None

    @property
    def local(self) -> DuckDBEngine:
        return self

    def catalog(self, location: Location) -> Catalog:
        return Catalog(location)

    def rows(self, relation: Relation) -> int:
        import pyarrow as pa

        if isinstance(relation, pa.Table):
            return relation.num_rows
        count = getattr(relation, "count_rows", None)
        return int(count()) if count else 0

    def materialize(self, relation: Relation) -> Relation:
        import pyarrow as pa

        return relation.read_all() if isinstance(relation, pa.RecordBatchReader) else relation

    def to_arrow(self, relation: Relation) -> pa.Table:
        import pyarrow as pa

        if isinstance(relation, pa.RecordBatchReader):
            return relation.read_all()
        if isinstance(relation, pa.Table):
            return relation
        return relation.to_table()  # a dataset

    def query(self, sql: str, *, relations: Mapping[str, Relation]) -> pa.Table:
        return self.query_arrow(sql, relations=relations)

    def _reader(self, sql: str) -> pa.RecordBatchReader:
        """A streaming result. DuckDB allows one open result per connection: earlier ones are closed first."""
        self.release()
        reader = self.con.sql(sql).to_arrow_reader(STREAM_BATCH_ROWS)
        self._open.append(reader)
        return reader

    def release(self) -> None:
        """Close any result still streaming (a writer that failed half way leaves one open)."""
        for reader in self._open:
            reader.close()
        self._open.clear()

    # -- binding lakehouse tables ---------------------------------------------------------------
    def bind(self, relations: Mapping[str, Relation]) -> None:
        self.release()
        for name, relation in relations.items():
            layer, table = name.split(".", 1)
            alias = f"__lf_{layer}_{table}"
            self.con.register(alias, relation)
            self.con.execute(f"CREATE OR REPLACE VIEW {layer}.main.{DUCKDB.ident(table)} AS SELECT * FROM {alias}")

    # -- ingestion ----------------------------------------------------------------------------
    def describe_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig) -> dict[str, str]:
        """Columns of a sample of files with the types DuckDB infers for them (project type names)."""
        self.release()
        fmt = source.format_of(files[0].path)
        paths = _paths(files, location)
        if fmt == "jsonl":
            scan = (f"read_json({paths}, format='newline_delimited', records='true', union_by_name=true, "
                    f"sample_size={SAMPLE_ROWS})")
        elif fmt == "csv":
            scan = f"read_csv({paths}, {', '.join(self._csv_options(source, all_varchar=False))})"
        else:
            scan = f"read_parquet({paths}, union_by_name=true)"
        rows = self.con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        return {str(r[0]): project_type(str(r[1])) for r in rows if str(r[0]) != "filename"}

    def scan_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig, plan: ReadPlan,
                   batch_id: int, ingested_at: dt.datetime) -> pa.RecordBatchReader:
        """One format's files as a stream of rows with the ingestion metadata columns."""
        import pyarrow as pa

        self.release()
        fmt = source.format_of(files[0].path)
        assert fmt is not None and all(source.format_of(f.path) == fmt for f in files)
        self.con.register("__lf_files", pa.table({
            "abs": [location.join(f.path) for f in files],
            "rel": [f.path for f in files],
            "size": pa.array([f.size for f in files], pa.int64()),
            "mtime": pa.array([f.mtime_ms * 1000 for f in files], pa.timestamp("us", "UTC")),
        }))
        if plan.typed_read and fmt == "jsonl":
            select = self._typed_scan(files, location=location, plan=plan)
        else:
            scan = self._scan(fmt, files, location=location, source=source, columns=plan.columns)
            select = self._planned_select(scan, source, plan)
        query = (f"SELECT raw.* EXCLUDE (_source_file), f.rel AS _source_file, f.size AS _file_size, "
                 f"f.mtime AS _file_modification_time, "
                 f"CAST({DUCKDB.literal(ingested_at.isoformat())} AS TIMESTAMPTZ) AS _ingested_at, "
                 f"CAST({int(batch_id)} AS BIGINT) AS _batch_id "
                 f"FROM ({select}) AS raw JOIN __lf_files AS f ON f.abs = raw._source_file")
        return self._reader(query)

    def check_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig,
                    plan: ReadPlan) -> dict[str, str]:
        """Parse each file on its own; the ones that fail, with the reason (the error path of ingestion)."""
        import duckdb

        self.release()
        bad: dict[str, str] = {}
        for info in files:
            fmt = source.format_of(info.path)
            assert fmt is not None
            try:
                select = self._planned_select(self._scan(fmt, [info], location=location, source=source), source,
                                              plan)
                self.con.sql(select).to_arrow_table()
            except duckdb.Error as exc:
                if not self.is_bad_input(exc):
                    raise
                bad[info.path] = _first_line(str(exc))
        return bad

    def typed_schema(self, types: Mapping[str, str]) -> pa.Schema:
        """The Arrow schema of typed bronze columns plus ``_rescued_data`` (for batches without rows)."""
        import pyarrow as pa

        if not types:
            return pa.schema([])
        from lakeforge.engines.projection import projection  # sqlglot: only when a batch is read

        columns = projection({}, ReadPlan(types=types)).sql(dialect="duckdb")
        cursor = self.con.cursor()  # its own connection: a result still streaming on the main one stays open
        try:
            return cursor.sql(f"SELECT {', '.join(columns)} LIMIT 0").to_arrow_table().schema
        finally:
            cursor.close()

    @staticmethod
    def is_bad_input(exc: BaseException) -> bool:
        """Whether ``exc`` means "this input cannot be parsed" (the file is quarantined); else it is a bug and
        raises."""
        import duckdb
        import pyarrow as pa

        if isinstance(exc, duckdb.InvalidInputException | duckdb.ConversionException | duckdb.IOException
                      | pa.ArrowInvalid):
            return True
        text = str(exc)
        return any(marker in text for marker in ("Invalid Input Error", "Conversion Error", "IO Error",
                                                 "non-record JSON"))

    @staticmethod
    def _csv_options(source: SourceConfig, *, all_varchar: bool) -> list[str]:
        # skip=0 and no comment character: else DuckDB's sniffer may decide to skip leading lines (a wider last
        # line taken for the header) or lines starting with '#' (a comment), and those rows vanish without an error
        opts = [f"header={'true' if source.header else 'false'}", f"delim={DUCKDB.literal(source.delimiter)}",
                f"quote={DUCKDB.literal(source.quote)}", "union_by_name=true", "skip=0", "comment=''"]
        if all_varchar:
            opts.append("all_varchar=true")
        if source.columns:
            opts.append("names=[" + ", ".join(DUCKDB.literal(c) for c in source.columns) + "]")
        return opts

    def _scan(self, fmt: str, files: list[FileInfo], *, location: Location, source: SourceConfig,
              columns: tuple[str, ...] = ()) -> str:
        paths = _paths(files, location)
        if fmt == "jsonl":
            names = columns or self._columns(
                f"read_json({paths}, format='newline_delimited', records='true', union_by_name=true)")
            cols = "{" + ", ".join(f"{DUCKDB.literal(n)}: 'VARCHAR'" for n in names) + "}"
            return (f"read_json({paths}, format='newline_delimited', records='true', columns={cols}, "
                    "filename='_source_file')")
        if fmt == "csv":
            options = [*self._csv_options(source, all_varchar=True), "filename='_source_file'"]
            return f"read_csv({paths}, {', '.join(options)})"
        return f"read_parquet({paths}, union_by_name=true, filename='_source_file')"

    def _typed_scan(self, files: list[FileInfo], *, location: Location, plan: ReadPlan) -> str:
        """JSON read with the typed columns parsed by the reader itself: DuckDB's fastest path (the projection then
        only adds the typed columns absent from the files, and an empty ``_rescued_data``)."""
        from lakeforge.engines.projection import bronze_type, projection  # sqlglot: only when a batch is read

        paths = _paths(files, location)
        names = list(plan.columns)
        typed = {c: bronze_type(t) for c, t in plan.types.items()}
        read_as = {n: typed[n].sql(dialect="duckdb") if n in typed else "VARCHAR" for n in names}
        cols = ", ".join(f"{DUCKDB.literal(n)}: {DUCKDB.literal(t)}" for n, t in read_as.items())
        scan = (f"read_json({paths}, format='newline_delimited', records='true', columns={{{cols}}}, "
                "filename='_source_file')")
        select = projection({n: typed.get(n) for n in names}, plan).sql(dialect="duckdb", with_rescued=True)
        return f"SELECT {', '.join([*select, SOURCE_FILE])} FROM {scan}"

    def _described(self, scan: str) -> dict[str, str]:
        """The scan's columns and their DuckDB types."""
        return {str(row[0]): str(row[1]) for row in self.con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()}

    def _columns(self, scan: str) -> list[str]:
        return list(self._described(scan))

    def _planned_select(self, scan: str, source: SourceConfig, plan: ReadPlan) -> str:
        """Typed columns (always present); values that do not fit, and rescued columns, go to ``_rescued_data``;
        ignored columns are left out (:mod:`lakeforge.engines.projection`)."""
        if not plan.types and not plan.rescue and not plan.ignore:
            return f"SELECT * FROM {scan}"
        from lakeforge.engines.projection import projection, raw_type  # sqlglot: only when a batch is read

        raw = {c: raw_type(t, dialect="duckdb") for c, t in self._described(scan).items() if c != "_source_file"}
        select = projection(raw, plan, timestamp_format=source.timestamp_format).sql(dialect="duckdb")
        return f"SELECT {', '.join([*select, SOURCE_FILE])} FROM (SELECT * FROM {scan}) AS raw"

    # -- models -------------------------------------------------------------------------------
    def run_model(
        self,
        sql: str,
        *,
        model: str,
        relations: Mapping[str, Relation],
        expectations: list[tuple[Expectation, str]],
        unique_key: list[str],
        order_by: list[str],
        keep: Literal["first", "last"],
    ) -> ModelOutput:
        """Run the model's SELECT once with a bit per failed rule (and the dedup rank) beside each row, stage the
        result, count every rule from it, then hand out the kept and the quarantined rows as streams."""
        import duckdb

        self.bind(relations)
        if not expectations and not unique_key:
            return self._streamed(sql, model=model)
        if len(expectations) > 63:
            raise ModelError(f"model {model} has {len(expectations)} expectations; at most 63 are supported",
                             hint="split the checks across models")
        # one bit per failed rule, in one integer column: far cheaper to carry through the dedup sort than a
        # boolean column per rule
        plan = rule_plan(expectations, unique_key=unique_key, order_by=order_by, keep=keep, ident=DUCKDB.ident,
                         dup=f"(rowid IN (SELECT __lf_r FROM {DUPS}))",
                         tiebreak=self._columns_of(sql) if unique_key else None)
        width = "USMALLINT" if len(expectations) <= 16 else "UINTEGER" if len(expectations) <= 32 else "UBIGINT"
        try:
            stage = self._stage_on(self._stage_estimate(sql, relations))
            self.con.execute(f"CREATE OR REPLACE TABLE {stage} AS "
                             f"SELECT *, CAST({plan.mask} AS {width}) AS __lf_mask FROM ({sql}) AS __lf_model")
            if unique_key:
                self._rank_duplicates(plan, unique_key)
        except duckdb.OutOfMemoryException as exc:  # the same work fails the same way: permanent
            raise EngineError(f"model {model} failed: {_first_line(str(exc))}",
                              hint="raise the engine's memory_limit, or set `stage: disk` on the engine") from None
        except duckdb.Error as exc:
            raise model_error(model, exc, hint="fix the model's SQL") from None
        row = plan.tally(self.con.execute(plan.count_sql(stage)).fetchall())
        rows_in, results, dropped_by, (n_quarantined, n_dropped, n_dup) = rule_outcome(model, plan, row)
        internal = self._internal_columns()
        data = f"* EXCLUDE ({', '.join(internal)})" if internal else "*"
        kept_sql = f"SELECT {data} FROM {stage} WHERE {plan.kept}"
        quarantined_sql = (f"SELECT {data}, list_filter([{plan.failed_names}], lambda x: x IS NOT NULL) "
                           f"AS _failed_rules FROM {stage} WHERE {plan.quarantine}")
        return ModelOutput(
            schema=self.con.sql(f"SELECT {data} FROM {stage} LIMIT 0").to_arrow_table().schema,
            rows_in=rows_in,
            rows_kept=rows_in - n_quarantined - n_dropped - n_dup,
            rows_quarantined=n_quarantined,
            rows_dropped=n_dropped + n_dup,
            rules=results,
            dropped_by=dropped_by,
            kept=lambda: self._reader(kept_sql),
            quarantined=lambda: self._reader(quarantined_sql),
            release=self._release_stage,
        )

    def _streamed(self, sql: str, *, model: str) -> ModelOutput:
        """No rule and no dedup: nothing to stage; rows stream straight to the writer and are counted on the way."""
        import duckdb
        import pyarrow as pa

        try:
            reader = self._reader(sql)
        except duckdb.Error as exc:
            raise model_error(model, exc, hint="fix the model's SQL") from None
        output = ModelOutput(rows_in=0, rows_kept=0, rows_quarantined=0, rows_dropped=0, rules=[], dropped_by={},
                             schema=reader.schema,
                             kept=lambda: pa.RecordBatchReader.from_batches(reader.schema, counted()),
                             quarantined=lambda: pa.RecordBatchReader.from_batches(reader.schema, iter(())))

        def counted() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    output.rows_in += batch.num_rows
                    output.rows_kept += batch.num_rows
                    yield batch
            except (duckdb.Error, OSError, pa.ArrowException) as exc:  # (read as Arrow: DuckDB's error as Arrow's)
                raise model_error(model, exc, hint="fix the model's SQL or its input") from None

        return output

    def _rank_duplicates(self, plan: RulePlan, unique_key: list[str]) -> None:
        """The staged rows that lose the dedup, by rowid: ranked among the rows of their key only, and only for
        keys that come more than once (found by hashing the keys). Ranking every row would sort the whole stage
        with all its columns: 4.4 s of a 10M-row silver step against 1.1 s this way (measured 2026-11-27)."""
        keys = ", ".join(DUCKDB.ident(k) for k in unique_key)
        same = " AND ".join(f"s.{DUCKDB.ident(k)} IS NOT DISTINCT FROM d.{DUCKDB.ident(k)}" for k in unique_key)
        self.con.execute(
            f"CREATE OR REPLACE TABLE {DUPS} AS SELECT __lf_r FROM ("
            f"SELECT s.rowid AS __lf_r, row_number() OVER ({plan.window}) AS __lf_rn FROM {self._stage} AS s "
            f"SEMI JOIN (SELECT {keys} FROM {self._stage} GROUP BY ALL HAVING count(*) > 1) AS d ON {same}"
            f") WHERE __lf_rn > 1")

    def _columns_of(self, sql: str) -> list[str]:
        """The model's columns, without running it (bound, not executed); a model that does not bind fails later,
        with its own error."""
        import duckdb

        try:
            return [str(c) for c in self.con.sql(sql).columns]
        except duckdb.Error:
            return []

    def _stage_estimate(self, sql: str, relations: Mapping[str, Relation]) -> int:
        """Bytes the staged rows would take in memory: the input's rows (from table metadata) times the width of
        the model's columns. Only ``stage: auto`` needs it."""
        if self.config.stage != "auto":
            return 0
        rows = sum(self.rows(r) for r in relations.values())
        if not rows:
            return 0
        width = sum(_WIDTHS.get(str(t), 64) for t in self.con.sql(sql).types)
        return rows * (width + 2)  # + the rule mask

    def _memory_limit(self) -> int:
        size, _, unit = str(self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]).partition(" ")
        return int(float(size) * _UNITS.get(unit, 1))

    def _stage_on(self, estimate: int) -> str:
        """Where this model's rows are staged. In memory, DuckDB spills what outgrows its memory limit to disk
        uncompressed and reads it back; a DuckDB file holds the same rows compressed. Measured 2026-11-27 on 100M
        rows (memory_limit 1750MB): the engine's part of silver 45.5 s in memory (11.8 GB of spill), 35.4 s on a
        file (1.68 GB); on 10M rows (an estimated 1.9 GB, about the limit) memory was the faster: the silver step
        4.2-4.5 s against 5.7-6.2 s on a file. Writing the file costs about 0.9 s per GB of stage and spilling
        about 1.8 s per GB spilled, so ``stage: auto`` stages on disk when the estimate exceeds twice the memory
        limit."""
        disk = self.config.stage == "disk" or (self.config.stage == "auto" and estimate > 2 * self._memory_limit())
        self._drop_stage()
        if disk:
            root = os.path.abspath(self.config.temp_directory or tempfile.gettempdir())  # where DuckDB spills too
            _sweep_stage_dirs(root)
            os.makedirs(root, exist_ok=True)
            self._stage_dir = tempfile.mkdtemp(prefix=f"lakeforge-stage-{os.getpid()}-", dir=root)
            path = os.path.join(self._stage_dir, "stage.duckdb")
            self.con.execute(f"ATTACH {DUCKDB.literal(path)} AS __lf_disk")
        self._stage = DISK_STAGE if disk else STAGE
        return self._stage

    def _drop_stage(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {STAGE}")
        self.con.execute(f"DROP TABLE IF EXISTS {DUPS}")
        if self._stage_dir is not None:
            self.con.execute("DETACH DATABASE IF EXISTS __lf_disk")
            shutil.rmtree(self._stage_dir, ignore_errors=True)
            self._stage_dir = None
        self._stage = STAGE

    def _release_stage(self) -> None:
        self.release()
        self._drop_stage()

    def _internal_columns(self) -> list[str]:
        return [str(r[0]) for r in self.con.execute(f"DESCRIBE {self._stage}").fetchall()
                if str(r[0]).startswith("__lf_")]

    def register(self, alias: str, relation: Relation) -> None:
        self.release()
        self.con.register(alias, relation)

    def query_arrow(self, sql: str, *, relations: Mapping[str, Relation]) -> pa.Table:
        self.bind(relations)  # also closes open results
        return self.con.sql(sql).to_arrow_table()

    def execute(self, sql: str, *, relations: Mapping[str, Relation] | None = None) -> list[tuple[Any, ...]]:
        self.bind(relations or {})
        return self.con.execute(sql).fetchall()


def _sweep_stage_dirs(root: str) -> None:
    """Remove the disk stages in ``root`` of processes that are gone (killed half way through a model)."""
    for path in glob.glob(os.path.join(root, "lakeforge-stage-*-*")):
        pid = os.path.basename(path).split("-")[2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # alive, another user's


def model_error(model: str, exc: BaseException, *, hint: str) -> LakeforgeError:
    """A model's DuckDB error: the model's own (its SQL, its data), unless reading a lakehouse table under it
    failed; that is the storage's, transient or not (:mod:`lakeforge.engines.duckdb.errors`)."""
    if stream_failure(exc) is not None:
        return storage_error(exc, what=f"read the input of model {model} from the lakehouse",
                             hint="check that the lakehouse can be read (its folder, or the storage settings in "
                                  "lakeforge.yml)")
    return ModelError(f"model {model} failed: {_first_line(str(exc))}", hint=hint)


def _first_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else message

