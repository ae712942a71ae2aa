"""Bad input: files and lines that cannot be read, found and set aside so that the rest of a batch goes on.

A file that cannot be parsed whole goes to ``quarantine.bronze_<source>`` as one row (its reason, its rows); a
file with some bad lines goes on to bronze without them, and each bad line goes to the quarantine with its line
number, content and reason. What is bad is recorded in the batch's manifest before any commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import re
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from lakeforge.config.models import SourceConfig
from lakeforge.engines.base import Engine, ReadPlan
from lakeforge.ingest import listing
from lakeforge.ingest.manifest import Manifest
from lakeforge.ingest.records import READER_LINE_BYTES, Split, split_lines
from lakeforge.lakehouse import Catalog
from lakeforge.quality.diagnose import fixes
from lakeforge.quality.limits import Reason, check
from lakeforge.storage import FileInfo, Location
from lakeforge.storage.local import LocalLocation

if TYPE_CHECKING:
    import pyarrow as pa  # numpy and pyarrow are imported where files are read: a run with nothing to do needs neither


class BadInput:
    """The :class:`~lakeforge.ingest.loader.Ingestor`'s handling of bad files and lines."""

    name: str
    source: SourceConfig
    landing: Location
    catalog: Catalog
    engine: Engine | None
    quarantine: str
    app_id: str

    def _schema(self) -> dict[str, str]:
        raise NotImplementedError  # the source's known columns

    def _save(self, manifest: Manifest) -> None:
        raise NotImplementedError

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
            manifest.bad[path] = (reason.replace(root, self.landing.uri), self._count_rows(path, manifest))
        if still:
            self._save(manifest)

    def _long_lines(self, files: list[FileInfo], local: Location) -> dict[str, str]:
        """Text files with a line over ``max_line_bytes`` (only files larger than the limit are looked at)."""
        import numpy as np

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
                manifest.bad[path] = (str(exc), self._count_rows(path, manifest))
                continue
            if split is None or not split.bad:
                if split is not None and split.good_rows == 0:  # (the engine's words for it would mislead)
                    reason = split.header_error or (
                        "no rows: the file holds only blank lines" + (" or a header" if fmt == "csv" else ""))
                manifest.bad[path] = (reason, self._count_rows(path, manifest))
            elif split.good_rows == 0:
                manifest.bad[path] = (f"no line could be read; line {split.bad[0].line}: {split.bad[0].reason}",
                                      len(split.bad))
            else:
                manifest.bad_lines[path] = split.bad
        self._save(manifest)

    def _split(self, path: str, local: Location) -> Split:
        data = _decompress(local.read_bytes(path), path)
        fmt = self.source.format_of(path) or "jsonl"
        limit = self.source.max_line_bytes or READER_LINE_BYTES.get(fmt, 2**62)  # (the reader refused the file)
        return split_lines(data, fmt=fmt, header=self.source.header,
                           delimiter=self.source.delimiter, max_line_bytes=limit,
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

    def _write_quarantine(self, manifest: Manifest, ingested_at: dt.datetime) -> None:
        """One row per bad file (``_line`` null, ``_rows`` its lines) and one per bad line."""
        import pyarrow as pa

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

    def check_limit(self, manifest: Manifest, *, written: int, misfits: Misfits | None = None) -> None:
        """Before the batch commits: its quarantined rows (files and lines), and its rows with values that do not
        fit their type (``_rescued_data``: downstream quarantines them), against ``max_quarantined``."""
        reasons: dict[str, Reason] = {}

        def add(reason: str, rows: int, sample: str) -> None:
            seen = reasons.setdefault(re.sub(r"\d[\d,]*", "N", reason), Reason(reason, 0))
            seen.rows += rows
            seen.samples.append(sample)

        for path, (reason, rows) in sorted(manifest.bad.items()):
            add(reason, rows, f"file {path}")
        for path, lines in sorted(manifest.bad_lines.items()):
            for bad in lines:
                add(bad.reason, 1, f"{path} line {bad.line}: {bad.content[:60]}")
        quarantined = sum(r.rows for r in reasons.values())
        misfit_rows = misfits.rows if misfits is not None else 0
        if misfit_rows:
            reasons["misfits"] = Reason("values that do not fit their column's type (kept in _rescued_data)",
                                        misfit_rows, list(misfits.samples if misfits is not None else []))
        csv_header = self.source.header and any(self.source.format_of(f.path) == "csv" for f in manifest.files)
        columns = list(self._schema()) if csv_header else []
        rescued = [{"_rescued_data": s} for s in (misfits.samples if misfits is not None else [])]
        check(stage=f"ingest:{self.name}", rows=quarantined + misfit_rows, total=written + quarantined,
              what="quarantined or with values that do not fit their type" if misfit_rows else "quarantined",
              limit=self.source.max_quarantined, setting=f"max_quarantined of source {self.name}",
              reasons=list(reasons.values()), fixes=fixes(source=self.name, columns=columns, rows=rescued))

    def _count_rows(self, path: str, manifest: Manifest) -> int:
        """Rows a file that could not be parsed stands for: its non-empty lines (decompressed when it can be), less a
        CSV header (a growing file: those of its range)."""
        if path in manifest.starts:
            info = next(f for f in manifest.files if f.path == path)
            data = listing.range_bytes(self.landing, info, start=manifest.starts[path], source=self.source)
        else:
            data = self.landing.read_bytes(path)
        with contextlib.suppress(CorruptCompression):  # (else its compressed bytes' lines: no better count exists)
            data = _decompress(data, path)
        lines = sum(1 for line in data.split(b"\n") if line.strip())  # lines as the line triage counts them
        if lines and self.source.header and self.source.format_of(path) == "csv":
            lines -= 1
        return lines if data else 0


class CorruptCompression(Exception):
    """A ``.gz`` or ``.zst`` landing file that cannot be decompressed (truncated, or not compressed at all)."""


def _decompress(data: bytes, path: str) -> bytes:
    """The file's bytes, decompressed by its extension; :class:`CorruptCompression` when that fails."""
    suffix = PurePosixPath(path).suffix.lower()
    try:
        if suffix == ".gz":
            return gzip.decompress(data)
        if suffix == ".zst":
            import pyarrow as pa

            return bytes(pa.input_stream(pa.py_buffer(data), compression="zstd").read())
    except (EOFError, OSError, zlib.error) as exc:  # (gzip.BadGzipFile and Arrow's IO errors are OSErrors)
        raise CorruptCompression(f"cannot decompress the {suffix} file (truncated or corrupt): {exc}; "
                                 "land it again, whole") from exc
    return data


def _compress(data: bytes, path: str) -> bytes:
    if path.lower().endswith(".gz"):
        return gzip.compress(data)
    if path.lower().endswith(".zst"):
        import pyarrow as pa

        return bytes(pa.compress(data, codec="zstd", asbytes=True))
    return data


def precheck(info: FileInfo, source: SourceConfig) -> str | None:
    if info.size == 0:
        return "empty file (0 bytes)"
    if source.format_of(info.path) is None:
        return (f"unknown file type {PurePosixPath(info.path).suffix!r}; set the source's format "
                "or use .jsonl, .csv or .parquet")
    return None


@dataclass
class Misfits:
    """A batch's rows whose values did not fit their column's type (``_rescued_data`` set), counted as it
    streams to bronze, with a few of them."""

    rows: int = 0
    samples: list[str] = field(default_factory=list)

    def add(self, batch: pa.RecordBatch) -> None:
        index = batch.schema.get_field_index("_rescued_data")
        if index < 0:
            return
        column = batch.column(index)
        found = len(column) - column.null_count
        if found:
            self.rows += found
            if len(self.samples) < 20:
                import pyarrow.compute as pc

                self.samples += [str(v) for v in pc.drop_null(column).slice(0, 20 - len(self.samples)).to_pylist()]
