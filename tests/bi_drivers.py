"""The drivers BI tools use, driven from the tests with the settings docs/bi-tools.md gives.

- JDBC (Tableau): ``jdbc_check`` runs a small Java program (written into a temporary folder, started with
  ``java -cp <jars> Check.java``: the single-file source launcher) that connects with a URL and properties,
  lists the tables through ``DatabaseMetaData``, runs a query, tries a write, and optionally keeps the
  connection open until told to close it (``hold``). The jars come from ``make bi-drivers`` (Maven, into
  ``.cache/bi-jars``); nothing is downloaded at test time.
- ODBC (Power BI, Tableau's "Other Databases (ODBC)"): ``odbc_connect`` opens a pyodbc connection through
  unixODBC's driver manager with a connection string.
- ``doc_block(name)``: the fenced block after ``<!-- checked: name -->`` in docs/bi-tools.md, so the tests run
  the very SQL, connection strings and URLs the page shows.

A missing driver fails with the make target that installs it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bi-tools.md"
BI_JARS = Path(os.environ.get("LAKEFORGE_BI_JARS", REPO / ".cache" / "bi-jars"))
JAVA_TIMEOUT = 120.0

CHECK_JAVA = r"""
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.sql.*;
import java.util.*;

/** Connects through a JDBC driver the way a BI tool does and prints what it sees, one tab-separated record a
 *  line: DRIVER, TABLE, COLUMN, HEADER, ROW, QUERY (failed), WRITE, READY. Arguments: pairs of a properties
 *  file and a URL. Keys "check.*" of a properties file steer the check and are not passed to the driver. */
public class Check {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i + 1 < args.length; i += 2) {
            Properties props = new Properties();
            try (Reader in = Files.newBufferedReader(Path.of(args[i]), StandardCharsets.UTF_8)) { props.load(in); }
            Properties check = new Properties();
            for (String key : props.stringPropertyNames()) {
                if (key.startsWith("check.")) {
                    check.setProperty(key.substring(6), props.getProperty(key));
                    props.remove(key);
                }
            }
            run(args[i + 1], props, check);
        }
    }

    static void run(String url, Properties props, Properties check) throws Exception {
        String schema = check.getProperty("schema");
        try (Connection con = DriverManager.getConnection(url, props)) {
            DatabaseMetaData md = con.getMetaData();
            out("DRIVER", url, md.getDriverName(), md.getDriverVersion(), md.getDatabaseProductVersion(),
                String.valueOf(con.isReadOnly()));
            try (ResultSet rs = md.getTables(null, schema, "%", null)) {
                while (rs.next()) out("TABLE", url, rs.getString("TABLE_CAT"), rs.getString("TABLE_SCHEM"),
                                      rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
            }
            if (check.containsKey("columns")) {
                try (ResultSet rs = md.getColumns(null, schema, check.getProperty("columns"), "%")) {
                    while (rs.next()) out("COLUMN", url, rs.getString("TABLE_NAME"), rs.getString("COLUMN_NAME"),
                                          rs.getString("TYPE_NAME"), String.valueOf(rs.getInt("DATA_TYPE")));
                }
            }
            try (Statement st = con.createStatement()) {
                if (check.containsKey("query")) {
                    query(st, url, check.getProperty("query"));
                }
                if (check.containsKey("write")) {
                    try {
                        st.execute(check.getProperty("write"));
                        out("WRITE", url, "accepted");
                    } catch (SQLException e) {
                        out("WRITE", url, "refused", String.valueOf(e.getSQLState()), e.getMessage());
                    }
                }
            }
            if ("true".equals(check.getProperty("hold"))) {
                out("READY", url);
                new BufferedReader(new InputStreamReader(System.in)).readLine();  // until the test says so
            }
        }
    }

    static void query(Statement st, String url, String sql) {
        try (ResultSet rs = st.executeQuery(sql)) {
            ResultSetMetaData meta = rs.getMetaData();
            int n = meta.getColumnCount();
            String[] names = new String[n + 1];
            names[0] = url;
            for (int c = 1; c <= n; c++) names[c] = meta.getColumnLabel(c);
            out("HEADER", names);
            while (rs.next()) {
                String[] row = new String[n + 1];
                row[0] = url;
                for (int c = 1; c <= n; c++) row[c] = rs.getString(c);
                out("ROW", row);
            }
        } catch (SQLException e) {
            out("QUERY", url, "failed", String.valueOf(e.getSQLState()), e.getMessage());
        }
    }

    static void out(String kind, String... fields) {
        StringBuilder line = new StringBuilder(kind);
        for (String f : fields) {
            line.append('\t').append(f == null ? "\\N" : f.replace('\t', ' ').replace('\n', ' ').replace('\r', ' '));
        }
        System.out.println(line);
        System.out.flush();
    }
}
"""


# -- the page's checked blocks -------------------------------------------------------------------------------------
def doc_block(name: str, doc: Path = DOC) -> str:
    """The body of the fenced code block that follows ``<!-- checked: NAME -->`` in docs/bi-tools.md."""
    text = doc.read_text()
    found = re.search(rf"<!-- checked: {re.escape(name)} -->[ \t]*\n(?:[ \t]*\n)?([ \t]*)```[^\n]*\n(.*?)\n[ \t]*```",
                      text, re.S)
    if found is None:
        raise AssertionError(f"{doc.relative_to(REPO)} has no code block marked <!-- checked: {name} -->")
    indent = found.group(1)  # a block inside a list item: its lines carry the item's indentation
    return "\n".join(line.removeprefix(indent) for line in found.group(2).splitlines())


def sql_statements(sql: str) -> list[str]:
    """Statements of a script without comments (none of the page's statements has a ';' inside a string)."""
    lines = [line.split("--", 1)[0].rstrip() for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def odbc_pairs(connection_string: str) -> dict[str, str]:
    """``Key=value;...`` as a dict, keeping the order and ``{...}`` values whole."""
    pairs: dict[str, str] = {}
    for part in re.findall(r"([^=;]+)=(\{[^}]*\}|[^;]*);?", connection_string.strip()):
        pairs[part[0].strip()] = part[1].strip()
    return pairs


def odbc_string(pairs: Mapping[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in pairs.items())


def java_properties(values: Mapping[str, str]) -> str:
    """A ``.properties`` file's text (ISO 8859-1 escapes avoided: the program reads it as UTF-8)."""
    def escape(text: str, *, key: bool = False) -> str:
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return re.sub(r"([=:#! ])", r"\\\1", text) if key else text
    return "".join(f"{escape(k, key=True)}={escape(v)}\n" for k, v in values.items())


# -- JDBC ----------------------------------------------------------------------------------------------------------
def bi_jar(prefix: str) -> Path:
    """The jar ``make bi-drivers`` fetched whose name starts with ``prefix`` (``duckdb_jdbc-``)."""
    found = sorted(BI_JARS.glob(f"{prefix}*.jar"))
    if not found:
        pytest.fail(f"no {prefix}*.jar in {BI_JARS}: run `make bi-drivers` (fetches the JDBC drivers with Maven)",
                    pytrace=False)
    return found[-1]


def java() -> str:
    path = shutil.which("java")
    if path is None:
        pytest.fail("no `java` on PATH: the JDBC checks need Java 17+ (as `make spark-deps` does)", pytrace=False)
    return path


@dataclasses.dataclass
class JdbcResult:
    """What Check.java printed for one URL."""

    driver: list[str] = dataclasses.field(default_factory=list)  # name, version, database version, read only
    tables: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)  # catalog, schema, name, type
    columns: list[tuple[str, str, str, int]] = dataclasses.field(default_factory=list)  # table, name, type, code
    header: list[str] = dataclasses.field(default_factory=list)
    rows: list[list[str | None]] = dataclasses.field(default_factory=list)
    write: list[str] = dataclasses.field(default_factory=list)  # accepted | refused, SQLState, message
    query_error: list[str] = dataclasses.field(default_factory=list)  # failed, SQLState, message

    @property
    def read_only(self) -> bool:
        return self.driver[3] == "true"


def parse_check_output(lines: list[str]) -> dict[str, JdbcResult]:
    results: dict[str, JdbcResult] = {}
    for line in lines:
        kind, url, *fields = line.rstrip("\n").split("\t")
        result = results.setdefault(url, JdbcResult())
        values: list[str | None] = [None if f == "\\N" else f for f in fields]
        if kind == "DRIVER":
            result.driver = [str(v) for v in values]
        elif kind == "TABLE":
            result.tables.append((str(values[0]), str(values[1]), str(values[2]), str(values[3])))
        elif kind == "COLUMN":
            result.columns.append((str(values[0]), str(values[1]), str(values[2]), int(str(values[3]))))
        elif kind == "HEADER":
            result.header = [str(v) for v in values]
        elif kind == "ROW":
            result.rows.append(values)
        elif kind == "WRITE":
            result.write = [str(v) for v in values]
        elif kind == "QUERY":
            result.query_error = [str(v) for v in values]
    return results


@dataclasses.dataclass
class JdbcCheck:
    """One connection to check: the URL, the driver's properties and what to do (``check.*`` keys)."""

    url: str
    properties: dict[str, str] = dataclasses.field(default_factory=dict)
    schema: str | None = None
    columns_of: str | None = None
    query: str | None = None
    write: str | None = None

    def properties_text(self, *, hold: bool = False) -> str:
        steer = {"schema": self.schema, "columns": self.columns_of, "query": self.query, "write": self.write,
                 "hold": "true" if hold else None}
        return java_properties({**self.properties, **{f"check.{k}": v for k, v in steer.items() if v is not None}})


def _command(workdir: Path, jars: list[Path], checks: list[JdbcCheck], *, hold: bool) -> list[str]:
    source = workdir / "Check.java"
    source.write_text(CHECK_JAVA)
    args = [java(), "-Xshare:auto", "-cp", os.pathsep.join(str(j) for j in jars), str(source)]
    for i, check in enumerate(checks):
        props = workdir / f"check{i}.properties"
        props.write_text(check.properties_text(hold=hold and i == len(checks) - 1), encoding="utf-8")
        args += [str(props), check.url]
    return args


def jdbc_check(workdir: Path, jars: list[Path], *checks: JdbcCheck) -> dict[str, JdbcResult]:
    """Run Check.java on ``checks`` (in one JVM, in order); the results by URL. A connection that fails fails
    the test with Java's message."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(_command(workdir, jars, list(checks), hold=False), capture_output=True, text=True,
                          timeout=JAVA_TIMEOUT, cwd=workdir, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"Check.java failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return parse_check_output(done.stdout.splitlines())


@contextmanager
def jdbc_holding(workdir: Path, jars: list[Path], check: JdbcCheck) -> Iterator[JdbcResult]:
    """Run Check.java on ``check`` and keep its connection open (as a BI tool's live connection does) until the
    block ends; yields what it printed."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(_command(workdir, jars, [check], hold=True), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("READY"):
                ready.set()
        ready.set()  # ended without READY

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(JAVA_TIMEOUT) or not any(line.startswith("READY") for line in lines):
            process.kill()
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"Check.java did not hold its connection open:\n{''.join(lines)}\n{stderr[-4000:]}")
        yield parse_check_output(lines)[check.url]
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.write("\n")
            process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=10)


# -- ODBC ----------------------------------------------------------------------------------------------------------
def odbc_connect(connection_string: str, **kwargs: Any) -> Any:
    """A pyodbc connection through unixODBC (``make bi-drivers`` installs unixODBC and psqlODBC)."""
    try:
        import pyodbc
    except ImportError as exc:  # the wheel needs unixODBC's libodbc.so.2
        pytest.fail(f"pyodbc cannot be imported ({exc}): run `make install` and `make bi-drivers` (unixODBC)",
                    pytrace=False)
    driver = odbc_pairs(connection_string).get("Driver", "").strip("{}")
    if driver and driver not in pyodbc.drivers():
        pytest.fail(f"the ODBC driver {driver!r} is not registered with unixODBC (have: {pyodbc.drivers()}): "
                    "run `make bi-drivers` (installs odbc-postgresql)", pytrace=False)
    kwargs.setdefault("timeout", 10)
    return pyodbc.connect(connection_string, **kwargs)
