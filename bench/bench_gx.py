"""Great Expectations 1.x running lakeforge's silver telemetry checks on a pandas frame (bench/dq.py).

The 10 checks mirror the example's silver expectations: the rescued-data, presence and range rules, the
all-sensors rule and the machine-id range.
"""

from __future__ import annotations

import os
import time
from typing import Any

RANGES = {"volt": (0, 400), "rotate": (0, 3000), "pressure": (0, 300), "vibration": (0, 200),
          "temperature": (-40, 150)}


def run_gx(frame: Any) -> dict[str, Any]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    checks = [
        gxe.ExpectColumnValuesToBeNull(column="_rescued_data"),
        gxe.ExpectColumnValuesToNotBeNull(column="ts"),
        gxe.ExpectColumnValuesToNotBeNull(column="machine_id"),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in RANGES.items()],
        gxe.ExpectColumnValuesToNotBeNull(column="volt"),
        gxe.ExpectColumnValuesToBeBetween(column="machine_id", min_value=1, max_value=100000),
    ]
    context = gx.get_context(mode="ephemeral")
    suite = context.suites.add(gx.ExpectationSuite(name="silver_telemetry", expectations=checks))
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("telemetry")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    started = time.perf_counter()
    validation = batch.validate(suite, result_format="BASIC")
    seconds = time.perf_counter() - started
    return {"version": gx.__version__, "checks": len(checks), "checks_seconds": round(seconds, 2),
            "failed": {r.expectation_config.type: r.result.get("unexpected_count") for r in validation.results}}
