"""Row-level triage of a text file the engine could not read whole: keep the lines that parse, quarantine the
others with the reason. Runs only on the error path, so plain Python is fast enough."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

CONTENT_LIMIT = 1000  # characters of a bad line kept in quarantine


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based line number in the file
    reason: str
    content: str

    def to_list(self) -> list[object]:
        return [self.line, self.reason, self.content]


@dataclass(frozen=True)
class Split:
    good: bytes  # the file with its bad lines removed (a CSV keeps its header)
    good_rows: int
    bad: list[BadLine]


def split_lines(data: bytes, *, fmt: str, header: bool, delimiter: str, max_line_bytes: int,
                width: int | None = None, quote: str = '"') -> Split:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    kept: list[bytes] = []
    bad: list[BadLine] = []
    expected: int | None = None if header else width
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        shown = raw[:CONTENT_LIMIT].decode("utf-8", errors="replace")
        if len(raw) > max_line_bytes:
            bad.append(BadLine(number, f"line of {len(raw):,} bytes is over the limit of {max_line_bytes:,}", shown))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append(BadLine(number, f"not UTF-8: {exc.reason} at byte {exc.start}", shown))
            continue
        if fmt == "csv":
            fields = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote), [])
            if expected is None:
                expected = len(fields)
                kept.append(raw)  # the header (or, without header and columns, the first row) sets the width
                continue
            if len(fields) != expected:
                bad.append(BadLine(number, f"expected {expected} columns, found {len(fields)}", shown))
                continue
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                bad.append(BadLine(number, f"malformed JSON: {exc.msg} at column {exc.colno}", shown))
                continue
            if not isinstance(value, dict):
                bad.append(BadLine(number, f"expected a JSON object, found {type(value).__name__}", shown))
                continue
        kept.append(raw)
    good_rows = len(kept) - (1 if fmt == "csv" and header and kept else 0)
    return Split(good=b"\n".join(kept) + b"\n" if kept else b"", good_rows=good_rows, bad=bad)
