"""How much of a batch a stage may throw away: ``max_quarantined`` (a source or a model) and ``max_dropped`` (a
model), each a count of rows or a fraction of the batch.

The default fails a stage when more than half of a batch is quarantined (or dropped), and at least
:data:`MIN_ROWS` rows are: a run that throws most of its input away is a wrong setting far more often than bad
data, and a batch of 2 rows with 1 bad one is noise, not a verdict. A count is exact (``0``: not one row). The
limit is judged per batch before anything of it is committed; the error names the stage, the share, the top
reasons with sample values, and the likely fix (:mod:`lakeforge.quality.diagnose`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lakeforge.config.limits import DEFAULT_FRACTION, LIMIT_HELP, MIN_ROWS, Limit, LimitSetting, parse_limit
from lakeforge.errors import LimitExceeded

__all__ = ["DEFAULT_FRACTION", "LIMIT_HELP", "MIN_ROWS", "Limit", "LimitSetting", "check", "describe_limit",
           "exceeded", "parse_limit"]


def exceeded(limit: Limit, *, rows: int, total: int) -> bool:
    """Whether ``rows`` of a batch of ``total`` rows are more than ``limit`` allows."""
    if rows <= 0:
        return False
    if limit is None:
        limit = DEFAULT_FRACTION
    if isinstance(limit, float):
        return rows >= MIN_ROWS and rows > limit * total
    return rows > limit


def describe_limit(limit: Limit) -> str:
    if limit is None:
        return f"the default: more than half of a batch, once at least {MIN_ROWS} rows"
    if isinstance(limit, float):
        return f"{limit:.0%} of a batch, once at least {MIN_ROWS} rows"
    return f"{limit:,} rows"


@dataclass
class Reason:
    """One cause of rows thrown away: its words, how many rows, a few of their values."""

    text: str
    rows: int
    samples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        shown = "; ".join(_clip(s) for s in self.samples[:3])
        return f"{self.text}: {self.rows:,} rows" + (f" (e.g. {shown})" if shown else "")


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(*, stage: str, what: str, rows: int, total: int, limit: Limit, setting: str,
          reasons: list[Reason], fixes: list[str]) -> None:
    """Raise :class:`LimitExceeded` when ``rows`` (``what``: quarantined or dropped) of the batch's ``total``
    are over ``limit``; ``setting`` says where the limit is set, ``fixes`` the likely fixes found."""
    if not exceeded(limit, rows=rows, total=total):
        return
    top = sorted(reasons, key=lambda r: -r.rows)[:3]
    share = rows / total if total else 1.0
    message = (f"{stage}: {rows:,} of {total:,} rows ({_percent(share)}) {what}, over the limit "
               f"({setting}: {describe_limit(limit)}); nothing of the batch was committed")
    if top:
        message += "; top reasons: " + " | ".join(r.describe() for r in top)
    hint = "; ".join(fixes) if fixes else (
        f"fix the input or the settings that read it; if this share is expected, raise {setting} "
        "(a count of rows or a fraction of the batch; 1.0 turns it off)")
    raise LimitExceeded(message, hint=hint)


def _percent(share: float) -> str:
    if 0 < share < 0.01:
        return "<1%"
    if 0.99 < share < 1:
        return ">99%"
    return f"{share:.0%}"
