"""Delta tables of the lakehouse, addressed as ``layer.table``.

Every commit lakeforge makes can carry Delta *application transactions* (``app_id`` → ``version``): ingestion
records its batch number, a model records the version of each upstream table it consumed. They are part of
the same atomic commit as the rows, which is what makes reruns after a crash exact.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypedDict, TypeVar

from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakeforge.errors import ConfigError
from lakeforge.lakehouse.errors import Tracked, delta_errors, tracked
from lakeforge.storage import Location

if TYPE_CHECKING:  # pyarrow (pyarrow.dataset imports pandas, pyarrow.compute its kernels) is imported where it is
    import pyarrow as pa  # used: a run with nothing to do reads Delta logs only
    import pyarrow.dataset as pads

LAYERS = ("bronze", "silver", "gold", "quarantine")
TABLE_CONFIG = {"delta.enableChangeDataFeed": "true"}
METADATA_COLUMNS = frozenset({"_source_file", "_file_size", "_file_modification_time", "_ingested_at", "_batch_id",
                              "_rescued_data"})
METADATA_LOOKBACK = 25  # commits searched for lakeforge's metadata (optimize / vacuum commits carry none)
CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
P = ParamSpec("P")
T = TypeVar("T")


class TableInfoDict(TypedDict):
    """A table's line of ``lakeforge status`` (:meth:`TableInfo.to_dict`)."""

    name: str
    layer: str
    rows: int
    version: int
    last_modified: str  # ISO 8601, UTC
    freshness_seconds: float


@dataclass(frozen=True)
class TableInfo:
    name: str
    layer: str
    rows: int
    version: int
    last_modified: float  # unix seconds

    def to_dict(self) -> TableInfoDict:
        return {
            "name": self.name,
            "layer": self.layer,
            "rows": self.rows,
            "version": self.version,
            "last_modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_modified)),
            "freshness_seconds": round(max(0.0, time.time() - self.last_modified), 1),
        }


def split_name(name: str) -> tuple[str, str]:
    layer, _, table = name.partition(".")
    if layer not in LAYERS or not table or "." in table:
        raise ConfigError(f"table name {name!r} is not of the form <layer>.<table>",
                          hint=f"use one of the layers {', '.join(LAYERS)}, e.g. silver.telemetry")
    return layer, table


def _delta(verb: str) -> Callable[[Callable[Concatenate[Catalog, str, P], T]],
                                  Callable[Concatenate[Catalog, str, P], T]]:
    """A catalog method on table ``name`` whose delta-rs errors are mapped (:meth:`Catalog.errors`)."""
    def wrap(method: Callable[Concatenate[Catalog, str, P], T]) -> Callable[Concatenate[Catalog, str, P], T]:
        @functools.wraps(method)
        def mapped(self: Catalog, name: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
            with self.errors(f"{verb} {name}"):
                return method(self, name, *args, **kwargs)
        return mapped
    return wrap


class Catalog:
    """Names ↔ Delta tables under one lakehouse location. Where it calls delta-rs, delta-rs' errors are mapped to
    lakeforge's, transient or not (:mod:`lakeforge.lakehouse.errors`)."""

    def __init__(self, location: Location) -> None:
        self._opened: dict[str, tuple[DeltaTable, tuple[int, ...]]] = {}  # local tables, opened (see _open)
        self.location = location
        # table -> (version, recorded transactions, fingerprint)
        self._metadata: dict[str, tuple[int, dict[str, int], dict[str, str] | None]] = {}
        self._changes: dict[tuple[Any, ...], pa.Table] = {}  # this run's change feeds read

    def forget(self) -> None:
        """Drop what was read in the last run (a run starts with it: a table may have been recreated since)."""
        self._changes.clear()

    def uri(self, name: str) -> str:
        layer, table = split_name(name)
        return self.location.join(layer, table)

    def errors(self, what: str, *, tracker: Tracked | None = None) -> AbstractContextManager[None]:
        """Where delta-rs is called for ``what`` (``write silver.x``): its errors mapped to lakeforge's."""
        return delta_errors(f"{what} in the lakehouse {self.location.uri}", tracker=tracker,
                            local=self.location.is_local)

    @_delta("look up")
    def exists(self, name: str) -> bool:
        if self._open(name) is not None:
            return True
        return DeltaTable.is_deltatable(self.uri(name), storage_options=self.location.storage_options)

    @_delta("open")
    def table(self, name: str, *, version: int | None = None) -> DeltaTable:
        """The table at its latest version (or ``version``). A local table's latest is opened once and shared while
        it stays the latest (see :meth:`_open`): a write through this catalog (``write``, ``merge``) moves that
        object to its commit, so keep a version number, not the object, across writes."""
        opened = self._open(name)
        if opened is not None and (version is None or opened.version() == version):
            return opened
        try:
            table = DeltaTable(self.uri(name), version=version, storage_options=self.location.storage_options)
        except TableNotFoundError:
            raise ConfigError(f"table {name} does not exist in the lakehouse at {self.location.uri}",
                              hint="run `lakeforge run` first, or check the name with `lakeforge status`") from None
        if version is None and self.location.is_local:
            stamp = self._stamp(name, table.version())
            if stamp is not None:
                self._opened[name] = (table, stamp)
        return table

    def _open(self, name: str) -> DeltaTable | None:
        """The local table opened before, if it is still the latest version; else None (and forgotten).

        Opening a table reads its Delta log (1-2 ms locally), and a run asks for each table's version, id or rows
        several times (its stages, the event log, the warehouse load): about 170 opens in a run of the example. A
        table opened before is the latest while its log has no next commit; its current commit is the same file
        (inode, mtime, size) unless the table was deleted and written again. Two stat calls check both. (A table
        that committed itself -- a merge, an optimize -- moved to that commit, its own.)"""
        entry = self._opened.get(name)
        if entry is None:
            return None
        table, stamp = entry
        version = table.version()
        current = self._stamp(name, version)
        if (current is None or (version == stamp[0] and current != stamp)
                or self._log(name, version + 1).exists()):
            self._opened.pop(name, None)
            return None
        if version != stamp[0]:
            self._opened[name] = (table, current)
        return table

    def _log(self, name: str, version: int) -> Path:
        layer, table = split_name(name)
        return self.location.local_path(f"{layer}/{table}/_delta_log/{version:020d}.json")

    def _stamp(self, name: str, version: int) -> tuple[int, ...] | None:
        try:
            st = os.stat(self._log(name, version))
        except OSError:
            return None
        return version, st.st_ino, st.st_mtime_ns, st.st_size

    def names(self) -> list[str]:
        found = []
        for layer in LAYERS:
            for child in self.location.list_dirs(layer):
                if self.location.list_dirs(f"{layer}/{child}").count("_delta_log"):
                    found.append(f"{layer}.{child}")
        return found

    def version(self, name: str) -> int:
        return self.identity(name)[0]

    def identity(self, name: str) -> tuple[int, str | None]:
        """The table's version and its Delta id (``metaData.id``: set when the table is created, kept by every
        later commit, overwrites too); ``(-1, None)`` when it does not exist. A table deleted and created again
        has a new id, so versions recorded elsewhere (a warehouse's ledger) can tell it is not the same table."""
        if not self.exists(name):
            return -1, None
        table = self.table(name)
        return table.version(), str(table.metadata().id)

    def data_columns(self, name: str) -> list[str]:
        """Columns other than lakeforge's own metadata (``_source_file``, ``_batch_id``, ...)."""
        return [f.name for f in self.table(name).schema().fields if f.name not in METADATA_COLUMNS]

    @_delta("read the commits of")
    def consumed(self, name: str, app_id: str) -> int:
        """The version recorded for ``app_id`` in the table's commits, -1 if none: the Delta transaction, or
        where a writer can carry only one (Spark), the commit's ``userMetadata`` that names them all."""
        if not self.exists(name):
            return -1
        table = self.table(name)
        found = table.transaction_version(app_id)
        recorded = self._recorded(name, table)[0].get(app_id, -1)
        return max(-1 if found is None else int(found), recorded)

    @_delta("read the commits of")
    def fingerprint(self, name: str) -> dict[str, str] | None:
        """The model fingerprint recorded by the newest commit that carries one (None: never recorded, e.g. a
        table written by an older lakeforge)."""
        if not self.exists(name):
            return None
        return self._recorded(name, self.table(name))[1]

    def _recorded(self, name: str, table: DeltaTable) -> tuple[dict[str, int], dict[str, str] | None]:
        """The transactions named in the newest lakeforge commit's metadata (maintenance commits skipped), and the
        newest fingerprint (a backfill's commits carry none)."""
        version = table.version()
        cached = self._metadata.get(name)
        if cached is None or cached[0] != version:  # read once per table version
            found: dict[str, int] | None = None
            fingerprint: dict[str, str] | None = None
            for commit in table.history(limit=METADATA_LOOKBACK):
                value = commit.get("userMetadata")
                recorded = _lakeforge_metadata(value)
                if recorded is not None and found is None:
                    found = recorded
                if fingerprint is None:
                    fingerprint = _fingerprint(value)
                if found is not None and fingerprint is not None:
                    break
            cached = self._metadata[name] = (version, found or {}, fingerprint)
        return cached[1], cached[2]

    @_delta("read")
    def dataset(self, name: str, *, version: int | None = None) -> pads.Dataset:
        return arrow_dataset(self.table(name, version=version))

    def changes(self, name: str, *, since: int, until: int, keys: list[str] | None = None) -> tuple[pa.Table, bool]:
        """Rows inserted or updated in versions ``since+1 .. until`` (change data feed), without the CDF
        columns, and whether any rows were deleted in that range (then consumers recompute). With ``keys``, a row
        changed in several versions comes once, as it is in the latest."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._feed(name, since=since, until=until)
        if table is None:
            return pa.schema(self.table(name, version=until).schema().to_arrow()).empty_table(), False
        kinds = table["_change_type"].cast(pa.string())
        deleted = bool(pc.any(pc.equal(kinds, "delete")).as_py())
        table = table.filter(pc.is_in(kinds, pa.array(["insert", "update_postimage"])))
        versions = table["_commit_version"]
        if keys and table.num_rows and pc.min(versions).as_py() != pc.max(versions).as_py():
            # (within one commit a key comes once, unless the table itself holds it twice: then so does this)
            table = table.take(pc.sort_indices(versions))
            table = table.append_column("__lf_row", pa.array(range(table.num_rows), pa.int64()))
            latest = table.group_by(keys, use_threads=False).aggregate([("__lf_row", "max")])
            rows = latest["__lf_row_max"]
            table = table.take(rows.take(pc.sort_indices(rows))).drop_columns(["__lf_row"])
        return table.drop_columns(list(CHANGE_COLUMNS)), deleted

    def change_images(self, name: str, *, since: int, until: int) -> tuple[pa.Table, bool]:
        """Every image of every row changed in versions ``since+1 .. until``: inserted, deleted, and both images
        of an updated row (where it was and where it is), without the CDF columns; and whether any row was
        updated or deleted. The groups or partitions these rows name are the ones a change touched."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._feed(name, since=since, until=until)
        if table is None:
            return pa.schema(self.table(name, version=until).schema().to_arrow()).empty_table(), False
        rewritten = bool(pc.any(pc.not_equal(table["_change_type"].cast(pa.string()), "insert")).as_py())
        return table.drop_columns(list(CHANGE_COLUMNS)), rewritten

    @_delta("read the change feed of")
    def _feed(self, name: str, *, since: int, until: int) -> pa.Table | None:
        """The change data feed of versions ``since+1 .. until`` (None when empty), read once per run: versions do
        not change, so two consumers of one range share it."""
        import pyarrow as pa

        if until <= since:
            return None
        key = (name, since, until)
        if key not in self._changes:
            self._changes = {k: v for k, v in self._changes.items() if k[0] != name}
            self._changes[key] = _without_views(pa.table(self.table(name).load_cdf(
                starting_version=since + 1, ending_version=until)))
        return self._changes[key]

    @_delta("read")
    def info(self, name: str) -> TableInfo:
        import pyarrow as pa
        import pyarrow.compute as pc

        dt = self.table(name)
        actions = pa.table(dt.get_add_actions(flatten=True))
        rows = int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0
        history = dt.history(limit=1)
        last = history[0].get("timestamp", 0) / 1000 if history else 0.0
        return TableInfo(name=name, layer=split_name(name)[0], rows=rows, version=dt.version(), last_modified=last)

    def write(
        self,
        name: str,
        data: pa.Table | pa.RecordBatchReader,
        *,
        mode: Literal["append", "overwrite"],
        transactions: Mapping[str, int] | None = None,
        metadata: Mapping[str, str] | None = None,
        partition_by: list[str] | None = None,
        fingerprint: Mapping[str, str] | None = None,
        target_file_size: int | None = None,
    ) -> int | None:
        """One atomic Delta commit; new columns are merged into the schema. Returns the rows written when the
        writer counts them (Spark), else None (an Arrow stream is counted by whoever made it). ``fingerprint``:
        the model's (recorded in the commit's metadata); ``target_file_size``: bytes per file (delta-rs' default
        otherwise). (A table opened before and still the latest is written through: delta-rs would open it
        again.)"""
        tracker = Tracked()  # the stream's own error, if it fails, rather than delta-rs' text of it
        with self.errors(f"write {name}", tracker=tracker):
            write_deltalake(
                self._open(name) or self.uri(name),
                tracked(data, tracker),
                mode=mode,
                schema_mode="merge" if mode == "append" else "overwrite",
                partition_by=partition_by,
                target_file_size=target_file_size,
                configuration=TABLE_CONFIG,
                storage_options=self.location.storage_options,
                commit_properties=_commit(transactions, metadata, fingerprint),
            )
        return None

    def record(self, name: str, *, transactions: Mapping[str, int], fingerprint: Mapping[str, str] | None = None
               ) -> None:
        """A commit without rows that records progress (an upstream version consumed with nothing to change)."""
        import pyarrow as pa

        schema = pa.schema(self.table(name).schema().to_arrow())
        self.write(name, _without_views(schema.empty_table()), mode="append", transactions=transactions,
                   fingerprint=fingerprint)

    @_delta("optimize")
    def optimize(self, name: str, *, zorder: list[str] | None = None) -> dict[str, Any]:
        """Compact small files (and Z-order by ``zorder``); rows do not change (dataChange=false)."""
        dt = self.table(name)
        metrics: dict[str, Any] = dt.optimize.z_order(zorder) if zorder else dt.optimize.compact()
        return metrics

    @_delta("vacuum")
    def vacuum(self, name: str, *, retention_hours: int, dry_run: bool) -> list[str]:
        """Files no version within the retention needs; deleted only when ``dry_run`` is false."""
        files: list[str] = self.table(name).vacuum(retention_hours=retention_hours, dry_run=dry_run,
                                                   enforce_retention_duration=False)
        return files

    @_delta("rewrite")
    def widen(self, name: str, types: Mapping[str, pa.DataType]) -> None:
        """Rewrite a table with some columns widened (e.g. bigint -> double); transaction ids are kept."""
        import pyarrow as pa

        dt = self.table(name)
        table = dt.to_pyarrow_table()
        for column, type_ in types.items():
            if column in table.column_names:
                index = table.column_names.index(column)
                table = table.set_column(index, pa.field(column, type_), table[column].cast(type_))
        write_deltalake(self.uri(name), table, mode="overwrite", schema_mode="overwrite",
                        configuration=TABLE_CONFIG, storage_options=self.location.storage_options)

    @_delta("merge into")
    def merge(
        self,
        name: str,
        data: pa.Table,
        *,
        keys: list[str],
        update: bool,
        transactions: Mapping[str, int] | None = None,
        delete: pa.Table | None = None,
        fingerprint: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upsert ``data`` on ``keys`` (insert only when ``update`` is false), and delete the rows whose keys
        ``delete`` lists, in one commit. Returns delta-rs metrics.

        Work follows ``data``, not the table: when the file statistics show that no file of the table holds a key
        in the range of ``data``'s (new readings after the old ones), the merge is an append; an insert-only merge
        (``update`` false, nothing to delete) reads only the key columns of the files and row groups that may hold
        ``data``'s keys and appends the rows whose keys are new (:func:`~lakeforge.lakehouse.pruning.absent`: a
        MERGE would read every column of those files); otherwise the
        condition carries the ranges ``data``'s key values lie in (:func:`~lakeforge.lakehouse.pruning.key_ranges`),
        by which delta-rs skips, neither reading nor rewriting, the files outside them (a late file over a few
        hours of the history touches those hours' files), and a key column without nulls in ``data`` is compared
        with ``=`` (the same as ``<=>`` there)."""
        import pyarrow as pa

        from lakeforge.lakehouse.pruning import absent, key_ranges, may_match, same_types  # pyarrow.compute

        table = self.table(name)
        gone = delete is not None and delete.num_rows > 0
        if not gone and data.num_rows and same_types(table, data):
            fresh = (data, 0) if not may_match(table, data, keys) else None if update else absent(
                arrow_dataset(table), data, keys)
            if fresh is not None:  # no stored row to update: the rows whose keys are new, appended
                if fresh[0].num_rows:
                    self.write(name, fresh[0], mode="append", transactions=transactions, fingerprint=fingerprint)
                return {"num_source_rows": data.num_rows, "num_target_rows_inserted": fresh[0].num_rows,
                        "num_target_rows_updated": 0, "num_target_files_scanned": fresh[1], "appended": True}
        source = data
        if gone:
            assert delete is not None
            source = _with_deletes(data, delete, keys=keys)
        predicate = " AND ".join(
            f"t.`{k}` {'=' if k in source.column_names and not source[k].null_count else '<=>'} s.`{k}`"
            for k in keys)
        ranges = key_ranges(source, keys, schema=pa.schema(table.schema().to_arrow()))
        if ranges:
            predicate = f"{predicate} AND {ranges}"
        merger = table.merge(
            source, predicate, source_alias="s", target_alias="t", merge_schema=True,
            commit_properties=_commit(transactions, None, fingerprint),
        )
        if gone:
            merger = merger.when_matched_delete(predicate=f"s.`{DELETE_FLAG}`")
            live = f"NOT s.`{DELETE_FLAG}`"
            if update:
                merger = merger.when_matched_update_all(predicate=live, except_cols=[DELETE_FLAG])
            merger = merger.when_not_matched_insert_all(predicate=live, except_cols=[DELETE_FLAG])
        else:
            if update:
                merger = merger.when_matched_update_all()
            merger = merger.when_not_matched_insert_all()
        metrics: dict[str, Any] = merger.execute()
        return metrics


DELETE_FLAG = "__lf_delete"


def _with_deletes(data: pa.Table, delete: pa.Table, *, keys: list[str]) -> pa.Table:
    """``data`` and a row per key of ``delete`` (nulls elsewhere) with a flag column that says which to delete."""
    import pyarrow as pa

    flagged = data.append_column(DELETE_FLAG, pa.repeat(pa.scalar(False), data.num_rows))
    columns = {}
    for f in data.schema:
        if f.name in keys:
            columns[f.name] = delete[f.name].cast(f.type)
        else:
            columns[f.name] = pa.nulls(delete.num_rows, f.type)
    columns[DELETE_FLAG] = pa.repeat(pa.scalar(True), delete.num_rows)
    tombstones = pa.table(columns, schema=flagged.schema)
    return pa.concat_tables([flagged.combine_chunks(), tombstones])


def arrow_dataset(table: DeltaTable) -> pads.Dataset:
    """The table as an Arrow dataset; a local table is read through Arrow's native file system.

    delta-rs' default is a Python file system adapter, and its pre-buffered Parquet reads can still be completing
    on an Arrow IO thread when the interpreter exits: that thread then needs the GIL to free a Python buffer,
    and the process aborts ("terminate called without an active exception"; measured here: 7 of 240
    `lakeforge status` runs under CPU load, the stack in pyarrow's ``PyBuffer::~PyBuffer``)."""
    import pyarrow.dataset as pads

    from lakeforge.lakehouse.readahead import ReadAheadBounded

    uri = table.table_uri
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        from pyarrow import fs

        root = unquote(urlparse(uri).path).rstrip("/")
        dataset = table.to_pyarrow_dataset(filesystem=fs.SubTreeFileSystem(root, fs.LocalFileSystem()))
    else:
        dataset = table.to_pyarrow_dataset()
    if type(dataset) is not pads.FileSystemDataset:
        return dataset
    bounded = ReadAheadBounded(list(dataset.get_fragments()), dataset.schema, dataset.format, dataset.filesystem,
                               root_partition=dataset.partition_expression)
    bounded.source = uri
    return bounded


def _without_views(table: pa.Table) -> pa.Table:
    """delta-rs returns string_view / binary_view columns that some Arrow kernels lack; use plain types."""
    import pyarrow as pa

    fields = []
    for f in table.schema:
        if f.type == pa.string_view():
            f = f.with_type(pa.string())
        elif f.type == pa.binary_view():
            f = f.with_type(pa.binary())
        fields.append(f)
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema == table.schema else table.cast(schema)


def user_metadata(transactions: Mapping[str, int] | None, fingerprint: Mapping[str, str] | None = None
                  ) -> str | None:
    """The commit's ``userMetadata``: the transactions again, for readers and writers that handle only one, and
    the model's fingerprint."""
    if not transactions:
        return None
    value: dict[str, Any] = {"lakeforge": {k: int(v) for k, v in sorted(transactions.items())}}
    if fingerprint:
        value["fingerprint"] = dict(sorted(fingerprint.items()))
    return json.dumps(value)


def _part(value: object, key: str) -> dict[str, Any] | None:
    """One part (``lakeforge``: the transactions, ``fingerprint``) of a commit's ``userMetadata``, if it has it."""
    if not isinstance(value, str) or f'"{key}"' not in value:
        return None
    try:
        found = json.loads(value).get(key)
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def _lakeforge_metadata(value: object) -> dict[str, int] | None:
    found = _part(value, "lakeforge")
    return None if found is None else {str(k): int(v) for k, v in found.items()}


def _fingerprint(value: object) -> dict[str, str] | None:
    found = _part(value, "fingerprint")
    return None if found is None else {str(k): str(v) for k, v in found.items()}


def _commit(transactions: Mapping[str, int] | None, metadata: Mapping[str, str] | None,
            fingerprint: Mapping[str, str] | None = None) -> CommitProperties:
    custom = dict(metadata or {})
    recorded = user_metadata(transactions, fingerprint)
    if recorded:
        custom["userMetadata"] = recorded
    return CommitProperties(
        app_transactions=[Transaction(app, int(v)) for app, v in (transactions or {}).items()] or None,
        custom_metadata=custom or None,
    )
