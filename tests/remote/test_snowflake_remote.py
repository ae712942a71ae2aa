"""The example project against a real Snowflake account, in a schema of its own that is dropped afterwards.

Runs only when ``SNOWFLAKE_ACCOUNT``, ``SNOWFLAKE_USER`` and ``SNOWFLAKE_PASSWORD`` or
``SNOWFLAKE_PRIVATE_KEY_FILE`` are set (``SNOWFLAKE_ROLE``, ``SNOWFLAKE_WAREHOUSE``, ``SNOWFLAKE_DATABASE`` and
``SNOWFLAKE_PRIVATE_KEY_PASSPHRASE`` are used when set); skipped otherwise. With a ``SNOWFLAKE_WAREHOUSE`` the
reports are dynamic tables, else views.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lakeforge.project import Project

pytestmark = [pytest.mark.remote, pytest.mark.snowflake]

NEEDED = "SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_FILE"


@pytest.fixture
def remote_project(tmp_path: Path) -> Iterator[Project]:
    env = os.environ
    if not (env.get("SNOWFLAKE_ACCOUNT") and env.get("SNOWFLAKE_USER")
            and (env.get("SNOWFLAKE_PASSWORD") or env.get("SNOWFLAKE_PRIVATE_KEY_FILE"))):
        pytest.skip(f"no Snowflake account to test against: set {NEEDED}")
    schema = f"LAKEFORGE_TEST_{uuid.uuid4().hex[:10].upper()}"
    Project.init(tmp_path / "demo").generate(machines=12, days=3, seed=7, files=6)
    path = tmp_path / "demo" / "lakeforge.yml"
    config = yaml.safe_load(path.read_text())
    config["warehouse"] = {"type": "snowflake", "schema": schema,
                           "reports": "dynamic_table" if env.get("SNOWFLAKE_WAREHOUSE") else "view",
                           "target_lag": "1 day"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    project = Project(tmp_path / "demo")
    try:
        yield project
    finally:
        project.close()
        _drop_schema(project)


def _drop_schema(project: Project) -> None:
    import snowflake.connector

    from lakeforge.config.models import SnowflakeWarehouseConfig
    from lakeforge.warehouses.snowflake.auth import connect_kwargs
    from lakeforge.warehouses.snowflake.warehouse import object_name

    config = project.config.warehouse
    assert isinstance(config, SnowflakeWarehouseConfig)
    kwargs = connect_kwargs(config, project=project.config.name, base_dir=project.path)
    con = snowflake.connector.connect(**kwargs)
    try:
        con.cursor().execute(f"DROP SCHEMA IF EXISTS {object_name(kwargs['database'])}."
                             f"{object_name(kwargs['schema'])} CASCADE")
    finally:
        con.close()


def test_the_example_project_on_a_real_account(remote_project: Project) -> None:
    project = remote_project
    assert project.run().status == "succeeded"
    checks = project.verify_warehouse()
    assert checks and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]

    project.generate(machines=12, days=2, seed=7, files=3, start="2024-01-04")
    second = project.run()
    assert second.status == "succeeded"
    detail = next(s for s in second.stages if s.name == "warehouse").detail
    assert "fact_telemetry_hourly (incremental" in detail, detail
    checks = project.verify_warehouse()
    assert all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]
    for report in project.reports():
        assert project.report(report.name).num_columns > 0
