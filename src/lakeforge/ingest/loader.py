"""Landing → bronze, each file exactly once, crash or not.

How (the way Spark's streaming sinks do it), for batch N of a source:

1. write a manifest of its files to ``<lakehouse>/_lakeforge/checkpoints/<source>/batch-<N>.json``;
2. write the rows of files that cannot be parsed to ``quarantine.bronze_<source>`` and the rows of the rest to
   ``bronze.<source>``, each commit carrying the Delta transaction ``(lakeforge:ingest:<source>, N)``;
3. a later discovery skips every file named in a manifest (a growing file: every byte a manifest's range covers).

A batch reads exactly the bytes its manifest records (see :mod:`lakeforge.ingest.listing`): an immutable file
that is not as listed when the batch reads it is left out of the batch before anything commits.

After a crash, a manifest whose N the bronze table does not yet show as committed is redone with exactly its
files; a commit that the table already shows is not repeated. Nothing is counted twice, nothing skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lakeforge.config.models import SourceConfig
from lakeforge.engines.base import Claimed, Engine, ReadPlan
from lakeforge.errors import LimitExceeded, SourceError
from lakeforge.ingest import listing
from lakeforge.ingest.listing import Changed, Discovery, exact_copies
from lakeforge.ingest.manifest import Manifest
from lakeforge.ingest.sniff import WIDENING, sniff_jsonl
from lakeforge.ingest.triage import BadInput, Misfits, precheck
from lakeforge.lakehouse import Catalog
from lakeforge.results import StageResult
from lakeforge.storage import FileInfo, Location

if TYPE_CHECKING:
    import pyarrow as pa  # imported where a batch is read: a run with nothing to do never needs it

CHECKPOINTS = "_lakeforge/checkpoints"
SCHEMAS = "_lakeforge/schemas"


def now() -> dt.datetime:
    """The ingestion time stamped on a batch (one place, so tests can pin it)."""
    return dt.datetime.now(dt.UTC)


class Ingestor(BadInput):
    def __init__(self, *, name: str, source: SourceConfig, landing: Location, lakehouse: Location,
                 catalog: Catalog, engine: Engine | None) -> None:
        self.name = name
        self.source = source
        self.landing = landing
        self.lakehouse = lakehouse
        self.catalog = catalog
        self.engine = engine
        self.table = f"bronze.{name}"
        self.quarantine = f"quarantine.bronze_{name}"
        self.app_id = f"lakeforge:ingest:{name}"
        self.checkpoint_dir = f"{CHECKPOINTS}/{name}"
        self._result: StageResult | None = None  # the stage being run (its warnings)
        self._changed_while_read: list[str] = []
        self._over_limit: LimitExceeded | None = None  # the batch's limit, found while its rows streamed
        self._progress: Callable[[str, int, int], None] | None = None  # run()'s
        self._new_files = 0  # files found new by the last discovery (the progress total)

    # -- manifests -----------------------------------------------------------------------------
    def _manifest_path(self, batch_id: int) -> str:
        return f"{self.checkpoint_dir}/batch-{batch_id:08d}.json"

    def _manifests(self) -> dict[int, Manifest]:
        found: dict[int, Manifest] = {}
        for info in self.lakehouse.list_files(self.checkpoint_dir, pattern="batch-*.json"):
            manifest = Manifest.from_dict(self.lakehouse.read_json(info.path))
            found[manifest.batch_id] = manifest
        return found

    def _save(self, manifest: Manifest) -> None:
        self.lakehouse.write_json_atomic(self._manifest_path(manifest.batch_id), manifest.to_dict(self.name))

    # -- the stream's side (engines.base.StreamSink): an engine that ingests as a stream commits through these
    def stream_plan(self, backlog: list[FileInfo]) -> ReadPlan:
        plan = self._plan(backlog, self.landing)
        return ReadPlan(types=plan.types, rescue=plan.rescue, ignore=plan.ignore, columns=plan.columns)

    def stream_checkpoint(self) -> str:
        return self.lakehouse.join(self.checkpoint_dir, "_spark")

    def claim(self, files: list[FileInfo]) -> Claimed | None:
        manifests = self._manifests()
        recorded = {f.path for m in manifests.values() for f in m.files}
        fresh = [f for f in files if f.path not in recorded]
        if not fresh:
            return None  # a replay of files already committed (or found by the batch path)
        batch_id = max([*manifests, self.catalog.consumed(self.table, self.app_id)]) + 1
        manifest = Manifest(batch_id=batch_id, files=sorted(fresh, key=lambda f: (f.mtime_ms, f.path)),
                            created_at=time.time())
        self._save(manifest)
        return Claimed(batch_id=batch_id, files=manifest.files, ingested_at=now())

    def append(self, data: Any, *, batch_id: int) -> int:
        return self.catalog.write(self.table, data, mode="append", transactions={self.app_id: batch_id}) or 0

    def backlog(self) -> list[FileInfo]:
        """Landing files (a growing file: its complete new lines) not yet ingested nor recorded in a pending batch,
        and files that wait to settle."""
        return self.discover().backlog()

    def changed_after_ingest(self) -> list[Changed]:
        """Files that changed after their batch was committed and that no run takes again."""
        return [] if self.source.allow_overwrites else self.discover().changed

    def discover(self, manifests: dict[int, Manifest] | None = None) -> Discovery:
        """The listing against the manifests (the last range each names per path) and the files seen changing."""
        recorded: dict[str, FileInfo] = {}
        for manifest in sorted((manifests if manifests is not None else self._manifests()).values(),
                               key=lambda m: m.batch_id):
            recorded.update({f.path: f for f in manifest.files})
        return listing.discover(name=self.name, source=self.source, landing=self.landing, listing=self._listing(),
                                recorded=recorded, unsettled=self._unsettled())

    def _listing(self) -> list[FileInfo]:
        return self.landing.list_files(self.source.folder(self.name), pattern=self.source.pattern)

    def _unsettled(self) -> dict[str, int]:
        path = f"{self.checkpoint_dir}/{listing.UNSETTLED}"
        return {k: int(v) for k, v in self.lakehouse.read_json(path).items()} if self.lakehouse.exists(path) else {}

    def _defer(self, manifest: Manifest, paths: list[str]) -> bool:
        """Leave files that are not as listed out of a batch not yet committed: they wait to settle (recorded
        first, so a crash in between only defers them again). False when the batch is left with no file."""
        unsettled = {**self._unsettled(), **{p: int(time.time() * 1000) for p in paths}}
        self.lakehouse.write_json_atomic(f"{self.checkpoint_dir}/{listing.UNSETTLED}", unsettled)
        manifest.drop(paths)
        if manifest.files:
            self._save(manifest)
            return True
        self.lakehouse.delete(self._manifest_path(manifest.batch_id))
        return False

    def _batches(self, *, pending_only: bool = False) -> Iterator[tuple[Manifest, bool]]:
        """Pending batches first (a crash left them half done), then new files, one format per batch."""
        manifests = self._manifests()
        committed = self.catalog.consumed(self.table, self.app_id)
        quarantined = self.catalog.consumed(self.quarantine, self.app_id)
        for batch_id in sorted(manifests):
            manifest = manifests[batch_id]
            if batch_id > committed or (manifest.has_bad and batch_id > quarantined):
                yield manifest, True
        if pending_only:
            return
        found = self.discover(manifests)
        self._new_files = len(found.new)
        self._warn(found.changed)
        by_format: dict[str, list[FileInfo]] = {}
        for info in sorted(found.new, key=lambda f: (f.mtime_ms, f.path)):
            by_format.setdefault(self.source.format_of(info.path) or "unknown", []).append(info)
        next_id = max([*manifests, committed]) + 1
        for fmt in sorted(by_format):
            for files in listing.chunks(by_format[fmt], files=self.source.max_files_per_batch,
                                        size=self.source.max_bytes_per_batch):
                starts = {f.path: found.starts[f.path] for f in files if f.path in found.starts}
                yield Manifest(batch_id=next_id, files=files, created_at=time.time(), starts=starts), False
                next_id += 1

    def _warn(self, changed: list[Changed]) -> None:
        """Files changed after ingest: said on stderr and kept in the stage's result (the event log)."""
        taken = self.source.allow_overwrites
        for change in changed:
            message = change.describe(source=self.name, taken=taken)
            print(f"warning: {message}", file=sys.stderr)
            if self._result is not None:
                self._result.changed.append({"path": change.current.path, "message": message,
                                             "action": "ingested again" if taken else "ignored"})

    # -- the stage ------------------------------------------------------------------------------
    def run(self, *, progress: Callable[[str, int, int], None] | None = None) -> StageResult:
        """Ingest the pending batches and the new files. ``progress(what, done, total)`` hears of the files done
        after each batch when the new files span several batches (a front end's progress display)."""
        result = StageResult(name=f"ingest:{self.name}", kind="ingest", status="skipped", strategy="files")
        started = time.perf_counter()
        self._result = result
        self._progress = progress
        self._run_batches(result, pending_only=True)
        stream = getattr(self.engine, "stream_ingest", None)  # engines that ingest as a stream (Spark)
        if self.source.growing:  # ranges of files: lakeforge's own batches
            stream = None
        backlog = self.discover().new if stream is not None else []  # (not the files waiting to settle)
        if stream is not None and backlog:
            try:
                stream(self, backlog=backlog, result=result)
            except Exception as exc:  # a file the stream cannot parse: the batch path triages it
                if self.engine is None or not self.engine.is_bad_input(exc):
                    raise
        self._run_batches(result)
        cleaned = self.clean_source()
        if cleaned:
            result.detail = f"{'moved' if self.source.clean_source == 'move' else 'deleted'} {cleaned} files"
        result.seconds = time.perf_counter() - started
        if result.status == "skipped":
            result.detail = "no new files"
        return result

    def _run_batches(self, result: StageResult, *, pending_only: bool = False) -> None:
        done = 0
        for manifest, redo in self._batches(pending_only=pending_only):
            if not redo:
                self._save(manifest)
            if self._ingest(manifest, result):
                result.status = "ok"
            if not redo and self._progress is not None and self._new_files > len(manifest.files):
                done += len(manifest.files)
                self._progress(f"ingest:{self.name}: files ({result.rows_out:,} rows)", done, self._new_files)

    def _ingest(self, manifest: Manifest, result: StageResult) -> bool:
        """Bronze first, then the quarantine of the files that could not be parsed; each commit carries the
        batch id, and the manifest names the bad files before either commit, so a rerun finishes the job. Files
        not as listed (before or while the batch reads them) are left out first; False when none is left."""
        batch_id = manifest.batch_id
        ingested_at = now()
        written = 0
        while self.catalog.consumed(self.table, self.app_id) < batch_id:
            moved = self._moved(manifest.files)
            if moved and not self._defer(manifest, moved):
                return False
            try:
                written = self._read_batch(manifest, ingested_at)
                break
            except FilesChanged as exc:  # an immutable file changed while it was read: nothing was committed
                if not self._defer(manifest, exc.paths):
                    return False
        bad_rows = sum(rows for _, rows in manifest.bad.values()) + sum(len(v) for v in manifest.bad_lines.values())
        if manifest.has_bad and self.catalog.consumed(self.quarantine, self.app_id) < batch_id:
            self._write_quarantine(manifest, ingested_at)
        result.rows_in += written + bad_rows
        result.rows_out += written
        result.rows_quarantined += bad_rows
        result.files_quarantined += len(manifest.bad)
        result.rows_read += written + bad_rows
        result.rows_written += written
        result.bytes += sum(f.size - manifest.starts.get(f.path, 0) for f in manifest.files)
        return True

    def _moved(self, files: list[FileInfo]) -> list[str]:
        return listing.moved(self.landing, files, growing=self.source.growing, listed=self._listing)

    def _read_batch(self, manifest: Manifest, ingested_at: dt.datetime) -> int:
        """The batch's good rows into bronze, in one commit: exactly the bytes its manifest records."""
        unreadable = {f.path: r for f, r in ((f, precheck(f, self.source)) for f in manifest.files) if r}
        if any(p not in manifest.bad for p in unreadable):
            manifest.bad.update({p: (r, self._count_rows(p, manifest)) for p, r in unreadable.items()})
            self._save(manifest)
        good = [f for f in manifest.files if f.path not in manifest.bad]
        # object storage: the batch's files, downloaded; growing files: their ranges
        with exact_copies(self.landing, good, starts=manifest.starts, source=self.source) as local:
            long_lines = self._long_lines(good, local)
            if any(p not in manifest.bad_lines for p in long_lines):
                self._triage(manifest, local, long_lines)
            try:
                with self._sanitized(manifest, local) as readable:
                    return self._write_typed_or_text(manifest, readable, ingested_at)
            except FilesChanged:
                raise
            except Exception as exc:
                if self.engine is None or not self.engine.is_bad_input(exc):
                    raise
                good = [f for f in manifest.files if f.path not in manifest.bad]
                plan = ReadPlan(types=self._types(self._schema()))  # each file is described on its own
                found = self.engine.check_files(good, location=local, source=self.source, plan=plan)
                if not found:
                    raise
                self._triage(manifest, local, found)
                self._recheck(manifest, local, [p for p in found if p in manifest.bad_lines], plan)
                with self._sanitized(manifest, local) as readable:
                    return self._write_typed_or_text(manifest, readable, ingested_at)

    def _write_typed_or_text(self, manifest: Manifest, readable: Location, ingested_at: dt.datetime) -> int:
        self._changed_while_read = []
        self._over_limit = None
        try:
            return self._write_bronze(manifest, readable, ingested_at)
        except Exception as exc:  # the optimistic typed read met a misfit: read as text
            self._raise_if_changed(exc)
            if self.engine is None or not self.engine.is_bad_input(exc):
                raise
            try:
                return self._write_bronze(manifest, readable, ingested_at, typed_read=False)
            except Exception as again:
                self._raise_if_changed(again)
                raise

    def _raise_if_changed(self, exc: Exception) -> None:
        """The write failed because a file changed while it was read, or the batch was over its limit (the writer
        wraps the reader's error)."""
        if self._over_limit is not None:
            raise self._over_limit from None
        if self._changed_while_read:
            raise FilesChanged(self._changed_while_read) from exc

    def _limit_before_commit(self, manifest: Manifest, written: int, misfits: Misfits | None) -> None:
        """The batch's rows are all read and not committed yet: over its limit, the write fails (the error is kept,
        as the writer may wrap it)."""
        try:
            self.check_limit(manifest, written=written, misfits=misfits)
        except LimitExceeded as exc:
            self._over_limit = exc
            raise

    def _check_read(self, files: list[FileInfo]) -> None:
        """After the read, before the commit: immutable files must still be as listed (else the rows read may
        not be the recorded bytes); the write then fails and the batch is redone without them."""
        moved = [] if self.source.growing else self._moved(files)
        if moved:
            self._changed_while_read = moved
            raise FilesChanged(moved)

    def _write_bronze(self, manifest: Manifest, local: Location, ingested_at: dt.datetime, *,
                      typed_read: bool = True) -> int:
        import pyarrow as pa

        assert self.engine is not None
        good = [f for f in manifest.files if f.path not in manifest.bad]
        count = [0]
        if good:
            plan = self._plan(good, local)
            if not typed_read:
                plan = dataclasses.replace(plan, typed_read=False)
            reader = self.engine.scan_files(good, location=local, source=self.source, plan=plan,
                                            batch_id=manifest.batch_id, ingested_at=ingested_at)

            misfits = Misfits() if not plan.rescue else None  # (rescued columns are no misfits)

            def counted() -> Iterator[pa.RecordBatch]:
                for batch in reader:
                    count[0] += batch.num_rows
                    if misfits is not None:
                        misfits.add(batch)
                    yield batch
                self._check_read(good)
                self._limit_before_commit(manifest, count[0], misfits)

            # Arrow streams are counted on the way; a distributed engine's writer reports its own count
            data: Any = (pa.RecordBatchReader.from_batches(reader.schema, counted())
                         if isinstance(reader, pa.RecordBatchReader) else reader)
            if data is reader and manifest.has_bad:  # a distributed engine writes on its own: count first
                self.check_limit(manifest, written=self.engine.rows(reader))
        else:  # every file was bad: commit no rows, but the batch id, and the columns the hints promise
            typed = self.engine.typed_schema(self._types(self._schema()))
            data = pa.schema([*typed, *metadata_schema()]).empty_table()
            self.check_limit(manifest, written=0)
        written = self.catalog.write(self.table, data, mode="append", transactions={self.app_id: manifest.batch_id})
        return count[0] if written is None else written

    # -- schema ---------------------------------------------------------------------------------
    def _schema_path(self) -> str:
        return f"{SCHEMAS}/{self.name}.json"

    def _schema(self) -> dict[str, str]:
        """The source's known columns and their inferred types, persisted beside the tables."""
        path = self._schema_path()
        return dict(self.lakehouse.read_json(path)["columns"]) if self.lakehouse.exists(path) else {}

    def _types(self, schema: dict[str, str]) -> dict[str, str]:
        """Columns typed in bronze: the inferred ones (with ``infer_column_types``), then the hints, which win."""
        types = {c: t for c, t in schema.items() if t != "string"} if self.source.infer_column_types else {}
        return {**types, **self.source.schema_hints}

    def _plan(self, files: list[FileInfo], local: Location) -> ReadPlan:
        """Compare the batch's columns with the known schema and apply the evolution mode."""
        assert self.engine is not None
        sniffed = sniff_jsonl(files, location=local) if self.source.format_of(files[0].path) == "jsonl" else None
        detected = sniffed or self.engine.describe_files(files, location=local, source=self.source)
        schema = self._schema()
        new = [c for c in detected if c not in schema and c not in self.source.schema_hints]
        mode = self.source.schema_evolution
        if not schema:  # the first batch defines the schema, in every mode (inference from a sample)
            schema = dict(detected)
            self._save_schema(schema)
            new = []
        widened = {c: t for c, t in detected.items() if c in schema and _wider(t, schema[c])}
        if new and mode == "failOnNewColumns":
            where = self._files_with(new, files, local)
            raise SourceError(
                f"source {self.name}: new column(s) {', '.join(new)} in {', '.join(where)}; "
                "schema_evolution is failOnNewColumns, so nothing of this batch was ingested",
                hint="declare them in schema_hints, or set schema_evolution to addNewColumns or rescue",
            )
        if mode == "addNewColumns" and (new or (widened and self.source.infer_column_types)):
            schema.update({c: detected[c] for c in new})
            if self.source.infer_column_types:
                self._widen(widened)
                schema.update(widened)
            self._save_schema(schema)
            new = []
        types = self._types(schema)
        columns = tuple(detected)
        # every typed column looks, in the sample, like its type: read it typed (a misfit then fails the read
        # and the batch is read again as text, with TRY_CAST and _rescued_data)
        typed_read = (self.source.format_of(files[0].path) == "jsonl" and not new and all(
            _fits(detected.get(c), t) for c, t in types.items()))
        if typed_read:
            return ReadPlan(types=types, columns=columns, typed_read=True)
        if mode == "rescue":
            return ReadPlan(types=types, rescue=tuple(new), columns=columns)
        if mode == "none":
            return ReadPlan(types=types, ignore=tuple(new), columns=columns)
        return ReadPlan(types=types, columns=columns)

    def _save_schema(self, schema: dict[str, str]) -> None:
        self.lakehouse.write_json_atomic(self._schema_path(), {"source": self.name, "columns": schema})

    def _widen(self, widened: dict[str, str]) -> None:
        """bigint -> double in bronze: rewrite the table with the wider type (rare; downstream recomputes)."""
        if not widened or not self.catalog.exists(self.table):
            return
        self.catalog.widen(self.table, {c: _arrow(t) for c, t in widened.items()})

    def _files_with(self, columns: list[str], files: list[FileInfo], local: Location) -> list[str]:
        assert self.engine is not None
        found = [f.path for f in files
                 if set(columns) & set(self.engine.describe_files([f], location=local, source=self.source))]
        return found or [f.path for f in files]

    # -- source lifecycle ---------------------------------------------------------------------------
    def clean_source(self) -> int:
        """Move or delete the files of committed batches (once past the retention), never before."""
        if self.source.clean_source == "off" or self.source.growing:
            return 0
        committed = self.catalog.consumed(self.table, self.app_id)
        horizon = time.time() - self.source.retention_hours * 3600
        done = 0
        for manifest in self._manifests().values():
            if manifest.cleaned or manifest.batch_id > committed or manifest.created_at > horizon:
                continue
            for info in manifest.files:
                if info.path in manifest.bad or not self.landing.exists(info.path):
                    continue  # bad files stay where they are, for inspection
                if self.source.clean_source == "move":
                    self.landing.move(info.path, f"{self.source.move_to.strip('/')}/{info.path}")
                else:
                    self.landing.delete(info.path)
                done += 1
            manifest.cleaned = True
            self._save(manifest)
        return done

class FilesChanged(Exception):
    """Immutable files that changed while a batch read them (before its commit)."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"changed while read: {', '.join(paths)}")
        self.paths = paths


def _arrow(sql_type: str) -> pa.DataType:
    import pyarrow as pa

    return {"double": pa.float64(), "bigint": pa.int64()}[sql_type]


def _fits(detected: str | None, declared: str) -> bool:
    """Whether values inferred as ``detected`` read directly as ``declared`` (absent columns fit anything)."""
    declared = declared.split("(")[0].strip().lower()
    families = {"bigint": {"bigint"}, "long": {"bigint"}, "int": {"bigint"}, "integer": {"bigint"},
                "double": {"bigint", "double"}, "float": {"bigint", "double"},
                "timestamp": {"timestamp"}, "date": {"date"}, "boolean": {"boolean"},
                "string": {"string", "bigint", "double", "boolean", "timestamp", "date"}}
    return detected is None or detected in families.get(declared, set())


def _wider(new: str, old: str) -> bool:
    """Safe widening only: bigint -> double (and boolean -> bigint)."""
    return new in WIDENING and old in WIDENING and WIDENING[new] > WIDENING[old]


@functools.cache
def metadata_schema() -> pa.Schema:
    """The metadata columns every bronze row carries."""
    import pyarrow as pa

    return pa.schema([
        ("_source_file", pa.string()),
        ("_file_size", pa.int64()),
        ("_file_modification_time", pa.timestamp("us", "UTC")),
        ("_ingested_at", pa.timestamp("us", "UTC")),
        ("_batch_id", pa.int64()),
    ])
