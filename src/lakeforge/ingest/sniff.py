"""Schema inference for JSON lines from the head of each file, in plain Python (cheaper than a DuckDB sample of
every file; the engine still checks every value when it reads, and a misfit falls back to the text path)."""

from __future__ import annotations

import datetime as dt
import json

from lakeforge.storage import FileInfo, Location

HEAD_BYTES = 32 * 1024  # a few hundred lines of each file


def _type_of(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value)
            return "timestamp" if (":" in value or "T" in value) else "date"
        except ValueError:
            return "string"
    return "string"  # objects and arrays are kept as JSON text


WIDENING = {"boolean": 0, "bigint": 1, "double": 2}  # a later type in this order holds every earlier one


def _merge(old: str | None, new: str) -> str:
    if old is None or old == new:
        return new
    if old in WIDENING and new in WIDENING:
        return old if WIDENING[old] > WIDENING[new] else new
    return "string"


def sniff_jsonl(files: list[FileInfo], *, location: Location) -> dict[str, str] | None:
    """Columns and types seen in the first lines of each file; None if a head does not parse (the engine then
    decides, and reports the file)."""
    found: dict[str, str | None] = {}
    for info in files:
        path = location.local_path(info.path)
        if path.suffix.lower() in (".gz", ".zst"):
            return None
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        lines = head.split(b"\n")
        if len(head) == HEAD_BYTES:
            lines = lines[:-1]  # the last line may be cut
        for raw in lines:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):  # (a value nested thousands deep is beyond Python's parser)
                return None
            if not isinstance(record, dict):
                return None
            for key, value in record.items():
                kind = _type_of(value)
                if kind is None:
                    found.setdefault(key, None)
                else:
                    found[key] = _merge(found.get(key), kind)
    return {k: (v or "string") for k, v in found.items()}
