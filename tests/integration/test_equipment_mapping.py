"""The equipment mapping (issue 23) against a reference computed another way: the telemetry example's hand-written
gold models. A second project reads the same landing files with the example's silver models and only an
``equipment:`` mapping of the example's own names; the gold tables the mapping generates must hold what the
example's hand-written ones hold (every column they share), and its features must be the example's."""

from __future__ import annotations

import math
import shutil
from typing import Any

import pytest
import yaml

from lakeforge.config.ml import EXAMPLE_FEATURES
from lakeforge.models.equipment import MARKER, feature_columns
from lakeforge.project import Project

EVENTS = {"machine": "machine_id", "time": "ts"}
MAPPING = {
    "machines": {"table": "silver.machines", "id": "machine_id", "model": "model", "age": "age", "site": "site_id",
                 "install_date": "install_date", "current": "is_current"},
    "sites": {"table": "silver.sites", "id": "site_id", "name": "site_name", "region": "region",
              "timezone": "timezone"},
    "readings": {"table": "silver.telemetry", "machine": "machine_id", "time": "ts",
                 "sensors": ["volt", "rotate", "pressure", "vibration", "temperature"]},
    "failures": {"table": "silver.failures", **EVENTS, "component": "component",
                 "components": ["comp1", "comp2", "comp3", "comp4"]},
    "maintenance": {"table": "silver.maintenance", **EVENTS, "component": "component", "reason": "reason",
                    "components": ["comp1", "comp2", "comp3", "comp4"]},
    "errors": {"table": "silver.errors", **EVENTS, "code": "error_id",
               "codes": ["error1", "error2", "error3", "error4", "error5"]},
}
# gold table -> its key: the rows compared one to one
TABLES = {"dim_machine": "machine_id", "fact_telemetry_hourly": "machine_id, hour",
          "fact_telemetry_daily": "machine_id, date", "fact_failures": "machine_id, ts, component",
          "fact_maintenance": "machine_id, ts, component", "fact_errors": "machine_id, ts, error_id",
          "dim_site": "site_id", "dim_date": "date", "fleet_kpi_daily": "date", "fact_site_daily": "site_id, date",
          "machine_features": "machine_id, hour"}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("mapping")
    example = Project.init(root / "example")
    example.generate(machines=10, days=7, seed=11)
    mapped_path = root / "mapped"
    mapped_path.mkdir()
    shutil.copytree(example.path / "models" / "silver", mapped_path / "models" / "silver")
    config = yaml.safe_load((example.path / "lakeforge.yml").read_text())
    config.update(name="mapped", landing=str(example.path / "landing"), equipment=MAPPING)
    config.pop("ml")
    (mapped_path / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    mapped = Project(mapped_path)
    assert all(f == "written" for f in mapped.equipment().values())
    with Project(example.path) as reference:
        assert reference.run().status == "succeeded"
        assert mapped.run().status == "succeeded"
        yield reference, mapped
    mapped.close()


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_generated_gold_table_holds_what_the_examples_does(projects: Any, table: str) -> None:
    reference, mapped = projects
    key = TABLES[table]
    want = reference.query(f"SELECT * FROM gold.{table} ORDER BY {key}").to_pylist()
    got = mapped.query(f"SELECT * FROM gold.{table} ORDER BY {key}").to_pylist()
    assert want and len(got) == len(want)
    shared = sorted(set(want[0]) & set(got[0]))
    assert set(want[0]) - set(shared) <= {"valid_from"}  # the version's start: not a standard column
    diffs = [(i, c, w[c], g[c]) for i, (w, g) in enumerate(zip(want, got, strict=True)) for c in shared
             if not _same(w[c], g[c])]
    assert not diffs, diffs[:5]


def test_the_generated_features_are_the_examples() -> None:
    from lakeforge.config.equipment import EquipmentMapping

    assert tuple(feature_columns(EquipmentMapping.model_validate(MAPPING))) == EXAMPLE_FEATURES


def test_a_changed_mapping_is_an_error_until_the_files_are_rewritten(projects: Any) -> None:
    _, mapped = projects
    path = mapped.path / "lakeforge.yml"
    config = yaml.safe_load(path.read_text())
    config["equipment"]["readings"]["sensors"] = ["volt", "rotate"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    owned = mapped.path / "models" / "gold" / "dim_site.sql"
    owned.write_text(owned.read_text().removeprefix(MARKER + "\n") + "-- mine\n")
    with Project(mapped.path) as changed:
        with pytest.raises(Exception, match="generated from another equipment: mapping"):
            changed.plan()
        assert changed.equipment(check=True)["models/gold/fact_telemetry_hourly.sql"] == "stale"
        fates = changed.equipment()
        assert fates["models/gold/fact_telemetry_hourly.sql"] == "written"
        assert fates["models/gold/dim_site.sql"] == "yours" and owned.read_text().endswith("-- mine\n")
        assert changed.run().status == "succeeded"
        columns = set(changed.query("SELECT * FROM gold.fact_telemetry_hourly LIMIT 1").column_names)
        assert {"volt_avg", "rotate_avg"} <= columns and "pressure_avg" not in columns
