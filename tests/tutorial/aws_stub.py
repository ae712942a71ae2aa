"""A stand-in for the few AWS CLI commands the tutorial shows, for the test only (the AWS CLI is not a dependency
of lakeforge): ``aws [--endpoint-url URL] [--region R] s3 mb|cp|ls ...``, on boto3, printing what the AWS CLI
prints (``make_bucket: B``, ``upload: SRC to DST``, the ``ls`` listing). The tutorial runner puts it on ``PATH`` as
``aws``; it talks only to the endpoint it is given (the test's moto server on 127.0.0.1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def _client(endpoint: str | None, region: str) -> Any:
    import boto3
    from botocore.config import Config

    if not endpoint:
        raise SystemExit("aws (tutorial stand-in): pass --endpoint-url or set AWS_ENDPOINT_URL: it never calls AWS")
    return boto3.client("s3", endpoint_url=endpoint, region_name=region,
                        config=Config(s3={"addressing_style": "path"}))


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise SystemExit(f"aws (tutorial stand-in): {uri!r} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def main(argv: list[str]) -> int:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    args: list[str] = []
    recursive = False
    items = iter(argv)
    for arg in items:
        if arg == "--endpoint-url":
            endpoint = next(items)
        elif arg == "--region":
            region = next(items)
        elif arg == "--recursive":
            recursive = True
        else:
            args.append(arg)
    if args[:1] != ["s3"] or len(args) < 2:
        raise SystemExit(f"aws (tutorial stand-in): only `aws s3 mb|cp|ls` are supported, not {argv}")
    client = _client(endpoint, region)
    verb, rest = args[1], args[2:]
    if verb == "mb":
        bucket, _ = _split(rest[0])
        client.create_bucket(Bucket=bucket)
        print(f"make_bucket: {bucket}")
    elif verb == "cp":
        source, target = rest
        bucket, prefix = _split(target)
        local = Path(source)
        if recursive:
            files = sorted(p for p in local.rglob("*") if p.is_file())
            pairs = [(p, f"{prefix.rstrip('/')}/{p.relative_to(local).as_posix()}".lstrip("/")) for p in files]
        else:
            key = f"{prefix}{local.name}" if prefix.endswith("/") or not prefix else prefix
            pairs = [(local, key)]
        for path, key in pairs:
            client.upload_file(str(path), bucket, key)
            shown = path.as_posix() if "/" in path.as_posix() else f"./{path.as_posix()}"  # as the AWS CLI shows it
            print(f"upload: {shown} to s3://{bucket}/{key}")
    elif verb == "ls":
        bucket, prefix = _split(rest[0])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not recursive and "/" in obj["Key"][len(prefix):]:
                    continue
                print(f"{obj['LastModified']:%Y-%m-%d %H:%M:%S} {obj['Size']:>10} {obj['Key']}")
    else:
        raise SystemExit(f"aws (tutorial stand-in): `aws s3 {verb}` is not supported")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
