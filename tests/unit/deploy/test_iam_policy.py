"""The least-privilege IAM policy: its shape for S3, local and mixed locations, and what it grants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakeforge.deploy import iam_policy, write_policy
from lakeforge.errors import ConfigError
from tests.moto_server import policy_allows

LANDING = "s3://landing-bucket/raw"
LAKE = "s3://lake-bucket/lakehouse"


def by_sid(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_s3_landing_and_lakehouse() -> None:
    policy = iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=["telemetry", "machines"])
    assert policy["Version"] == "2012-10-17"
    statements = by_sid(policy)
    assert list(statements) == ["LandingList", "LandingRead", "LandingLifecycleWrite", "LandingDelete",
                                "LandingFolderMarkers", "LakehouseList", "LakehouseReadWrite"]
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert statements["LandingList"] == {
        "Sid": "LandingList", "Effect": "Allow", "Action": ["s3:ListBucket"],
        "Resource": ["arn:aws:s3:::landing-bucket"],
        "Condition": {"StringLike": {"s3:prefix": [
            "raw/archive/", "raw/archive/*", "raw/machines/", "raw/machines/*",
            "raw/processed/", "raw/processed/*", "raw/telemetry/", "raw/telemetry/*",
        ]}},
    }
    sources = ["arn:aws:s3:::landing-bucket/raw/machines/*", "arn:aws:s3:::landing-bucket/raw/telemetry/*"]
    assert statements["LandingRead"]["Action"] == ["s3:GetObject"]
    assert statements["LandingRead"]["Resource"] == sources
    assert statements["LandingLifecycleWrite"]["Action"] == ["s3:PutObject"]
    assert statements["LandingLifecycleWrite"]["Resource"] == [
        "arn:aws:s3:::landing-bucket/raw/archive/*", "arn:aws:s3:::landing-bucket/raw/processed/*"]
    assert statements["LandingDelete"]["Action"] == ["s3:DeleteObject"]
    assert statements["LandingDelete"]["Resource"] == sources
    assert statements["LandingFolderMarkers"]["Action"] == ["s3:PutObject"]
    assert statements["LandingFolderMarkers"]["Resource"] == [
        "arn:aws:s3:::landing-bucket/raw/machines/", "arn:aws:s3:::landing-bucket/raw/machines/*/",
        "arn:aws:s3:::landing-bucket/raw/telemetry/", "arn:aws:s3:::landing-bucket/raw/telemetry/*/"]
    assert statements["LakehouseList"]["Resource"] == ["arn:aws:s3:::lake-bucket"]
    assert statements["LakehouseList"]["Condition"] == {"StringLike": {"s3:prefix": ["lakehouse/", "lakehouse/*"]}}
    assert statements["LakehouseReadWrite"]["Action"] == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert statements["LakehouseReadWrite"]["Resource"] == ["arn:aws:s3:::lake-bucket/lakehouse/*"]
    # nothing else: no wildcard actions, no bucket-wide object access
    assert {a for s in policy["Statement"] for a in s["Action"]} == {
        "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}


def test_what_the_policy_grants() -> None:
    policy = iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=["telemetry"])
    landing, lake = "arn:aws:s3:::landing-bucket", "arn:aws:s3:::lake-bucket"
    assert policy_allows(policy, "s3:ListBucket", landing, prefix="raw/telemetry/")
    assert policy_allows(policy, "s3:ListBucket", landing, prefix="raw/telemetry/2024/")
    assert policy_allows(policy, "s3:ListBucket", landing, prefix="raw/processed/telemetry/")
    assert not policy_allows(policy, "s3:ListBucket", landing, prefix="raw/telemetry2/")  # a sibling folder
    assert not policy_allows(policy, "s3:ListBucket", landing, prefix="raw/telemetry")  # would list it too
    assert not policy_allows(policy, "s3:ListBucket", landing, prefix="raw/")
    assert not policy_allows(policy, "s3:ListBucket", landing)
    assert policy_allows(policy, "s3:GetObject", f"{landing}/raw/telemetry/a.jsonl")
    assert not policy_allows(policy, "s3:GetObject", f"{landing}/raw/secrets/a.jsonl")
    assert not policy_allows(policy, "s3:PutObject", f"{landing}/raw/telemetry/a.jsonl")
    assert not policy_allows(policy, "s3:PutObject", f"{landing}/raw/telemetry/2024/a.jsonl")
    assert policy_allows(policy, "s3:PutObject", f"{landing}/raw/telemetry/")  # folder markers only
    assert policy_allows(policy, "s3:PutObject", f"{landing}/raw/telemetry/2024/")
    assert not policy_allows(policy, "s3:PutObject", f"{landing}/raw/")
    assert not policy_allows(policy, "s3:PutObject", f"{landing}/raw/secrets/")
    assert policy_allows(policy, "s3:PutObject", f"{landing}/raw/processed/telemetry/a.jsonl")
    assert not policy_allows(policy, "s3:DeleteObject", f"{landing}/raw/processed/telemetry/a.jsonl")
    assert policy_allows(policy, "s3:DeleteObject", f"{landing}/raw/telemetry/a.jsonl")
    assert policy_allows(policy, "s3:ListBucket", lake, prefix="lakehouse/bronze/t/_delta_log/")
    assert not policy_allows(policy, "s3:ListBucket", lake, prefix="other/")
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert policy_allows(policy, action, f"{lake}/lakehouse/_lakeforge/run.lock")
        assert not policy_allows(policy, action, f"{lake}/lakehouse2/x")
        assert not policy_allows(policy, action, f"{lake}/x")


def test_bucket_roots_and_trailing_slashes() -> None:
    policy = iam_policy(landing="s3://landing-bucket/", lakehouse="s3://lake-bucket",
                        source_folders=["/telemetry/", "machines"], lifecycle_prefixes=["processed/"])
    statements = by_sid(policy)
    assert statements["LandingList"]["Condition"] == {"StringLike": {"s3:prefix": [
        "machines/", "machines/*", "processed/", "processed/*", "telemetry/", "telemetry/*"]}}
    assert statements["LandingRead"]["Resource"] == [
        "arn:aws:s3:::landing-bucket/machines/*", "arn:aws:s3:::landing-bucket/telemetry/*"]
    assert statements["LandingLifecycleWrite"]["Resource"] == ["arn:aws:s3:::landing-bucket/processed/*"]
    assert statements["LandingFolderMarkers"]["Resource"] == [
        "arn:aws:s3:::landing-bucket/machines/", "arn:aws:s3:::landing-bucket/machines/*/",
        "arn:aws:s3:::landing-bucket/telemetry/", "arn:aws:s3:::landing-bucket/telemetry/*/"]
    # the lakehouse is the whole bucket: listing needs no condition, objects are the bucket's
    assert "Condition" not in statements["LakehouseList"]
    assert statements["LakehouseReadWrite"]["Resource"] == ["arn:aws:s3:::lake-bucket/*"]
    # trailing and doubled slashes change nothing
    same = iam_policy(landing="s3://landing-bucket/raw//", lakehouse="s3://lake-bucket/lakehouse/",
                      source_folders=["telemetry/"])
    assert same == iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=["telemetry"])


def test_no_lifecycle_and_delete_after_ingestion() -> None:
    keep = by_sid(iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=["telemetry"], lifecycle_prefixes=[]))
    assert list(keep) == ["LandingList", "LandingRead", "LakehouseList", "LakehouseReadWrite"]
    assert keep["LandingList"]["Condition"]["StringLike"]["s3:prefix"] == ["raw/telemetry/", "raw/telemetry/*"]
    delete = by_sid(iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=["telemetry"], lifecycle_prefixes=[],
                               can_delete_landing=True))
    assert list(delete) == ["LandingList", "LandingRead", "LandingDelete", "LandingFolderMarkers",
                            "LakehouseList", "LakehouseReadWrite"]
    assert delete["LandingDelete"]["Resource"] == ["arn:aws:s3:::landing-bucket/raw/telemetry/*"]


def test_local_and_s3_mixes() -> None:
    lake_only = iam_policy(landing="landing", lakehouse=LAKE, source_folders=["telemetry"])
    assert [s["Sid"] for s in lake_only["Statement"]] == ["LakehouseList", "LakehouseReadWrite"]
    landing_only = iam_policy(landing=LANDING, lakehouse="/data/lakehouse", source_folders=["telemetry"])
    assert [s["Sid"] for s in landing_only["Statement"]] == [
        "LandingList", "LandingRead", "LandingLifecycleWrite", "LandingDelete", "LandingFolderMarkers"]
    assert "lake-bucket" not in json.dumps(landing_only)
    file_uri = iam_policy(landing="file:///srv/landing", lakehouse=LAKE, source_folders=["telemetry"])
    assert file_uri == lake_only
    # s3a:// is the same location as s3://
    assert iam_policy(landing="s3a://landing-bucket/raw", lakehouse=LAKE, source_folders=["telemetry"]) == iam_policy(
        landing=LANDING, lakehouse=LAKE, source_folders=["telemetry"])


def test_same_bucket_for_landing_and_lakehouse() -> None:
    policy = iam_policy(landing="s3://data/landing", lakehouse="s3://data/lakehouse", source_folders=["telemetry"])
    assert policy_allows(policy, "s3:ListBucket", "arn:aws:s3:::data", prefix="landing/telemetry/")
    assert policy_allows(policy, "s3:ListBucket", "arn:aws:s3:::data", prefix="lakehouse/silver/t/_delta_log/")
    assert not policy_allows(policy, "s3:ListBucket", "arn:aws:s3:::data", prefix="landing/")
    assert not policy_allows(policy, "s3:GetObject", "arn:aws:s3:::data/landing/other/x")


def test_both_local_is_an_error() -> None:
    with pytest.raises(ConfigError, match="neither the landing zone") as caught:
        iam_policy(landing="landing", lakehouse="lakehouse", source_folders=["telemetry"])
    assert caught.value.hint and "s3://" in caught.value.hint


@pytest.mark.parametrize("folders", [[""], ["/"], ["tele*"], ["a/../b"], ["${aws:username}"]])
def test_folders_that_would_widen_the_policy_are_refused(folders: list[str]) -> None:
    with pytest.raises(ConfigError):
        iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=folders)


def test_bad_bucket_is_refused() -> None:
    with pytest.raises(ConfigError, match="bucket name"):
        iam_policy(landing="s3:///raw", lakehouse=LAKE, source_folders=["telemetry"])


def test_deterministic_and_written_as_json(tmp_path: Path) -> None:
    a = iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=["b", "a", "b"],
                   lifecycle_prefixes=["processed", "archive"])
    b = iam_policy(landing=LANDING, lakehouse=LAKE, source_folders=["a", "b"],
                   lifecycle_prefixes=["archive", "processed"])
    assert a == b
    path = tmp_path / "deploy" / "policy.json"
    write_policy(a, path)
    text = path.read_text()
    assert json.loads(text) == a
    assert text.startswith('{\n  "Version": "2012-10-17"') and text.endswith("}\n")
