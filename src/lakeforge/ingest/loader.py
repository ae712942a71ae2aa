"""Landing → bronze, each file exactly once, crash or not.

How (the way Spark's streaming sinks do it), for batch N of a source:

1. write a manifest of its files to ``<lakehouse>/_lakeforge/checkpoints/<source>/batch-<N>.json``;
2. write the rows of files that cannot be parsed to ``quarantine.bronze_<source>`` and the rows of the rest to
   ``bronze.<source>``, each commit carrying the Delta transaction ``(lakeforge:ingest:<source>, N)``;
3. a later discovery skips every file named in a manifest.

After a crash, a manifest whose N the bronze table does not yet show as committed is redone with exactly its
files; a commit that the table already shows is not repeated. Nothing is counted twice, nothing skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa

from lakeforge.config.models import SourceConfig
from lakeforge.engines.base import Engine, ReadPlan
from lakeforge.errors import SourceError
from lakeforge.ingest.records import BadLine, Split, split_lines
from lakeforge.ingest.sniff import WIDENING, sniff_jsonl
from lakeforge.lakehouse import Catalog
from lakeforge.ops.results import StageResult
from lakeforge.storage import FileInfo, Location
from lakeforge.storage.local import LocalLocation

CHECKPOINTS = "_lakeforge/checkpoints"
SCHEMAS = "_lakeforge/schemas"


def now() -> dt.datetime:
    """The ingestion time stamped on a batch (one place, so tests can pin it)."""
    return dt.datetime.now(dt.UTC)


class Ingestor:
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

    # -- manifests -----------------------------------------------------------------------------
    def _manifest_path(self, batch_id: int) -> str:
        return f"{self.checkpoint_dir}/batch-{batch_id:08d}.json"

    def _manifests(self) -> dict[int, Manifest]:
        found: dict[int, Manifest] = {}
        for info in self.lakehouse.list_files(self.checkpoint_dir, pattern="batch-*.json"):
            data = self.lakehouse.read_json(info.path)
            manifest = Manifest(
                batch_id=int(data["batch_id"]),
                files=[FileInfo(f["path"], f["size"], f["mtime_ms"]) for f in data["files"]],
                bad={k: (str(v[0]), int(v[1])) for k, v in (data.get("bad") or {}).items()},
                bad_lines={k: [BadLine(int(b[0]), str(b[1]), str(b[2])) for b in v]
                           for k, v in (data.get("bad_lines") or {}).items()},
                cleaned=bool(data.get("cleaned")),
                created_at=float(data.get("created_at") or 0.0),
            )
            found[manifest.batch_id] = manifest
        return found

    def _save(self, manifest: Manifest) -> None:
        self.lakehouse.write_json_atomic(self._manifest_path(manifest.batch_id), {
            "batch_id": manifest.batch_id, "source": self.name,
            "files": [f.to_dict() for f in manifest.files],
            "bad": {k: list(v) for k, v in sorted(manifest.bad.items())},
            "bad_lines": {k: [b.to_list() for b in v] for k, v in sorted(manifest.bad_lines.items())},
            "cleaned": manifest.cleaned, "created_at": manifest.created_at,
        })

    def backlog(self) -> list[FileInfo]:
        """Landing files not yet ingested (nor recorded in a pending batch)."""
        return self._new_files(self._manifests())

    def _new_files(self, manifests: dict[int, Manifest]) -> list[FileInfo]:
        """Files no manifest names; with ``allow_overwrites``, also files whose size or time changed since."""
        recorded: dict[str, FileInfo] = {}
        for batch_id in sorted(manifests):
            recorded.update({f.path: f for f in manifests[batch_id].files})
        if self.source.allow_overwrites:
            return [f for f in self._listing() if recorded.get(f.path) != f]
        return [f for f in self._listing() if f.path not in recorded]

    def _listing(self) -> list[FileInfo]:
        return self.landing.list_files(self.source.folder(self.name), pattern=self.source.pattern)

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
        by_format: dict[str, list[FileInfo]] = {}
        for info in sorted(self._new_files(manifests), key=lambda f: (f.mtime_ms, f.path)):
            by_format.setdefault(self.source.format_of(info.path) or "unknown", []).append(info)
        next_id = max([*manifests, committed]) + 1
        for fmt in sorted(by_format):
            for files in _chunks(by_format[fmt], files=self.source.max_files_per_batch,
                                 size=self.source.max_bytes_per_batch):
                yield Manifest(batch_id=next_id, files=files, created_at=time.time()), False
                next_id += 1

    # -- the stage ------------------------------------------------------------------------------
    def run(self) -> StageResult:
        result = StageResult(name=f"ingest:{self.name}", kind="ingest", status="skipped", strategy="files")
        started = time.perf_counter()
        self._run_batches(result, pending_only=True)
        stream = getattr(self.engine, "stream_ingest", None)  # engines that ingest as a stream (Spark)
        backlog = self.backlog() if stream is not None else []
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
        for manifest, redo in self._batches(pending_only=pending_only):
            if not redo:
                self._save(manifest)
            self._ingest(manifest, result)
            result.status = "ok"

    def _ingest(self, manifest: Manifest, result: StageResult) -> None:
        """Bronze first, then the quarantine of the files that could not be parsed; each commit carries the
        batch id, and the manifest names the bad files before either commit, so a rerun finishes the job."""
        batch_id = manifest.batch_id
        ingested_at = now()
        written = 0
        if self.catalog.consumed(self.table, self.app_id) < batch_id:
            precheck = {f.path: r for f, r in ((f, _precheck(f, self.source)) for f in manifest.files) if r}
            if any(p not in manifest.bad for p in precheck):
                manifest.bad.update({p: (r, self._count_rows(p)) for p, r in precheck.items()})
                self._save(manifest)
            good = [f for f in manifest.files if f.path not in manifest.bad]
            with self.landing.local_copies(good) as local:  # object storage: the batch's files, downloaded
                long_lines = self._long_lines(good, local)
                if any(p not in manifest.bad_lines for p in long_lines):
                    self._triage(manifest, local, long_lines)
                try:
                    with self._sanitized(manifest, local) as readable:
                        written = self._write_typed_or_text(manifest, readable, ingested_at)
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
                        written = self._write_typed_or_text(manifest, readable, ingested_at)
        bad_rows = sum(rows for _, rows in manifest.bad.values()) + sum(len(v) for v in manifest.bad_lines.values())
        if manifest.has_bad and self.catalog.consumed(self.quarantine, self.app_id) < batch_id:
            self._write_quarantine(manifest, ingested_at)
        result.rows_in += written + bad_rows
        result.rows_out += written
        result.rows_quarantined += bad_rows
        result.files_quarantined += len(manifest.bad)
        result.rows_read += written + bad_rows
        result.rows_written += written
        result.bytes += sum(f.size for f in manifest.files)

    def _write_typed_or_text(self, manifest: Manifest, readable: Location, ingested_at: dt.datetime) -> int:
        try:
            return self._write_bronze(manifest, readable, ingested_at)
        except Exception as exc:  # the optimistic typed read met a misfit: read as text
            if self.engine is None or not self.engine.is_bad_input(exc):
                raise
            return self._write_bronze(manifest, readable, ingested_at, typed_read=False)

    def _recheck(self, manifest: Manifest, local: Location, paths: list[str], plan: ReadPlan) -> None:
        """Files whose good lines (as the line triage kept them) the engine still cannot read — Python's parsers
        and the engine's differ on some bytes, e.g. a lone CR in a CSV line — are quarantined whole, with the
        engine's reason: else the batch would fail on every run."""
        if not paths or self.engine is None:
            return
        with self._sanitized(manifest, local) as readable:
            files = [f for f in manifest.files if f.path in paths]
            still = self.engine.check_files(files, location=readable, source=self.source, plan=plan)
            root = str(readable.local_path())
        for path, reason in still.items():
            del manifest.bad_lines[path]
            manifest.bad[path] = (reason.replace(root, self.landing.uri), self._count_rows(path))
        if still:
            self._save(manifest)

    def _long_lines(self, files: list[FileInfo], local: Location) -> dict[str, str]:
        """Text files with a line over ``max_line_bytes`` (only files larger than the limit are looked at)."""
        limit = self.source.max_line_bytes
        found = {}
        for info in files if limit else []:
            if info.size > limit and self.source.format_of(info.path) in ("jsonl", "csv"):  # type: ignore[operator]
                try:
                    data = np.frombuffer(_decompress(local.read_bytes(info.path), info.path), dtype=np.uint8)
                except CorruptCompression as exc:  # no line can be read: the whole file goes to quarantine
                    found[info.path] = str(exc)
                    continue
                ends = np.concatenate(([-1], np.flatnonzero(data == 10), [len(data)]))
                if int(np.diff(ends).max()) - 1 > limit:  # type: ignore[operator]
                    found[info.path] = f"a line is over max_line_bytes ({limit:,})"
        return found

    def _triage(self, manifest: Manifest, local: Location, found: dict[str, str]) -> None:
        """Files that cannot be read whole: keep their good lines, quarantine the rest (lines, or the file)."""
        for path, reason in found.items():
            fmt = self.source.format_of(path)
            try:
                split = self._split(path, local) if fmt in ("jsonl", "csv") else None
            except CorruptCompression as exc:  # a truncated or corrupt .gz / .zst: not one line can be read
                manifest.bad[path] = (str(exc), self._count_rows(path))
                continue
            if split is None or not split.bad:
                if split is not None and split.good_rows == 0:  # (the engine's words for it would mislead)
                    reason = split.header_error or (
                        "no rows: the file holds only blank lines" + (" or a header" if fmt == "csv" else ""))
                manifest.bad[path] = (reason, self._count_rows(path))
            elif split.good_rows == 0:
                manifest.bad[path] = (f"no line could be read; line {split.bad[0].line}: {split.bad[0].reason}",
                                      len(split.bad))
            else:
                manifest.bad_lines[path] = split.bad
        self._save(manifest)

    def _split(self, path: str, local: Location) -> Split:
        data = _decompress(local.read_bytes(path), path)
        return split_lines(data, fmt=self.source.format_of(path) or "jsonl", header=self.source.header,
                           delimiter=self.source.delimiter, max_line_bytes=self.source.max_line_bytes or 2**62,
                           width=len(self.source.columns) if self.source.columns else None, quote=self.source.quote)

    @contextmanager
    def _sanitized(self, manifest: Manifest, local: Location) -> Iterator[Location]:
        """The batch's files as the engine should read them: files with bad lines replaced by their good lines."""
        if not manifest.bad_lines:
            yield local
            return
        with tempfile.TemporaryDirectory(prefix="lakeforge-triage-") as tmp:
            root = Path(tmp)
            for info in manifest.files:
                if info.path in manifest.bad:
                    continue
                target = root / info.path
                target.parent.mkdir(parents=True, exist_ok=True)
                if info.path in manifest.bad_lines:
                    target.write_bytes(_compress(self._split(info.path, local).good, info.path))
                else:
                    target.symlink_to(local.local_path(info.path))
            yield LocalLocation(root)

    def _write_bronze(self, manifest: Manifest, local: Location, ingested_at: dt.datetime, *,
                      typed_read: bool = True) -> int:
        assert self.engine is not None
        good = [f for f in manifest.files if f.path not in manifest.bad]
        count = [0]
        if good:
            plan = self._plan(good, local)
            if not typed_read:
                plan = dataclasses.replace(plan, typed_read=False)
            reader = self.engine.scan_files(good, location=local, source=self.source, plan=plan,
                                            batch_id=manifest.batch_id, ingested_at=ingested_at)

            def counted() -> Iterator[pa.RecordBatch]:
                for batch in reader:
                    count[0] += batch.num_rows
                    yield batch

            # Arrow streams are counted on the way; a distributed engine's writer reports its own count
            data: Any = (pa.RecordBatchReader.from_batches(reader.schema, counted())
                         if isinstance(reader, pa.RecordBatchReader) else reader)
        else:  # every file was bad: commit no rows, but the batch id, and the columns the hints promise
            typed = self.engine.typed_schema(self._types(self._schema()))
            data = pa.schema([*typed, *METADATA_SCHEMA]).empty_table()
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
        self.catalog.widen(self.table, {c: _ARROW[t] for c, t in widened.items()})

    def _files_with(self, columns: list[str], files: list[FileInfo], local: Location) -> list[str]:
        assert self.engine is not None
        found = [f.path for f in files
                 if set(columns) & set(self.engine.describe_files([f], location=local, source=self.source))]
        return found or [f.path for f in files]

    # -- source lifecycle ---------------------------------------------------------------------------
    def clean_source(self) -> int:
        """Move or delete the files of committed batches (once past the retention), never before."""
        if self.source.clean_source == "off":
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

    def _write_quarantine(self, manifest: Manifest, ingested_at: dt.datetime) -> None:
        """One row per bad file (``_line`` null, ``_rows`` its lines) and one per bad line."""
        by_path = {f.path: f for f in manifest.files}
        entries: list[tuple[FileInfo, str, int, int | None, str | None]] = [
            (by_path[p], reason, rows, None, None) for p, (reason, rows) in sorted(manifest.bad.items())]
        entries += [(by_path[p], b.reason, 1, b.line, b.content)
                    for p, lines in sorted(manifest.bad_lines.items()) for b in lines]
        table = pa.table({
            "_source_file": [e[0].path for e in entries],
            "_reason": [e[1] for e in entries],
            "_rows": pa.array([e[2] for e in entries], pa.int64()),
            "_line": pa.array([e[3] for e in entries], pa.int64()),
            "_content": pa.array([e[4] for e in entries], pa.string()),
            "_file_size": pa.array([e[0].size for e in entries], pa.int64()),
            "_file_modification_time": pa.array([e[0].mtime_ms * 1000 for e in entries], pa.timestamp("us", "UTC")),
            "_ingested_at": pa.array([ingested_at] * len(entries), pa.timestamp("us", "UTC")),
            "_batch_id": pa.array([manifest.batch_id] * len(entries), pa.int64()),
        })
        self.catalog.write(self.quarantine, table, mode="append", transactions={self.app_id: manifest.batch_id})

    def _count_rows(self, path: str) -> int:
        """Rows a file that could not be parsed stands for: its non-empty lines (decompressed when it can be), less a
        CSV header."""
        data = self.landing.read_bytes(path)
        with contextlib.suppress(CorruptCompression):  # (else its compressed bytes' lines: no better count exists)
            data = _decompress(data, path)
        lines = sum(1 for line in data.split(b"\n") if line.strip())  # lines as the line triage counts them
        if lines and self.source.header and self.source.format_of(path) == "csv":
            lines -= 1
        return lines if data else 0


@dataclass
class Manifest:
    batch_id: int
    files: list[FileInfo]
    bad: dict[str, tuple[str, int]] = field(default_factory=dict)  # whole files: path -> (reason, rows)
    bad_lines: dict[str, list[BadLine]] = field(default_factory=dict)  # files read but for these lines
    cleaned: bool = False
    created_at: float = 0.0

    @property
    def has_bad(self) -> bool:
        return bool(self.bad or self.bad_lines)


class CorruptCompression(Exception):
    """A ``.gz`` or ``.zst`` landing file that cannot be decompressed (truncated, or not compressed at all)."""


def _decompress(data: bytes, path: str) -> bytes:
    """The file's bytes, decompressed by its extension; :class:`CorruptCompression` when that fails."""
    suffix = PurePosixPath(path).suffix.lower()
    try:
        if suffix == ".gz":
            return gzip.decompress(data)
        if suffix == ".zst":
            return bytes(pa.input_stream(pa.py_buffer(data), compression="zstd").read())
    except (EOFError, OSError, zlib.error) as exc:  # (gzip.BadGzipFile and Arrow's IO errors are OSErrors)
        raise CorruptCompression(f"cannot decompress the {suffix} file (truncated or corrupt): {exc}; "
                                 "land it again, whole") from exc
    return data


def _compress(data: bytes, path: str) -> bytes:
    if path.lower().endswith(".gz"):
        return gzip.compress(data)
    if path.lower().endswith(".zst"):
        return bytes(pa.compress(data, codec="zstd", asbytes=True))
    return data


def _chunks(infos: list[FileInfo], *, files: int, size: int | None) -> Iterator[list[FileInfo]]:
    """Batches of at most ``files`` files and (if set) ``size`` bytes; a larger file makes a batch of its own."""
    batch: list[FileInfo] = []
    total = 0
    for info in infos:
        if batch and (len(batch) >= files or (size is not None and total + info.size > size)):
            yield batch
            batch, total = [], 0
        batch.append(info)
        total += info.size
    if batch:
        yield batch


_ARROW = {"double": pa.float64(), "bigint": pa.int64()}


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


def _precheck(info: FileInfo, source: SourceConfig) -> str | None:
    if info.size == 0:
        return "empty file (0 bytes)"
    if source.format_of(info.path) is None:
        return (f"unknown file type {PurePosixPath(info.path).suffix!r}; set the source's format "
                "or use .jsonl, .csv or .parquet")
    return None


METADATA_SCHEMA = pa.schema([
    ("_source_file", pa.string()),
    ("_file_size", pa.int64()),
    ("_file_modification_time", pa.timestamp("us", "UTC")),
    ("_ingested_at", pa.timestamp("us", "UTC")),
    ("_batch_id", pa.int64()),
])
