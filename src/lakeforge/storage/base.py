"""The ``Location`` API that ingestion, the lakehouse and the runner use, whatever the storage."""

from __future__ import annotations

import fnmatch
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, order=True)
class FileInfo:
    """A file as discovered: its path relative to the location root, size in bytes, mtime in ms."""

    path: str
    size: int
    mtime_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ms": self.mtime_ms}


def visible(name: str, pattern: str) -> bool:
    """Hidden and temporary files (``.x``, ``_x``) are never picked up; the rest must match ``pattern``."""
    return not name.startswith((".", "_")) and fnmatch.fnmatch(name, pattern)


class Location(ABC):
    """A root (``/data/landing``, ``s3://bucket/landing``) and the operations lakeforge needs below it."""

    uri: str
    is_local: bool

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def join(self, *parts: str) -> str:
        """The URI of a path below the root, as Delta and engines address it."""
        rel = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
        return f"{self.uri.rstrip('/')}/{rel}" if rel else self.uri

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Options for delta-rs (credentials, endpoint); None for local folders."""
        return None

    @abstractmethod
    def list_files(self, prefix: str, *, pattern: str = "*") -> list[FileInfo]:
        """Files under ``prefix`` (recursively, hidden folders skipped) whose name matches ``pattern``, sorted."""

    @abstractmethod
    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix``."""

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def stat(self, rel: str) -> FileInfo | None:
        """The file's size and modification time now, as a listing would give them; None when it is gone."""

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the file (fewer if it is shorter)."""
        return self.read_bytes(rel)[start:end]

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes: ...

    @abstractmethod
    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        """Readers see the old object or the whole new one, never a part."""

    @abstractmethod
    def move(self, src: str, dst: str) -> None: ...

    @abstractmethod
    def delete(self, rel: str) -> None: ...

    @abstractmethod
    @contextmanager
    def local_copies(self, files: list[FileInfo]) -> Iterator[Location]:
        """A local location holding ``files`` at the same relative paths (the location itself when local)."""

    def write_json_atomic(self, rel: str, payload: Any) -> None:
        self.write_bytes_atomic(rel, json.dumps(payload, indent=1, sort_keys=True, default=str).encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def local_path(self, rel: str = "") -> Path:
        raise NotImplementedError(f"{self!r} is not a local folder")
