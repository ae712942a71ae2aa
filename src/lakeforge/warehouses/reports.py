"""Reports: SQL over the warehouse's gold tables, written once in the project's dialect, kept on every target.

A project's ``reports/<name>.sql`` is one SELECT with an optional YAML header of ``--`` lines
(``description``, ``materialize: false`` for a report that must always be a view, e.g. one that reads the
clock). sqlglot writes it in the warehouse's dialect; the warehouse keeps it as its capabilities allow
(Snowflake: a dynamic table; PostgreSQL: a materialized view refreshed after each load; DuckDB: a view).
The example project ships the standard ones: fleet availability, MTBF and MTTR per machine model, failures by
component, sensor health, data freshness (docs/warehouse.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import sqlglot
import yaml
from sqlglot import exp

from lakeforge.errors import ConfigError

LEDGER_TABLE = "_lakeforge_loads"


@dataclass(frozen=True)
class Report:
    name: str
    path: Path
    sql: str  # in ``dialect``
    dialect: str
    description: str | None = None
    materialize: bool = True

    def tree(self) -> exp.Query:
        """The parsed SELECT, a copy of its own (parsed once per text: every run asks for it a few times)."""
        try:
            statements = _parse(self.sql, self.dialect)
        except sqlglot.errors.ParseError as exc:
            problem = exc.errors[0].get("description") if exc.errors else exc
            raise ConfigError(f"report {self.name} ({self.path}): SQL does not parse: {problem}",
                              hint=f"write one SELECT in the {self.dialect!r} dialect") from None
        if len(statements) != 1 or not isinstance(statements[0], exp.Query):
            raise ConfigError(f"report {self.name} ({self.path}): a report is exactly one SELECT statement",
                              hint="remove other statements")
        return statements[0].copy()

    def tables(self) -> set[str]:
        """The gold tables it reads (``gold.x``); the load ledger is always there."""
        tree = self.tree()
        ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        return {f"gold.{t.name}" for t in tree.find_all(exp.Table) if t.name not in ctes and t.name != LEDGER_TABLE}

    @property
    def ordered(self) -> bool:
        """Whether the SELECT orders its rows itself (a top-level ORDER BY)."""
        return self.tree().args.get("order") is not None

    def sql_for(self, dialect: str) -> str:
        """The report in a warehouse's dialect, over the warehouse's unqualified table names."""
        tree = self.tree()
        for table in tree.find_all(exp.Table):
            if table.db == "gold":
                table.set("db", None)
        return tree.sql(dialect=dialect, pretty=True)


@functools.lru_cache(maxsize=256)
def _parse(sql: str, dialect: str) -> tuple[exp.Expr | None, ...]:
    return tuple(sqlglot.parse(sql, read=dialect))


def load_reports(folder: Path, *, dialect: str) -> list[Report]:
    if not folder.is_dir():
        return []
    reports = []
    for path in sorted(folder.glob("*.sql")):
        header_lines = []
        body_lines = []
        in_header = True
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if in_header and (stripped.startswith("--") or not stripped):
                header_lines.append(stripped[2:].removeprefix(" ") if stripped else "")
                continue
            in_header = False
            body_lines.append(line)
        try:
            header = yaml.safe_load("\n".join(header_lines)) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: the report header (the leading `--` lines) is not valid YAML: {exc}",
                              hint="write `-- key: value` lines, e.g. `-- description: ...`") from None
        header = header if isinstance(header, dict) else {}
        unknown = set(header) - {"description", "materialize"}
        if unknown:
            raise ConfigError(f"{path}: unknown report header keys {sorted(unknown)}",
                              hint="a report header takes description and materialize")
        report = Report(name=path.stem, path=path, sql="\n".join(body_lines).strip().rstrip(";"), dialect=dialect,
                        description=header.get("description"), materialize=bool(header.get("materialize", True)))
        report.tree()  # fails early, naming the file
        reports.append(report)
    return reports
