"""Data-quality expectations: SQL boolean predicates with an action."""

from lakeforge.quality.expectations import ACTIONS, Expectation, RuleResult

__all__ = ["ACTIONS", "Expectation", "RuleResult"]
