"""Throughput of the streaming anomaly detector (lakeforge.ml.anomaly, its defaults: the contextual component) over the
NAB streams of the shared data: readings per CPU second, one process (docs/benchmarks.md).

    PYTHONPATH=src python bench/nab_detector.py [../shared/data/nab]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lakeforge.config.ml import DetectorParams
from lakeforge.ml import anomaly, nab, nab_eval


def main(data_dir: Path) -> None:
    corpus = nab_eval.open_corpus(data_dir)
    streams = [nab.load_stream(corpus.root, key) for key in nab_eval.stream_keys(corpus)]
    params = DetectorParams()
    readings = sum(len(values) for _, values in streams)
    start = time.process_time()
    for timestamps, values in streams:
        anomaly.detect(values, timestamps, params=params)
    batch = time.process_time() - start
    timestamps, values = streams[0]
    detector = anomaly.StreamingDetector(params, period_seconds=anomaly.infer_period(timestamps))
    start = time.process_time()
    for v in values.tolist():
        detector.update(v)
    one = time.process_time() - start
    print(f"detect over {len(streams)} streams, {readings:,} readings: {batch:.1f} CPU s, "
          f"{readings / batch:,.0f} readings/s")
    print(f"StreamingDetector.update over {len(values):,} readings: {one:.2f} CPU s, {len(values) / one:,.0f} "
          "readings/s")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/nab"))
