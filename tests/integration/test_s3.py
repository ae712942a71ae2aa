"""The same project against a local S3-compatible server (moto, on 127.0.0.1): landing in one bucket,
lakehouse in another, only the locations changed."""

from __future__ import annotations

import pytest
import yaml

from lakeforge.project import Project
from tests.moto_server import Buckets, S3Server

pytestmark = pytest.mark.s3


def s3_project(tmp_path, server: S3Server, buckets: Buckets, **source: object) -> Project:  # type: ignore[no-untyped-def]
    project = Project.init(tmp_path / "plant")
    config = yaml.safe_load((project.path / "lakeforge.yml").read_text())
    config["landing"] = f"s3://{buckets.landing}/raw"
    config["lakehouse"] = f"s3://{buckets.lake}/lakehouse"
    config["storage"] = {"endpoint_url": server.endpoint_url, "region": server.region}
    for name in config["sources"]:
        config["sources"][name].update(source)
    (project.path / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return Project(project.path)


def test_the_example_pipeline_runs_on_s3(tmp_path, s3_server: S3Server, s3_buckets: Buckets,  # type: ignore[no-untyped-def]
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with s3_project(tmp_path, s3_server, s3_buckets) as project:
        generated = project.generate(machines=4, days=1, files=2)
        assert generated["path"] == f"s3://{s3_buckets.landing}/raw"
        result = project.run()
        assert result.status == "succeeded" and all(s.balanced() for s in result.stages)
        ingest = next(s for s in result.stages if s.name == "ingest:telemetry")
        assert ingest.rows_out > 4 * 24 * 6 * 0.95
        assert project.run().status == "nothing_to_do"
        keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_buckets.lake)["Contents"]}
        assert any(k.startswith("lakehouse/silver/telemetry/_delta_log/") for k in keys)
        assert "".join(repr(project.landing) + repr(project.lakehouse)).count(s3_server.secret_key) == 0
        hourly = project.query("SELECT count(*) AS n FROM fact_telemetry_hourly").to_pylist()[0]["n"]
        assert hourly == 4 * 24
        status = project.status()
        assert {t["name"] for t in status["tables"]} >= {"bronze.telemetry", "gold.fact_telemetry_hourly"}


def test_clean_source_moves_objects_to_processed_on_s3(tmp_path, s3_server: S3Server, s3_buckets: Buckets,  # type: ignore[no-untyped-def]
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with s3_project(tmp_path, s3_server, s3_buckets, clean_source="move") as project:
        project.generate(machines=2, days=1, files=2)
        project.run()
        keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_buckets.landing)["Contents"]}
        assert not [k for k in keys if k.startswith("raw/telemetry/") and k.endswith(".jsonl")]
        assert [k for k in keys if k.startswith("raw/processed/telemetry/")]
        assert project.run().status == "nothing_to_do"


def test_the_pipeline_runs_under_its_least_privilege_policy(tmp_path, iam_enforced_server,  # type: ignore[no-untyped-def]
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Authorization enforced: the user holds exactly `lakeforge deploy iam`'s policy."""
    admin = iam_enforced_server.client()
    suffix = tmp_path.name[-8:].lower().replace("_", "-")
    buckets = Buckets(f"landing-iam-{suffix}", f"lake-iam-{suffix}")
    for name in buckets:
        admin.create_bucket(Bucket=name)
    admin.put_object(Bucket=buckets.landing, Key="secret/payroll.csv", Body=b"x")
    admin.put_object(Bucket=buckets.lake, Key="other-team/table.parquet", Body=b"x")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_enforced_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", iam_enforced_server.secret_key)
    project = s3_project(tmp_path, iam_enforced_server, buckets, clean_source="move")
    project.generate(machines=2, days=1, files=2)  # the admin's keys write the landing zone
    policy = project.iam_policy()
    user = iam_enforced_server.create_user(f"lakeforge-{suffix}", policy)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", user.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", user.secret_key)
    with Project(project.path) as restricted:
        result = restricted.run()
        assert result.status == "succeeded"
        assert restricted.run().status == "nothing_to_do"
    s3 = user.client()
    from botocore.exceptions import ClientError

    for call in (lambda: s3.get_object(Bucket=buckets.landing, Key="secret/payroll.csv"),
                 lambda: s3.get_object(Bucket=buckets.lake, Key="other-team/table.parquet"),
                 lambda: s3.put_object(Bucket=buckets.lake, Key="other-team/x", Body=b"x"),
                 lambda: s3.put_object(Bucket=buckets.landing, Key="raw/telemetry/injected.jsonl", Body=b"{}")):
        with pytest.raises(ClientError, match="AccessDenied"):
            call()
