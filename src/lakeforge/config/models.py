"""Pydantic models for ``lakeforge.yml``.

A ``type`` field picks the backend (``engine: {type: duckdb}``, ``warehouse: {type: duckdb}``), so later
backends (Spark, Snowflake, PostgreSQL) slot in as further members of the discriminated unions.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from lakeforge.config.equipment import EquipmentMapping
from lakeforge.config.limits import LIMIT_HELP, LimitSetting
from lakeforge.config.ml import MLConfig
from lakeforge.config.operations import AlertsConfig, MonitoringConfig, OrchestrationConfig

EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "csv",
              ".parquet": "parquet", ".pq": "parquet"}
COMPRESSIONS = (".gz", ".zst")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SQL_TYPES = {
    "string", "varchar", "boolean", "bool", "int", "integer", "bigint", "long", "smallint", "tinyint",
    "double", "float", "real", "decimal", "date", "timestamp", "timestamp_ntz", "timestamptz",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DuckDBEngineConfig(_Strict):
    """The embedded engine: DuckDB over Arrow, tables written with delta-rs."""

    type: Literal["duckdb"] = "duckdb"
    threads: int | None = Field(default=None, ge=1, description="DuckDB threads of every DuckDB connection "
                                "lakeforge opens; default: DuckDB's, all cores")
    memory_limit: str | None = Field(
        default=None, description="memory limit of every DuckDB connection lakeforge opens, e.g. '4GB'; default: "
        "DuckDB's, 80% of RAM, except the web app's connections (the dashboards' snapshot and the SQL explorer), "
        "which keep to 2GB")
    temp_directory: str | None = Field(
        default=None, description="where DuckDB spills what outgrows the memory limit, and where a model's disk "
        "stage goes (relative to the project folder); default: DuckDB's, beside a database file (<file>.tmp) or "
        ".tmp in the working folder, and the system's temporary folder for the stage")
    stage: Literal["auto", "memory", "disk"] = Field(
        default="auto", description="where a model with rules or a unique key stages its rows before anything "
        "commits: memory, or a compressed temporary DuckDB file; auto: on disk when the estimated rows outgrow "
        "the memory limit (spilling them uncompressed costs more than writing them compressed)")


class SparkEngineConfig(_Strict):
    """Apache Spark with Delta Lake: ``local[*]`` on a laptop, a Databricks cluster (or Databricks Connect)
    in production. The same models; ingestion runs as Structured Streaming with an available-now trigger."""

    type: Literal["spark"] = "spark"
    master: str = Field(default="local[*]", description="Spark master, e.g. local[2]; sc://host:15002 for a Spark "
                        "Connect server; databricks-connect for Databricks Connect; ignored on Databricks")
    shuffle_partitions: int = Field(default=4, ge=1, description="spark.sql.shuffle.partitions")
    driver_memory: str | None = Field(default=None, description="spark.driver.memory, e.g. '2g' (local mode)")
    jars_dir: str | None = Field(default=None, description="Delta's jars (default: .cache/spark-jars of "
                                 "`make spark-deps`, or LAKEFORGE_SPARK_JARS)")
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings")
    ingest: Literal["stream", "batch"] = Field(
        default="stream", description="stream: Structured Streaming (Auto Loader on Databricks), available-now "
        "trigger, checkpointed; batch: Spark's batch readers over lakeforge's own batches")


EngineConfig = Annotated[DuckDBEngineConfig | SparkEngineConfig, Field(discriminator="type")]


class DuckDBWarehouseConfig(_Strict):
    """A DuckDB file as warehouse (the embedded default)."""

    type: Literal["duckdb"] = "duckdb"
    path: str = "warehouse.duckdb"


class SnowflakeWarehouseConfig(_Strict):
    """Snowflake: gold staged as Parquet (PUT to lakeforge's internal stage), COPY INTO a staging
    table, MERGE into the targets. Connection settings not given here come from ``SNOWFLAKE_*`` environment
    variables; the password or private key belongs in the environment or ``secrets.yml``, never in git."""

    type: Literal["snowflake"] = "snowflake"
    account: str | None = Field(default=None, description="account identifier (env SNOWFLAKE_ACCOUNT)")
    user: str | None = Field(default=None, description="env SNOWFLAKE_USER")
    role: str | None = Field(default=None, description="env SNOWFLAKE_ROLE")
    compute_warehouse: str | None = Field(default=None, description="virtual warehouse that runs the loads and "
                                          "refreshes the reports (env SNOWFLAKE_WAREHOUSE)")
    database: str | None = Field(default=None, description="env SNOWFLAKE_DATABASE; default LAKEFORGE")
    db_schema: str | None = Field(default=None, alias="schema", description="env SNOWFLAKE_SCHEMA; default GOLD")
    authenticator: str | None = Field(default=None, description="e.g. externalbrowser, oauth (env "
                                      "SNOWFLAKE_AUTHENTICATOR); default: password or key pair")
    password: SecretStr | None = Field(default=None, description="env SNOWFLAKE_PASSWORD or secrets.yml")
    private_key_file: str | None = Field(default=None, description="PEM key for key-pair authentication (env "
                                         "SNOWFLAKE_PRIVATE_KEY_FILE)")
    private_key_passphrase: SecretStr | None = Field(default=None, description="env "
                                                     "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE or secrets.yml")
    host: str | None = Field(default=None, description="override the account's host (private link, a local fake)")
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["https", "http"] | None = None
    reports: Literal["dynamic_table", "materialized_view", "view"] = Field(
        default="dynamic_table", description="how the standard reports are kept: dynamic tables refreshed within "
        "target_lag (they may join), materialized views (single table only) or plain views")
    target_lag: str = Field(default="1 hour", description="dynamic tables' TARGET_LAG")
    query_tag: str | None = Field(default=None, description="QUERY_TAG of every statement; default: JSON naming "
                                  "lakeforge, the project and the run")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PostgresWarehouseConfig(_Strict):
    """PostgreSQL: gold streamed with COPY into a staging table, then MERGE (PostgreSQL 15+) or INSERT ... ON
    CONFLICT into the targets, with the load ledger, in one transaction. libpq's ``PG*`` environment variables
    fill what is not given here; keep the password in ``PGPASSWORD``, ``~/.pgpass`` or ``secrets.yml``."""

    type: Literal["postgres"] = "postgres"
    dsn: str | None = Field(default=None, description="a libpq connection string or URI; the fields below "
                            "override it")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    dbname: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    db_schema: str = Field(default="gold", alias="schema")
    sslmode: str | None = None
    connect_timeout: int = Field(default=10, ge=1)
    upsert: Literal["auto", "merge", "on_conflict"] = Field(
        default="auto", description="auto: MERGE on PostgreSQL 15+, INSERT ... ON CONFLICT before")
    reports: Literal["materialized_view", "view"] = Field(
        default="materialized_view", description="materialized views are refreshed after each load")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


WarehouseConfig = Annotated[
    DuckDBWarehouseConfig | SnowflakeWarehouseConfig | PostgresWarehouseConfig, Field(discriminator="type")
]


class SourceConfig(_Strict):
    """One stream of landing files that becomes the bronze table ``bronze.<name>``."""

    format: Literal["auto", "jsonl", "csv", "parquet"] = Field(
        default="auto", description="file format; 'auto' decides by each file's extension"
    )
    path: str | None = Field(default=None, description="folder under the landing zone ('.': its root); default: the "
                                  "source name")
    pattern: str = Field(default="*", description="glob of file names to pick up inside the folder")
    header: bool = Field(default=True, description="CSV: the first line holds column names")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV delimiter")
    quote: str = Field(default='"', min_length=1, max_length=1, description="CSV quote character")
    columns: list[str] | None = Field(default=None, description="CSV without header: the column names")
    schema_hints: dict[str, str] = Field(default_factory=dict, description="column -> SQL type in bronze")
    timestamp_format: str | None = Field(default=None, description="strptime format of hinted timestamps")
    max_files_per_batch: int = Field(default=1000, ge=1, description="cloudFiles.maxFilesPerTrigger")
    max_bytes_per_batch: int | None = Field(default=None, ge=1, description="cloudFiles.maxBytesPerTrigger")
    schema_evolution: Literal["addNewColumns", "rescue", "failOnNewColumns", "none"] = Field(
        default="addNewColumns", description="cloudFiles.schemaEvolutionMode"
    )
    infer_column_types: bool = Field(default=False, description="cloudFiles.inferColumnTypes")
    max_line_bytes: int | None = Field(
        default=None, ge=1, description="lines longer than this are quarantined; default: the reader's limit "
        "(16 MiB a JSON line, 2 MiB a CSV line): a longer line is quarantined alone, with its length, and the rest "
        "of its file lands")
    max_quarantined: LimitSetting = Field(
        default=None, description="rows of a batch that may be quarantined before ingestion fails (nothing of "
        f"the batch committed): {LIMIT_HELP}")
    allow_overwrites: bool = Field(default=False, description="cloudFiles.allowOverwrites: ingest a file again "
                                   "when its size or modification time changed after it was ingested")
    settle_seconds: float = Field(
        default=10.0, ge=0, description="a file seen changing between its listing and its read is left out of the "
        "batch and taken once its modification time is this many seconds old")
    growing: bool = Field(
        default=False, description="files are appended to (a gateway's file of the day): each run takes the "
        "complete lines appended since the last batch, exactly once; uncompressed JSON lines or CSV only")
    clean_source: Literal["off", "move", "delete"] = Field(default="off", description="cloudFiles.cleanSource")
    move_to: str = Field(default="processed", description="cloudFiles.cleanSource.moveDestination (under landing)")
    retention_hours: float = Field(default=0.0, ge=0, description="cloudFiles.cleanSource.retentionDuration")

    @field_validator("schema_hints")
    @classmethod
    def _known_types(cls, hints: dict[str, str]) -> dict[str, str]:
        for column, sql_type in hints.items():
            base = sql_type.split("(")[0].strip().lower()
            if base not in SQL_TYPES:
                raise ValueError(
                    f"unknown type {sql_type!r} for column {column!r}; use one of {', '.join(sorted(SQL_TYPES))}"
                )
        return hints

    @model_validator(mode="after")
    def _csv_columns(self) -> SourceConfig:
        if self.format == "csv" and not self.header and not self.columns:
            raise ValueError("a CSV source without header needs 'columns: [name, ...]'")
        if self.growing and self.clean_source != "off":
            raise ValueError("growing: true and clean_source cannot go together: a file still appended to would be "
                             "moved or deleted under its writer; clean the landing folder of finished files yourself")
        if self.growing and self.format == "parquet":
            raise ValueError("growing: true reads files line by line as they are appended to, which a Parquet file "
                             "cannot be; take growing off this source, or land JSON lines or CSV")
        return self

    def check_move_to(self, name: str) -> None:
        folder, target = self.folder(name), self.move_to.strip("/")
        if self.clean_source == "move" and (target == folder or target.startswith(folder + "/") or folder == ""):
            raise ValueError(f"source {name}: move_to {self.move_to!r} lies inside the source folder, so moved "
                             "files would be picked up again; move them beside it, e.g. move_to: processed")

    def folder(self, name: str) -> str:
        """The folder under the landing zone (``path: .``: its root)."""
        folder = (self.path or name).strip("/")
        return "" if folder == "." else folder

    def format_of(self, path: str) -> str | None:
        """The format a file is read with: the declared one, or (``auto``) by extension; None if unknown."""
        if self.format != "auto":
            return self.format
        name = path.lower()
        for suffix in COMPRESSIONS:
            name = name.removesuffix(suffix)
        return EXTENSIONS.get(PurePosixPath(name).suffix)


class StorageConfig(_Strict):
    """How to reach S3-compatible locations. Credentials are not set here: they come from the environment
    (``AWS_ACCESS_KEY_ID`` ...), a profile, or ``secrets.yml`` never from ``lakeforge.yml`` in git."""

    endpoint_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:9000 for MinIO")
    region: str = "us-east-1"
    profile: str | None = Field(default=None, description="a profile of ~/.aws/credentials")
    delta_options: dict[str, str] = Field(default_factory=dict, description="extra delta-rs storage options")


class DatabricksDeployConfig(_Strict):
    """The job cluster of ``lakeforge deploy databricks`` (a Databricks Asset Bundle)."""

    spark_version: str = Field(default="17.3.x-scala2.13", description="Databricks Runtime of the job cluster")
    node_type_id: str = Field(default="i3.xlarge", description="worker and driver node type")
    num_workers: int = Field(default=2, ge=0)
    catalog: str | None = Field(default=None, description="Unity Catalog catalog the tables go to")
    schema_: str | None = Field(default=None, alias="schema", description="... and schema (declarative pipeline)")
    wheel: str = Field(default="lakeforge", description="the pip requirement installed on the cluster")


class AirflowDeployConfig(_Strict):
    """The DAG of ``lakeforge deploy airflow``."""

    dag_id: str | None = Field(default=None, description="default: lakeforge_<project name>")
    lakeforge_bin: str = Field(default="lakeforge", description="the lakeforge command on the Airflow workers")
    owner: str = "lakeforge"


class DeployConfig(_Strict):
    """How orchestrators run the pipeline: one schedule, one retry policy, one place to tell of failures."""

    schedule: str | None = Field(default="0 * * * *", description="cron (5 fields, UTC); null: triggered only")
    retries: int = Field(default=2, ge=0, description="retries of a failed task")
    retry_delay_minutes: float = Field(default=5, ge=0)
    timeout_minutes: int | None = Field(default=60, ge=1, description="a task running longer fails")
    sla_minutes: int | None = Field(default=90, ge=1, description="a run not finished this long after its "
                                    "scheduled time is reported late")
    notify: list[str] = Field(default_factory=list, description="e-mail addresses told of failures")
    databricks: DatabricksDeployConfig = Field(default_factory=DatabricksDeployConfig)
    airflow: AirflowDeployConfig = Field(default_factory=AirflowDeployConfig)


class ProjectConfig(_Strict):
    """The whole ``lakeforge.yml``."""

    name: str
    dialect: Literal["databricks", "spark", "duckdb"] = Field(
        default="databricks", description="SQL dialect the models are written in (transpiled by sqlglot)"
    )
    landing: str = "landing"
    lakehouse: str = "lakehouse"
    models_path: str = "models"
    reports_path: str = Field(default="reports", description="folder of report SQL files kept in the warehouse")
    engine: EngineConfig = Field(default_factory=DuckDBEngineConfig)
    warehouse: WarehouseConfig = Field(default_factory=DuckDBWarehouseConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    ml: MLConfig = Field(default_factory=MLConfig)
    equipment: EquipmentMapping | None = Field(
        default=None, description="which tables and columns are the machines, readings and events; `lakeforge "
        "equipment` writes the standard gold models from it (docs/transforms.md)")

    @model_validator(mode="before")
    @classmethod
    def _default_types(cls, data: Any) -> Any:
        """``engine: {threads: 2}`` means the default backend: fill in ``type`` before the union picks."""
        if isinstance(data, dict):
            for key in ("engine", "warehouse"):
                if isinstance(data.get(key), dict) and "type" not in data[key]:
                    data = {**data, key: {"type": "duckdb", **data[key]}}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("use letters, digits and underscores, starting with a letter")
        return value

    @field_validator("sources")
    @classmethod
    def _source_names(cls, sources: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        for name, source in sources.items():
            if not NAME_PATTERN.match(name):
                raise ValueError(f"source name {name!r}: use letters, digits and underscores")
            source.check_move_to(name)
        return sources
