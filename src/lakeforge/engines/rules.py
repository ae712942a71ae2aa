"""Expectations and dedup as SQL both engines run: one bit per failed rule in ``__lf_mask``, the dedup rank
(``__lf_rn`` beside every row, or found apart for the rows of duplicated keys only), and one counting query over
the staged rows that groups them by their mask. Engines differ only in how they stage and stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from lakeforge.errors import ExpectationFailed
from lakeforge.quality import Expectation, RuleResult


@dataclass
class RulePlan:
    expectations: list[Expectation]
    bits: dict[str, int]
    mask: str  # the bit mask of a row's failed rules, as an SQL expression
    outer: list[str]  # select list over the model's rows with ``__lf_mask``: adds ``__lf_rn`` when deduplicating
    quarantine: str
    drop: str
    dup: str
    window: str  # ``PARTITION BY <key> ORDER BY <preference>``: the dedup rank's window ("" without a key)
    drop_names: list[str] = field(default_factory=list)

    def action_bits(self, action: str) -> int:
        """The bits of the rules with this action."""
        return sum(self.bits[e.name] for e in self.expectations if e.action == action)

    def count_sql(self, stage: str) -> str:
        """Rows per (mask, duplicate?) pair: a few rows, whatever the size, read by :meth:`tally`."""
        return f"SELECT __lf_mask, {self.dup} AS __lf_dup, count(*) AS n FROM {stage} GROUP BY 1, 2"

    def tally(self, groups: list[tuple[int, bool, int]]) -> list[int]:
        """The counting query's rows as: rows in, failures per rule, drops per drop rule (a dropped row counts
        against the first drop rule it failed), quarantined, dropped, duplicates."""
        failures = [0] * len(self.expectations)
        by_drop = dict.fromkeys(self.drop_names, 0)
        q_bits, d_bits = self.action_bits("quarantine"), self.action_bits("drop")
        rows_in = quarantined = dropped = dup = 0
        for mask, is_dup, n in groups:
            mask, n = int(mask or 0), int(n)
            rows_in += n
            for i, e in enumerate(self.expectations):
                failures[i] += n if mask & self.bits[e.name] else 0
            if mask & q_bits:
                quarantined += n
            elif mask & d_bits:
                dropped += n
                first = next(name for name in self.drop_names if mask & self.bits[name])
                by_drop[first] += n
            elif is_dup:
                dup += n
        return [rows_in, *failures, *by_drop.values(), quarantined, dropped, dup]

    @property
    def failed_names(self) -> str:
        """The names of the rules a row failed, as SQL values (NULL for rules it passed; names are identifiers,
        so they need no escaping)."""
        return ", ".join(f"CASE WHEN (__lf_mask & {self.bits[e.name]}) <> 0 THEN '{e.name}' END"
                         for e in self.expectations)

    @property
    def kept(self) -> str:
        return f"NOT {self.quarantine} AND NOT {self.drop} AND NOT {self.dup}"


def rule_plan(expectations: list[tuple[Expectation, str]], *, unique_key: list[str], order_by: list[str],
              keep: Literal["first", "last"], ident: Callable[[str], str], dup: str | None = None,
              tiebreak: list[str] | None = None) -> RulePlan:
    """The SQL of the rules (predicates already in the engine's dialect) and of the dedup on ``unique_key``:
    a row that no quarantine or drop rule stops wins over one that is, then ``order_by`` decides, then the row's
    values (``tiebreak``: the model's columns, in order), so that the same rows always keep the same one: a full
    refresh and an incremental run then agree even where ``order_by`` does not decide. ``dup``: the engine ranks
    the rows apart (with :attr:`RulePlan.window`) and this tells a duplicate; else ``__lf_rn`` is computed beside
    every row."""
    bits = {e.name: 1 << i for i, (e, _) in enumerate(expectations)}
    mask = " | ".join(f"(CASE WHEN coalesce(({pred}), false) THEN 0 ELSE {bits[e.name]} END)"
                      for e, pred in expectations) or "0"
    q_bits = sum(bits[e.name] for e, _ in expectations if e.action == "quarantine")
    d_bits = sum(bits[e.name] for e, _ in expectations if e.action == "drop")
    outer = ["*"]
    window = ""
    if unique_key:
        order = [f"((__lf_mask & {q_bits | d_bits}) = 0) DESC"] if q_bits | d_bits else []
        direction = "ASC" if keep == "first" else "DESC"
        order += [f"{ident(col)} {direction} NULLS LAST" for col in order_by]
        order += [f"{ident(col)} ASC NULLS LAST" for col in tiebreak or [] if col not in order_by]
        clause = f" ORDER BY {', '.join(order)}" if order else " ORDER BY 1"
        window = f"PARTITION BY {', '.join(ident(k) for k in unique_key)}{clause}"
        if dup is None:
            outer.append(f"row_number() OVER ({window}) AS __lf_rn")
    quarantine = f"((__lf_mask & {q_bits}) <> 0)"
    drop = f"((__lf_mask & {d_bits}) <> 0)"
    dup = "false" if not unique_key else "(__lf_rn > 1)" if dup is None else dup
    drop_names = [e.name for e, _ in expectations if e.action == "drop"]
    return RulePlan(expectations=[e for e, _ in expectations], bits=bits, mask=mask, outer=outer,
                    quarantine=quarantine, drop=drop, dup=dup, window=window, drop_names=drop_names)


def rule_outcome(model: str, plan: RulePlan, row: list[int]
                 ) -> tuple[int, list[RuleResult], dict[str, int], tuple[int, int, int]]:
    """The counting query's row, read. A ``fail`` rule that failed stops here, before any commit."""
    expectations, drop_names = plan.expectations, plan.drop_names
    rows_in, failures = row[0], row[1:1 + len(expectations)]
    by_drop_rule = row[1 + len(expectations):1 + len(expectations) + len(drop_names)]
    n_quarantined, n_dropped, n_dup = row[-3:]
    results = [RuleResult(model=model, rule=e.name, action=e.action, passed=rows_in - f, failed=f)
               for e, f in zip(expectations, failures, strict=True)]
    for expectation, res in zip(expectations, results, strict=True):
        if expectation.action == "fail" and res.failed:
            raise ExpectationFailed(
                f"model {model}: expectation {expectation.name!r} ({expectation.describe()}) failed for "
                f"{res.failed} of {rows_in} rows; nothing was committed",
                hint="fix the upstream data, or change the rule's action to warn, drop or quarantine",
            )
    dropped_by = {f"expectation:{name}": n for name, n in zip(drop_names, by_drop_rule, strict=True) if n}
    if n_dup:
        dropped_by["duplicate_key"] = n_dup
    return rows_in, results, dropped_by, (n_quarantined, n_dropped, n_dup)
