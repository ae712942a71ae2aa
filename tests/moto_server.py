"""Local S3 for tests: moto's server on 127.0.0.1, nothing else is ever contacted.

Fixtures (import them into a test module, or list this module in ``pytest_plugins`` of the root conftest):

- ``s3_server`` (session): moto in this process, no authorization; ``.client()`` is a boto3 S3 client for it.
- ``s3_buckets`` (function, needs ``s3_server`` imported too): two fresh buckets ``(landing, lake)`` on it,
  emptied and deleted afterwards.
- ``iam_enforced_server`` (session): a second moto in its own process that checks every request's signature
  and the caller's IAM policies. ``.client()``/``.iam()`` act as an admin user (policy ``*`` on ``*``);
  ``.create_user(name, policy)`` returns a server handle signed with a new user's keys.

The enforcing server runs in a child process because moto's state is per process: two ``ThreadedMotoServer``
in one process share their buckets and their authorization switch (``/moto-api/reset-auth`` on one turns it on
for both). Auth is switched on by that endpoint (what ``moto.core.set_initial_no_auth_action_count`` does in
server mode) once the admin user and its keys exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REGION = "us-east-1"
DUMMY_KEY = "testing"  # moto accepts any key while authorization is off

# Kept away from boto3/botocore (and delta-rs) while a server runs: real credentials, profiles, config files.
_SCRUBBED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_S3")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')


@dataclasses.dataclass(frozen=True)
class S3Server:
    """A running moto server and one identity to sign requests with."""

    endpoint_url: str
    region: str = REGION
    access_key: str = DUMMY_KEY
    secret_key: str = DUMMY_KEY

    def client(self) -> Any:
        """A boto3 S3 client for this server, signed with this handle's keys (path-style; cached, thread-safe)."""
        return _client("s3", self.endpoint_url, self.region, self.access_key, self.secret_key)

    def storage_options(self) -> dict[str, str]:
        """delta-rs / object_store options for this server and identity (commits use conditional puts)."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_REGION": self.region,
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ALLOW_HTTP": "true"}

    def as_user(self, access_key: str, secret_key: str) -> S3Server:
        return dataclasses.replace(self, access_key=access_key, secret_key=secret_key)


@dataclasses.dataclass(frozen=True)
class IamEnforcedServer(S3Server):
    """A moto server that authorizes every request; this handle's keys belong to an admin user."""

    log_path: Path = Path(os.devnull)

    def iam(self) -> Any:
        return _client("iam", self.endpoint_url, self.region, self.access_key, self.secret_key)

    def create_user(self, name: str, policy: dict[str, Any]) -> S3Server:
        """A new IAM user whose only permissions are ``policy`` (inline); the handle signs with its keys."""
        iam = self.iam()
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return S3Server(self.endpoint_url, self.region, key["AccessKeyId"], key["SecretAccessKey"])

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request served so far as ``(method, path?query, status)``, from the server's log (an audit)."""
        text = _ANSI.sub("", self.log_path.read_text(errors="replace"))
        return [(method, path, int(status)) for method, path, status in _REQUEST.findall(text)]


@functools.lru_cache(maxsize=64)
def _client(service: str, endpoint_url: str, region: str, access_key: str, secret_key: str) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                    region_name=region)
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5, read_timeout=30)
    return session.client(service, endpoint_url=endpoint_url, config=config)


class Buckets(NamedTuple):
    landing: str
    lake: str


@contextlib.contextmanager
def _sandboxed_env() -> Iterator[None]:
    """No instance metadata, no real credentials or profiles, and loopback never through a proxy."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _SCRUBBED:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        for name in ("NO_PROXY", "no_proxy"):
            mp.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"])))
        yield


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    # In a child process: delta-rs holds the GIL during some of its S3 calls, which would starve a server
    # thread of this process (its requests then time out).
    with (_sandboxed_env(), tempfile.TemporaryDirectory(prefix="lakeforge-moto-") as tmp,
          _child_server(Path(tmp) / "requests.log") as endpoint):
        yield S3Server(endpoint)


@pytest.fixture
def s3_buckets(s3_server: S3Server) -> Iterator[Buckets]:
    client = s3_server.client()
    suffix = uuid.uuid4().hex[:12]
    buckets = Buckets(f"landing-{suffix}", f"lake-{suffix}")
    for name in buckets:
        client.create_bucket(Bucket=name)
    yield buckets
    for name in buckets:
        empty_and_delete_bucket(client, name)


def empty_and_delete_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


# The child: a ThreadedMotoServer on a free loopback port; prints the port, serves until stdin closes.
_CHILD = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@contextlib.contextmanager
def _child_server(log_path: Path, *, env_drop: tuple[str, ...] = ()) -> Iterator[str]:
    """A moto server in a child process on a free loopback port; yields its endpoint URL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in env_drop:
        env.pop(name, None)
    with log_path.open("w") as log:
        child = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=log, env=env, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"moto server did not start: {line!r}\n{log_path.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@pytest.fixture(scope="session")
def iam_enforced_server() -> Iterator[IamEnforcedServer]:
    with _sandboxed_env(), tempfile.TemporaryDirectory(prefix="lakeforge-moto-") as tmp:
        log_path = Path(tmp) / "requests.log"
        # start open: the admin is created first
        with _child_server(log_path, env_drop=("INITIAL_NO_AUTH_ACTION_COUNT",)) as endpoint:
            open_server = IamEnforcedServer(endpoint, log_path=log_path)
            iam = open_server.iam()
            iam.create_user(UserName="admin")
            iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            key = iam.create_access_key(UserName="admin")["AccessKey"]
            _set_auth(endpoint, enforce=True)
            yield dataclasses.replace(open_server, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


def _set_auth(endpoint: str, *, enforce: bool) -> None:
    """moto's switch: authorization starts after this many more requests (0: now; inf: never)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0" if enforce else b"inf",
                                     headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        json.load(response)


def policy_allows(policy: dict[str, Any], action: str, resource: str, *, prefix: str | None = None) -> bool:
    """Whether ``policy``'s Allow statements grant ``action`` on ``resource`` (IAM wildcard semantics).

    moto checks actions and resources but ignores ``StringLike`` conditions, so ``s3:prefix`` limits on
    ListBucket are checked here instead; ``prefix`` is the request's ``s3:prefix`` (None: not sent).
    """

    def like(pattern: str, value: str) -> bool:
        return re.fullmatch(".*".join(re.escape(part).replace("\\?", ".") for part in pattern.split("*")),
                            value, re.DOTALL) is not None

    def listed(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else value

    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(like(a, action) for a in listed(statement["Action"])):
            continue
        if not any(like(r, resource) for r in listed(statement["Resource"])):
            continue
        conditions_hold = True
        for operator, keys in statement.get("Condition", {}).items():
            if operator not in ("StringLike", "StringEquals") or set(keys) != {"s3:prefix"}:
                raise NotImplementedError(f"condition {operator} {sorted(keys)}")
            values = listed(keys["s3:prefix"])
            if prefix is None:
                conditions_hold = False
            elif operator == "StringLike":
                conditions_hold &= any(like(v, prefix) for v in values)
            else:
                conditions_hold &= prefix in values
        if conditions_hold:
            return True
    return False
