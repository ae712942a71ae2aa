"""A model's run against its limits (``max_quarantined``, ``max_dropped`` in its header), after its rules and dedup
are counted and before anything commits; and the rule that quarantines rows whose dedup key is NULL."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lakeforge.engines.base import Engine, ModelOutput, Relation
from lakeforge.lakehouse import Catalog
from lakeforge.models.model import Model
from lakeforge.quality import Expectation
from lakeforge.quality.diagnose import fixes
from lakeforge.quality.limits import Reason, check, exceeded
from lakeforge.sql import DUCKDB

if TYPE_CHECKING:
    pass

NULL_KEY = "null_key"
SAMPLE_ROWS = 200  # quarantined rows read to show samples and find the likely fix


def null_key_rule(model: Model, keys: list[str], *, dialect: str) -> tuple[Expectation, str]:
    """The rule that quarantines a row whose dedup key is NULL (every column of it; a key with some NULL columns
    is still a key, compared null-safely as the merge does): it is no duplicate of other rows with a NULL key,
    and no row to merge on. Named ``null_key`` (``lakeforge_null_key`` if a rule of the model has that name);
    returned with its predicate in the engine's dialect."""
    taken = {e.name for e in model.config.expectations}
    name = NULL_KEY if NULL_KEY not in taken else f"lakeforge_{NULL_KEY}"
    rule = Expectation(name=name, expr=" OR ".join(f"{k} IS NOT NULL" for k in keys), action="quarantine",
                       description="a row whose unique_key is NULL has no key to deduplicate or merge on")
    predicate = " OR ".join(f"{DUCKDB.ident(k)} IS NOT NULL" for k in keys)
    if dialect != "duckdb":
        import sqlglot

        predicate = sqlglot.transpile(predicate, read="duckdb", write=dialect)[0]
    return rule, predicate


def check_limits(model: Model, output: ModelOutput, *, engine: Engine, catalog: Catalog) -> None:
    """Raise :class:`~lakeforge.errors.LimitExceeded` when the run quarantines or drops more than the model's
    limits allow (nothing is committed: the caller releases the output)."""
    cfg = model.config
    for what, rows, limit in (("quarantined", output.rows_quarantined, cfg.max_quarantined),
                              ("dropped", output.rows_dropped, cfg.max_dropped)):
        if not exceeded(limit, rows=rows, total=output.rows_in):
            continue
        sample = _head(engine, output.quarantined(), SAMPLE_ROWS) if what == "quarantined" else []
        reasons = _quarantine_reasons(model, output, sample) if what == "quarantined" else [
            Reason(reason, n) for reason, n in output.dropped_by.items()]
        check(stage=model.name, what=what, rows=rows, total=output.rows_in, limit=limit,
              setting=f"max_{what} in the header of {model.name}", reasons=reasons,
              fixes=_fixes(model, catalog, sample))


def _head(engine: Engine, relation: Relation, n: int) -> list[dict[str, Any]]:
    """The first ``n`` rows of a relation (a stream is read no further than that)."""
    import pyarrow as pa

    if isinstance(relation, pa.RecordBatchReader):
        batches = []
        rows = 0
        for batch in relation:
            batches.append(batch)
            rows += batch.num_rows
            if rows >= n:
                break
        table = pa.Table.from_batches(batches, schema=relation.schema)
    elif hasattr(relation, "limit"):  # a Spark DataFrame
        table = engine.to_arrow(relation.limit(n))
    else:
        table = engine.to_arrow(relation)
    return table.slice(0, n).to_pylist()


def _quarantine_reasons(model: Model, output: ModelOutput, sample: list[dict[str, Any]]) -> list[Reason]:
    """Each quarantine rule that failed, with the values of the columns it reads in a few of its rows."""
    reasons = []
    for rule in output.rules:
        if rule.action != "quarantine" or not rule.failed:
            continue
        described = next((e.describe() for e in model.config.expectations if e.name == rule.rule),
                         " ".join(model.config.unique_key))  # (else the null_key rule: the key's columns)
        rows = [r for r in sample if rule.rule in (r.get("_failed_rules") or [])]
        reasons.append(Reason(f"rule {rule.rule}", rule.failed, [_shown(r, described) for r in rows[:3]]))
    return reasons


def _shown(row: dict[str, Any], described: str) -> str:
    columns = [c for c in row if c != "_failed_rules" and re.search(rf"(?<![\w.]){re.escape(c)}(?!\w)", described)]
    columns = columns or [c for c in row if c != "_failed_rules"][:3]
    return ", ".join(f"{c}={'NULL' if row[c] is None else row[c]}" for c in columns)


def _fixes(model: Model, catalog: Catalog, sample: list[dict[str, Any]]) -> list[str]:
    """The likely fixes that the bronze tables the model reads, and its quarantined rows, point to."""
    found: list[str] = []
    bronze = [u for u in model.upstream() if u.startswith("bronze.") and catalog.exists(u)]
    for k, upstream in enumerate(bronze):  # (the rescued values are the first one's: the model's driver, mostly)
        found += fixes(source=upstream.split(".", 1)[1], rows=sample if k == 0 else (),
                       columns=catalog.data_columns(upstream))
    return found
