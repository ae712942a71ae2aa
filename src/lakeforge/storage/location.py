"""A ``Location`` is a root URI with list / read / write primitives used by ingestion and the lakehouse."""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeforge.errors import ConfigError


@dataclass(frozen=True, order=True)
class FileInfo:
    """A file as discovered: its path relative to the location root, size in bytes, mtime in ms."""

    path: str
    size: int
    mtime_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ms": self.mtime_ms}


class Location:
    """A local folder (``./landing``, ``/data/lake``, ``file:///data``)."""

    def __init__(self, uri: str, *, base_dir: Path) -> None:
        if "://" in uri and not uri.startswith("file://"):
            scheme = uri.split("://", 1)[0]
            raise ConfigError(
                f"location {uri!r}: the {scheme}:// scheme is not supported by this version of lakeforge",
                hint="use a local folder path for now",
            )
        raw = uri.removeprefix("file://")
        path = Path(raw)
        self.root = (path if path.is_absolute() else base_dir / path).resolve()
        self.uri = str(self.root)

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def join(self, *parts: str) -> str:
        return str(self.root.joinpath(*parts))

    def child(self, *parts: str) -> Location:
        return Location(self.join(*parts), base_dir=self.root)

    @property
    def storage_options(self) -> dict[str, str] | None:
        return None

    def exists(self, rel: str = "") -> bool:
        return (self.root / rel).exists()

    def list(self, prefix: str, *, pattern: str = "*") -> list[FileInfo]:
        """Files under ``prefix`` (recursively) whose name matches ``pattern``; hidden and temp files skipped."""
        base = self.root / prefix
        if not base.is_dir():
            return []
        found: list[FileInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
            for name in filenames:
                if name.startswith((".", "_")) or not fnmatch.fnmatch(name, pattern):
                    continue
                full = Path(dirpath) / name
                st = full.stat()
                found.append(FileInfo(str(full.relative_to(self.root)), st.st_size, st.st_mtime_ns // 1_000_000))
        return sorted(found)

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        """Write so that readers see either the old file or the whole new one, never a part."""
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

    def write_json_atomic(self, rel: str, payload: Any) -> None:
        self.write_bytes_atomic(rel, json.dumps(payload, indent=1, sort_keys=True, default=str).encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def local_path(self, rel: str = "") -> Path:
        return self.root / rel
