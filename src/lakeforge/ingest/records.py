"""Row-level triage of a text file the engine could not read whole: keep the lines that parse, quarantine the
others with the reason. Runs only on the error path, so plain Python is fast enough."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

CONTENT_LIMIT = 1000  # characters of a bad line kept in quarantine
# The longest line the readers take (DuckDB's maximum_object_size and max_line_size defaults): without
# max_line_bytes, a file the reader refused is split with these, so a longer line goes to quarantine alone.
READER_LINE_BYTES = {"jsonl": 16 * 2**20, "csv": 2 * 2**20}


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based line number in the file
    reason: str
    content: str

    def to_list(self) -> list[object]:
        return [self.line, self.reason, self.content]


class _Object(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs in order, duplicate keys kept (``json``'s object_pairs_hook)."""


@dataclass(frozen=True)
class Split:
    good: bytes  # the file with its bad lines removed (a CSV keeps its header)
    good_rows: int
    bad: list[BadLine]
    header_error: str | None = None  # a CSV whose header cannot be read: every row is in ``bad``


def split_lines(data: bytes, *, fmt: str, header: bool, delimiter: str, max_line_bytes: int,
                width: int | None = None, quote: str = '"') -> Split:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    kept: list[bytes] = []
    bad: list[BadLine] = []
    expected: int | None = None if header else width
    header_error: str | None = None  # a CSV header that cannot be read: no row can be matched to its columns
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        shown = raw[:CONTENT_LIMIT].decode("utf-8", errors="replace")
        if header_error is not None:
            bad.append(BadLine(number, header_error, shown))
            continue
        problem: str | None = None
        fields: list[str] = []
        if len(raw) > max_line_bytes:
            problem = f"line of {len(raw):,} bytes is over the limit of {max_line_bytes:,}"
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = f"not UTF-8: {exc.reason} at byte {exc.start}"
        if problem is None and fmt == "csv":
            try:
                fields = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote), [])
            except csv.Error as exc:  # e.g. a lone CR inside an unquoted field
                problem = f"unreadable CSV: {exc}"
        if problem is not None:
            if fmt == "csv" and header and expected is None:  # else the next line would be taken for the header
                header_error = f"the CSV header (line {number}) cannot be read: {problem}"
            else:
                bad.append(BadLine(number, problem, shown))
            continue
        if fmt == "csv":
            if expected is None:
                expected = len(fields)
                kept.append(raw)  # the header (or, without header and columns, the first row) sets the width
                continue
            if len(fields) != expected:
                bad.append(BadLine(number, f"expected {expected} columns, found {len(fields)}", shown))
                continue
        else:
            try:
                value = json.loads(text, object_pairs_hook=_Object)
            except json.JSONDecodeError as exc:
                bad.append(BadLine(number, f"malformed JSON: {exc.msg} at column {exc.colno}", shown))
                continue
            except RecursionError:  # (a value nested thousands deep: Python's parser gives up, not the line)
                bad.append(BadLine(number, "JSON nested too deeply to read", shown))
                continue
            if not isinstance(value, _Object):
                bad.append(BadLine(number, f"expected a JSON object, found {type(value).__name__}", shown))
                continue
            keys = [key for key, _ in value]
            if len(set(keys)) != len(keys):  # the engine refuses the whole file for it: the line goes alone
                twice = next(key for key in keys if keys.count(key) > 1)
                bad.append(BadLine(number, f"duplicate key {twice!r} in a JSON object", shown))
                continue
            if "" in keys:  # (a column cannot be named "": the engine refuses the file)
                bad.append(BadLine(number, "a field with an empty name in a JSON object", shown))
                continue
        kept.append(raw)
    good_rows = len(kept) - (1 if fmt == "csv" and header and kept else 0)
    return Split(good=b"\n".join(kept) + b"\n" if kept else b"", good_rows=good_rows, bad=bad,
                 header_error=header_error)
