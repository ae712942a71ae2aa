"""docs/bi-tools.md, checked with the drivers BI tools use and the settings the page gives (its blocks marked
``<!-- checked: ... -->`` are read from the page, not copied here):

- the DuckDB file through DuckDB's JDBC driver (Tableau): read-only by URL or properties, the metadata, the star
  query, a write refused, the ``?`` pitfall; one writer: a held connection stops a load, a held copy does not;
- PostgreSQL as the documented reader role, through psqlODBC under unixODBC (Power BI / Tableau ODBC) and pgJDBC
  (Tableau's PostgreSQL connector): catalog functions, types, the star query, writes refused, temp tables, UTC,
  default privileges, ``sslmode``;
- Snowflake without Snowflake: the SQL parses with sqlfluff's Snowflake grammar, the key-pair commands make a
  key the connector signs with, the connection keys are the connector's, the star query runs on fakesnow.

Drivers come from ``make bi-drivers`` (JDBC jars with Maven, psqlODBC with apt); nothing is fetched here.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb
import pytest
import yaml

from lakeforge.config.models import DuckDBWarehouseConfig
from lakeforge.errors import WarehouseError
from lakeforge.pipeline import warehouse as warehouse_stage
from lakeforge.project import Project
from lakeforge.warehouses.duckdb.warehouse import DuckDBWarehouse
from tests.bi_drivers import (
    JdbcCheck,
    bi_jar,
    doc_block,
    jdbc_check,
    jdbc_holding,
    odbc_connect,
    odbc_pairs,
    odbc_string,
    sql_statements,
)
from tests.postgres_server import PostgresServer
from tests.snowflake_fake import fake_snowflake, snowflake_config

pytestmark = pytest.mark.slow

STAR_TABLES = {"dim_machine", "dim_site", "dim_date", "fact_telemetry_hourly", "fact_telemetry_daily",
               "fact_failures", "fact_maintenance", "fact_errors", "fact_site_daily", "fleet_kpi_daily"}
REPORTS = {"fleet_availability", "mtbf_mttr_by_model", "failures_by_component", "sensor_health", "data_freshness"}
DOC_DUCKDB_PATH = "/srv/bi/warehouse.duckdb"  # the path the page's DuckDB URLs use


# -- helpers -------------------------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """One value as every driver's result compares: integral decimals as int, dates as ISO text."""
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def as_text(rows: list[tuple[Any, ...]]) -> list[list[str]]:
    """Rows as JDBC's ``getString`` gives them (for integers, strings and dates)."""
    return [[str(plain(v)) for v in row] for row in rows]


def star_rows(warehouse: Path) -> list[tuple[Any, ...]]:
    """The page's star query on the DuckDB warehouse, by DuckDB itself: what every driver must return."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return [tuple(plain(v) for v in row) for row in con.execute(doc_block("star-query")).fetchall()]
    finally:
        con.close()


def project_copy(source: Path, target: Path, **warehouse: Any) -> Project:
    """The built project at ``target`` (lakehouse and landing zone copied, not the DuckDB warehouse) with another
    ``warehouse:``."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("warehouse.duckdb*"))
    path = target / "lakeforge.yml"
    config = yaml.safe_load(path.read_text())
    config["warehouse"] = warehouse
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project(target)


def load(project: Project) -> None:
    stage = warehouse_stage.load(project.workspace, run_id=f"bi-{uuid.uuid4().hex[:6]}",
                                 models=project.graph().ordered())
    assert stage.status == "ok", stage.detail


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project, generated and run once (DuckDB warehouse) for the whole module."""
    root = tmp_path_factory.mktemp("bi") / "plant"
    Project.init(root).generate(machines=8, days=3, seed=11, files=3)
    with Project(root) as project:
        result = project.run()
    assert result.status == "succeeded", result
    return root


@pytest.fixture(scope="module")
def expected(built: Path) -> list[tuple[Any, ...]]:
    rows = star_rows(built / "warehouse.duckdb")
    assert len(rows) >= 2 and all(row[4] > 0 and row[5] > 0 for row in rows)  # machine-days, readings
    return rows


def bi_copy(built: Path, folder: Path) -> Path:
    """The copy BI tools open (the page's recommended set-up)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(built / "warehouse.duckdb", folder / "warehouse.duckdb"))


# -- DuckDB through DuckDB's JDBC driver (Tableau) -----------------------------------------------------------------
def test_duckdb_jdbc_opens_the_warehouse_read_only(built: Path, expected: list[tuple[Any, ...]],
                                                   tmp_path: Path) -> None:
    jar = bi_jar("duckdb_jdbc-")
    copy = bi_copy(built, tmp_path / "bi")
    url = doc_block("duckdb-jdbc-url").strip().replace(DOC_DUCKDB_PATH, str(copy))
    url_read_only = doc_block("duckdb-jdbc-url-read-only").strip().replace(DOC_DUCKDB_PATH, str(copy))
    properties = dict(line.split("=", 1) for line in doc_block("duckdb-jdbc-properties").splitlines()
                      if line.strip() and not line.startswith("#"))
    pitfall = f"jdbc:duckdb:{copy}?access_mode=READ_ONLY"
    steer: dict[str, Any] = {"schema": "main", "query": doc_block("star-query").replace("\n", " "),
                             "write": "DELETE FROM dim_site"}

    results = jdbc_check(tmp_path / "java", [jar],
                         JdbcCheck(url, properties, columns_of="fact_telemetry_hourly", **steer),
                         JdbcCheck(url_read_only, {}, **steer),
                         JdbcCheck(pitfall, {}, schema="main", write="CREATE TABLE bi_probe AS SELECT 1 AS x"))

    for each in (url, url_read_only):  # the page's two read-only forms
        seen = results[each]
        assert seen.driver[2] == f"v{duckdb.__version__}"  # the driver's DuckDB is the package's
        assert seen.read_only
        tables = {name: kind for catalog, schema, name, kind in seen.tables if catalog == "warehouse"}
        assert {n for n, k in tables.items() if k == "TABLE"} >= STAR_TABLES, tables
        assert {n for n, k in tables.items() if k == "VIEW"} >= REPORTS, tables
        assert seen.header == ["site_name", "model", "year", "month", "machine_days", "readings"]
        assert seen.rows == as_text(expected) and seen.query_error == []
        assert seen.write[0] == "refused" and "read-only" in seen.write[2], seen.write
    columns = {name: (type_name, code) for _, name, type_name, code in results[url].columns}
    assert columns["hour"] == ("TIMESTAMP WITH TIME ZONE", 2014)  # java.sql.Types.TIMESTAMP_WITH_TIMEZONE
    assert columns["machine_id"] == ("BIGINT", -5)

    # '?access_mode=READ_ONLY' is part of the file name: a new, empty, writable database next to the copy
    wrong = results[pitfall]
    assert not wrong.read_only and wrong.write == ["accepted"]
    assert not any(name in STAR_TABLES for _, _, name, _ in wrong.tables)
    assert (copy.parent / "warehouse.duckdb?access_mode=READ_ONLY").is_file()
    assert star_rows(copy) == expected  # the real file untouched


def test_duckdb_one_writer_a_bi_connection_blocks_runs_on_its_file_only(built: Path, expected: list[tuple[Any, ...]],
                                                                         tmp_path: Path) -> None:
    jar = bi_jar("duckdb_jdbc-")
    project = project_copy(built, tmp_path / "plant", type="duckdb", path="warehouse.duckdb")
    with project:
        load(project)  # the project's own warehouse file, as `lakeforge run` writes it
    original = tmp_path / "plant" / "warehouse.duckdb"
    copy = bi_copy(tmp_path / "plant", tmp_path / "bi")
    url = doc_block("duckdb-jdbc-url").strip().replace(DOC_DUCKDB_PATH, str(copy))
    properties = {"duckdb.read_only": "true"}

    with jdbc_holding(tmp_path / "java", [jar], JdbcCheck(url, properties, schema="main")) as held:
        assert held.read_only
        # lakeforge cannot open a file a BI tool holds, even read-only ...
        with pytest.raises(WarehouseError, match=r"cannot open the warehouse .*Could not set lock on file"):
            DuckDBWarehouse(DuckDBWarehouseConfig(type="duckdb", path=str(copy)), base_dir=tmp_path)
        # ... another reader can ...
        reader = duckdb.connect(str(copy), read_only=True)
        assert reader.execute("SELECT count(*) FROM dim_machine").fetchone() == (8,)
        reader.close()
        # ... and a run with a new day of data loads the project's own file while BI reads the copy
        with Project(tmp_path / "plant") as again:
            again.generate(machines=8, days=1, seed=11, files=1, start="2024-01-04")
            result = again.run()
        assert result.status == "succeeded", result
        assert {s.name: s.status for s in result.stages}["warehouse"] == "ok"
        assert star_rows(copy) == expected  # what the BI tool sees: the copy as it was
    assert sum(row[4] for row in star_rows(original)) > sum(row[4] for row in expected)  # more machine-days


# -- PostgreSQL: the reader role, through psqlODBC and pgJDBC --------------------------------------------------------
class PgTarget:
    """The example project loaded into a fresh database, and the page's reader role created in it."""

    def __init__(self, server: PostgresServer, dsn: str, role: str, password: str) -> None:
        self.server, self.dsn, self.role, self.password = server, dsn, role, password
        self.dbname = dict(part.split("=", 1) for part in dsn.split())["dbname"]

    def as_owner(self, sql: str) -> None:
        with self.server.connect(self.dbname) as con:
            con.execute(sql)


@pytest.fixture(scope="module")
def pg(postgres_server: PostgresServer, built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgTarget]:
    postgres_server.wait_ready()
    dsn = postgres_server.create_database()
    project = project_copy(built, tmp_path_factory.mktemp("pg") / "plant", type="postgres", dsn=dsn, schema="gold")
    with project:
        load(project)
    target = PgTarget(postgres_server, dsn, role=f"bi_{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex)
    sql = (doc_block("postgres-reader").replace("lakeforge_bi", target.role)
           .replace("'change-me'", f"'{target.password}'").replace("DATABASE analytics", f"DATABASE {target.dbname}"))
    assert f"FOR ROLE {postgres_server.user} IN SCHEMA gold" in sql  # the loader's name on the page is the tests'
    with postgres_server.connect(target.dbname) as con:
        for statement in sql_statements(sql):
            con.execute(statement)
    yield target
    postgres_server.drop_database(dsn)
    with postgres_server.connect() as con:
        con.execute(f"DROP ROLE IF EXISTS {target.role}")


def odbc_for(pg: PgTarget, **changes: str) -> str:
    """The page's ODBC connection string with this server's address, database and the role's login."""
    pairs = odbc_pairs(doc_block("postgres-odbc"))
    site = {"Server": pg.server.host, "Port": str(pg.server.port), "Database": pg.dbname, "Uid": pg.role,
            "Pwd": pg.password, "sslmode": "disable"}  # the test server has no certificate
    assert set(site) <= set(pairs), pairs
    return odbc_string({**pairs, **site, **changes})


@pytest.mark.postgres
def test_postgres_odbc_as_the_reader_role(pg: PgTarget, expected: list[tuple[Any, ...]]) -> None:
    import pyodbc

    con = odbc_connect(odbc_for(pg))
    try:
        assert con.getinfo(pyodbc.SQL_DRIVER_NAME) == "psqlodbcw.so"
        assert con.getinfo(pyodbc.SQL_DATA_SOURCE_READ_ONLY) in (True, "Y")
        cur = con.cursor()
        kinds = {row.table_name: row.table_type for row in cur.tables(schema="gold")}
        assert {kinds.get(t) for t in STAR_TABLES} == {"TABLE"}, kinds
        assert {kinds.get(r) for r in REPORTS - {"data_freshness"}} == {"MATVIEW"}, kinds
        assert kinds.get("data_freshness") == "VIEW"  # it reads the clock: always a plain view
        columns = {row.column_name: (row.type_name, row.data_type, row.column_size)
                   for row in cur.columns(table="fact_failures", schema="gold")}
        assert columns == {"machine_id": ("int8", pyodbc.SQL_BIGINT, 19),
                           "ts": ("timestamptz", pyodbc.SQL_TYPE_TIMESTAMP, 26),
                           "date": ("date", pyodbc.SQL_TYPE_DATE, 10),
                           "component": ("text", pyodbc.SQL_WVARCHAR, 8190)}  # not LONGVARCHAR, not cut at 255
        assert [plain(v) for v in cur.execute("SHOW TimeZone").fetchone()] == ["UTC"]
        assert cur.execute("SHOW search_path").fetchone()[0] == "gold"

        rows = [tuple(plain(v) for v in row) for row in cur.execute(doc_block("star-query")).fetchall()]
        assert rows == expected
        with pytest.raises(pyodbc.Error, match="only select statements are allowed"):
            cur.execute("DELETE FROM fact_failures")
    finally:
        con.close()


@pytest.mark.postgres
def test_postgres_the_role_alone_refuses_writes_but_allows_temp_tables(pg: PgTarget) -> None:
    import pyodbc

    con = odbc_connect(odbc_for(pg, ReadOnly="0"), autocommit=True)  # without the driver's guard
    try:
        cur = con.cursor()
        before = cur.execute("SELECT count(*) FROM fact_telemetry_daily").fetchone()[0]
        for statement in ("INSERT INTO dim_site VALUES (99, 'x', 'y', 'UTC')", "DELETE FROM fact_telemetry_daily",
                          "UPDATE dim_machine SET model = 'x'", "CREATE TABLE gold.bi_scratch (x int)",
                          "CREATE TABLE public.bi_scratch (x int)", "DROP TABLE dim_date",
                          "REFRESH MATERIALIZED VIEW fleet_availability"):
            with pytest.raises(pyodbc.Error, match=r"42501|permission denied|must be owner"):
                cur.execute(statement)
        assert cur.execute("SELECT count(*) FROM fact_telemetry_daily").fetchone()[0] == before
        cur.execute("CREATE TEMP TABLE bi_filter AS SELECT machine_id FROM dim_machine")  # Tableau's filters
        assert cur.execute("SELECT count(*) FROM bi_filter").fetchone()[0] == 8

        # a table and a report lakeforge creates after the grants (a new model, a report whose SQL changed):
        # readable through the default privileges
        pg.as_owner("CREATE TABLE gold.fact_new_model AS SELECT 1 AS machine_id; "
                    "CREATE MATERIALIZED VIEW gold.new_report AS SELECT 2 AS machines")
        assert cur.execute("SELECT machine_id FROM fact_new_model").fetchall()[0][0] == 1
        assert cur.execute("SELECT machines FROM new_report").fetchall()[0][0] == 2
    finally:
        con.close()
        pg.as_owner("DROP TABLE IF EXISTS gold.fact_new_model; DROP MATERIALIZED VIEW IF EXISTS gold.new_report")


@pytest.mark.postgres
def test_postgres_odbc_honours_sslmode(pg: PgTarget) -> None:
    import pyodbc

    with pytest.raises(pyodbc.Error, match="SSL"):
        odbc_connect(odbc_for(pg, sslmode="require"))


@pytest.mark.postgres
def test_postgres_jdbc_as_tableau_connects(pg: PgTarget, expected: list[tuple[Any, ...]], tmp_path: Path) -> None:
    page = urlsplit(doc_block("postgres-jdbc").strip().removeprefix("jdbc:"))
    query = dict(parse_qsl(page.query))
    assert set(query) == {"sslmode", "ApplicationName"}
    query["sslmode"] = "disable"  # the test server has no certificate
    url = "jdbc:" + urlunsplit(page._replace(netloc=f"{pg.server.host}:{pg.server.port}", path=f"/{pg.dbname}",
                                             query=urlencode(query)))
    check = JdbcCheck(url, {"user": pg.role, "password": pg.password}, schema="gold",
                      query=doc_block("star-query").replace("\n", " "), write="DELETE FROM fact_errors")

    seen = jdbc_check(tmp_path / "java", [bi_jar("postgresql-")], check)[url]

    assert seen.driver[0] == "PostgreSQL JDBC Driver"
    tables = {name: kind for _, schema, name, kind in seen.tables if schema == "gold"}
    assert {tables.get(t) for t in STAR_TABLES} == {"TABLE"}, tables
    assert {tables.get(r) for r in REPORTS - {"data_freshness"}} == {"MATERIALIZED VIEW"}, tables
    assert seen.rows == as_text(expected)
    assert seen.write[:2] == ["refused", "42501"], seen.write


# -- Snowflake, without Snowflake ---------------------------------------------------------------------------------
def snowflake_parse_errors(statement: str) -> list[str]:
    from sqlfluff.core import FluffConfig, Linter

    parsed = Linter(config=FluffConfig(overrides={"dialect": "snowflake"})).parse_string(statement + ";\n")
    errors = [v.desc() for v in parsed.violations]
    if parsed.tree is None or not list(parsed.tree.recursive_crawl("statement")):
        errors.append("no statement parsed")
    return errors


@pytest.mark.snowflake
def test_snowflake_sql_parses_as_snowflake() -> None:
    statements = [s for block in ("snowflake-warehouse", "snowflake-reader", "snowflake-service-user")
                  for s in sql_statements(doc_block(block))]
    assert len(statements) == 18
    problems = {s: errors for s in statements if (errors := snowflake_parse_errors(s))}
    assert problems == {}
    # the grammar is strict enough to catch the slips that matter (a control, so an empty list means something)
    for wrong in ("GRANT SELECT ON FUTURE TABLE IN SCHEMA LAKEFORGE.GOLD TO ROLE LAKEFORGE_READER",
                  "GRANT SELECT ON ALL TABLES IN SCHEMA LAKEFORGE.GOLD LAKEFORGE_READER",
                  "GRANT USAGE ON WAREHOUS BI_WH TO ROLE LAKEFORGE_READER"):
        assert snowflake_parse_errors(wrong), wrong


@pytest.mark.snowflake
def test_snowflake_key_pair_commands_make_a_key_the_connector_signs_with(tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from snowflake.connector.auth import AuthByKeyPair

    from lakeforge.warehouses.snowflake.auth import private_key_der

    if shutil.which("openssl") is None:
        pytest.fail("no openssl: run `make bi-drivers`", pytrace=False)
    passphrase = uuid.uuid4().hex
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", doc_block("snowflake-keypair")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "BI_KEY_PASSPHRASE": passphrase})
    assert done.returncode == 0, done.stderr
    fingerprint = done.stdout.strip().splitlines()[-1]
    public_text = (tmp_path / "bi_service.pub.txt").read_text()
    public = serialization.load_pem_public_key((tmp_path / "bi_service.pub").read_bytes())
    assert isinstance(public, rsa.RSAPublicKey)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(public_text) == der and "\n" not in public_text  # RSA_PUBLIC_KEY's value

    auth = AuthByKeyPair(private_key=private_key_der(tmp_path / "bi_service.p8", passphrase))
    token = auth.prepare(account="xy12345.eu-west-1", user="bi_service")
    claims = jwt.decode(token, key=public, algorithms=["RS256"])  # signed with the key the public half checks
    assert claims["iss"] == f"XY12345.BI_SERVICE.SHA256:{fingerprint}"
    assert claims["sub"] == "XY12345.BI_SERVICE"


@pytest.mark.snowflake
def test_snowflake_connection_settings_are_the_connectors_and_the_star_query_runs(
        built: Path, expected: list[tuple[Any, ...]], tmp_path: Path) -> None:
    import snowflake.connector
    from snowflake.connector.connection import DEFAULT_CONFIGURATION

    settings = dict(line.split("=", 1) for line in doc_block("snowflake-connection").splitlines() if line.strip())
    assert set(settings) - set(DEFAULT_CONFIGURATION) == set()
    assert settings["authenticator"] == "SNOWFLAKE_JWT"
    with fake_snowflake(tmp_path / "fakesnow"):
        project = project_copy(built, tmp_path / "plant", **snowflake_config(
            database=settings["database"], schema=settings["schema"]))
        with project:
            load(project)
        # fakesnow takes the connector's arguments but signs nobody in: the key is checked in the test above
        con = snowflake.connector.connect(**{k: v for k, v in settings.items() if not k.startswith("private_key")})
        try:
            cur = con.cursor()
            cur.execute(doc_block("star-query"))
            rows = [tuple(plain(v) for v in row) for row in cur.fetchall()]
            names = [d[0] for d in cur.description]
        finally:
            con.close()
    assert names == ["SITE_NAME", "MODEL", "YEAR", "MONTH", "MACHINE_DAYS", "READINGS"]  # upper case, unquoted
    assert rows == expected


def test_the_page_marks_what_it_checks() -> None:
    """Every block this module reads is on the page, and the page says which parts are not checked."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "bi-tools.md").read_text()
    marked = set(re.findall(r"<!-- checked: ([a-z0-9-]+) -->", text))
    assert marked == {"star-query", "duckdb-jdbc-url", "duckdb-jdbc-properties", "duckdb-jdbc-url-read-only",
                      "postgres-reader", "postgres-jdbc", "postgres-odbc", "snowflake-warehouse", "snowflake-reader",
                      "snowflake-service-user", "snowflake-keypair", "snowflake-connection"}
    assert "## What is checked here, and what is not" in text
    assert "DuckDB's ODBC driver" in text.split("Not checked here")[1]
