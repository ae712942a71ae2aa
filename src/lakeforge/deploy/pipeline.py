"""``lakeforge deploy databricks --as pipeline``: the project as a Spark Declarative Pipeline.

Output (default ``<project>/deploy/databricks-pipeline/``, or ``.../spark-pipeline/`` for ``--target spark``)::

    spark-pipeline.yml             the pipeline spec: name, storage, catalog, database, configuration, libraries
    transformations/bronze.py      one streaming table per source (see pipeline_bronze.py)
    transformations/<layer>/<model>.sql   one dataset per stored model (views are inlined into their readers)
    databricks.yml, resources/...  (databricks) a bundle: the pipeline and a job that refreshes it on schedule
    conf/spark-defaults.conf, conf/spark-env.sh   (spark) the local Spark that runs it: Delta, a Derby metastore

Names: ``<layer>.<table>`` becomes ``<layer>_<table>`` in the pipeline's one target schema (``silver.telemetry``
-> ``silver_telemetry``; quarantine tables ``quarantine_<layer>_<table>`` as lakeforge names them).

Flavors (``target``):

- ``databricks``: Auto Loader reads the landing zone; expectations are ``CONSTRAINT ... EXPECT`` clauses (warn:
  ``EXPECT``; drop and quarantine: ``ON VIOLATION DROP ROW``; fail: ``ON VIOLATION FAIL UPDATE``); an
  incremental model with a ``unique_key`` that streams from one bronze table is an ``AUTO CDC`` flow (``on_conflict:
  update`` -> SCD type 1 sequenced by ``order_by``; ``scd: 2`` -> SCD type 2 sequenced by ``updated_at`` and a
  materialized view that names ``__START_AT``/``__END_AT`` ``valid_from``/``valid_to``/``is_current``).
- ``spark``: what open-source Spark 4.2's pipelines run: no expectations and no SQL ``AUTO CDC``, so drop and
  quarantine rules become a ``WHERE`` filter, fail rules ``assert_true`` (the flow fails), warn rules are left out;
  keyed models are materialized views that keep one row per key with ``QUALIFY row_number()`` and SCD type 2 is
  computed with window functions.

In both, a model with quarantine rules gets ``quarantine_<layer>_<table>``: its failing rows with
``_failed_rules``; an incremental model without key that streams from one bronze table is a streaming table;
everything else is a materialized view (recomputed, or on Databricks refreshed incrementally where it can).
Rules over the whole table (``unique``, ``row_count``, ``freshness``, ``references``) are not row predicates and
are left out, with a note.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlglot
from sqlglot import exp

from lakeforge.deploy.databricks import (
    HEADER,
    MARK,
    Written,
    bundle_root,
    check_out,
    clear,
    dump_yaml,
    job_policy,
    location_notes,
    resource_key,
)
from lakeforge.deploy.pipeline_bronze import bronze_py
from lakeforge.errors import ConfigError
from lakeforge.lakehouse.catalog import LAYERS
from lakeforge.sql import DATABRICKS

if TYPE_CHECKING:
    from lakeforge.models import Model
    from lakeforge.workspace import Workspace

Target = Literal["databricks", "spark"]
TARGETS: tuple[Target, ...] = ("databricks", "spark")
SPEC = "spark-pipeline.yml"
TRANSFORMATIONS = "transformations"
_STREAM = "__lf_stream__"
_SET_BASED = (exp.Window, exp.Select, exp.AggFunc)


def table_name(name: str) -> str:
    """``silver.telemetry`` -> ``silver_telemetry``: the dataset's name in the pipeline's schema."""
    return name.replace(".", "_")


class _Rule:
    def __init__(self, name: str, action: str, predicate: str) -> None:
        self.name, self.action, self.predicate = name, action, predicate

    @property
    def passes(self) -> str:
        return f"coalesce(({self.predicate}), false)"


class ModelSQL:
    """One model's statements for one flavor."""

    def __init__(self, model: Model, *, target: Target, streamable: bool) -> None:
        self.model, self.target, self.streamable = model, target, streamable
        self.dialect = "databricks" if target == "databricks" else "spark"
        self.name = table_name(model.name)
        self.notes: list[str] = []
        self.rules = self._rules()

    # -- pieces ---------------------------------------------------------------------------------------------------
    def query(self, *, stream: bool = False) -> str:
        """The model's SELECT in the flavor's dialect, tables renamed; ``stream`` reads its driver as a stream."""
        driver = self.model.driver() if stream else None

        def rename(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Table) and node.db in LAYERS and not node.args.get("catalog"):
                name = f"{node.db}.{node.name}"
                new = exp.Table(this=exp.to_identifier((_STREAM if name == driver else "") + table_name(name)))
                alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
                new.set("alias", alias)
                return new
            return node

        sql = self.model.tree.copy().transform(rename).sql(dialect=self.dialect, pretty=True)
        return sql.replace(_STREAM + table_name(driver), f"STREAM({table_name(driver)})") if driver else sql

    def _rules(self) -> list[_Rule]:
        rules = []
        for e in self.model.config.expectations:
            text = self.model.transpile(e.expr, dialect=self.dialect) if e.expr is not None else e.sql(self.dialect)
            tree = sqlglot.parse_one(text, read=self.dialect)
            if any(tree.find(kind) for kind in _SET_BASED):
                self.notes.append(f"{self.model.name}: rule {e.name!r} ({e.kind}) looks at more than its row, which "
                                  "pipeline expectations cannot; it is left out")
                continue
            rules.append(_Rule(e.name, e.action, tree.sql(dialect=self.dialect)))
        return rules

    def _of(self, *actions: str) -> list[_Rule]:
        return [r for r in self.rules if r.action in actions]

    def constraints(self) -> list[str]:
        """Databricks expectations."""
        tail = {"warn": "", "drop": " ON VIOLATION DROP ROW", "quarantine": " ON VIOLATION DROP ROW",
                "fail": " ON VIOLATION FAIL UPDATE"}
        return [f"CONSTRAINT {DATABRICKS.ident(r.name)} EXPECT ({r.predicate}){tail[r.action]}" for r in self.rules]

    def filtered(self, query: str) -> str:
        """Open-source Spark: drop and quarantine rules as a filter, fail rules as assert_true."""
        conditions = [r.passes for r in self._of("drop", "quarantine")]
        conditions += [f"assert_true({r.passes}, {DATABRICKS.literal(f'expectation {r.name} failed')}) IS NULL"
                       for r in self._of("fail")]
        if self.target != "spark" or not conditions:
            return query
        return f"SELECT *\nFROM (\n{_indent(query)}\n) AS __lf_rules\nWHERE " + "\n  AND ".join(conditions)

    def deduplicated(self, query: str) -> str:
        cfg = self.model.config
        keys = ", ".join(DATABRICKS.ident(k) for k in cfg.unique_key)
        direction = "ASC" if cfg.on_conflict == "keep_first" else "DESC"
        order = [f"{DATABRICKS.ident(c)} {direction} NULLS LAST" for c in cfg.order_by] or [keys]
        kept = self._of("drop", "quarantine")
        if self.target == "databricks" and kept:  # rows the constraints keep win over rows they drop
            order.insert(0, f"CASE WHEN {' AND '.join(r.passes for r in kept)} THEN 0 ELSE 1 END")
        return (f"SELECT *\nFROM (\n{_indent(query)}\n) AS __lf_model\n"
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {', '.join(order)}) = 1")

    def scd2(self, query: str) -> str:
        """Every change of the tracked columns a version: valid_from (updated_at), valid_to, is_current."""
        cfg = self.model.config
        keys = ", ".join(DATABRICKS.ident(k) for k in cfg.unique_key)
        tracked = ", ".join(DATABRICKS.ident(c) for c in self._tracked()) or "NULL"
        order = ", ".join(f"{DATABRICKS.ident(c)} DESC NULLS LAST" for c in cfg.order_by) or keys
        window = f"OVER (PARTITION BY {keys} ORDER BY valid_from)"
        return (
            f"WITH __lf_rows AS (\n"
            f"  SELECT *, CAST({DATABRICKS.ident(cfg.updated_at or '')} AS TIMESTAMP) AS valid_from\n"
            f"  FROM (\n{_indent(query, 4)}\n  ) AS __lf_model\n),\n"
            f"__lf_latest AS (  -- one version per key and time\n  SELECT * FROM __lf_rows\n"
            f"  QUALIFY row_number() OVER (PARTITION BY {keys}, valid_from ORDER BY {order}) = 1\n),\n"
            f"__lf_marked AS (\n  SELECT *, hash({tracked}) AS __lf_hash, lag(hash({tracked})) {window} AS __lf_prev\n"
            f"  FROM __lf_latest\n)\n"
            f"SELECT * EXCEPT (__lf_hash, __lf_prev), lead(valid_from) {window} AS valid_to,\n"
            f"  lead(valid_from) {window} IS NULL AS is_current\n"
            f"FROM __lf_marked\nWHERE __lf_prev IS NULL OR __lf_prev <> __lf_hash"
        )

    def _tracked(self) -> list[str]:
        cfg = self.model.config
        if cfg.track:
            return list(cfg.track)
        select = self.model.tree
        names = [p.alias_or_name for p in select.expressions] if isinstance(select, exp.Select) else []
        if not names or "*" in names:
            raise ConfigError(f"model {self.model.name}: scd 2 needs the columns whose change makes a version, "
                              "and they cannot be read from the SQL", hint="add `-- track: [col, ...]` to its header")
        return [n for n in names if n not in cfg.unique_key and n != cfg.updated_at and not n.startswith("_")]

    def quarantine(self) -> str | None:
        """The rows failing a quarantine rule, with the names of every rule they fail."""
        quarantined = self._of("quarantine")
        if not quarantined:
            return None
        names = ", ".join(f"CASE WHEN NOT {r.passes} THEN {DATABRICKS.literal(r.name)} END" for r in self.rules)
        query = (f"SELECT *, filter(array({names}), x -> x IS NOT NULL) AS _failed_rules\n"
                 f"FROM (\n{_indent(self.query())}\n) AS __lf_model\n"
                 f"WHERE NOT ({' AND '.join(r.passes for r in quarantined)})")
        name = "quarantine_" + self.name
        return _create(self.target, "MATERIALIZED VIEW", name, query,
                       comment=f"rows of {self.model.name} that failed a quarantine rule")

    # -- the statements -------------------------------------------------------------------------------------------
    def statements(self) -> list[str]:
        cfg = self.model.config
        keyed = cfg.kind == "incremental" and bool(cfg.unique_key)
        out = []
        comment = cfg.description or f"lakeforge model {self.model.name}"
        layout = {"partition_by": cfg.partition_by}
        if self.target == "databricks":
            layout["cluster_by"] = cfg.cluster_by
        elif cfg.cluster_by:
            self.notes.append(f"{self.model.name}: cluster_by is left out of the open-source flavor")
        if self.target == "databricks" and keyed and self.streamable and (
                cfg.scd == 2 or (cfg.on_conflict == "update" and cfg.order_by)):
            out += self._auto_cdc(comment, layout)
        elif cfg.kind == "incremental" and not cfg.unique_key and self.streamable:
            out.append(_create(self.target, "STREAMING TABLE", self.name, self.filtered(self.query(stream=True)),
                               constraints=self._constraints(), comment=comment, **layout))
        else:
            query = self.filtered(self.query())
            if cfg.scd == 2:
                query = self.scd2(query)
            elif cfg.unique_key and self.model.group_keys() is None:
                query = self.deduplicated(query)
            out.append(_create(self.target, "MATERIALIZED VIEW", self.name, query,
                               constraints=self._constraints(), comment=comment, **layout))
        quarantine = self.quarantine()
        if quarantine:
            out.append(quarantine)
        if cfg.contract is not None:
            self.notes.append(f"{self.model.name}: its contract is not checked by the pipeline")
        if self.target == "spark" and self._of("warn"):
            self.notes.append(f"{self.model.name}: warn rules ({', '.join(r.name for r in self._of('warn'))}) are "
                              "not evaluated by open-source Spark's pipelines")
        return out

    def _constraints(self) -> list[str]:
        return self.constraints() if self.target == "databricks" else []

    def _auto_cdc(self, comment: str, layout: dict[str, list[str]]) -> list[str]:
        cfg = self.model.config
        target = f"{self.name}__history" if cfg.scd == 2 else self.name
        source = f"{self.name}__changes"
        keys = ", ".join(DATABRICKS.ident(k) for k in cfg.unique_key)
        if cfg.scd == 2:
            sequence = DATABRICKS.ident(cfg.updated_at or "")
            stored = "STORED AS SCD TYPE 2\nTRACK HISTORY ON " + ", ".join(DATABRICKS.ident(c) for c in self._tracked())
        else:
            sequence = "struct(" + ", ".join(DATABRICKS.ident(c) for c in cfg.order_by) + ")"
            stored = "STORED AS SCD TYPE 1"
        statements = [
            _create(self.target, "STREAMING TABLE", target, None, constraints=self.constraints(), comment=comment,
                    **layout),
            f"CREATE TEMPORARY VIEW {source}\nAS\n{self.query(stream=True)}",
            f"CREATE FLOW {self.name}__cdc\nAS AUTO CDC INTO {target}\nFROM STREAM({source})\nKEYS ({keys})\n"
            f"SEQUENCE BY {sequence}\n{stored}",
        ]
        if cfg.scd == 2:
            statements.append(_create(
                self.target, "MATERIALIZED VIEW", self.name,
                f"SELECT * EXCEPT (__START_AT, __END_AT), __START_AT AS valid_from, __END_AT AS valid_to,\n"
                f"  __END_AT IS NULL AS is_current\nFROM {target}",
                comment=f"{comment} (SCD type 2: every version, valid_from to valid_to)"))
        return statements


def _indent(text: str, width: int = 2) -> str:
    return "\n".join(" " * width + line if line else line for line in text.splitlines())


def _create(target: Target, kind: str, name: str, query: str | None, *, constraints: list[str] | None = None,
            comment: str | None = None, partition_by: list[str] | None = None,
            cluster_by: list[str] | None = None) -> str:
    verb = "CREATE OR REFRESH" if target == "databricks" else "CREATE"  # OSS Spark has no OR REFRESH
    lines = [f"{verb} {kind} {name}" + (" (" if constraints else "")]
    if constraints:
        lines += [f"  {c}," for c in constraints[:-1]] + [f"  {constraints[-1]}", ")"]
    if partition_by:
        lines.append("PARTITIONED BY (" + ", ".join(DATABRICKS.ident(c) for c in partition_by) + ")")
    if cluster_by:
        lines.append("CLUSTER BY (" + ", ".join(DATABRICKS.ident(c) for c in cluster_by) + ")")
    if comment:
        lines.append(f"COMMENT {DATABRICKS.literal(comment)}")
    if query is not None:
        lines += ["AS", query]
    return "\n".join(lines)


def streamable(model: Model, *, sources: list[str]) -> bool:
    """Whether the model is a row-by-row query of one bronze table (so it can read that table as a stream)."""
    tree = model.tree
    driver = model.driver()
    if not isinstance(tree, exp.Select) or driver not in sources or model.upstream() != [driver]:
        return False
    if tree.args.get("distinct") or tree.args.get("group") or tree.args.get("joins"):
        return False
    blocked = (exp.AggFunc, exp.Window, exp.Subquery, exp.With, exp.Limit, exp.Order, exp.Union)
    return not any(tree.find(kind) for kind in blocked)


def model_files(workspace: Workspace, *, target: Target) -> tuple[dict[str, str], list[str]]:
    """``transformations/<layer>/<table>.sql`` -> its statements, and notes on what did not carry over."""
    graph = workspace.graph()
    files: dict[str, str] = {}
    notes: list[str] = []
    for model in graph.ordered():
        if model.config.kind == "view":
            continue  # inlined into the models that read it
        sql = ModelSQL(model, target=target, streamable=streamable(model, sources=graph.sources))
        statements = sql.statements()
        notes += sql.notes
        head = f"-- {model.name}: generated by `lakeforge deploy databricks --as pipeline` from {model.path.name}\n"
        files[f"{TRANSFORMATIONS}/{model.layer}/{model.table}.sql"] = head + ";\n\n".join(statements) + ";\n"
    return files, notes


# -- the spec, the local Spark, the Databricks bundle --------------------------------------------------------------
def pipeline_name(workspace: Workspace) -> str:
    return resource_key(workspace)


def landing_uri(workspace: Workspace, *, target: Target) -> str:
    uri = workspace.landing.uri
    if target == "spark" and uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://"):]  # Hadoop's S3 file system (needs hadoop-aws on the class path)
    return uri


def spec(workspace: Workspace, out: Path, *, target: Target) -> dict[str, Any]:
    dbx = workspace.config.deploy.databricks
    configuration = {"lakeforge.landing": landing_uri(workspace, target=target),
                     "lakeforge.reader": "cloudFiles" if target == "databricks" else "files",
                     "spark.sql.session.timeZone": "UTC"}
    catalog: str | None
    if target == "spark":
        engine = workspace.config.engine
        partitions = engine.shuffle_partitions if engine.type == "spark" else 4
        configuration |= {"spark.sql.shuffle.partitions": str(partitions), "spark.sql.sources.default": "delta"}
        catalog, database = "spark_catalog", "default"
    else:
        catalog, database = dbx.catalog, dbx.schema_ or workspace.config.name
    data: dict[str, Any] = {"name": pipeline_name(workspace), "storage": (out / "storage").as_uri()}
    if catalog:
        data["catalog"] = catalog
    data["database"] = database
    data["configuration"] = configuration
    data["libraries"] = [{"glob": {"include": f"{TRANSFORMATIONS}/**"}}]
    return data


def jars_dir(workspace: Workspace) -> Path:
    """Where Delta's jars are, as engine: spark looks for them (the first candidate when none is there yet)."""
    from lakeforge.engines.spark.session import find_jars_dir, jars_candidates

    configured = getattr(workspace.config.engine, "jars_dir", None)
    found = find_jars_dir(configured, base_dir=str(workspace.path))
    return found or jars_candidates(configured, base_dir=str(workspace.path))[0]


def spark_conf_files(workspace: Workspace, out: Path) -> dict[str, str]:
    """The static settings of the local Spark that runs the pipeline: they cannot go in the spec, whose
    configuration is applied to every flow, where static settings cannot change."""
    note = MARK + " --as pipeline --target spark`: regenerate it rather than edit it.\n"
    defaults = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # a metastore that outlives the run (Derby, in this folder): the next run finds its tables again
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={out / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={out}",
        "spark.sql.warehouse.dir": str(out / "warehouse"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # the driver and the local Spark Connect server listen on the loopback interface only
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.connect.grpc.binding.address": "127.0.0.1",
    }
    env = [
        "# Delta Lake's jars on the class path of the JVM that spark-pipelines starts (SPARK_DIST_CLASSPATH);",
        "# LAKEFORGE_SPARK_JARS overrides the folder. The Python that runs the pipeline's files needs pyspark.",
        "SPARK_LOCAL_IP=127.0.0.1",
        f"LAKEFORGE_SPARK_JARS=\"${{LAKEFORGE_SPARK_JARS:-{jars_dir(workspace)}}}\"",
        "SPARK_DIST_CLASSPATH=\"$(ls \"$LAKEFORGE_SPARK_JARS\"/delta-*.jar | tr '\\n' ':')\"",
        f"PYSPARK_PYTHON=\"${{PYSPARK_PYTHON:-{sys.executable}}}\"",
    ]
    return {"conf/spark-defaults.conf": note + "".join(f"{k} {v}\n" for k, v in defaults.items()),
            "conf/spark-env.sh": note + "\n".join(env) + "\n"}


def pipeline_bundle(workspace: Workspace, *, target_spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline resource and the job that refreshes it on the schedule of ``deploy:``."""
    key = resource_key(workspace)
    dbx = workspace.config.deploy.databricks
    pipeline: dict[str, Any] = {"name": key}
    if dbx.catalog:
        pipeline["catalog"] = dbx.catalog
    pipeline |= {
        "schema": target_spec["database"], "channel": "CURRENT", "edition": "ADVANCED", "continuous": False,
        "photon": True,
        "clusters": [{"label": "default", "node_type_id": dbx.node_type_id, "num_workers": dbx.num_workers}],
        # resource files resolve paths relative to themselves
        "libraries": [{"glob": {"include": f"../{TRANSFORMATIONS}/**"}}],
        "configuration": {k: v for k, v in target_spec["configuration"].items()},
    }
    job, per_task = job_policy(workspace.config.deploy)
    refresh = {"task_key": "refresh_pipeline",
               "pipeline_task": {"pipeline_id": f"${{resources.pipelines.{key}.id}}", "full_refresh": False},
               **per_task}
    return {"resources": {"pipelines": {key: pipeline},
                          "jobs": {f"{key}_refresh": {"name": f"{key}_refresh", **job, "tasks": [refresh]}}}}


def default_out(workspace: Workspace, *, target: Target) -> Path:
    return workspace.path / "deploy" / ("databricks-pipeline" if target == "databricks" else "spark-pipeline")


def write_pipeline(workspace: Workspace, out: Path, *, target: Target = "databricks") -> Written:
    """Write the pipeline (see the module's docstring) into ``out``; returns the files written and notes."""
    if target not in TARGETS:
        raise ConfigError(f"unknown pipeline target {target!r}", hint="use databricks or spark")
    out = check_out(workspace, out, marker=SPEC)
    key = resource_key(workspace)
    clear(out, TRANSFORMATIONS, "conf", f"resources/{key}.pipeline.yml")
    written = Written(out)
    files, notes = model_files(workspace, target=target)
    data = spec(workspace, out, target=target)
    run = (f"SPARK_CONF_DIR={shlex.quote(str(out / 'conf'))} spark-pipelines run --spec "
           f"{shlex.quote(str(out / SPEC))}") if target == "spark" else "databricks bundle deploy -t prod"
    header = HEADER.replace("deploy databricks", f"deploy databricks --as pipeline --target {target}")
    written.write(SPEC, header + f"# Run: {run}\n" + dump_yaml(data).removeprefix(HEADER))
    written.write(f"{TRANSFORMATIONS}/bronze.py", bronze_py(workspace.config.sources))
    for path, text in files.items():
        written.write(path, text)
    if target == "spark":
        for path, text in spark_conf_files(workspace, out).items():
            written.write(path, text)
    else:
        written.write("databricks.yml", dump_yaml(bundle_root(f"{key}_pipeline")))
        written.write(f"resources/{key}.pipeline.yml", dump_yaml(pipeline_bundle(workspace, target_spec=data)))
        notes = [n for n in location_notes(workspace) if n.startswith("landing")] + notes
    written.notes += notes
    return written
