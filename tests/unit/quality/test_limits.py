"""Limits of what a batch may throw away, and the likely fixes found in its rows (issue 20, point 2)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lakeforge.config.models import SourceConfig
from lakeforge.errors import LimitExceeded
from lakeforge.models.model import FINGERPRINTED, ModelConfig
from lakeforge.quality.diagnose import fixes, header_as_data, timestamp_format
from lakeforge.quality.limits import Reason, check, exceeded


@pytest.mark.parametrize(("written", "parsed"), [
    (None, None), (0, 0), (500, 500), (0.05, 0.05), ("5%", 0.05), ("100%", 1.0), (1.0, 1.0), ("12", 12)])
def test_a_limit_is_a_count_or_a_fraction(written: object, parsed: object) -> None:
    assert SourceConfig(max_quarantined=written).max_quarantined == parsed
    config = ModelConfig(max_dropped=written, max_quarantined=written)
    assert (config.max_dropped, config.max_quarantined) == (parsed, parsed)
    assert type(config.max_dropped) is type(parsed)


@pytest.mark.parametrize("written", [-1, 1.5, "x", True, "150%"])
def test_a_limit_that_means_nothing_is_refused(written: object) -> None:
    with pytest.raises(ValidationError, match="max_quarantined"):
        SourceConfig(max_quarantined=written)


def test_limits_do_not_change_a_models_fingerprint() -> None:
    assert "max_quarantined" not in FINGERPRINTED and "max_dropped" not in FINGERPRINTED


@pytest.mark.parametrize(("limit", "rows", "total", "over"), [
    (None, 1, 2, False),      # half of a tiny batch: noise, not a verdict
    (None, 9, 10, False),     # fewer than 10 rows affected
    (None, 10, 19, True),     # more than half, 10 rows
    (None, 10, 20, False),    # exactly half is not more than half
    (None, 0, 0, False),
    (0, 1, 1000, True),       # a count is exact
    (5, 5, 5, False),
    (0.1, 11, 100, True),
    (1.0, 500, 500, False),   # 1.0: off
])
def test_exceeded(limit: int | float | None, rows: int, total: int, over: bool) -> None:
    assert exceeded(limit, rows=rows, total=total) is over


def test_the_error_names_the_stage_the_share_the_reasons_and_the_fix() -> None:
    with pytest.raises(LimitExceeded) as caught:
        check(stage="silver.events", what="quarantined", rows=22695, total=22695, limit=None,
              setting="max_quarantined in the header of silver.events",
              reasons=[Reason("rule a", 5, ["x=1"]), Reason("rule b", 22695, ["ts=NULL", "ts=NULL"])],
              fixes=["set `header: false`"])
    error = caught.value
    assert error.message.startswith("silver.events: 22,695 of 22,695 rows (100%) quarantined, over the limit")
    assert "nothing of the batch was committed" in error.message
    assert error.message.index("rule b: 22,695 rows (e.g. ts=NULL; ts=NULL)") < error.message.index("rule a")
    assert error.hint == "set `header: false`"


@pytest.mark.parametrize(("values", "found"), [
    (["2026-01-01 10:00:00", "2026-12-31 23:59:59"], "%Y-%m-%d %H:%M:%S"),
    (["31/01/2026 10:00", "01/02/2026 11:30"], "%d/%m/%Y %H:%M"),
    (["01/31/2026 10:00:00"], "%m/%d/%Y %H:%M:%S"),
    (["2026-01-01T10:00:00.123Z"], "%Y-%m-%dT%H:%M:%S.%fZ"),
    (["12.5", "7"], None),
    (["M001"], None),
    (["2026-01-01 10:00:00", "yesterday"], None),
])
def test_the_timestamp_format_found_in_the_data(values: list[str], found: str | None) -> None:
    assert timestamp_format(values) == found


def test_a_header_that_is_a_row_of_data() -> None:
    assert header_as_data(["17", "2026-01-01 00:00:00", "12.5"]) == ["17", "2026-01-01 00:00:00", "12.5"]
    assert header_as_data(["machine_id", "ts", "value"]) == []
    assert header_as_data(["1", "0.5", "id", "v", "_rescued_data"]) == ["1", "0.5"]  # (hinted columns added)
    found = fixes(source="events", columns=["1", "0.5"],
                  rows=[{"_rescued_data": '{"ts": "2026-01-01 10:00:00"}'}, {"_rescued_data": None}])
    assert len(found) == 2 and "`header: false`" in found[0] and "timestamp_format: '%Y-%m-%d %H:%M:%S'" in found[1]
    assert fixes(source="events", columns=["1", "0.5"], header=False) == []
