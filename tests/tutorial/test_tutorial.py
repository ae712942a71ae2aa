"""docs/tutorial.md, run: every command in order in a fresh folder, each checked against what the page says it
prints (conventions: tests/tutorial/runner.py). The reader's S3 endpoint is a moto server on 127.0.0.1, their
webhook a local receiver, their port a free one; nothing else is contacted.

The shell the commands run in has on PATH an ``aws`` stand-in (tests/tutorial/aws_stub.py: ``s3 mb|cp|ls`` on
boto3, printed as the AWS CLI prints them), then this virtual environment's ``bin`` (its ``lakeforge`` and
``python``); HOME in the test's folder; none of the AWS, lakeforge or MLflow settings of the test's environment;
``COLUMNS=120`` (the width Rich draws tables and wraps lines at) and ``NO_COLOR``.

``TUTORIAL_RECORD=FILE pytest tests/tutorial -k tutorial_runs`` writes every command's output to FILE (for writing
the page's expected lines).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.moto_server import S3Server, empty_and_delete_bucket
from tests.receivers import HttpReceiver, free_port, http_receiver
from tests.tutorial.runner import Runner, TutorialError, parse

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
# what the runner's shell keeps from the test's environment (nothing of AWS, lakeforge or MLflow settings)
KEPT = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "JAVA_HOME")


def base_env(home: Path, bin_dir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in KEPT if name in os.environ}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home), COLUMNS="120", NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="1",
    )
    return env


def aws_stand_in(bin_dir: Path) -> None:
    """``aws`` on PATH: tests/tutorial/aws_stub.py, run by this interpreter (the AWS CLI is no dependency)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "aws"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m tests.tutorial.aws_stub "$@"\n')
    script.chmod(0o755)


@pytest.fixture
def webhook() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture
def buckets_cleaned(s3_server: S3Server) -> Iterator[S3Server]:
    """The moto server; the buckets the tutorial makes are deleted afterwards (the server is the session's)."""
    client = s3_server.client()
    before = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    yield s3_server
    for bucket in client.list_buckets().get("Buckets", []):
        if bucket["Name"] not in before:
            empty_and_delete_bucket(client, bucket["Name"])


def webhook_check(receiver: HttpReceiver) -> Callable[[str], None]:
    """``<!-- tutorial: check webhook STATE ALERT SUBJECT [AUTHORIZATION] -->``: a notification STATE (firing,
    resolved) of the alert ALERT about SUBJECT reached the receiver, with that Authorization header when given
    (waits up to 30 s: a scheduled run's may still be on its way)."""

    def check(args: str) -> None:
        state, alert, subject, *authorization = args.split()
        deadline = time.monotonic() + 30
        while True:
            found = [r for r in receiver.delivered if isinstance(r.json, dict) and r.json.get("state") == state
                     and r.json.get("alert") == alert and r.json.get("subject") == subject]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert found, (f"no {state!r} notification of {alert!r} ({subject}) reached the webhook; it received "
                       f"{json.dumps(receiver.bodies())[:2000]}")
        if authorization:
            assert found[0].headers.get("authorization") == " ".join(authorization), found[0].headers
        assert {"alert", "state", "severity", "message", "project", "subject", "value", "threshold", "at"} <= set(
            found[0].json)

    return check


@pytest.mark.slow
@pytest.mark.s3
def test_the_tutorial_runs_as_written(tmp_path: Path, buckets_cleaned: S3Server, webhook: HttpReceiver) -> None:
    assert (Path(sys.executable).parent / "lakeforge").exists(), "run the tests with the virtual environment's python"
    steps = parse(TUTORIAL.read_text())
    work, home, bin_dir = tmp_path / "work", tmp_path / "home", tmp_path / "bin"
    for folder in (work, home):
        folder.mkdir()
    aws_stand_in(bin_dir)
    failure: TutorialError | None = None
    with contextlib.ExitStack() as stack:
        record: Callable[[str], None] | None = None
        if os.environ.get("TUTORIAL_RECORD"):
            sink = stack.enter_context(Path(os.environ["TUTORIAL_RECORD"]).open("w"))

            def record(text: str) -> None:
                sink.write(text)
                sink.flush()

        runner = Runner(work, base_env(home, bin_dir), record=record,
                        variables={"TUTORIAL_S3_ENDPOINT": buckets_cleaned.endpoint_url,
                                   "TUTORIAL_WEBHOOK_URL": webhook.url, "TUTORIAL_PORT": str(free_port())},
                        checks={"webhook": webhook_check(webhook)})
        try:
            runner.run(steps)
        except TutorialError as exc:
            failure = exc
        if record is not None:
            record("".join(f"{seconds:6.1f}s {what}\n" for what, seconds in runner.timings))
    if failure is not None:  # the runner's message says it all: no traceback through the runner
        pytest.fail(str(failure), pytrace=False)
