"""The bronze layer of ``lakeforge deploy databricks --as pipeline``: one streaming table per source.

``sources()`` turns the sources of ``lakeforge.yml`` into the plain settings the generated ``bronze.py`` reads
(``BRONZE`` is that file's code: the same for both flavors; the pipeline's configuration picks the reader).
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import TYPE_CHECKING, Any

from lakeforge.errors import ConfigError

if TYPE_CHECKING:
    from lakeforge.config.models import SourceConfig

FORMATS = ("jsonl", "csv", "parquet")
# file names each format is read from (the extensions of `format: auto`; gzip is read transparently)
GLOBS = {
    "jsonl": "{*.jsonl,*.json,*.ndjson,*.jsonl.gz,*.json.gz,*.ndjson.gz}",
    "csv": "{*.csv,*.txt,*.csv.gz,*.txt.gz}",
    "parquet": "{*.parquet,*.pq}",
}
_TYPES = {
    "string": "STRING", "varchar": "STRING", "boolean": "BOOLEAN", "bool": "BOOLEAN", "int": "INT",
    "integer": "INT", "bigint": "BIGINT", "long": "BIGINT", "smallint": "SMALLINT", "tinyint": "TINYINT",
    "double": "DOUBLE", "float": "FLOAT", "real": "FLOAT", "date": "DATE", "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP_NTZ",
}
_STRFTIME = {"Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
             "f": "SSSSSS", "p": "a", "b": "MMM", "B": "MMMM", "a": "EEE", "A": "EEEE", "j": "DDD", "z": "XX",
             "Z": "z", "%": "%"}


def spark_type(sql_type: str) -> str:
    """A ``schema_hints`` type as a Spark SQL type (``decimal(10,2)`` stays as written)."""
    base = sql_type.split("(")[0].strip().lower()
    if base == "decimal":
        return sql_type.strip().upper()
    return _TYPES[base]


def java_datetime_pattern(strptime: str) -> str:
    """A ``timestamp_format`` (strptime) as the Java pattern Spark's ``to_timestamp`` takes (its literal text
    quoted the Java DateTimeFormatter way: pattern syntax, not SQL, so not :mod:`lakeforge.sql`)."""
    out, literal, i = [], "", 0
    while i < len(strptime):
        char = strptime[i]
        if char == "%" and i + 1 < len(strptime):
            directive = strptime[i + 1]
            if directive not in _STRFTIME:
                raise ConfigError(f"timestamp_format {strptime!r}: %{directive} has no Spark equivalent here",
                                  hint="use %Y %m %d %H %M %S %f %z and literal text, or drop timestamp_format")
            if literal:
                out.append("'" + literal.replace("'", "''") + "'" if re.search("[A-Za-z']", literal) else literal)
                literal = ""
            out.append(_STRFTIME[directive])
            i += 2
        else:
            literal += char
            i += 1
    if literal:
        out.append("'" + literal.replace("'", "''") + "'" if re.search("[A-Za-z']", literal) else literal)
    return "".join(out)


def sources(configs: dict[str, SourceConfig]) -> list[dict[str, Any]]:
    """What ``bronze.py`` needs of each source, in ``lakeforge.yml`` order."""
    found = []
    for name, source in configs.items():
        columns: dict[str, str] = {c: "STRING" for c in source.columns or []}
        columns.update({c: spark_type(t) for c, t in source.schema_hints.items()})
        if not columns:
            raise ConfigError(f"source {name}: a pipeline reads files with a declared schema, and this source "
                              "declares no column",
                              hint=f"add schema_hints (column: type) to sources.{name} in lakeforge.yml")
        formats = list(FORMATS) if source.format == "auto" else [source.format]
        if source.format == "auto":
            globs = {fmt: GLOBS[fmt] for fmt in formats}
            name_regex = None if source.pattern == "*" else "^" + fnmatch.translate(source.pattern)
        else:
            globs = {source.format: source.pattern}
            name_regex = None
        found.append({
            "source": name, "table": f"bronze_{name}", "folder": source.folder(name), "formats": formats,
            "globs": globs, "name_regex": name_regex, "columns": columns,
            "timestamp_format": java_datetime_pattern(source.timestamp_format) if source.timestamp_format else None,
            "header": source.header, "delimiter": source.delimiter, "quote": source.quote,
            "max_files_per_batch": source.max_files_per_batch, "max_bytes_per_batch": source.max_bytes_per_batch,
            "allow_overwrites": source.allow_overwrites, "clean_source": source.clean_source,
            "move_to": source.move_to.strip("/"), "retention_hours": source.retention_hours,
            "rescue_unknown": source.schema_evolution == "rescue",
        })
    return found


def bronze_py(configs: dict[str, SourceConfig]) -> str:
    settings = json.dumps(sources(configs), indent=2)
    return BRONZE.replace("@SOURCES@", settings)


BRONZE = '''\
"""Bronze: one streaming table per lakeforge source (bronze_<source>), fed by its landing folder.

Generated by `lakeforge deploy databricks --as pipeline`: regenerate it rather than edit it.
The pipeline's configuration picks the reader: `lakeforge.reader` is `cloudFiles` (Auto Loader, on Databricks)
or `files` (Spark's file source, open-source Spark); `lakeforge.landing` is the landing zone's root.
Columns are read as text and typed with try_cast, so a value that does not fit its type becomes NULL and is kept,
by column, in _rescued_data (as lakeforge's own ingestion does); a line that cannot be parsed at all goes to
_rescued_data whole. _batch_id is the micro-batch's time in microseconds (ascending, as lakeforge's batch ids).
"""

import json

from pyspark import pipelines as dp
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SOURCES = json.loads(r"""
@SOURCES@
""")
READER = spark.conf.get("lakeforge.reader", "files")  # noqa: F821 (the pipeline runner defines `spark`)
LANDING = spark.conf.get("lakeforge.landing").rstrip("/")  # noqa: F821
LANDING_PATH = LANDING.split("://", 1)[-1]


def _options(source: dict, fmt: str) -> dict:
    options = {"recursiveFileLookup": "true"}
    if source["globs"][fmt] != "*":
        options["pathGlobFilter"] = source["globs"][fmt]
    if fmt == "csv":
        options.update(header=str(source["header"]).lower(), sep=source["delimiter"], quote=source["quote"])
    if READER == "cloudFiles":
        options["cloudFiles.format"] = "json" if fmt == "jsonl" else fmt
        options["cloudFiles.maxFilesPerTrigger"] = str(source["max_files_per_batch"])
        if source["max_bytes_per_batch"]:
            options["cloudFiles.maxBytesPerTrigger"] = str(source["max_bytes_per_batch"])
        options["cloudFiles.allowOverwrites"] = str(source["allow_overwrites"]).lower()
        if source["clean_source"] != "off":
            options["cloudFiles.cleanSource"] = source["clean_source"].upper()
            options["cloudFiles.cleanSource.retentionDuration"] = f"{source['retention_hours']} hours"
            if source["clean_source"] == "move":
                options["cloudFiles.cleanSource.moveDestination"] = f"{LANDING}/{source['move_to']}"
        if fmt != "parquet":
            options["rescuedDataColumn"] = "_lf_autoloader_rescued"
    else:
        options["maxFilesPerTrigger"] = str(source["max_files_per_batch"])
        if source["clean_source"] != "off":
            options["cleanSource"] = "archive" if source["clean_source"] == "move" else "delete"
            if source["clean_source"] == "move":
                options["sourceArchiveDir"] = f"{LANDING}/{source['move_to']}"
        if fmt != "parquet":
            options.update(mode="PERMISSIVE", columnNameOfCorruptRecord="_corrupt_record")
    return options


def _read(source: dict, fmt: str) -> DataFrame:
    typed = fmt == "parquet"  # Parquet carries its types; JSON lines and CSV are read as text, then typed
    schema = ", ".join(f"`{name}` {kind if typed else 'STRING'}" for name, kind in source["columns"].items())
    if READER != "cloudFiles" and not typed:
        schema += ", `_corrupt_record` STRING"
    reader = spark.readStream.format(  # noqa: F821
        "cloudFiles" if READER == "cloudFiles" else "json" if fmt == "jsonl" else fmt)
    frame = reader.options(**_options(source, fmt)).schema(schema).load(f"{LANDING}/{source['folder']}")
    if source["name_regex"]:
        frame = frame.where(F.col("_metadata.file_name").rlike(source["name_regex"]))
    return _typed(frame, source, typed)


def _typed(frame: DataFrame, source: dict, typed: bool) -> DataFrame:
    columns, misfits = [], []
    for name, kind in source["columns"].items():
        raw = F.col(f"`{name}`")
        if typed or kind == "STRING":
            value = raw
        elif kind == "TIMESTAMP" and source["timestamp_format"]:
            value = F.try_to_timestamp(raw, F.lit(source["timestamp_format"]))
        else:
            value = raw.try_cast(kind)
        columns.append(value.alias(name))
        if not typed and kind != "STRING":
            misfits.append(F.when(raw.isNotNull() & value.isNull(),
                                  F.struct(F.lit(name).alias("key"), raw.alias("value"))))
    rescued = F.lit(None).cast("string")
    if misfits:
        found = F.filter(F.array(*misfits), lambda item: item.isNotNull())
        rescued = F.when(F.size(found) > 0, F.to_json(F.map_from_entries(found)))
    # (no frame.columns here: a query function may not analyze its DataFrame)
    if READER == "cloudFiles" and not typed and source["rescue_unknown"]:  # Auto Loader: fields not declared
        rescued = F.coalesce(rescued, F.col("_lf_autoloader_rescued"))
    if READER != "cloudFiles" and not typed:  # Spark's file source: a line it could not parse
        line = F.col("_corrupt_record")
        rescued = F.coalesce(rescued, F.when(line.isNotNull(), F.to_json(F.struct(line.alias("_corrupt_record")))))
    path = F.col("_metadata.file_path")
    relative = F.regexp_extract(path, "^.*?\\\\Q" + LANDING_PATH + "\\\\E/(.*)$", 1)
    fallback = F.concat(F.lit(source["folder"] + "/"), F.col("_metadata.file_name"))
    now = F.current_timestamp()  # in a stream: the micro-batch's time
    return frame.select(
        *columns,
        rescued.alias("_rescued_data"),
        F.when(relative != "", relative).otherwise(fallback).alias("_source_file"),
        F.col("_metadata.file_size").alias("_file_size"),
        F.col("_metadata.file_modification_time").alias("_file_modification_time"),
        now.alias("_ingested_at"),
        F.unix_micros(now).alias("_batch_id"),
    )


def _flow(source: dict, fmt: str):
    def read() -> DataFrame:
        return _read(source, fmt)

    read.__name__ = f"{source['table']}_{fmt}"
    return read


for _source in SOURCES:
    dp.create_streaming_table(_source["table"], comment=f"lakeforge source {_source['source']}: landing files")
    for _fmt in _source["formats"]:
        dp.append_flow(target=_source["table"], name=f"{_source['table']}_{_fmt}")(_flow(_source, _fmt))
'''
