"""A batch's manifest: the files (and, for growing files, the byte ranges) it reads, and what of them is bad.

Written atomically before anything of the batch is committed; the Delta transaction ``(lakeforge:ingest:<source>,
N)`` of the bronze commit says whether batch N is done. A redo reads exactly what the manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakeforge.ingest.records import BadLine
from lakeforge.storage import FileInfo


@dataclass
class Manifest:
    batch_id: int
    files: list[FileInfo]  # a growing file's size is the end of its range
    bad: dict[str, tuple[str, int]] = field(default_factory=dict)  # whole files: path -> (reason, rows)
    bad_lines: dict[str, list[BadLine]] = field(default_factory=dict)  # files read but for these lines
    cleaned: bool = False
    created_at: float = 0.0
    starts: dict[str, int] = field(default_factory=dict)  # growing files: path -> the start of the range read

    @property
    def has_bad(self) -> bool:
        return bool(self.bad or self.bad_lines)

    def drop(self, paths: list[str]) -> None:
        """Leave files out of the batch (before anything of it is committed)."""
        self.files = [f for f in self.files if f.path not in paths]
        for path in paths:
            self.bad.pop(path, None)
            self.bad_lines.pop(path, None)
            self.starts.pop(path, None)

    def to_dict(self, source: str) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id, "source": source,
            "files": [f.to_dict() for f in self.files],
            "bad": {k: list(v) for k, v in sorted(self.bad.items())},
            "bad_lines": {k: [b.to_list() for b in v] for k, v in sorted(self.bad_lines.items())},
            "cleaned": self.cleaned, "created_at": self.created_at,
            **({"starts": dict(sorted(self.starts.items()))} if self.starts else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            batch_id=int(data["batch_id"]),
            files=[FileInfo(f["path"], f["size"], f["mtime_ms"]) for f in data["files"]],
            bad={k: (str(v[0]), int(v[1])) for k, v in (data.get("bad") or {}).items()},
            bad_lines={k: [BadLine(int(b[0]), str(b[1]), str(b[2])) for b in v]
                       for k, v in (data.get("bad_lines") or {}).items()},
            cleaned=bool(data.get("cleaned")),
            created_at=float(data.get("created_at") or 0.0),
            starts={k: int(v) for k, v in (data.get("starts") or {}).items()},
        )
