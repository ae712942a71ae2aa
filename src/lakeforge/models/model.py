"""One SQL model: ``models/<layer>/<name>.sql`` with a header of ``-- key: value`` YAML lines.

Example::

    -- kind: incremental
    -- unique_key: [machine_id, ts]
    -- description: Typed, deduplicated sensor readings.
    -- expectations:
    --   - {name: ts_parsed, expr: ts IS NOT NULL, action: quarantine}
    SELECT ...

Kinds:
- ``incremental``: reads only the rows its upstream tables gained since the versions it last consumed. With
  ``unique_key`` the result is merged on the key (``on_conflict: update`` or ``keep_first``); an aggregate
  (GROUP BY covering the key) recomputes only the groups that the new rows touch, so late rows correct
  the groups they belong to. Without a key the rows are appended.
- ``materialized``: recomputed in full whenever an upstream table changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lakeforge.config.limits import LIMIT_HELP, LimitSetting
from lakeforge.errors import ConfigError, ModelError
from lakeforge.lakehouse.catalog import LAYERS
from lakeforge.quality import Expectation

if TYPE_CHECKING:  # sqlglot (~0.1 s to import) where a query is parsed: a model known from the cache is not
    from sqlglot import exp

    from lakeforge.models.analysis import Facts
    from lakeforge.storage import Location

MODEL_LAYERS = ("silver", "gold")
# header settings that change a model's rows (its fingerprint's parts besides the SQL)
FINGERPRINTED = ("kind", "unique_key", "on_conflict", "scd", "updated_at", "track", "order_by", "partition_by",
                 "expectations", "contract")


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["incremental", "materialized", "view"] = Field(
        default="materialized", description="also `append` (incremental without key) and `merge` (with one)")
    strategy: Literal["auto", "append", "merge", "groups", "partitions", "full"] = Field(
        default="auto", description="auto: the cheapest strategy that provably equals a recomputation (else "
        "the whole table); naming one makes `plan` and `run` refuse SQL it would be wrong for")
    unique_key: list[str] = Field(default_factory=list)
    on_conflict: Literal["update", "keep_first"] = "update"
    scd: Literal[1, 2] = Field(default=1, description="2: keep every version with valid_from/valid_to")
    updated_at: str | None = Field(default=None, description="scd 2: the column that says when a version began")
    track: list[str] = Field(default_factory=list, description="scd 2: columns whose change makes a version")
    order_by: list[str] = Field(
        default_factory=list,
        description="arrival order of rows (e.g. [_batch_id, _source_file]): among rows of one key in a batch, "
        "keep_first keeps the first and update the last, so a full refresh picks what incremental runs picked",
    )
    partition_by: list[str] = Field(default_factory=list)
    cluster_by: list[str] = Field(default_factory=list, description="Z-order columns for `lakeforge optimize`")
    description: str | None = None
    owner: str | None = None
    tags: list[str] = Field(default_factory=list, description="labels to select by: `--select tag:<label>`")
    expectations: list[Expectation] = Field(default_factory=list)
    contract: dict[str, str] | None = Field(
        default=None, description="the columns and types the model promises; any drift fails the model")
    # limits judge a run, they do not change its rows: not fingerprinted
    max_quarantined: LimitSetting = Field(
        default=None, description=f"rows of a run its expectations may quarantine before it fails: {LIMIT_HELP}")
    max_dropped: LimitSetting = Field(
        default=None, description=f"rows of a run its expectations and dedup may drop before it fails: {LIMIT_HELP}")

    @model_validator(mode="before")
    @classmethod
    def _kind_names(cls, data: Any) -> Any:
        """``append`` and ``merge`` are the incremental kind, without and with a key."""
        if isinstance(data, dict) and data.get("kind") in ("append", "merge"):
            if data["kind"] == "append" and data.get("unique_key"):
                raise ValueError("kind: append takes no unique_key; use kind: merge to upsert on a key")
            if data["kind"] == "merge" and not data.get("unique_key"):
                raise ValueError("kind: merge needs unique_key: [column, ...]")
            if data.get("strategy", "auto") not in ("auto", data["kind"]):
                raise ValueError(f"kind: {data['kind']} is strategy: {data['kind']}; remove one of them")
            data = {**data, "kind": "incremental", "strategy": data["kind"]}
        return data

    @model_validator(mode="after")
    def _scd(self) -> ModelConfig:
        if self.scd == 2 and (not self.unique_key or not self.updated_at):
            raise ValueError("scd: 2 needs unique_key and updated_at (the column that says when a version began)")
        return self

    @property
    def demands_strategy(self) -> bool:
        """Whether the header demands a strategy its SQL might not allow (what ``strategy.analyze`` refuses)."""
        return self.scd != 2 and self.strategy not in ("auto", "full")


@dataclass
class Model:
    name: str  # layer.table
    path: Path
    config: ModelConfig
    sql: str  # as written, in the project's dialect
    dialect: str
    _tree: exp.Expr | None = field(default=None, repr=False)  # None: not parsed yet (see load_models)
    line_offset: int = 0  # lines of header before the SQL
    _fingerprint: tuple[exp.Expr, dict[str, str]] | None = field(default=None, repr=False, compare=False)
    # what the analysis cache knows of the model (its upstream, fingerprint) while it is not parsed, and how to
    # parse it (with every model of its project: views are inlined into their readers)
    _facts: Facts | None = field(default=None, repr=False, compare=False)
    _parse: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def tree(self) -> exp.Expr:
        """The query (views it reads inlined), parsed on first use."""
        if self._tree is None and self._parse is not None:
            self._parse()
        if self._tree is None:
            raise AssertionError(f"model {self.name} has no parsed query")  # pragma: no cover
        return self._tree

    @tree.setter
    def tree(self, value: exp.Expr) -> None:
        self._tree = value

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def quarantine_table(self) -> str:
        return f"quarantine.{self.layer}_{self.table}"

    def upstream(self) -> list[str]:
        """Lakehouse tables the SQL reads, in order of first appearance (CTE names excluded)."""
        if self._tree is None and self._facts is not None:
            return list(self._facts.upstream)
        from sqlglot import exp

        ctes = {c.alias_or_name for c in self.tree.find_all(exp.CTE)}
        seen: list[str] = []
        for expectation in self.config.expectations:  # tables a rule reads (references) come first
            seen += [t for t in expectation.tables() if t not in seen]
        for table in self.tree.find_all(exp.Table):
            if not table.db and table.name in ctes:
                continue
            name = f"{table.db}.{table.name}" if table.db else table.name
            if name not in seen:
                seen.append(name)
        return seen

    def driver(self) -> str | None:
        """The table in the outermost FROM clause (the one incremental runs read changes of)."""
        from sqlglot import exp

        select = self.tree if isinstance(self.tree, exp.Select) else None
        from_ = select.args.get("from_") if select is not None else None
        if from_ is not None and isinstance(from_.this, exp.Table) and from_.this.db:
            return f"{from_.this.db}.{from_.this.name}"
        return None

    def group_keys(self) -> dict[str, exp.Expr] | None:
        """For an aggregate whose GROUP BY is exactly ``unique_key`` (so its output has one row per key, and needs
        no dedup pass): key column -> expression over the driver."""
        from lakeforge.models.strategy import provable

        shape = provable(self)
        return shape.keys if shape.strategy == "groups" and not shape.dedup else None

    @property
    def dedups(self) -> bool:
        """Whether the output goes through the unique_key dedup pass (not for an aggregate whose GROUP BY is the
        key, which makes it unique already, nor for SCD2 history, which keeps every version)."""
        return bool(self.config.unique_key) and self.config.scd != 2 and self.group_keys() is None

    def fingerprint(self) -> dict[str, str]:
        """What determines the model's rows, hashed per part: its SQL normalised by sqlglot (whitespace, comments
        and the case of keywords do not count; views it reads are inlined, so their edits count) and each header
        setting that changes the output. ``description``, ``owner``, ``cluster_by`` and ``strategy`` do not (every
        strategy equals a recomputation). Computed once per tree (views are inlined by replacing it)."""
        if self._tree is None and self._facts is not None:
            return dict(self._facts.fingerprint)
        if self._fingerprint is None or self._fingerprint[0] is not self.tree:
            parts: dict[str, object] = {"sql": self.tree.sql(dialect=self.dialect, comments=False)}
            config = self.config.model_dump(mode="json")
            for name in FINGERPRINTED:
                parts[name] = config[name]
            self._fingerprint = (self.tree, {
                name: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
                for name, value in parts.items()})
        return dict(self._fingerprint[1])

    def duckdb_sql(self) -> str:
        return self.tree.sql(dialect="duckdb")

    def sql_for(self, dialect: str) -> str:
        """The model's query in an engine's dialect (``duckdb`` or ``spark``), with Databricks' result types:
        DuckDB's ``year()``, ``length()``, ``row_number()``... return BIGINT where Databricks returns INT, so
        for DuckDB they are cast, and both engines write the same schema."""
        if dialect != "duckdb":
            return self.tree.sql(dialect=dialect)
        return self.tree.transform(_databricks_int).sql(dialect=dialect)

    def transpile(self, expression: str, *, dialect: str = "duckdb") -> str:
        """A predicate or expression in the project's dialect, in an engine's dialect (DuckDB by default)."""
        import sqlglot

        try:
            return sqlglot.parse_one(expression, read=self.dialect).sql(dialect=dialect)
        except sqlglot.errors.ParseError as exc:
            raise ModelError(f"{self.path}: cannot parse expression {expression!r}: {exc}",
                             hint="write it as a SQL boolean predicate, e.g. `volt BETWEEN 0 AND 400`") from None


@functools.cache
def _int_types() -> tuple[tuple[type[exp.Expr], ...], tuple[type[exp.Expr], ...]]:
    """The functions and window functions that return INT on Databricks/Spark and BIGINT on DuckDB."""
    from sqlglot import exp

    functions = tuple(getattr(exp, name) for name in (
        "Year", "Month", "Day", "DayOfMonth", "DayOfWeek", "DayOfYear", "WeekOfYear", "Quarter", "Hour", "Minute",
        "Second", "Extract", "Length", "DateDiff") if hasattr(exp, name))
    windows = tuple(getattr(exp, name) for name in ("RowNumber", "Rank", "DenseRank", "Ntile") if hasattr(exp, name))
    return functions, windows


def _databricks_int(node: exp.Expr) -> exp.Expr:
    """Databricks semantics for DuckDB: INT results, and Sunday = 1 .. Saturday = 7 (DuckDB counts from 0)."""
    from sqlglot import exp

    functions, windows = _int_types()
    sunday_first = isinstance(node, exp.DayOfWeek) or (
        isinstance(node, exp.Extract) and node.name.upper() in ("DOW", "DAYOFWEEK"))
    if sunday_first and not node.meta.get("lakeforge_dow"):
        inner = node.copy()
        inner.meta["lakeforge_dow"] = True
        return exp.Cast(this=exp.Paren(this=exp.Add(this=inner, expression=exp.Literal.number(1))),
                        to=exp.DataType.build("INT"))
    ints = isinstance(node, functions) or (isinstance(node, exp.Window) and isinstance(node.this, windows))
    if ints and not isinstance(node.parent, exp.Cast):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("INT"))
    return node


def _split(text: str) -> tuple[list[str], str]:
    """A model file's header lines (``-- `` taken off; blank lines kept) and its SQL."""
    header_lines: list[str] = []
    lines = text.splitlines()
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("--"):
            header_lines.append(stripped[2:].removeprefix(" "))
        elif stripped:
            break
        else:
            header_lines.append("")
    return header_lines, "\n".join(lines[len(header_lines):]).strip().rstrip(";")


def _header(path: Path, header_lines: list[str]) -> dict[str, Any]:
    try:
        header = yaml.safe_load("\n".join(header_lines)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "not valid YAML"
        raise ConfigError(f"{path}{where}: the model header (the leading `--` lines) is not valid YAML: {problem}",
                          hint="write `-- key: value` lines, e.g. `-- kind: incremental`; quote a value that holds "
                               "`: ` or starts with `[`, `{`, `*`, `&` or `#`") from None
    return header if isinstance(header, dict) else {}


def _config(path: Path, header: dict[str, Any]) -> ModelConfig:
    try:
        return ModelConfig.model_validate(header)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid model header: {problems}",
                          hint="see docs/transforms.md for the header keys") from None


def _parsed(model: Model) -> exp.Expr:
    """The model's SQL as a tree (its views not inlined yet)."""
    import sqlglot
    from sqlglot import exp

    name, path, offset, dialect = model.name, model.path, model.line_offset, model.dialect
    try:
        statements = sqlglot.parse(model.sql, read=dialect)
    except sqlglot.errors.ParseError as exc:
        err: dict[str, object] = exc.errors[0] if exc.errors else {}
        line = int(err.get("line") or 0) + offset  # type: ignore[call-overload]
        raise ModelError(f"model {name} ({path}) line {line}: SQL does not parse: {err.get('description', exc)}",
                         hint=f"fix the SQL (written in the {dialect!r} dialect)") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ModelError(f"model {name} ({path}): a model is exactly one SELECT (or WITH ... SELECT) statement",
                         hint="remove other statements; DDL and DML are run by lakeforge itself")
    tree: exp.Expr = statements[0]
    return tree


def parse_model(path: Path, *, name: str, dialect: str, text: str | None = None) -> Model:
    header_lines, body = _split(path.read_text(encoding="utf-8") if text is None else text)
    config = _config(path, _header(path, header_lines))
    if not body:
        raise ModelError(f"{path}: the model has no SQL", hint="write a SELECT statement after the header")
    model = Model(name=name, path=path, config=config, sql=body, dialect=dialect, line_offset=len(header_lines))
    model.tree = _parsed(model)
    return model


def load_models(models_dir: Path, *, dialect: str, cache: Location | None = None,
                required: bool = True) -> list[Model]:
    """Every ``models/<layer>/<name>.sql``; layer is silver or gold. With ``cache`` (the lakehouse), what the
    last load of the same files learned (each model's header, upstream tables and fingerprint) is reused and the
    SQL is parsed only when a model's query is needed (:mod:`lakeforge.models.analysis`). A folder that does not
    exist is an error when ``required`` (a ``models_path`` set in lakeforge.yml), else no models (a project that
    only ingests, with the default ``models``)."""
    files: dict[str, Path] = {}
    if not models_dir.is_dir():
        if not required:
            return []
        raise ConfigError(f"models_path: the folder {models_dir} does not exist, so there would be no models to run",
                          hint="create it with models/silver and models/gold in it, or set `models_path:` in "
                               "lakeforge.yml to the folder that holds them")
    for path in sorted(models_dir.rglob("*.sql")):
        rel = path.relative_to(models_dir)
        if len(rel.parts) != 2 or rel.parts[0] not in MODEL_LAYERS:
            raise ConfigError(f"{path}: models live in models/<layer>/<name>.sql with layer one of "
                              f"{', '.join(MODEL_LAYERS)}", hint=f"move the file, e.g. to models/silver/{path.name}")
        files[f"{rel.parts[0]}.{path.stem}"] = path
    from lakeforge.models.refs import resolve

    texts = {name: resolve(path.read_text(encoding="utf-8"), path=path, models=files) for name, path in files.items()}
    if cache is not None:
        from lakeforge.models import analysis

        key = analysis.key(texts, dialect=dialect)
        known = analysis.read(cache, key)
        if known is not None and set(known) == set(texts):
            return _deferred(files, texts, known, dialect=dialect)
    models = [parse_model(path, name=name, dialect=dialect, text=texts[name]) for name, path in files.items()]
    assert all(m.layer in LAYERS for m in models)
    inline_views(models)
    if cache is not None:
        analysis.write(cache, key, models, headers={n: _header(files[n], _split(t)[0]) for n, t in texts.items()})
    return models


def _deferred(files: dict[str, Path], texts: dict[str, str], known: dict[str, tuple[dict[str, Any], Facts]],
              *, dialect: str) -> list[Model]:
    """The models from the analysis cache, parsed together (views inlined) when a query is first needed."""
    models: list[Model] = []

    def parse_all() -> None:
        for model in models:
            model._parse = None
            model.tree = _parsed(model)
        inline_views(models)

    for name, path in files.items():
        header, facts = known[name]
        header_lines, body = _split(texts[name])
        models.append(Model(name=name, path=path, config=_config(path, header), sql=body, dialect=dialect,
                            line_offset=len(header_lines), _facts=facts, _parse=parse_all))
    return models


def inline_views(models: list[Model]) -> None:
    """A ``view`` is not stored: every model that reads it gets the view's query in its place (a view may read
    views). The readers' dependencies become the view's own."""
    views = {m.name: m for m in models if m.config.kind == "view"}
    if not views:
        return
    done: dict[str, exp.Expr] = {}

    def expanded(name: str, seen: tuple[str, ...]) -> exp.Expr:
        if name in seen:
            raise ModelError(f"views read each other in a cycle: {' -> '.join((*seen, name))}",
                             hint="break the cycle; data flows one way")
        if name not in done:
            done[name] = replace_views(views[name].tree, lambda n: expanded(n, (*seen, name)), set(views))
        return done[name]

    for model in models:
        model.tree = replace_views(model.tree, functools.partial(_expand_for, expanded, model.name), set(views))


def _expand_for(expanded: Callable[[str, tuple[str, ...]], exp.Expr], reader: str, name: str) -> exp.Expr:
    return expanded(name, (reader,))


def replace_views(tree: exp.Expr, view_of: Callable[[str], exp.Expr], views: set[str]) -> exp.Expr:
    from sqlglot import exp

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and node.db and f"{node.db}.{node.name}" in views:
            alias = node.alias or node.name
            return exp.Subquery(this=view_of(f"{node.db}.{node.name}").copy(),
                                alias=exp.TableAlias(this=exp.to_identifier(alias)))
        return node

    return tree.copy().transform(swap)


_QUOTED = re.compile(r'"([^"]+)"|`([^`]+)`')  # DuckDB quotes names with double quotes, Spark with backticks


def error_line(model: Model, message: str) -> int:
    """The line of the model file that an engine error most likely points at.

    Engines report positions in the SQL they ran (transpiled, one line); we map back through the identifiers
    the message quotes, falling back to the first line of SQL.
    """
    text = model.path.read_text(encoding="utf-8").splitlines()
    for token in (a or b for a, b in _QUOTED.findall(message)):
        pattern = re.compile(rf"\b{re.escape(token)}\b", re.IGNORECASE)
        for number, line in enumerate(text[model.line_offset:], start=model.line_offset + 1):
            if pattern.search(line):
                return number
    return model.line_offset + 1
