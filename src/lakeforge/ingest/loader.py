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

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pyarrow as pa

from lakeforge.config.models import SourceConfig
from lakeforge.engines.base import Engine
from lakeforge.lakehouse import Catalog
from lakeforge.ops.results import StageResult
from lakeforge.storage import FileInfo, Location

CHECKPOINTS = "_lakeforge/checkpoints"


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
            )
            found[manifest.batch_id] = manifest
        return found

    def _save(self, manifest: Manifest) -> None:
        self.lakehouse.write_json_atomic(self._manifest_path(manifest.batch_id), {
            "batch_id": manifest.batch_id, "source": self.name,
            "files": [f.to_dict() for f in manifest.files],
            "bad": {k: list(v) for k, v in sorted(manifest.bad.items())},
        })

    def backlog(self) -> list[FileInfo]:
        """Landing files not yet ingested (nor recorded in a pending batch)."""
        recorded = {f.path for m in self._manifests().values() for f in m.files}
        return [f for f in self._listing() if f.path not in recorded]

    def _listing(self) -> list[FileInfo]:
        return self.landing.list_files(self.source.folder(self.name), pattern=self.source.pattern)

    def _batches(self) -> Iterator[tuple[Manifest, bool]]:
        """Pending batches first (a crash left them half done), then new files, one format per batch."""
        manifests = self._manifests()
        committed = self.catalog.consumed(self.table, self.app_id)
        quarantined = self.catalog.consumed(self.quarantine, self.app_id)
        for batch_id in sorted(manifests):
            manifest = manifests[batch_id]
            if batch_id > committed or (manifest.bad and batch_id > quarantined):
                yield manifest, True
        recorded = {f.path for m in manifests.values() for f in m.files}
        new = [f for f in self._listing() if f.path not in recorded]
        by_format: dict[str, list[FileInfo]] = {}
        for info in new:
            by_format.setdefault(self.source.format_of(info.path) or "unknown", []).append(info)
        next_id = max([*manifests, committed]) + 1
        size = self.source.max_files_per_batch
        for fmt in sorted(by_format):
            group = by_format[fmt]
            for start in range(0, len(group), size):
                yield Manifest(batch_id=next_id, files=group[start:start + size]), False
                next_id += 1

    # -- the stage ------------------------------------------------------------------------------
    def run(self) -> StageResult:
        result = StageResult(name=f"ingest:{self.name}", kind="ingest", status="skipped", strategy="files")
        started = time.perf_counter()
        for manifest, redo in self._batches():
            if not redo:
                self._save(manifest)
            self._ingest(manifest, result)
            result.status = "ok"
        result.seconds = time.perf_counter() - started
        if result.status == "skipped":
            result.detail = "no new files"
        return result

    def _ingest(self, manifest: Manifest, result: StageResult) -> None:
        """Bronze first, then the quarantine of the files that could not be parsed; each commit carries the
        batch id, and the manifest names the bad files before either commit, so a rerun finishes the job."""
        batch_id = manifest.batch_id
        ingested_at = dt.datetime.now(dt.UTC)
        written = 0
        if self.catalog.consumed(self.table, self.app_id) < batch_id:
            precheck = {f.path: r for f, r in ((f, _precheck(f, self.source)) for f in manifest.files) if r}
            if any(p not in manifest.bad for p in precheck):
                manifest.bad.update({p: (r, self._count_rows(p)) for p, r in precheck.items()})
                self._save(manifest)
            good = [f for f in manifest.files if f.path not in manifest.bad]
            with self.landing.local_copies(good) as local:  # object storage: the batch's files, downloaded
                try:
                    written = self._write_bronze(manifest, local, ingested_at)
                except Exception as exc:
                    if self.engine is None or not self.engine.is_bad_input(exc):
                        raise
                    found = self.engine.check_files(good, location=local, source=self.source)
                    if not found:
                        raise
                    manifest.bad.update({p: (r, self._count_rows(p)) for p, r in found.items()})
                    self._save(manifest)
                    written = self._write_bronze(manifest, local, ingested_at)
        bad_rows = sum(rows for _, rows in manifest.bad.values())
        if manifest.bad and self.catalog.consumed(self.quarantine, self.app_id) < batch_id:
            self._write_quarantine(manifest, ingested_at)
        result.rows_in += written + bad_rows
        result.rows_out += written
        result.rows_quarantined += bad_rows
        result.rows_read += written + bad_rows
        result.rows_written += written
        result.bytes += sum(f.size for f in manifest.files)

    def _write_bronze(self, manifest: Manifest, local: Location, ingested_at: dt.datetime) -> int:
        assert self.engine is not None
        good = [f for f in manifest.files if f.path not in manifest.bad]
        count = [0]
        if good:
            reader = self.engine.scan_files(good, location=local, source=self.source,
                                            batch_id=manifest.batch_id, ingested_at=ingested_at)

            def counted() -> Iterator[pa.RecordBatch]:
                for batch in reader:
                    count[0] += batch.num_rows
                    yield batch

            data: pa.Table | pa.RecordBatchReader = pa.RecordBatchReader.from_batches(reader.schema, counted())
        else:  # every file was bad: commit no rows, but the batch id, and the columns the hints promise
            hinted = self.engine.hinted_schema(self.source)
            data = pa.schema([*hinted, *METADATA_SCHEMA]).empty_table()
        self.catalog.write(self.table, data, mode="append", transactions={self.app_id: manifest.batch_id})
        return count[0]

    def _write_quarantine(self, manifest: Manifest, ingested_at: dt.datetime) -> None:
        by_path = {f.path: f for f in manifest.files}
        bad = [by_path[p] for p in sorted(manifest.bad)]
        table = pa.table({
            "_source_file": [f.path for f in bad],
            "_reason": [manifest.bad[f.path][0] for f in bad],
            "_rows": pa.array([manifest.bad[f.path][1] for f in bad], pa.int64()),
            "_file_size": pa.array([f.size for f in bad], pa.int64()),
            "_file_modification_time": pa.array([f.mtime_ms * 1000 for f in bad], pa.timestamp("us", "UTC")),
            "_ingested_at": pa.array([ingested_at] * len(bad), pa.timestamp("us", "UTC")),
            "_batch_id": pa.array([manifest.batch_id] * len(bad), pa.int64()),
        })
        self.catalog.write(self.quarantine, table, mode="append", transactions={self.app_id: manifest.batch_id})

    def _count_rows(self, path: str) -> int:
        """Rows a file that could not be parsed stands for: its non-empty lines, less a CSV header."""
        data = self.landing.read_bytes(path)
        lines = sum(1 for line in data.splitlines() if line.strip())
        if lines and self.source.header and self.source.format_of(path) == "csv":
            lines -= 1
        return lines if data else 0


@dataclass
class Manifest:
    batch_id: int
    files: list[FileInfo]
    bad: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (reason, rows)


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
