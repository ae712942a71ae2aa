"""The least-privilege AWS IAM policy for lakeforge's S3 locations.

Landing zone: list and read the source folders; when files move after ingestion (``processed/``, ``archive/``)
write under those prefixes and delete from the source folders (a move is CopyObject + DeleteObject). Deleting
also needs PutObject on the folders' empty "directory marker" keys (``<folder>/``), which pyarrow writes after
every delete; no other key of a source folder can be written.
Lakehouse: list, read, write and delete everything under its prefix (Delta tables and ``_lakeforge/``).
Listing is granted on the bucket but limited with an ``s3:prefix`` condition to the same folders.
Local folders need no policy and contribute nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

from lakeforge.errors import ConfigError

DEFAULT_LIFECYCLE_PREFIXES: tuple[str, ...] = ("processed", "archive")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IAM_SPECIAL = set("*?$")  # wildcards and policy variables would widen what a resource or condition matches


# an IAM condition: operator -> key -> values, e.g. {"StringLike": {"s3:prefix": ["landing/", "landing/*"]}}
IamCondition = dict[str, dict[str, list[str]]]


class IamStatement(TypedDict):
    Sid: str
    Effect: str
    Action: list[str]
    Resource: list[str]
    Condition: NotRequired[IamCondition]


class IamPolicy(TypedDict):
    """An IAM policy document (what ``lakeforge deploy iam`` prints)."""

    Version: str
    Statement: list[IamStatement]


@dataclass(frozen=True)
class _S3Root:
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket root

    def key(self, folder: str = "") -> str:
        return "/".join(part for part in (self.prefix, folder) if part)

    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    def objects_arn(self, folder: str = "") -> str:
        key = self.key(folder)
        return f"{self.bucket_arn()}/{key}/*" if key else f"{self.bucket_arn()}/*"

    def list_condition(self, folders: Sequence[str] = ("",)) -> IamCondition | None:
        """The ``s3:prefix`` condition that limits listing to ``folders`` (default: everything under the root)."""
        keys = {self.key(folder) for folder in folders}
        if "" in keys:
            return None  # the bucket root: nothing to restrict
        return {"StringLike": {"s3:prefix": sorted(v for k in keys for v in (f"{k}/", f"{k}/*"))}}


def _s3_root(uri: str, *, what: str) -> _S3Root | None:
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("s3", "s3a"):
        return None
    bucket, _, prefix = rest.partition("/")
    prefix = "/".join(part for part in prefix.split("/") if part)
    if not _BUCKET.match(bucket):
        raise ConfigError(f"{what} {uri!r}: {bucket!r} is not a valid S3 bucket name",
                          hint="write the location as s3://bucket/prefix")
    _check_key(prefix, what=f"{what} {uri!r}")
    return _S3Root(bucket, prefix)


def _check_key(key: str, *, what: str) -> None:
    if _IAM_SPECIAL & set(key) or ".." in key.split("/"):
        raise ConfigError(f"{what}: {key!r} contains '*', '?', '$' or '..', which an IAM policy cannot name exactly",
                          hint="rename the folder to letters, digits, '-', '_', '.' and '/'")


def _folders(folders: Sequence[str], *, what: str) -> list[str]:
    cleaned = []
    for folder in folders:
        name = "/".join(part for part in folder.split("/") if part)
        if not name:
            raise ConfigError(f"{what}: an empty folder would grant the whole landing zone",
                              hint="give every source its own folder (the source name by default)")
        _check_key(name, what=what)
        cleaned.append(name)
    return sorted(set(cleaned))


def _statement(sid: str, actions: Sequence[str], resources: Sequence[str],
               condition: IamCondition | None = None) -> IamStatement:
    statement: IamStatement = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions),
                               "Resource": sorted(set(resources))}
    if condition:
        statement["Condition"] = condition
    return statement


def iam_policy(
    *,
    landing: str,
    lakehouse: str,
    source_folders: Sequence[str],
    lifecycle_prefixes: Sequence[str] = DEFAULT_LIFECYCLE_PREFIXES,
    can_delete_landing: bool = False,
) -> IamPolicy:
    """The IAM policy document (``Version`` 2012-10-17) that lets lakeforge run and nothing more.

    ``landing`` and ``lakehouse`` are locations as in ``lakeforge.yml``; only ``s3://`` ones get statements.
    ``source_folders`` are the sources' folders under the landing zone, ``lifecycle_prefixes`` where ingested
    files are moved to (empty when they stay or are deleted) and ``can_delete_landing`` whether a source deletes
    its files after ingestion. Raises ``ConfigError`` when neither location is on S3.
    """
    landing_root = _s3_root(landing, what="landing")
    lake_root = _s3_root(lakehouse, what="lakehouse")
    if landing_root is None and lake_root is None:
        raise ConfigError(
            f"neither the landing zone ({landing!r}) nor the lakehouse ({lakehouse!r}) is on S3: "
            "local folders need no IAM policy",
            hint="set landing and/or lakehouse in lakeforge.yml to s3://bucket/prefix",
        )
    sources = _folders(source_folders, what="source folder")
    lifecycle = _folders(lifecycle_prefixes, what="lifecycle prefix")
    statements: list[IamStatement] = []
    if landing_root is not None and sources:
        bucket = landing_root.bucket_arn()
        source_objects = [landing_root.objects_arn(folder) for folder in sources]
        statements.append(_statement("LandingList", ["s3:ListBucket"], [bucket],
                                     landing_root.list_condition([*sources, *lifecycle])))
        statements.append(_statement("LandingRead", ["s3:GetObject"], source_objects))
        if lifecycle:
            statements.append(_statement("LandingLifecycleWrite", ["s3:PutObject"],
                                         [landing_root.objects_arn(prefix) for prefix in lifecycle]))
        if lifecycle or can_delete_landing:
            statements.append(_statement("LandingDelete", ["s3:DeleteObject"], source_objects))
            # pyarrow's delete_file re-creates the parent "folder" as an empty marker object ("<folder>/"), and
            # fails if it may not: allow keys ending in "/" in the source folders, never a file
            markers = [f"{landing_root.bucket_arn()}/{landing_root.key(folder)}/{tail}"
                       for folder in sources for tail in ("", "*/")]
            statements.append(_statement("LandingFolderMarkers", ["s3:PutObject"], markers))
    if lake_root is not None:
        statements.append(_statement("LakehouseList", ["s3:ListBucket"], [lake_root.bucket_arn()],
                                     lake_root.list_condition()))
        statements.append(_statement("LakehouseReadWrite", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                                     [lake_root.objects_arn()]))
    return {"Version": "2012-10-17", "Statement": statements}


def write_policy(policy: IamPolicy, path: Path) -> None:
    """Write ``policy`` as indented JSON (the form ``aws iam put-user-policy --policy-document file://...`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(policy, indent=2) + "\n", encoding="utf-8")
