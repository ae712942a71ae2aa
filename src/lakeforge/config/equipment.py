"""The ``equipment:`` section of ``lakeforge.yml``: which of the user's tables and columns are the machines, the
readings and the events (issue 23). From it lakeforge writes the standard gold star schema, the reports and the ML
features (:mod:`lakeforge.models.equipment`), so that the dashboards and ``ml train`` work on the user's own names.

Example (what ``lakeforge init --from ../shared/data/azure-pdm`` proposes)::

    equipment:
      machines: {table: silver.machines, id: machineID, model: model}
      readings: {table: silver.telemetry, machine: machineID, time: datetime, sensors: [volt, rotate, pressure]}
      failures: {table: silver.failures, machine: machineID, time: datetime, component: comp}
      maintenance: {table: silver.maint, machine: machineID, time: datetime, component: comp}
      errors: {table: silver.errors, machine: machineID, time: datetime, code: error}
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_TABLE = re.compile(r"^(bronze|silver|gold)\.[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _table(value: str) -> str:
    if not _TABLE.match(value):
        raise ValueError(f"table {value!r}: write <layer>.<name>, e.g. silver.telemetry")
    return value


class MachinesMap(_Strict):
    """One row per machine (the latest, when the table keeps versions: ``current``)."""

    table: str = Field(description="e.g. silver.machines")
    id: str = Field(description="the machine's identifier column")
    model: str | None = Field(default=None, description="machine model or type (default: none, shown as empty)")
    age: str | None = Field(default=None, description="age in years")
    site: str | None = Field(default=None, description="the site's identifier (default: one site, the fleet)")
    install_date: str | None = Field(default=None, description="installation date")
    current: str | None = Field(default=None, description="a boolean column true on a machine's current version "
                                "(SCD type 2 tables: is_current); default: every row is current")

    _check = field_validator("table")(_table)


class SitesMap(_Strict):
    """One row per site, named by the machines' ``site`` column."""

    table: str = Field(description="e.g. silver.sites")
    id: str = Field(description="the site's identifier column (the values of machines.site)")
    name: str | None = Field(default=None, description="the site's name (default: its identifier)")
    region: str | None = None
    timezone: str | None = Field(default=None, description="an IANA zone name (default: UTC)")

    _check = field_validator("table")(_table)


class ReadingsMap(_Strict):
    """Sensor readings: one row per machine and time, a column per sensor."""

    table: str = Field(description="e.g. silver.telemetry")
    machine: str = Field(description="the machine's identifier column")
    time: str = Field(description="the reading's timestamp column")
    sensors: list[str] = Field(min_length=1, description="numeric columns, one per sensor")

    _check = field_validator("table")(_table)


class EventsMap(_Strict):
    """Failures or maintenance actions: machine, time, and the component concerned."""

    table: str
    machine: str
    time: str
    component: str | None = Field(default=None, description="the component concerned (default: none)")
    reason: str | None = Field(default=None, description="maintenance: why ('failure' marks a repair; default: "
                               "none, so no downtime is counted)")
    components: list[str] = Field(default_factory=list, description="the components' values: failures: the "
                                  "classes the failure model predicts; maintenance: a 'hours since' feature each")

    _check = field_validator("table")(_table)


class ErrorsMap(_Strict):
    """Error or alarm events: machine, time and code."""

    table: str
    machine: str
    time: str
    code: str = Field(description="the error's code column")
    codes: list[str] = Field(default_factory=list, description="codes counted one by one in the ML features (all "
                             "codes are counted together in any case)")

    _check = field_validator("table")(_table)


class EquipmentMapping(_Strict):
    """Which tables and columns are the machines, readings and events (``lakeforge equipment`` writes the gold
    models from it)."""

    readings: ReadingsMap
    machines: MachinesMap | None = Field(default=None, description="default: the machines seen in the readings")
    sites: SitesMap | None = Field(default=None, description="default: the machines' site column names them")
    failures: EventsMap | None = None
    maintenance: EventsMap | None = None
    errors: ErrorsMap | None = None

    @model_validator(mode="after")
    def _sites_need_machines(self) -> EquipmentMapping:
        if self.sites is not None and (self.machines is None or self.machines.site is None):
            raise ValueError("equipment.sites needs equipment.machines.site: the column naming each machine's site")
        return self
