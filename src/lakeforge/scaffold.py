"""``lakeforge init --from PATH``: a project made from sample files (issue 23).

:mod:`lakeforge.ingest.profile` says what the files are; this module writes what follows from it: ``lakeforge.yml``
with one source per group of files (format, header, delimiter, column names, schema hints), and one silver model
per source (typed, deduplicated on the likely key, with the expectations the profile suggests). Every guess goes
into the files as a comment and into the returned :class:`Scaffold` for the CLI to print. No existing file is
overwritten: the project must not exist yet.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from lakeforge.config.equipment import EquipmentMapping
from lakeforge.config.loader import CONFIG_FILE
from lakeforge.errors import ConfigError
from lakeforge.ingest.profile import ColumnProfile, SourceProfile, name_columns, profile_location
from lakeforge.models import equipment
from lakeforge.storage.factory import open_location

_CLASSES = 20  # a text column with at most this many distinct values gets an accepted-values expectation


@dataclass
class Scaffold:
    """What ``init --from`` wrote and why."""

    path: Path
    origin: str
    sources: list[SourceProfile]
    written: list[str] = field(default_factory=list)
    mapping: EquipmentMapping | None = None
    mapping_why: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "from": self.origin, "written": self.written,
                "sources": {s.name: {"files": s.files, "format": s.format, "compression": s.compression,
                                     "header": s.header, "delimiter": s.delimiter, "rows_sampled": s.rows,
                                     "columns": {c.name: c.type for c in s.columns}, "key": s.key,
                                     "timestamp_format": s.timestamp_format, "why": s.why}
                            for s in self.sources},
                "equipment": self.mapping.model_dump(exclude_defaults=True) if self.mapping else None,
                "equipment_why": self.mapping_why}


def scaffold(target: Path, *, origin: str, name: str) -> Scaffold:
    """Profile the files at ``origin`` (a folder or ``s3://bucket/prefix``) and write a project into ``target``."""
    files = [target / CONFIG_FILE, target / "models"]
    existing = [f for f in files if f.exists()]
    if existing:
        raise ConfigError(f"{existing[0]} already exists: init --from never overwrites a project",
                          hint="choose a new or empty folder for the project")
    remote = origin.startswith(("s3://", "s3a://"))
    if not remote and not Path(origin).is_dir():
        raise ConfigError(f"--from {origin}: no such folder", hint="give a folder of sample files or an s3:// prefix")
    landing = origin if remote else str(Path(origin).resolve())
    sources = profile_location(open_location(landing, base_dir=Path.cwd()))
    name_columns(sources)
    mapping, why = propose(sources)
    result = Scaffold(path=target, origin=origin, sources=sources, mapping=mapping, mapping_why=why)
    (target / "models" / "silver").mkdir(parents=True, exist_ok=True)
    for source in sources:
        model = target / "models" / "silver" / f"{source.name}.sql"
        model.write_text(silver_model(source))
        result.written.append(str(model.relative_to(target)))
    if mapping is not None:
        result.written += sorted(equipment.write(target, mapping))  # lakeforge.yml's default folders
    config = target / CONFIG_FILE
    config.write_text(project_yaml(sources, name=name, landing=landing, origin=origin)
                      + mapping_yaml(mapping, why=why))
    result.written.insert(0, CONFIG_FILE)
    return result


_EVENTS = {"failures": ("fail", "breakdown"), "maintenance": ("maint", "repair", "service"),
           "errors": ("error", "alarm", "fault", "alert")}
_CLASS_LIMIT = 50  # a text column with more distinct values is not a component or an error code


def _machine_and_time(source: SourceProfile) -> tuple[ColumnProfile, ColumnProfile] | None:
    times = [c for c in source.columns if c.type == "timestamp"]
    ids = [c for c in source.columns if c.type in ("bigint", "string") and c.name in source.key] or \
        [c for c in source.columns if c.type == "bigint"]
    return (ids[0], times[0]) if times and ids else None


def propose(sources: list[SourceProfile]) -> tuple[EquipmentMapping | None, list[str]]:
    """The equipment mapping the profiles suggest: the readings are the largest source with a time, a machine
    identifier and numeric columns; the machines, a source keyed by a column of the readings' machine name;
    failures, maintenance and errors, the sources named so that have the same machine column and a time."""
    why: list[str] = []
    readings = None
    for source in sorted(sources, key=lambda s: -s.rows):
        found = _machine_and_time(source)
        numeric = [c for c in source.columns if c.type == "double" and c.name not in source.key]
        if found and numeric:
            readings = (source, found[0], found[1], numeric)
            break
    if readings is None:
        return None, ["no equipment mapping: no source has a time, a machine identifier and numeric readings"]
    source, machine, time, numeric = readings
    mapping: dict[str, object] = {"readings": {
        "table": f"silver.{source.name}", "machine": machine.name, "time": time.name,
        "sensors": [c.name for c in numeric]}}
    why.append(f"readings: silver.{source.name}, the largest source with a time ({time.name}), a machine "
               f"({machine.name}) and numeric columns (the sensors: {', '.join(c.name for c in numeric)})")
    for other in sources:
        if other is source:
            continue
        if other.key == [machine.name]:
            texts = [c for c in other.columns if c.type == "string" and 1 < c.distinct <= _CLASS_LIMIT]
            mapping["machines"] = {"table": f"silver.{other.name}", "id": machine.name,
                                   **({"model": texts[0].name} if texts else {})}
            why.append(f"machines: silver.{other.name}, keyed by {machine.name}"
                       + (f"; model: {texts[0].name} ({texts[0].distinct} values)" if texts else ""))
            continue
        role = next((r for r, words in _EVENTS.items() if any(w in other.name.lower() for w in words)), None)
        times = [c for c in other.columns if c.type == "timestamp"]
        if role is None or role in mapping or machine.name not in [c.name for c in other.columns] or not times:
            continue
        texts = [c for c in other.columns if c.type == "string" and 1 < c.distinct <= _CLASS_LIMIT]
        entry: dict[str, object] = {"table": f"silver.{other.name}", "machine": machine.name, "time": times[0].name}
        if texts:
            values = sorted(str(v) for v in texts[0].members)
            entry.update({"code": texts[0].name, "codes": values} if role == "errors"
                         else {"component": texts[0].name, "components": values})
        elif role == "errors":
            continue
        mapping[role] = entry
        why.append(f"{role}: silver.{other.name} (its name), with {machine.name} and a time ({times[0].name})"
                   + (f"; {texts[0].name}: {', '.join(sorted(str(v) for v in texts[0].members))}" if texts else ""))
    return EquipmentMapping.model_validate(mapping), why


def mapping_yaml(mapping: EquipmentMapping | None, *, why: list[str]) -> str:
    if mapping is None:
        return "".join(f"# {w}\n" for w in why)
    lines = ["# The equipment mapping: which tables and columns are the machines, readings and events. From it",
             "# `lakeforge equipment` writes the standard gold models and reports (models/gold, reports) that the",
             "# dashboards and `ml train` read; edit it, then run `lakeforge equipment` (docs/transforms.md).",
             *[f"# {w}" for w in why], "equipment:"]
    for role, value in mapping.model_dump(exclude_defaults=True).items():
        lines.append(f"  {role}: {_flow(value)}")
    if mapping.failures is not None:
        lines += ["ml:", "  risk: {enabled: true}   # -> gold.machine_risk in every run once a champion exists "
                  "(lakeforge ml train, then ml promote); docs/ml.md"]
    return "\n".join(lines) + "\n"


def _flow(value: object) -> str:
    """A YAML flow value (JSON is YAML): quoted where YAML would misread it."""
    if isinstance(value, str) and value.replace("_", "").isalnum() and not value[:1].isdigit() \
            and value.lower() not in ("true", "false", "null", "yes", "no", "on", "off"):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def project_yaml(sources: list[SourceProfile], *, name: str, landing: str, origin: str) -> str:
    made = dt.date.today().isoformat()
    lines = [f"# Made by `lakeforge init --from {origin}` on {made} from a profile of its files;",
             "# each source says what was guessed and why. Edit freely: init never overwrites this file.",
             f"name: {name}", "dialect: databricks          # models are Databricks SQL, transpiled for local runs",
             f"landing: {_flow(landing)}", "lakehouse: lakehouse", "engine: {type: duckdb}",
             "warehouse: {type: duckdb, path: warehouse.duckdb}"]
    if landing.startswith("s3") and os.environ.get("AWS_ENDPOINT_URL"):
        lines.append(f"storage: {{endpoint_url: {_flow(os.environ['AWS_ENDPOINT_URL'])}}}")
    lines.append("sources:")
    for source in sources:
        lines.append(f"  {source.name}:")
        lines += [f"    # {why}" for why in source.why]
        lines.append(f"    format: {source.format}")
        lines.append(f"    path: {_flow(source.folder)}")
        lines.append(f"    pattern: {_flow(source.pattern)}")
        if source.format == "csv":
            lines.append(f"    header: {'true' if source.header else 'false'}")
            if source.delimiter != ",":
                lines.append(f"    delimiter: {_flow(source.delimiter)}")
            if not source.header:
                lines.append(f"    columns: {_flow([c.name for c in source.columns])}")
        if source.timestamp_format:
            lines.append(f"    timestamp_format: {_flow(source.timestamp_format)}")
        lines.append(f"    schema_hints: {_flow({c.name: c.type for c in source.columns})}")
    return "\n".join(lines) + "\n"


def _q(name: str) -> str:
    """A column name in a model: bare when it is a plain word that is not an SQL keyword, else in backticks."""
    from sqlglot.dialects.databricks import Databricks

    plain = name.replace("_", "a").isalnum() and not name[:1].isdigit()
    return name if plain and name.upper() not in Databricks.Tokenizer.KEYWORDS else "`" + name.replace("`", "``") + "`"


def _nice(value: float, *, down: bool) -> float | int:
    """``value`` rounded outwards to two significant digits (a bound people read: 73, not 73.4127)."""
    if value == 0 or not math.isfinite(value):
        return 0
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    rounded = (math.floor if down else math.ceil)(value / step) * step
    return int(rounded) if step >= 1 else round(rounded, 10)


def _range(column: ColumnProfile) -> tuple[float | int, float | int] | None:
    """The plausible range: the 0.1%-99.9% quantiles widened by half their span (not below 0 for a column with no
    negative value)."""
    if column.q_low is None or column.q_high is None:
        return None
    span = (column.q_high - column.q_low) or abs(column.q_high) or 1.0
    low, high = column.q_low - span / 2, column.q_high + span / 2
    if column.low is not None and column.low >= 0:
        low = max(low, 0.0)
    return _nice(low, down=True), _nice(high, down=False)


def expectations(source: SourceProfile) -> list[str]:
    """The expectations a profile suggests: rescued values and a missing key part quarantine the row; values out of
    the observed range or outside the observed classes are reported (``warn``)."""
    rules = ["{name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}"]
    if source.key:
        expr = " AND ".join(f"{_q(k)} IS NOT NULL" for k in source.key)
        rules.append(f"{{name: key_present, expr: {json.dumps(expr)}, action: quarantine}}")
    for column in source.columns:
        if column.name in source.key:
            continue
        name = equipment.slug(column.name, prefix="", default="column")  # the rule's name
        bounds = _range(column) if column.numeric else None
        if bounds:
            expr = f"{_q(column.name)} IS NULL OR {_q(column.name)} BETWEEN {bounds[0]:g} AND {bounds[1]:g}"
            rules.append(f"{{name: {name}_in_range, expr: {json.dumps(expr)}, action: warn}}")
        elif column.type == "string" and 1 < column.distinct <= _CLASSES and len(column.members) == column.distinct:
            known = ", ".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"
                              for v in sorted(column.members, key=str))
            expr = f"{_q(column.name)} IS NULL OR {_q(column.name)} IN ({known})"
            rules.append(f"{{name: {name}_known, expr: {json.dumps(expr)}, action: warn}}")
    return rules


def silver_model(source: SourceProfile) -> str:
    header = []
    if source.key:
        header += ["-- kind: incremental", f"-- unique_key: {_flow(source.key)}",
                   "-- on_conflict: keep_first", "-- order_by: [_batch_id, _source_file]"]
        one = f" one row per {', '.join(source.key)} (the first seen)"
    else:
        header += ["-- kind: append"]
        one = " every row as it came (no column combination was unique in the sample)"
    text = f"{source.name} from {source.pattern}, typed;{one}. Written by lakeforge init --from; edit freely."
    header.append(f"-- description: {json.dumps(text)}")
    header.append("-- expectations:")
    header += [f"--   - {rule}" for rule in expectations(source)]
    columns = [_q(c.name) for c in source.columns] + ["_rescued_data", "_source_file", "_ingested_at", "_batch_id"]
    body = ["SELECT", *[f"  {c}," for c in columns[:-1]], f"  {columns[-1]}", f"FROM bronze.{source.name}"]
    return "\n".join(header + body) + "\n"
