"""Profiles of sample files for ``lakeforge init --from`` (issue 23): which sources a folder holds, and for each its
format, compression, header, delimiter, column types, timestamp format and zone, value ranges and likely key.

DuckDB reads the files (its CSV sniffer decides the delimiter, the header and the types; its aggregates give the
statistics), so what is guessed here is what the pipeline's reader will see. Every guess carries its reason, which
``init`` prints. Nothing here writes a file: :mod:`lakeforge.scaffold` turns the profiles into a project.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeforge.config.models import COMPRESSIONS, NAME_PATTERN
from lakeforge.duckdb_connect import DEFAULTS, connect
from lakeforge.errors import ConfigError
from lakeforge.sql import DUCKDB
from lakeforge.storage import FileInfo, Location

if TYPE_CHECKING:
    import duckdb

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet"}
SAMPLE_ROWS = 200_000  # rows of each source profiled (the first files' first rows)
SAMPLE_FILES = 10  # files of each source read
_KEY_WIDTH = 3  # columns in a key candidate, at most
_KEY_CANDIDATES = 6  # columns tried as key parts (identifiers and times first)
# DuckDB's types as lakeforge's schema hints
_HINTS = {"BIGINT": "bigint", "INTEGER": "bigint", "SMALLINT": "bigint", "TINYINT": "bigint", "HUGEINT": "bigint",
          "UBIGINT": "bigint", "UINTEGER": "bigint", "USMALLINT": "bigint", "UTINYINT": "bigint", "DOUBLE": "double",
          "FLOAT": "double", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp",
          "TIMESTAMP WITH TIME ZONE": "timestamp", "TIMESTAMP_NS": "timestamp", "TIMESTAMP_MS": "timestamp",
          "TIMESTAMP_S": "timestamp"}


@dataclass
class ColumnProfile:
    """One column: its name (and where the name came from), type and what its values look like."""

    name: str
    type: str  # a schema hint: bigint, double, boolean, date, timestamp or string
    named: str  # "header", or how a header-less column got its name
    stored: str = ""  # its name in the profiled sample
    nulls: int = 0
    distinct: int = 0
    low: Any = None  # numbers and times: the smallest and largest value
    high: Any = None
    q_low: float | None = None  # numbers: the 0.1% and 99.9% quantiles
    q_high: float | None = None
    values: list[str] = field(default_factory=list)  # strings: up to 10 distinct values (few distinct: all)
    members: frozenset[Any] = frozenset()  # identifiers and strings: the distinct values, when few (<= 10,000)

    @property
    def numeric(self) -> bool:
        return self.type in ("bigint", "double")


@dataclass
class SourceProfile:
    """One source: a group of files read the same way, and the guesses made about them (``why``)."""

    name: str
    files: list[str]
    pattern: str
    folder: str  # the folder under the landing zone ("." for its root)
    format: str
    compression: str | None
    header: bool = True
    delimiter: str = ","
    columns: list[ColumnProfile] = field(default_factory=list)
    rows: int = 0
    timestamp_format: str | None = None
    key_columns: list[int] = field(default_factory=list)  # positions of the key's columns
    why: list[str] = field(default_factory=list)

    @property
    def key(self) -> list[str]:
        return [self.columns[i].name for i in self.key_columns]


def _split(name: str) -> tuple[str, str | None, str | None]:
    """``name`` without its compression and format extensions, the format and the compression."""
    lower, compression = name.lower(), None
    for suffix in COMPRESSIONS:
        if lower.endswith(suffix):
            compression, lower, name = suffix[1:], lower[: -len(suffix)], name[: -len(suffix)]
    for suffix, fmt in FORMATS.items():
        if lower.endswith(suffix):
            return name[: -len(suffix)], fmt, compression
    return name, None, compression


def _tokens(stem: str) -> list[str]:
    return [t for t in re.split(r"[^A-Za-z0-9]+", stem) if t]


def _source_name(tokens: list[str], index: int) -> str:
    """The leading tokens without a digit, snake-cased (``telemetry_machines1-20_2015Q1`` -> ``telemetry``)."""
    words = []
    for token in tokens:
        if any(ch.isdigit() for ch in token):
            break
        words.append(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", token).lower())
    name = "_".join(words)
    return name if NAME_PATTERN.match(name) else f"source_{index}"


def group_files(files: list[FileInfo]) -> Iterator[tuple[str, str, str, list[FileInfo]]]:
    """Sources in a listing: ``(name, folder, pattern, files)``. Files in sub-folders: one source per first-level
    folder (the landing zone's usual layout). Loose files: one source per file name without its digits, prefix
    shared by every file (``PdM_``) and extensions; the pattern picks that name's files."""
    data = [f for f in files if _split(f.path.rsplit("/", 1)[-1])[1]]
    folders = sorted({f.path.split("/", 1)[0] for f in data if "/" in f.path})
    for folder in folders:
        inside = [f for f in data if f.path.startswith(folder + "/")]
        yield _source_name(_tokens(folder), len(folders)), folder, "*", inside
    loose = [f for f in data if "/" not in f.path]
    if not loose:
        return
    stems = [_split(f.path)[0] for f in loose]
    prefix = _common_prefix(stems) if len(stems) > 1 else ""
    groups: dict[str, list[tuple[str, FileInfo]]] = {}
    for number, (stem, info) in enumerate(zip(stems, loose, strict=True)):
        groups.setdefault(_source_name(_tokens(stem[len(prefix):]), number), []).append((stem, info))
    for name, members in groups.items():
        yield name, ".", _pattern(members, others=[f for f in loose if f not in [m[1] for m in members]]), \
            [m[1] for m in members]


def _common_prefix(stems: list[str]) -> str:
    """The prefix every stem shares, cut after its last separator (``PdM_``), so no name loses a part of a word."""
    first, last = min(stems), max(stems)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    cut = max(first.rfind(sep, 0, n) for sep in "_-. ")
    return first[: cut + 1] if cut >= 0 else ""


def _pattern(members: list[tuple[str, FileInfo]], *, others: list[FileInfo]) -> str:
    """A glob that picks exactly these files among the sample (new files of the same name then join): the words of
    the name and ``*``; a single file's own name when that would pick another source's files."""
    from fnmatch import fnmatch

    stem = members[0][0]
    words = re.match(r"[^0-9]*", stem)
    head = (words.group(0) if words else stem).rstrip("_-. ") or stem
    glob = f"{head}*"
    if all(fnmatch(m[1].path, glob) for m in members) and not any(fnmatch(o.path, glob) for o in others):
        return glob
    return members[0][1].path if len(members) == 1 else "*"


def profile_location(location: Location, *, prefix: str = "") -> list[SourceProfile]:
    """Profile every source found under ``prefix`` of ``location`` (local copies of S3 files are taken)."""
    files = location.list_files(prefix)
    if prefix:
        files = [FileInfo(f.path[len(prefix.strip("/")) + 1:], f.size, f.mtime_ms) for f in files]
    groups = list(group_files(files))
    if not groups:
        raise ConfigError(f"{location.join(prefix)} holds no data files",
                          hint=f"point --from at a folder of {', '.join(sorted(set(FORMATS)))} files "
                               "(optionally .gz or .zst)")
    profiles = []
    con = connect(settings=DEFAULTS)
    try:
        for name, folder, pattern, members in groups:
            chosen = [FileInfo(f"{prefix.strip('/')}/{f.path}".lstrip("/"), f.size, f.mtime_ms)
                      for f in members[:SAMPLE_FILES]]
            with location.local_copies(chosen) as local:
                paths = [str(local.local_path(f.path)) for f in chosen]
                profiles.append(profile_source(con, name=name, folder=folder, pattern=pattern, paths=paths,
                                               files=[f.path for f in members]))
    finally:
        con.close()
    return profiles


def profile_source(con: duckdb.DuckDBPyConnection, *, name: str, folder: str, pattern: str, paths: list[str],
                   files: list[str]) -> SourceProfile:
    """One source's profile from the local ``paths`` of its first files."""
    _, fmt, compression = _split(Path(paths[0]).name)
    assert fmt is not None
    source = SourceProfile(name=name, files=files, pattern=pattern, folder=folder, format=fmt,
                           compression=compression)
    shown = ", ".join(Path(f).name for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    source.why.append(f"{fmt}{f' ({compression})' if compression else ''}: by the extension of {shown}")
    listed = "[" + ", ".join(DUCKDB.literal(p) for p in paths) + "]"
    if fmt == "csv":
        relation = _sniff_csv(con, source, paths=paths, listed=listed)
    elif fmt == "jsonl":
        relation = f"read_json({listed}, format='newline_delimited', union_by_name=true)"
    else:
        relation = f"read_parquet({listed}, union_by_name=true)"
    con.execute(f"CREATE OR REPLACE TEMP TABLE sample AS SELECT * FROM {relation} LIMIT {SAMPLE_ROWS}")
    described = con.execute("DESCRIBE sample").fetchall()
    if not source.columns:
        source.columns = [ColumnProfile(str(row[0]), "string", "header") for row in described]
    for column, row in zip(source.columns, described, strict=True):
        column.type, column.stored = _hint(str(row[1])), str(row[0])
    zones = {str(row[1]).upper() == "TIMESTAMP WITH TIME ZONE" for row in described
             if str(row[1]).upper().startswith("TIMESTAMP")}
    if False in zones:
        source.why.append("timestamps without a zone offset: read as UTC (convert them in the silver model if they "
                          "are local times)")
    if True in zones:
        source.why.append("timestamps with a zone offset: stored as the UTC instant they name")
    source.rows = int(con.execute("SELECT count(*) FROM sample").fetchall()[0][0])
    for column in source.columns:
        _statistics(con, column)
    find_key(con, source)
    return source


def _hint(duck_type: str) -> str:
    return _HINTS.get(duck_type.upper(), "double" if duck_type.upper().startswith("DECIMAL") else "string")


def _sniff_csv(con: duckdb.DuckDBPyConnection, source: SourceProfile, *, paths: list[str], listed: str) -> str:
    """DuckDB's CSV sniffer on the first file: delimiter, header, types, timestamp format; the relation that
    reads every sampled file that way."""
    sniffed = con.execute("SELECT Delimiter, HasHeader, Columns, TimestampFormat, DateFormat FROM sniff_csv(?)",
                          [paths[0]]).fetchall()[0]
    delimiter, header, columns, ts_format, date_format = sniffed
    source.delimiter, source.header = str(delimiter), bool(header)
    shown = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(source.delimiter, repr(source.delimiter))
    source.why.append(f"delimiter {shown}: DuckDB's sniffer reads the same number of fields on every sampled line")
    if source.header:
        source.why.append("header: the first line's fields are names, not values of the types below it")
    else:
        source.why.append("no header: the first line holds values of the same types as the lines below it "
                          f"({', '.join(_hint(c['type']) for c in columns)})")
        source.columns = [ColumnProfile(f"column_{i + 1}", _hint(c["type"]), "position")
                          for i, c in enumerate(columns)]
    if ts_format or date_format:
        source.timestamp_format = str(ts_format or date_format)
        source.why.append(f"timestamps read with the format {source.timestamp_format!r} (not ISO 8601)")
    types = "{" + ", ".join(f"{DUCKDB.literal(c['name'])}: {DUCKDB.literal(c['type'])}" for c in columns) + "}"
    options = [f"delim={DUCKDB.literal(source.delimiter)}", f"header={'true' if source.header else 'false'}",
               f"columns={types}", "union_by_name=true"]
    if ts_format:
        options.append(f"timestampformat={DUCKDB.literal(str(ts_format))}")
    if date_format:
        options.append(f"dateformat={DUCKDB.literal(str(date_format))}")
    return f"read_csv({listed}, {', '.join(options)})"


def _statistics(con: duckdb.DuckDBPyConnection, column: ColumnProfile) -> None:
    q = DUCKDB.ident(column.stored)
    nulls, distinct = con.execute(f"SELECT count(*) - count({q}), count(DISTINCT {q}) FROM sample").fetchall()[0]
    column.nulls, column.distinct = int(nulls), int(distinct)
    if column.numeric:
        row = con.execute(f"SELECT min({q}), max({q}), quantile_cont({q}, 0.001), quantile_cont({q}, 0.999) "
                          "FROM sample").fetchall()[0]
        column.low, column.high, column.q_low, column.q_high = row
    elif column.type in ("timestamp", "date"):
        column.low, column.high = con.execute(f"SELECT min({q}), max({q}) FROM sample").fetchall()[0]
    elif column.type == "string":
        column.values = [str(r[0]) for r in con.execute(
            f"SELECT DISTINCT {q} FROM sample WHERE {q} IS NOT NULL ORDER BY 1 LIMIT 10").fetchall()]
    if column.type in ("bigint", "string") and column.distinct <= 10_000:
        column.members = frozenset(r[0] for r in con.execute(
            f"SELECT DISTINCT {q} FROM sample WHERE {q} IS NOT NULL").fetchall())


def find_key(con: duckdb.DuckDBPyConnection, source: SourceProfile) -> None:
    """The smallest set of columns (identifiers and times first, at most three) whose values are never null and
    never repeat in the sample: the silver model's ``unique_key``."""
    from itertools import combinations

    order = {"bigint": 0, "string": 1, "timestamp": 2, "date": 3}
    candidates = sorted((c for c in source.columns if c.type in order and c.nulls == 0 and c.distinct > 1),
                        key=lambda c: (order[c.type], source.columns.index(c)))[:_KEY_CANDIDATES]
    for width in range(1, _KEY_WIDTH + 1):
        for combo in combinations(candidates, width):
            names = ", ".join(DUCKDB.ident(c.stored) for c in combo)
            (distinct,) = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {names} FROM sample)").fetchall()[0]
            if distinct == source.rows:
                source.key_columns = sorted(source.columns.index(c) for c in combo)
                return
    source.why.append(f"no key: no combination of up to {_KEY_WIDTH} columns is unique in the sample; rows are "
                      "appended as they come")


def name_columns(sources: list[SourceProfile]) -> None:
    """Names for the columns of header-less files, in this order: a timestamp takes the name the files with a header
    give their timestamps; an integer takes the name of a header's integer column whose values it shares (an
    identifier: ``machineID``); text whose values are one word and a number (``comp1``, ``comp2``) takes that
    word. Anything else stays ``column_<n>``. Then every source states its key."""
    headed = [s for s in sources if s.header]
    times = [c.name for s in headed for c in s.columns if c.type in ("timestamp", "date")]
    ids = [(s, c) for s in headed for c in s.columns if c.type == "bigint" and c.members]
    for source in sources:
        if source.header:
            continue
        taken: set[str] = set()
        for column in source.columns:
            name, why = _borrowed(column, times=times, ids=ids)
            if name and name not in taken:
                column.name, column.named = name, why
                taken.add(name)
                source.why.append(f"column {source.columns.index(column) + 1} named {name!r}: {why}")
    for source in sources:
        if source.key_columns:
            source.why.append(f"key [{', '.join(source.key)}]: no value is null and no combination repeats in "
                              f"{source.rows:,} sampled rows")


def _borrowed(column: ColumnProfile, *, times: list[str],
              ids: list[tuple[SourceProfile, ColumnProfile]]) -> tuple[str | None, str]:
    if column.type in ("timestamp", "date") and times:
        name = max(sorted(set(times)), key=times.count)
        return name, f"the name of the timestamps in the files with a header ({times.count(name)} of {len(times)})"
    if column.type == "bigint" and column.members:
        for other, candidate in ids:
            shared = len(column.members & candidate.members)
            if shared >= 0.9 * min(len(column.members), len(candidate.members)) and shared > 1:
                return candidate.name, (f"{other.name}.{candidate.name}: {shared:,} of its {len(candidate.members):,} "
                                        f"values are among this column's {len(column.members):,}")
    if column.type == "string" and column.members:
        words = {re.sub(r"[\s_-]*\d+$", "", str(v)) for v in column.members}
        if len(words) == 1 and (word := words.pop()) and NAME_PATTERN.match(word) and len(column.members) > 1:
            shown = ", ".join(column.values[:3])
            return word, f"the word its values share ({shown}, ...)"
    return None, ""
