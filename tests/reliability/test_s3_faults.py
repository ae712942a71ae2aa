"""S3 faults: the landing zone and the lakehouse on the local moto server, reached through a fault-injecting proxy
(faultproxy.py) that answers a seeded share of the requests with ``503 SlowDown``, ``500 InternalError``, ``429``,
a lost reply (the request took effect, the client is told 500) or silence past the client's timeout.

1. Runs with faults on: each must succeed (the storage clients and lakeforge's stage retries absorb the faults)
   or fail with a clear error and succeed on a rerun; after each, the state is exact.
2. An outage in the middle of a run (every request answered 503 from the end of ingestion on): the run fails with
   an error that says the object store is failing and what to do, after retrying; the store comes back, the next
   run finishes the work, and the state is exact.

The clients' timeouts: pyarrow's S3 file system (landing files, lakeforge's own JSON) gives up on a request idle
for 3 s (the AWS SDK's default), delta-rs after ``storage.delta_options.timeout`` (set to 3 s here; its default
is 30 s): a held request (``timeout_delay``, 5 s) outlasts both.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import pytest

from lakeforge.config.models import StorageConfig
from lakeforge.errors import TransientStorageError
from lakeforge.retry import is_transient
from lakeforge.storage.s3 import S3Location
from tests.moto_server import Buckets, S3Server
from tests.reliability.faultproxy import FaultProxy
from tests.reliability.harness import (
    DuckDBWarehouse,
    Lake,
    Landing,
    Run,
    S3Store,
    Settings,
    assert_clear_error,
    assert_exact,
    jsonl,
    make_project,
    run_ok,
    seed,
)
from tests.reliability.harness import Expected as Want

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.s3]
SEED = 31337
TIMEOUT_DELAY = 5.0
STORE_FAILING = r"(SlowDown|SLOW_DOWN|Service ?Unavailable|SERVICE_UNAVAILABLE|\b503\b|Please reduce your request rate)"
NAMES = ["with space.jsonl", "ünïcødé.jsonl", "quote'd.jsonl", "a[1].jsonl"]


def s3_project(root: Path, proxy: FaultProxy, buckets: Buckets, server: S3Server) -> Path:
    return make_project(root, max_files_per_batch=2, landing=f"s3://{buckets.landing}/raw",
                        lakehouse=f"s3://{buckets.lake}/lakehouse",
                        storage={"endpoint_url": proxy.url, "region": server.region,
                                 "delta_options": {"timeout": "3s", "connect_timeout": "2s"}})


@pytest.mark.timeout(2400)
def test_s3_faults_are_retried_or_fail_clearly_and_a_rerun_finishes_exactly(
        tmp_path: Path, s3_server: S3Server, s3_buckets: Buckets, mode: Settings, record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED))
    record["seed"] = seed(SEED)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    client = s3_server.client()  # the test's own reads and writes go to moto directly, never through the proxy
    landing = Landing(S3Store(client, s3_buckets.landing, "raw"))
    lake = Lake(f"s3://{s3_buckets.lake}/lakehouse", S3Store(client, s3_buckets.lake, "lakehouse"),
                s3_server.storage_options())
    runs, failed, retries, errors = 0, 0, 0, []
    with FaultProxy(s3_server.endpoint_url, seed=seed(SEED), rate=mode.s3_fault_rate, timeout_delay=TIMEOUT_DELAY,
                    max_timeouts=mode.s3_timeouts) as proxy:
        project = s3_project(tmp_path / "s3", proxy, s3_buckets, s3_server)
        warehouse = DuckDBWarehouse(project / "warehouse.duckdb")
        for round_ in range(mode.s3_rounds):
            landing.good(rng.randint(2, 3), rows=100)
            if round_ < len(NAMES):  # odd names on S3 too
                data = landing.ids(5)
                landing.put(NAMES[round_], jsonl(data), Want(rows=data, kind="adversarial name"))
            if rng.random() < 0.5:
                landing.bad(rng.choice(["empty", "malformed", "wrong_type"]))
            for attempt in range(4):
                run = Run(project, env=env)
                run.wait()
                runs += 1
                retries += run.retries()
                if run.proc.returncode == 0:
                    break
                failed += 1  # the faults outlasted every retry: the error must say so, and a rerun must finish
                errors.append(assert_clear_error(run, r"fix: ")[:300])
                assert attempt < 3, "four runs in a row failed under a fault rate of " \
                                    f"{mode.s3_fault_rate}:\n{run.stderr[-3000:]}"
            assert_exact(lake, landing, warehouse)
        faulted = proxy.stats()

        # an outage from the end of ingestion on
        landing.good(2, rows=100)
        proxy.rate = 0.0
        run = Run(project, env=env)
        assert run.wait_stage("ingest:events"), run.stderr
        with proxy.outage():
            run.wait()
        outage = assert_clear_error(run, STORE_FAILING, r"fix: .*(run again|rerun)")
        outage_retries = run.retries()
        assert outage_retries >= 1, f"the failing stage was not retried:\n{run.stderr[-3000:]}"
        recovered = run_ok(project, env=env)
        idle = run_ok(project, "--json", env=env)
        assert idle.json()["status"] == "nothing_to_do"
        counts = assert_exact(lake, landing, warehouse)
        total = proxy.stats()

    record.update({
        "fault_rate": mode.s3_fault_rate, "runs_with_faults": runs, "runs_failed_then_rerun": failed,
        "requests": faulted["requests"], "faults_injected": faulted["faults"],
        "client_retries_seen_by_proxy": faulted["client_retries"], "lakeforge_stage_retries": retries,
        "errors_shown": errors, "outage_requests_refused": total["faults"].get("outage", 0),
        "outage_stage_retries": outage_retries, "outage_error": outage[:300],
        "recovery_run_stages": list(recovered.finished), **counts,
    })
    print(f"\nS3 faults: {faulted}; lakeforge stage retries {retries}; failed runs {failed}; outage: {outage[:200]}")
    assert sum(faulted["faults"].values()) >= 5, "too few faults injected to mean anything"


@pytest.mark.parametrize("message", [
    "AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate.",
    "AWS Error SERVICE_UNAVAILABLE during HeadObject operation: Service is unable to handle request.",
    "AWS Error INTERNAL_FAILURE during CompleteMultipartUpload operation: We encountered an internal error. "
    "Please try again.",
    "AWS Error UNKNOWN (HTTP status 429) during ListObjectsV2 operation: Too many requests",
    "AWS Error NETWORK_CONNECTION during HeadObject operation: curlCode: 28, Timeout was reached",
])
def test_pyarrow_s3_errors_of_a_struggling_store_are_retried(message: str) -> None:
    """The wording of pyarrow's S3 errors (what the landing zone's reads and lakeforge's own files go through), as
    S3Location, the boundary that calls pyarrow, maps them: each is a transient error, so the stage is retried."""
    location = S3Location("s3://landing/raw", settings=StorageConfig(region="us-east-1"))

    def read() -> bytes:
        raise OSError(f"When reading key 'raw/events/x.jsonl' in bucket 'landing': {message}")

    with pytest.raises(TransientStorageError) as caught:
        location._call(read, what="read s3://landing/raw/events/x.jsonl")
    assert is_transient(caught.value)
    assert re.search(r"AWS Error", str(caught.value))
