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

import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.config.models import SourceConfig
from lakeforge.engines.base import Engine
from lakeforge.lakehouse import Catalog
from lakeforge.ops.results import StageResult
from lakeforge.storage import FileInfo, Location

CHECKPOINTS = "_lakeforge/checkpoints"
METADATA_COLUMNS = ("_source_file", "_file_size", "_file_modification_time", "_ingested_at", "_batch_id")


class Ingestor:
    def __init__(self, *, name: str, source: SourceConfig, landing: Location, lakehouse: Location,
                 catalog: Catalog, engine: Engine) -> None:
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
    def _manifests(self) -> dict[int, list[FileInfo]]:
        folder = self.lakehouse.local_path(self.checkpoint_dir)
        found: dict[int, list[FileInfo]] = {}
        if folder.is_dir():
            for path in folder.glob("batch-*.json"):
                data = self.lakehouse.read_json(f"{self.checkpoint_dir}/{path.name}")
                found[int(data["batch_id"])] = [FileInfo(f["path"], f["size"], f["mtime_ms"]) for f in data["files"]]
        return found

    def backlog(self) -> list[FileInfo]:
        """Landing files not yet ingested (nor recorded in a pending batch)."""
        recorded = {f.path for files in self._manifests().values() for f in files}
        return [f for f in self.landing.list(self.source.folder(self.name), pattern=self.source.pattern)
                if f.path not in recorded]

    def _batches(self) -> Iterator[tuple[int, list[FileInfo], bool]]:
        manifests = self._manifests()
        committed = self.catalog.consumed(self.table, self.app_id)
        for batch_id in sorted(manifests):
            if batch_id > committed:  # written but not committed before a crash: redo with the same files
                yield batch_id, manifests[batch_id], True
        recorded = {f.path for files in manifests.values() for f in files}
        new = [f for f in self.landing.list(self.source.folder(self.name), pattern=self.source.pattern)
               if f.path not in recorded]
        next_id = max([*manifests, committed]) + 1
        size = self.source.max_files_per_batch
        for start in range(0, len(new), size):
            yield next_id, new[start:start + size], False
            next_id += 1

    # -- the stage ------------------------------------------------------------------------------
    def run(self) -> StageResult:
        result = StageResult(name=f"ingest:{self.name}", kind="ingest", status="skipped", strategy="files")
        started = time.perf_counter()
        for batch_id, files, redo in self._batches():
            if not redo:
                self.lakehouse.write_json_atomic(
                    f"{self.checkpoint_dir}/batch-{batch_id:08d}.json",
                    {"batch_id": batch_id, "source": self.name, "files": [f.to_dict() for f in files]},
                )
            self._ingest(batch_id, files, result)
            result.status = "ok"
        result.seconds = time.perf_counter() - started
        if result.status == "skipped":
            result.detail = "no new files"
        return result

    def _ingest(self, batch_id: int, files: list[FileInfo], result: StageResult) -> None:
        ingested_at = dt.datetime.now(dt.UTC)
        read = self.engine.read_files(files, location=self.landing, source=self.source)
        by_path = {f.path: f for f in files}
        bad_rows = 0
        if read.bad_files:
            bad = [by_path[p] for p in sorted(read.bad_files)]
            counts = [self._count_lines(f) for f in bad]
            bad_rows = sum(counts)
            quarantine = pa.table({
                "_source_file": [f.path for f in bad],
                "_reason": [read.bad_files[f.path] for f in bad],
                "_rows": pa.array(counts, pa.int64()),
                "_file_size": pa.array([f.size for f in bad], pa.int64()),
                "_file_modification_time": pa.array([f.mtime_ms * 1000 for f in bad], pa.timestamp("us", "UTC")),
                "_ingested_at": pa.array([ingested_at] * len(bad), pa.timestamp("us", "UTC")),
                "_batch_id": pa.array([batch_id] * len(bad), pa.int64()),
            })
            if self.catalog.consumed(self.quarantine, self.app_id) < batch_id:
                self.catalog.write(self.quarantine, quarantine, mode="append",
                                   transactions={self.app_id: batch_id})
        table = self._with_metadata(read.table, files=files, batch_id=batch_id, ingested_at=ingested_at)
        if self.catalog.consumed(self.table, self.app_id) < batch_id:
            self.catalog.write(self.table, table, mode="append", transactions={self.app_id: batch_id})
        result.rows_in += table.num_rows + bad_rows
        result.rows_out += table.num_rows
        result.rows_quarantined += bad_rows
        result.rows_read += table.num_rows + bad_rows
        result.rows_written += table.num_rows
        result.bytes += sum(f.size for f in files)

    def _with_metadata(self, table: pa.Table | None, *, files: list[FileInfo], batch_id: int,
                       ingested_at: dt.datetime) -> pa.Table:
        if table is None:
            table = pa.table({"_source_file": pa.array([], pa.string())})
        prefix = str(self.landing.root) + "/"
        rel = pc.utf8_slice_codeunits(table["_source_file"], start=len(prefix))
        paths = pa.array([f.path for f in files])
        index = pc.index_in(rel, value_set=paths)
        n = table.num_rows
        table = table.drop_columns(["_source_file"])
        return (
            table.append_column("_source_file", rel)
            .append_column("_file_size", pc.take(pa.array([f.size for f in files], pa.int64()), index))
            .append_column("_file_modification_time",
                           pc.take(pa.array([f.mtime_ms * 1000 for f in files], pa.timestamp("us", "UTC")), index))
            .append_column("_ingested_at", pa.repeat(pa.scalar(ingested_at, pa.timestamp("us", "UTC")), n))
            .append_column("_batch_id", pa.repeat(pa.scalar(batch_id, pa.int64()), n))
        )

    def _count_lines(self, info: FileInfo) -> int:
        """Rows a file that could not be parsed stands for: its non-empty lines (at least 1 unless empty)."""
        if info.size == 0:
            return 0
        data = self.landing.read_bytes(info.path)
        lines = sum(1 for line in data.splitlines() if line.strip())
        if self.source.header and info.path.lower().endswith(".csv") and lines:
            lines -= 1
        return max(lines, 1)
