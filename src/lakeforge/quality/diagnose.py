"""The likely fix of a batch thrown away, found in its rows: a CSV header that is a row of data (``header:
false``), timestamps in a format the source does not read (the format they are in)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping

# strptime formats tried on values that do not read as timestamps, most common first (day before month where
# both would read every value: most of the world writes the day first)
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%Y%m%d%H%M%S", "%Y%m%dT%H%M%S",
    "%d %b %Y %H:%M:%S", "%b %d %Y %H:%M:%S", "%d/%b/%Y:%H:%M:%S %z", "%a, %d %b %Y %H:%M:%S %z",
    "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d",
)
_DATELIKE = re.compile(r"^\d{1,4}[-/. ]|^\d{8}T?\d{6}$|^[A-Z][a-z]{2},? \d")


def timestamp_format(values: Iterable[str]) -> str | None:
    """The first of :data:`TIMESTAMP_FORMATS` that reads every one of ``values`` (None: none does, or no value
    looks like a date)."""
    texts = [v.strip() for v in values if v and v.strip()]
    if not texts or not all(_DATELIKE.match(t) for t in texts):
        return None
    for fmt in TIMESTAMP_FORMATS:
        try:
            for text in texts:
                dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return fmt
    return None


def looks_like_value(name: str) -> bool:
    """Whether a column name reads as a value: a number, a date or timestamp, true/false, or is blank."""
    text = name.strip()
    if not text:
        return True
    if text.lower() in ("true", "false"):
        return True
    try:
        float(text)
        return True
    except ValueError:
        pass
    try:
        dt.datetime.fromisoformat(text)
        return True
    except ValueError:
        return timestamp_format([text]) is not None


def header_as_data(columns: list[str]) -> list[str]:
    """The names of a CSV header that look like values, when at least half of them do (a header that is the
    first row of data); else nothing."""
    names = [c for c in columns if not c.startswith("_")]
    values = [c for c in names if looks_like_value(c)]
    return values if names and 2 * len(values) >= len(names) else []


def rescued_values(rows: Iterable[Mapping[str, object]]) -> dict[str, list[str]]:
    """The text values that did not fit their column's type, per column, from the sample rows'
    ``_rescued_data`` (a JSON object: column -> value as read)."""
    found: dict[str, list[str]] = {}
    for row in rows:
        rescued = row.get("_rescued_data")
        if not isinstance(rescued, str):
            continue
        try:
            inner = json.loads(rescued)
        except ValueError:
            continue
        for key, item in inner.items() if isinstance(inner, dict) else ():
            if isinstance(item, str):
                found.setdefault(key, []).append(item)
    return found


def fixes(*, source: str | None, rows: Iterable[Mapping[str, object]] = (), columns: list[str] | None = None,
          header: bool = True) -> list[str]:
    """The likely fixes the sample ``rows`` and the source's ``columns`` (as bronze has them) point to."""
    where = f"on source {source} in lakeforge.yml" if source else "on the source in lakeforge.yml"
    found = []
    like_data = header_as_data(columns or []) if header else []
    if like_data:
        shown = ", ".join(repr(c) for c in like_data[:3])
        found.append(f"the CSV header looks like a row of data (columns {shown}): set `header: false` and "
                     f"`columns: [...]` {where}")
    for column, values in rescued_values(rows).items():
        fmt = timestamp_format(values[:50])
        if fmt is not None:
            found.append(f"the values of {column} (e.g. {values[0]!r}) are timestamps written as {fmt!r}, which the "
                         f"source does not read: set `timestamp_format: '{fmt}'` {where}")
    return found
