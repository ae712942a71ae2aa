"""What a run may take from the landing zone, and the exact bytes a batch reads.

Landing files are immutable by default (as with Auto Loader): a file is taken whole, as listed, once. A file whose
size or modification time is not the listed one when its batch reads it is left out of the batch (nothing of it
is committed) and waits until it has not changed for ``settle_seconds``. A file that changes after its batch was
committed is *changed after ingest*: reported on every run (a warning, ``status``, the event log), taken again
only with ``allow_overwrites``.

A ``growing`` source's files are appended to: each batch takes the byte range ``[start, end)`` from the end of
the last range a manifest recorded to the end of the last complete line, so a line is taken once, whole.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from lakeforge.config.models import COMPRESSIONS, SourceConfig
from lakeforge.errors import SourceError
from lakeforge.storage import FileInfo, Location
from lakeforge.storage.local import LocalLocation

CHUNK = 1 << 20  # bytes read at a time when looking for the end of a line
UNSETTLED = "unsettled.json"
STAT_LIMIT = 16  # files a batch checks one by one; more: one listing


@dataclass
class Changed:
    """A file whose listing differs from what its last batch recorded."""

    recorded: FileInfo
    current: FileInfo

    def describe(self, *, source: str, taken: bool) -> str:
        was, now = self.recorded, self.current
        what = (f"{now.path} changed after it was ingested (recorded {was.size:,} bytes, modified {was.mtime_ms} ms; "
                f"now {now.size:,} bytes, modified {now.mtime_ms} ms)")
        if taken:
            return f"source {source}: {what}; allow_overwrites is on, so it is ingested again"
        return (f"source {source}: {what}; its new content is NOT ingested: landing files are immutable. Land "
                "changes as new files, set allow_overwrites: true to ingest changed files again, or growing: true "
                "for files that are appended to")


@dataclass
class Discovery:
    """A listing compared with the manifests: what a batch may take now, what waits, what changed."""

    new: list[FileInfo] = field(default_factory=list)  # growing files: size = the end of the range to take
    starts: dict[str, int] = field(default_factory=dict)  # growing files: where their range starts
    waiting: list[FileInfo] = field(default_factory=list)  # seen changing, not settled yet
    changed: list[Changed] = field(default_factory=list)  # changed after ingest (taken again if allow_overwrites)

    def backlog(self) -> list[FileInfo]:
        """Files a run would take (a growing file as the bytes of its complete new lines) and files that wait."""
        taken = [FileInfo(f.path, f.size - self.starts.get(f.path, 0), f.mtime_ms) for f in self.new]
        return [*taken, *self.waiting]


def discover(*, name: str, source: SourceConfig, landing: Location, listing: list[FileInfo],
             recorded: dict[str, FileInfo], unsettled: dict[str, int], at: float | None = None) -> Discovery:
    """Compare the listing with ``recorded`` (the last range each manifest names per path)."""
    found = Discovery()
    now_ms = (time.time() if at is None else at) * 1000
    for info in listing:
        was = recorded.get(info.path)
        if source.growing:
            _grown(found, name=name, source=source, landing=landing, info=info, was=was)
            continue
        if was is not None and was != info:
            found.changed.append(Changed(was, info))
        if was is None or (was != info and source.allow_overwrites):
            settled = info.path not in unsettled or now_ms - info.mtime_ms >= source.settle_seconds * 1000
            (found.new if settled else found.waiting).append(info)
    return found


def _grown(found: Discovery, *, name: str, source: SourceConfig, landing: Location, info: FileInfo,
           was: FileInfo | None) -> None:
    """A growing file: its complete new lines, if any; a file shorter than what was taken changed."""
    refuse_growing(name=name, source=source, path=info.path)
    start = was.size if was is not None else 0
    if was is not None and info.size < was.size:
        found.changed.append(Changed(was, info))
        if not source.allow_overwrites:
            return
        start = 0
    if info.size <= start:
        return
    end = complete_end(landing, info.path, start=start, size=info.size,
                       header=source.header and source.format_of(info.path) == "csv")
    if end > start:
        found.new.append(FileInfo(info.path, end, info.mtime_ms))
        found.starts[info.path] = start


def refuse_growing(*, name: str, source: SourceConfig, path: str) -> None:
    """A compressed or Parquet file cannot be read as it grows: say which, and what to do."""
    compressed = PurePosixPath(path.lower()).suffix in COMPRESSIONS
    if compressed or source.format_of(path) == "parquet":
        kind = "compressed" if compressed else "a Parquet file"
        raise SourceError(
            f"source {name}: {path} is {kind}, and growing: true reads files as they are appended to, line by line",
            hint="land growing files as uncompressed JSON lines or CSV, or take growing: true off this source "
                 "(or move these files to a source of their own without it)")


def complete_end(landing: Location, path: str, *, start: int, size: int, header: bool = False) -> int:
    """The end of the last complete line in ``[start, size)`` (``start`` when there is none); a CSV's first range
    must hold a row beyond its header."""
    pos = size
    end = start
    while pos > start:
        low = max(start, pos - CHUNK)
        chunk = landing.read_range(path, low, pos)
        found = chunk.rfind(b"\n")
        if found >= 0:
            end = low + found + 1
            break
        pos = low
    if header and start == 0 and end > 0:
        first = _first_line_end(landing, path, limit=end)
        return end if first < end else 0
    return end


def _first_line_end(landing: Location, path: str, *, limit: int) -> int:
    """The offset just past the first line (``limit`` when no newline comes before it)."""
    pos = 0
    while pos < limit:
        chunk = landing.read_range(path, pos, min(pos + CHUNK, limit))
        found = chunk.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(chunk) or limit
    return limit


def range_bytes(landing: Location, info: FileInfo, *, start: int, source: SourceConfig) -> bytes:
    """The bytes ``[start, info.size)`` of a growing file; a CSV range after the first gets the header line."""
    data = landing.read_range(info.path, start, info.size)
    if start > 0 and source.header and source.format_of(info.path) == "csv":
        data = landing.read_range(info.path, 0, _first_line_end(landing, info.path, limit=start)) + data
    return data


@contextmanager
def exact_copies(landing: Location, files: list[FileInfo], *, starts: dict[str, int],
                 source: SourceConfig) -> Iterator[Location]:
    """The batch's files as the engine should read them: growing files as their recorded ranges (staged), the
    others as :meth:`Location.local_copies` gives them (checked against their listing after the read)."""
    whole = [f for f in files if f.path not in starts]
    with landing.local_copies(whole) as local:
        if len(whole) == len(files):
            yield local
            return
        with tempfile.TemporaryDirectory(prefix="lakeforge-range-") as tmp:
            root = Path(tmp)
            for info in files:
                target = root / info.path
                target.parent.mkdir(parents=True, exist_ok=True)
                if info.path in starts:
                    target.write_bytes(range_bytes(landing, info, start=starts[info.path], source=source))
                else:
                    target.symlink_to(local.local_path(info.path))
            yield LocalLocation(root)


def moved(landing: Location, files: list[FileInfo], *, growing: bool,
          listed: Callable[[], list[FileInfo]]) -> list[str]:
    """Files that are not as their manifest recorded them: an immutable file whose size or time differ, a growing
    file shorter than the range to read (or gone). Many files: one listing (``listed``) instead of a stat each."""
    current = {f.path: f for f in listed()} if len(files) > STAT_LIMIT else None
    found = []
    for info in files:
        now = current.get(info.path) if current is not None else landing.stat(info.path)
        if now is None or (now.size < info.size if growing else now != info):
            found.append(info.path)
    return found


def chunks(infos: list[FileInfo], *, files: int, size: int | None) -> Iterator[list[FileInfo]]:
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
