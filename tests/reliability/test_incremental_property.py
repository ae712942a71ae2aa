"""Issue 19's property at the suite's budget: after every incremental run of a generated project, every model's
table equals a full refresh of a copy of it (tests/incremental_harness.py says what is generated and what "equal"
means). Quick mode draws 10 scenarios (about 20 seconds when they pass), full mode 1000: ten times
tests/integration/test_incremental_property.py's CI budget, about 30 minutes on 2 cores. Seeded
(``LAKEFORGE_RELIABILITY_SEED`` replays or explores), with a seed other than the integration test's derandomized
one, so the two search different scenarios."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings

from tests.incremental_harness import PHASES, Scenario, check_scenario, scenarios
from tests.reliability.harness import Settings, seed

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SEED = 19


@pytest.mark.timeout(3 * 3600)  # full mode's 1000 scenarios, then up to 5 minutes of shrinking
def test_incremental_runs_equal_a_full_refresh_over_generated_scenarios(mode: Settings,
                                                                        record: dict[str, Any]) -> None:
    record.update({"seed": seed(SEED), "examples": mode.incremental_examples})
    tried: list[Scenario] = []

    @hypothesis.seed(seed(SEED))
    @settings(database=None, deadline=None, max_examples=mode.incremental_examples, phases=PHASES,
              suppress_health_check=[HealthCheck.too_slow])
    @given(scenarios())
    def incremental_equals_full_refresh(scenario: Scenario) -> None:
        tried.append(scenario)
        with tempfile.TemporaryDirectory(prefix="lakeforge-property-") as folder:
            check_scenario(scenario, Path(folder))

    try:
        incremental_equals_full_refresh()
    finally:
        # shrinking included: every scenario hypothesis ran, and the incremental runs they made
        record.update({"scenarios_run": len(tried), "runs": sum(len(s.steps) for s in tried),
                       "models": sum(len(s.models) for s in tried)})
