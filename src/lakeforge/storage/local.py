"""Local folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lakeforge.storage.base import FileInfo, Location, visible


class LocalLocation(Location):
    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = str(self.root)

    def list_files(self, prefix: str, *, pattern: str = "*") -> list[FileInfo]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        found: list[FileInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
            for name in filenames:
                if not visible(name, pattern):
                    continue
                full = Path(dirpath) / name
                st = full.stat()
                found.append(FileInfo(full.relative_to(self.root).as_posix(), st.st_size, st.st_mtime_ns // 1_000_000))
        return sorted(found)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self.root / prefix
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def stat(self, rel: str) -> FileInfo | None:
        try:
            st = (self.root / rel).stat()
        except FileNotFoundError:
            return None
        return FileInfo(rel, st.st_size, st.st_mtime_ns // 1_000_000)

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        with (self.root / rel).open("rb") as fh:
            fh.seek(start)
            return fh.read(max(end - start, 0))

    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def move(self, src: str, dst: str) -> None:
        target = self.root / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.root / src, target)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    @contextmanager
    def local_copies(self, files: list[FileInfo]) -> Iterator[Location]:
        yield self

    def local_path(self, rel: str = "") -> Path:
        return self.root / rel
