"""The setting of a limit on what a batch may throw away (``max_quarantined``, ``max_dropped``): its type, how it is
written and its default. What a limit does is :mod:`lakeforge.quality.limits`'s."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

DEFAULT_FRACTION = 0.5
MIN_ROWS = 10  # a fraction is judged once at least this many rows of the batch are affected
LIMIT_HELP = ("a count of rows (an integer: 0 fails on one row) or a fraction of the batch (0.05 or '5%'; "
              "1.0 turns the limit off); default: more than half of a batch, once at least 10 rows are affected")

Limit = int | float | None


def parse_limit(value: Any) -> Limit:
    """A limit as written: ``500`` (rows), ``0.05`` or ``'5%'`` (a fraction); None (the default) stays None."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise ValueError("a limit is a count of rows (500) or a fraction (0.05 or '5%'), not true/false")
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else (float(text) if "." in text else int(text))
        except ValueError:
            raise ValueError(f"{value!r}: write a count of rows (500) or a fraction (0.05 or '5%')") from None
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a count of rows cannot be negative")
        return value
    if isinstance(value, float):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{value}: a fraction lies between 0 and 1 (or write a count of rows, an integer)")
        return value
    raise ValueError(f"{value!r}: write a count of rows (500) or a fraction (0.05 or '5%')")


LimitSetting = Annotated[int | float | None, BeforeValidator(parse_limit)]  # a config field: see :func:`parse_limit`
