"""Operations settings of ``lakeforge.yml``: retries and schedules (``orchestration``), the event log's cost
model, lineage and service-level objectives (``monitoring``), and ``alerts``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Strict):
    """Transient errors (storage 5xx, throttling, a lost connection) retry the stage with exponential backoff;
    user errors (bad config, bad SQL, a failed expectation) never do. Every stage is idempotent, so a retry
    redoes only what did not commit."""

    attempts: int = Field(default=4, ge=1, le=20, description="tries per stage, the first included")
    backoff_seconds: float = Field(default=1.0, ge=0, description="wait before the second try; doubles after")
    backoff_max_seconds: float = Field(default=60.0, ge=0, description="longest wait between tries")


class ScheduleConfig(_Strict):
    """A cron schedule run by ``lakeforge serve``."""

    cron: str = Field(description="5 fields, UTC, e.g. '*/15 * * * *'")
    select: list[str] | None = Field(default=None, description="models to run (as `lakeforge run --select`)")
    full_refresh: bool = False


class OrchestrationConfig(_Strict):
    retry: RetryConfig = Field(default_factory=RetryConfig)
    schedules: dict[str, ScheduleConfig] = Field(
        default_factory=dict, description="name -> schedule; none: `deploy.schedule` is the one schedule")
    alert_check_minutes: float = Field(default=5, gt=0, description="how often `lakeforge serve` evaluates the "
                                       "alert rules between runs (freshness and backlog age without runs)")


class CostConfig(_Strict):
    """Cost estimate of a run: compute seconds times a rate. Presets: ``local`` (a machine's price per hour),
    ``databricks`` (DBU per hour x price per DBU), ``snowflake`` (credits per hour x price per credit)."""

    preset: Literal["local", "databricks", "snowflake"] = "local"
    price_per_hour: float = Field(default=0.10, ge=0, description="local: USD per hour of the machine")
    dbu_per_hour: float = Field(default=2.0, ge=0, description="databricks: the cluster's DBU per hour")
    price_per_dbu: float = Field(default=0.15, ge=0, description="databricks: USD per DBU (jobs compute)")
    credits_per_hour: float = Field(default=1.0, ge=0, description="snowflake: the warehouse size's credits/h")
    price_per_credit: float = Field(default=3.0, ge=0, description="snowflake: USD per credit")

    def rate_per_hour(self) -> float:
        """USD per compute hour."""
        if self.preset == "databricks":
            return self.dbu_per_hour * self.price_per_dbu
        if self.preset == "snowflake":
            return self.credits_per_hour * self.price_per_credit
        return self.price_per_hour


class LineageConfig(_Strict):
    """OpenLineage run events for each model (START, then COMPLETE or FAIL)."""

    transport: Literal["none", "file", "http"] = "none"
    path: str = Field(default="lineage/openlineage.jsonl", description="file: JSON lines, relative to the project")
    url: str | None = Field(default=None, description="http: the OpenLineage endpoint, e.g. http://marquez:5000")
    endpoint: str = Field(default="api/v1/lineage")
    api_key: SecretStr | None = None
    namespace: str | None = Field(default=None, description="the job namespace; default: the project's name")
    timeout_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _url(self) -> LineageConfig:
        if self.transport == "http" and not self.url:
            raise ValueError("lineage transport http needs url: (e.g. http://localhost:5000)")
        return self


class SLOConfig(_Strict):
    """The targets `lakeforge report slo` measures against."""

    window_days: float = Field(default=7, gt=0)
    success_rate: float = Field(default=0.995, ge=0, le=1, description="share of runs that succeed")
    freshness_minutes: float = Field(default=120, gt=0, description="p95 freshness of every table")
    dq_accuracy: float = Field(default=0.99, ge=0, le=1, description="share of rule checks that pass")
    recovery_minutes: float = Field(default=15, gt=0, description="mean time from a failed run to a good one")
    cost_per_gb: float = Field(default=0.10, ge=0, description="USD per GB processed")


class MonitoringConfig(_Strict):
    cost: CostConfig = Field(default_factory=CostConfig)
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    slo: SLOConfig = Field(default_factory=SLOConfig)


class ChannelConfig(_Strict):
    """Where alerts go: a generic JSON webhook, a Slack-compatible webhook, or e-mail over SMTP."""

    type: Literal["webhook", "slack", "email"]
    url: str | None = Field(default=None, description="webhook, slack")
    headers: dict[str, str] = Field(default_factory=dict, description="webhook: extra HTTP headers")
    smtp_host: str | None = Field(default=None, description="email")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str | None = Field(default=None, alias="from", description="email: the From address")
    to: list[str] = Field(default_factory=list, description="email: recipients")
    timeout_seconds: float = Field(default=10.0, gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _complete(self) -> ChannelConfig:
        if self.type in ("webhook", "slack") and not self.url:
            raise ValueError(f"a {self.type} channel needs url:")
        if self.type == "email" and not (self.smtp_host and self.to and self.sender):
            raise ValueError("an email channel needs smtp_host:, from: and to:")
        return self


class AlertRule(_Strict):
    """One condition. ``failure``: the last run failed. ``freshness``: a table (``table``, or every table) has not
    changed for ``max_age_minutes``. ``dq_pass_rate``: a rule (``model``/``rule``, or any) passed fewer than
    ``min_pass_rate`` of its rows in the last run. ``long_run``: the last run took over ``max_seconds``.
    ``backlog``: over ``max_files`` files wait in a source (``source``, or any). ``cost``: the last run cost more
    than ``max_cost`` USD, or more than ``max_cost_per_gb``."""

    name: str
    type: Literal["failure", "freshness", "dq_pass_rate", "long_run", "backlog", "cost"]
    table: str | None = None
    max_age_minutes: float | None = Field(default=None, gt=0)
    model: str | None = None
    rule: str | None = None
    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    max_seconds: float | None = Field(default=None, gt=0)
    source: str | None = None
    max_files: int | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)
    max_cost_per_gb: float | None = Field(default=None, ge=0)
    severity: Literal["warning", "critical"] = "critical"
    channels: list[str] | None = Field(default=None, description="channel names; default: all")

    @model_validator(mode="after")
    def _threshold(self) -> AlertRule:
        needs = {"freshness": ("max_age_minutes",), "dq_pass_rate": ("min_pass_rate",),
                 "long_run": ("max_seconds",), "backlog": ("max_files",), "cost": ("max_cost", "max_cost_per_gb")}
        wanted = needs.get(self.type, ())
        if wanted and all(getattr(self, w) is None for w in wanted):
            raise ValueError(f"alert {self.name!r} ({self.type}) needs {' or '.join(wanted)}")
        return self


class AlertsConfig(_Strict):
    rules: list[AlertRule] = Field(default_factory=list)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    repeat_minutes: float = Field(default=60, gt=0, description="an alert still firing is sent again at most "
                                  "this often (de-duplication and throttling)")

    @model_validator(mode="after")
    def _known_channels(self) -> AlertsConfig:
        for rule in self.rules:
            unknown = set(rule.channels or ()) - set(self.channels)
            if unknown:
                raise ValueError(f"alert {rule.name!r} names unknown channels {sorted(unknown)}")
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("alert names must be unique")
        return self
