"""What a run reports: one ``StageResult`` per stage and a ``RunResult`` for the whole run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from lakeforge.quality import RuleResult


@dataclass
class StageResult:
    """Counts of one stage. Invariant: ``rows_in == rows_out + rows_dropped + rows_quarantined``.

    ``rows_in`` are the candidate rows the stage produced (an ingestion's parsed rows plus the rows of files it
    could not parse; a model's query result), ``rows_read`` the upstream rows it read, ``rows_written`` the rows
    it committed (for an aggregate: the groups written).
    """

    name: str
    kind: Literal["ingest", "model", "ml", "load"]
    status: Literal["ok", "skipped", "failed"] = "ok"
    rows_in: int = 0
    rows_out: int = 0
    rows_dropped: int = 0
    rows_quarantined: int = 0
    rows_read: int = 0
    rows_written: int = 0
    bytes: int = 0
    seconds: float = 0.0
    strategy: str = ""
    detail: str = ""
    dropped_by: dict[str, int] = field(default_factory=dict)
    rules: list[RuleResult] = field(default_factory=list)
    attempts: int = 1  # tries it took (transient errors are retried)
    files_quarantined: int = 0  # an ingestion's files quarantined whole (empty, unknown type, unreadable)
    changed: list[dict[str, str]] = field(default_factory=list)  # files changed after ingest: path, action, message

    @property
    def did_work(self) -> bool:
        return self.status == "ok"

    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + self.rows_dropped + self.rows_quarantined

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rules"] = [r.to_dict() for r in self.rules]
        data["seconds"] = round(self.seconds, 3)
        return data


class RunDict(TypedDict):
    """A run as JSON (:meth:`RunResult.to_dict`): what ``run --json`` prints and the run's record holds."""

    run_id: str
    status: Literal["succeeded", "failed", "nothing_to_do"]
    started_at: str
    seconds: float
    bytes_processed: int
    stages: list[dict[str, Any]]  # StageResult.to_dict: the dataclass's fields (asdict)
    expectations: list[dict[str, Any]]  # RuleResult.to_dict
    error: str | None
    failed_stage: str | None
    failed_attempts: int | None
    crashed_runs: list[str]


@dataclass
class RunResult:
    run_id: str
    status: Literal["succeeded", "failed", "nothing_to_do"]
    started_at: str
    seconds: float
    stages: list[StageResult]
    bytes_processed: int
    error: str | None = None
    failed_stage: str | None = None
    failed_attempts: int | None = None  # tries of the failed stage
    crashed_runs: list[str] = field(default_factory=list)  # runs that died before it, logged as crashed

    def to_dict(self) -> RunDict:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "bytes_processed": self.bytes_processed,
            "stages": [s.to_dict() for s in self.stages],
            "expectations": [r.to_dict() for s in self.stages for r in s.rules],
            "error": self.error,
            "failed_stage": self.failed_stage,
            "failed_attempts": self.failed_attempts,
            "crashed_runs": self.crashed_runs,
        }
