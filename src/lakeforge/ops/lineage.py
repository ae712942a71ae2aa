"""OpenLineage run events (``monitoring.lineage``): what each run read and wrote, for Marquez, DataHub & co.

Per run, a START and a COMPLETE (or FAIL) event for the pipeline (job ``<project>``) and for each stage under
it (job ``<project>.<stage>``: ``ingest:<source>``, a model such as ``silver.telemetry``, ``warehouse``), each
stage's run carrying a parent run facet that points at the pipeline's run. Inputs and outputs are datasets:
lakehouse tables (namespace: the lakehouse URI, name: ``layer.table``), a source's landing folder (namespace:
the landing URI, name: the folder), warehouse tables (namespace: the warehouse). A COMPLETE event gives each
output's schema and rows written; a FAIL event the error. Run ids are UUIDs derived from lakeforge's run id
(and the stage's name), so a consumer can tie an event to ``lakeforge runs``.

Events go to a JSON-lines file (``transport: file``) or to an HTTP endpoint (``transport: http``). Lineage never
fails a run: when an event cannot be delivered, one warning is printed and the run goes on without sending the
rest of its events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeforge.errors import MissingDependency
from lakeforge.pipeline import warehouse
from lakeforge.pipeline.hooks import Observer

if TYPE_CHECKING:
    from lakeforge.models import Model
    from lakeforge.results import RunResult, StageResult
    from lakeforge.workspace import Workspace

PRODUCER = "https://github.com/lakeforge/lakeforge"
INTEGRATION = "LAKEFORGE"
# an endpoint that is down must not hold a run up: few, quick retries (then the run's events stop)
HTTP_RETRY = {"total": 2, "connect": 2, "read": 2, "backoff_factor": 0.2,
              "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["POST"]}
JOB_TYPES = {"ingest": "TASK", "model": "MODEL", "ml": "TASK", "load": "TASK"}


def _client(workspace: Workspace) -> Any:
    """An ``OpenLineageClient`` with the configured transport."""
    config = workspace.config.monitoring.lineage
    try:
        from openlineage.client import OpenLineageClient
        from openlineage.client.transport.file import FileConfig, FileTransport
        from openlineage.client.transport.http import HttpConfig, HttpTransport
    except ImportError as exc:
        raise MissingDependency(f"monitoring.lineage transport {config.transport} needs the OpenLineage client "
                                f"({exc})", hint="pip install 'lakeforge[lineage]'") from None
    transport: Any
    if config.transport == "file":
        path = Path(config.path) if Path(config.path).is_absolute() else workspace.path / config.path
        path.parent.mkdir(parents=True, exist_ok=True)
        transport = FileTransport(FileConfig(log_file_path=str(path), append=True))
    else:
        params: dict[str, Any] = {"url": config.url, "endpoint": config.endpoint,
                                  "timeout": config.timeout_seconds, "retry": HTTP_RETRY}
        if config.api_key is not None:
            params["auth"] = {"type": "api_key", "apiKey": config.api_key.get_secret_value()}
        transport = HttpTransport(HttpConfig.from_dict(params))
    return OpenLineageClient(transport=transport)


def _uri(location_uri: str) -> str:
    """A dataset namespace: the location's URI (a local folder as ``file://``)."""
    return location_uri.rstrip("/") if "://" in location_uri else Path(location_uri).resolve().as_uri()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def run_uuid(run_id: str, namespace: str, stage: str | None = None) -> str:
    """The OpenLineage run id of lakeforge run ``run_id`` (or of one of its stages): a UUIDv7 at the run's start
    (lakeforge run ids begin with it), the rest a hash of the names, so the same run always maps to the same id."""
    data = f"lakeforge:{namespace}:{run_id}:{stage or ''}".encode()
    try:
        instant = dt.datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.UTC)
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, data.decode()))
    from openlineage.client.uuid import generate_static_uuid

    return str(generate_static_uuid(instant, data))


def _schema_fields(schema: pa.Schema | pa.StructType) -> list[Any]:
    from openlineage.client.generated.schema_dataset import SchemaDatasetFacetFields

    fields = list(schema) if isinstance(schema, pa.Schema) else [schema.field(i) for i in range(schema.num_fields)]
    out = []
    for position, field in enumerate(fields, start=1):
        nested = _schema_fields(field.type) if pa.types.is_struct(field.type) else None
        out.append(SchemaDatasetFacetFields(name=field.name, type=str(field.type), ordinal_position=position,
                                            fields=nested))
    return out


class LineageObserver(Observer):
    """Sends the OpenLineage events of every run (see the module's doc)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.config = workspace.config.monitoring.lineage
        self.namespace = self.config.namespace or workspace.config.name
        self.job = workspace.config.name
        self.client = _client(workspace)
        self.lakehouse = _uri(workspace.lakehouse.uri)
        self.landing = _uri(workspace.landing.uri)
        self.run_id: str | None = None
        self.broken = False
        self.models: dict[str, Model] = {}
        self.started: dict[str, str] = {}  # stage -> its OpenLineage run id

    # -- observer ---------------------------------------------------------------------------------------
    def run_started(self, run_id: str) -> None:
        self.run_id, self.broken, self.started = run_id, False, {}
        try:
            self.models = {m.name: m for m in self.workspace.graph().ordered()}
        except Exception:  # the runner reports a bad graph itself
            self.models = {}
        self._emit("START", self._pipeline_run(), self._job(self.job, "DAG"))

    def stage_started(self, name: str, kind: str) -> None:
        if self.run_id is None:
            return
        self.started[name] = run_uuid(self.run_id, self.namespace, name)
        inputs, outputs = self._datasets(name, kind)
        self._emit("START", self._stage_run(name), self._stage_job(name, kind),
                   inputs=[self._input(ns, ds, schema=True) for ns, ds in inputs],
                   outputs=[self._output(ns, ds) for ns, ds in outputs])

    def stage_finished(self, stage: StageResult) -> None:
        if self.run_id is None:
            return
        inputs, outputs = self._datasets(stage.name, stage.kind)
        from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet

        ins = [self._input(ns, ds) for ns, ds in inputs]
        if stage.kind == "ingest" and ins:  # the landing files read
            ins[0].inputFacets = {"inputStatistics": InputStatisticsInputDatasetFacet(
                size=stage.bytes, producer=PRODUCER)}
        single = len(outputs) == 1  # a stage's row count is per dataset only when it wrote one
        outs = [self._output(ns, ds, schema=True, rows=stage.rows_written if single else None)
                for ns, ds in outputs]
        self._emit("COMPLETE", self._stage_run(stage.name), self._stage_job(stage.name, stage.kind),
                   inputs=ins, outputs=outs)

    def stage_failed(self, name: str, kind: str, error: BaseException) -> None:
        if self.run_id is None:
            return
        inputs, outputs = self._datasets(name, kind)
        stack = "".join(traceback.format_exception(error))
        self._emit("FAIL", self._stage_run(name, error=(str(error), stack)), self._stage_job(name, kind),
                   inputs=[self._input(ns, ds) for ns, ds in inputs],
                   outputs=[self._output(ns, ds) for ns, ds in outputs])

    def run_finished(self, result: RunResult) -> None:
        if self.run_id is None or self.run_id != result.run_id:  # the run never began (its lock was busy)
            return
        failed = result.status == "failed"
        error = (result.error or "the run failed", None) if failed else None
        self._emit("FAIL" if failed else "COMPLETE", self._pipeline_run(error=error), self._job(self.job, "DAG"))
        self.run_id = None
        with contextlib.suppress(Exception):  # closing an HTTP session cannot matter to the run
            self.client.close(timeout=self.config.timeout_seconds)

    # -- events -----------------------------------------------------------------------------------------
    def _emit(self, state: str, run: Any, job: Any, *, inputs: list[Any] | None = None,
              outputs: list[Any] | None = None) -> None:
        if self.broken:
            return
        from openlineage.client.event_v2 import RunEvent, RunState

        event = RunEvent(eventType=RunState(state), eventTime=_now(), run=run, job=job, producer=PRODUCER,
                         inputs=inputs or [], outputs=outputs or [])
        try:
            self.client.emit(event)
        except Exception as exc:  # lineage is an observer: it must not fail the run, nor slow it down
            self.broken = True
            where = self.config.url if self.config.transport == "http" else self.config.path
            print(f"warning: lineage: an OpenLineage event could not be sent to {where}: {exc}; the run goes "
                  "on without sending its other events", file=sys.stderr)

    def _pipeline_run(self, *, error: tuple[str, str | None] | None = None) -> Any:
        from openlineage.client.event_v2 import Run

        assert self.run_id is not None
        return Run(runId=run_uuid(self.run_id, self.namespace), facets=self._error(error))

    def _stage_run(self, name: str, *, error: tuple[str, str | None] | None = None) -> Any:
        from openlineage.client.event_v2 import Run
        from openlineage.client.generated import parent_run

        assert self.run_id is not None
        parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_uuid(self.run_id, self.namespace)),
            job=parent_run.Job(namespace=self.namespace, name=self.job),
            root=parent_run.Root(run=parent_run.RootRun(runId=run_uuid(self.run_id, self.namespace)),
                                 job=parent_run.RootJob(namespace=self.namespace, name=self.job)),
            producer=PRODUCER)
        run_id = self.started.get(name) or run_uuid(self.run_id, self.namespace, name)
        return Run(runId=run_id, facets={"parent": parent, **self._error(error)})

    @staticmethod
    def _error(error: tuple[str, str | None] | None) -> dict[str, Any]:
        if error is None:
            return {}
        from openlineage.client.generated.error_message_run import ErrorMessageRunFacet

        message, stack = error
        return {"errorMessage": ErrorMessageRunFacet(message=message, programmingLanguage="python",
                                                     stackTrace=stack, producer=PRODUCER)}

    def _job(self, name: str, job_type: str, *, sql: str | None = None) -> Any:
        from openlineage.client.event_v2 import Job
        from openlineage.client.generated.job_type_job import JobTypeJobFacet
        from openlineage.client.generated.sql_job import SQLJobFacet

        facets: dict[str, Any] = {"jobType": JobTypeJobFacet(processingType="BATCH", integration=INTEGRATION,
                                                             jobType=job_type, producer=PRODUCER)}
        if sql is not None:
            facets["sql"] = SQLJobFacet(query=sql, dialect=self.workspace.config.dialect, producer=PRODUCER)
        return Job(namespace=self.namespace, name=name, facets=facets)

    def _stage_job(self, name: str, kind: str) -> Any:
        model = self.models.get(name) if kind == "model" else None
        return self._job(f"{self.job}.{name}", JOB_TYPES.get(kind, "TASK"),
                         sql=model.sql.strip() if model is not None else None)

    # -- datasets ---------------------------------------------------------------------------------------
    def _datasets(self, name: str, kind: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(namespace, name) of the stage's inputs and outputs."""
        if kind == "ingest":
            source = name.removeprefix("ingest:")
            spec = self.workspace.config.sources.get(source)
            folder = spec.folder(source) if spec is not None else source
            return [(self.landing, folder)], [(self.lakehouse, f"bronze.{source}")]
        if kind == "load":
            gold = [t for t in warehouse.tables(self.workspace, list(self.models.values())) if self._exists(t)]
            return [(self.lakehouse, g) for g in gold], _warehouse(self.workspace, gold)
        if kind == "ml":
            from lakeforge.ml.scoring import io

            reads, writes = io(self.workspace, name)
            return [(self.lakehouse, t) for t in reads], [(self.lakehouse, t) for t in writes]
        model = self.models.get(name)
        upstream = model.upstream() if model is not None else []
        return [(self.lakehouse, u) for u in upstream], [(self.lakehouse, name)]

    def _exists(self, table: str) -> bool:
        try:
            return self.workspace.catalog.exists(table)
        except Exception:
            return False

    def _schema(self, namespace: str, name: str) -> dict[str, Any]:
        """The schema facet of a lakehouse table (a warehouse table: its gold table's columns); none if unknown."""
        from openlineage.client.generated.schema_dataset import SchemaDatasetFacet

        if namespace == self.landing:
            return {}
        table = name if namespace == self.lakehouse else f"gold.{name.rsplit('.', 1)[-1].lower()}"
        try:
            schema = pa.schema(self.workspace.catalog.table(table).schema().to_arrow())
        except Exception:  # not a stored table (a view, a table not written yet)
            return {}
        return {"schema": SchemaDatasetFacet(fields=_schema_fields(schema), producer=PRODUCER)}

    def _input(self, namespace: str, name: str, *, schema: bool = False) -> Any:
        from openlineage.client.event_v2 import InputDataset

        facets = self._schema(namespace, name) if schema else {}
        return InputDataset(namespace=namespace, name=name, facets=facets)

    def _output(self, namespace: str, name: str, *, schema: bool = False, rows: int | None = None) -> Any:
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.generated.output_statistics_output_dataset import (
            OutputStatisticsOutputDatasetFacet,
        )

        facets = self._schema(namespace, name) if schema else {}
        stats: dict[str, Any] = {}
        if rows is not None:
            stats["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=rows, producer=PRODUCER)
        return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=stats)


def _warehouse(workspace: Workspace, gold: list[str]) -> list[tuple[str, str]]:
    """(namespace, name) of the warehouse tables that gold tables are loaded into: OpenLineage's naming where it
    has one (``postgres://host:port`` with ``database.schema.table``, ``snowflake://account`` likewise),
    ``duckdb://<file>`` with ``main.table`` for the embedded warehouse."""
    config = workspace.config.warehouse
    tables = [g.split(".", 1)[1] for g in gold]
    if config.type == "postgres":
        host = config.host or os.environ.get("PGHOST") or "localhost"
        port = config.port or int(os.environ.get("PGPORT") or 5432)
        database = config.dbname or os.environ.get("PGDATABASE")
        prefix = f"{database}.{config.db_schema}." if database else f"{config.db_schema}."
        return [(f"postgres://{host}:{port}", prefix + t) for t in tables]
    if config.type == "snowflake":
        account = (config.account or os.environ.get("SNOWFLAKE_ACCOUNT") or "unknown").lower()
        database = (config.database or os.environ.get("SNOWFLAKE_DATABASE") or "LAKEFORGE").upper()
        schema = (config.db_schema or os.environ.get("SNOWFLAKE_SCHEMA") or "GOLD").upper()
        return [(f"snowflake://{account}", f"{database}.{schema}.{t.upper()}") for t in tables]
    path = Path(config.path)
    file = (path if path.is_absolute() else workspace.path / path).resolve()
    return [(f"duckdb://{file}", f"main.{t}") for t in tables]
