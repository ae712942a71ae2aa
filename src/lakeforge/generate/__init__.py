"""Synthetic equipment telemetry for a landing zone (see :mod:`lakeforge.generate.telemetry`)."""

from lakeforge.generate.telemetry import (
    Dirt,
    GenerateError,
    GenerateResult,
    GenerateSummary,
    describe_dirt,
    generate,
    run_tag,
)

__all__ = ["Dirt", "GenerateError", "GenerateResult", "GenerateSummary", "describe_dirt", "generate", "run_tag"]
