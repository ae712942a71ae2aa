"""Expectations: a named SQL boolean predicate over a model's output rows, and what to do with failures.

A row *passes* a rule only when the predicate is TRUE; FALSE and NULL both fail it (write
``col IS NULL OR ...`` to let NULLs through). Actions, from mildest:

- ``warn``: count the failures, keep the rows.
- ``drop``: leave the row out of the table (counted as dropped, with the rule's name in the run's results).
- ``quarantine``: write the row to ``quarantine.<layer>_<model>`` with the names of every rule it failed.
- ``fail``: fail the model; nothing of it is committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Action = Literal["warn", "drop", "quarantine", "fail"]
ACTIONS: tuple[Action, ...] = ("warn", "drop", "quarantine", "fail")
_RULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    expr: str = Field(description="SQL boolean predicate, in the project's dialect")
    action: Action = "warn"
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE.match(value):
            raise ValueError(f"rule name {value!r}: use letters, digits and underscores")
        return value


@dataclass
class RuleResult:
    """Outcome of one rule over one run of one model."""

    model: str
    rule: str
    action: str
    passed: int
    failed: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "rule": self.rule, "action": self.action,
                "passed": self.passed, "failed": self.failed}
