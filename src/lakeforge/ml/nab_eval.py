"""``lakeforge ml evaluate --dataset nab``: the anomaly detector (``lakeforge.ml.anomaly``) run over a NAB corpus
and scored as NAB scores its corpus (``lakeforge.ml.nab``).

A corpus is a folder in NAB's layout: ``<category>/<stream>.csv`` (columns ``timestamp,value``) with the labels in
``labels/windows.json`` (``../shared/data/nab``), or NAB's own repository: ``data/<category>/<stream>.csv`` with
``labels/combined_windows.json`` (and ``config/profiles.json``). Every stream under it is scored unless a glob
narrows them (``--streams 'realKnownCause/*'``). For each profile one threshold is optimized over all the scored
streams together, as NAB does; at it, the corpus, each category and each stream get NAB's normalized score. A
stream without labeled windows has no normalized score (NAB's scale is relative to its windows): it shows its
false positives and its raw score instead.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from lakeforge.config.ml import DetectorParams
from lakeforge.errors import LakeforgeError
from lakeforge.ml.nab import (
    PUBLISHED,
    CostMatrix,
    StreamScores,
    Window,
    load_profiles,
    load_stream,
    load_windows,
    normalize,
    optimize_threshold,
    score,
)

LAYOUT_HINT = ("--data-dir is a NAB folder: <category>/<stream>.csv with labels/windows.json, or NAB's repository "
               "(data/<category>/<stream>.csv with labels/combined_windows.json)")


@dataclass(frozen=True)
class Corpus:
    """A NAB corpus on disk: where the streams are, their labeled windows, the scoring profiles."""

    root: Path  # the folder holding <category>/<stream>.csv
    windows: dict[str, list[Window]]  # "<category>/<stream>.csv" -> windows
    profiles: dict[str, CostMatrix]


def open_corpus(data_dir: Path | str) -> Corpus:
    """The corpus in ``data_dir``, in either layout (see the module's docstring)."""
    folder = Path(data_dir)
    ours, theirs = folder / "labels" / "windows.json", folder / "labels" / "combined_windows.json"
    if ours.is_file():
        root, labels = folder, ours
    elif theirs.is_file():
        root, labels = (folder / "data" if (folder / "data").is_dir() else folder), theirs
    else:
        raise LakeforgeError(f"{folder} holds no NAB labels (labels/windows.json or labels/combined_windows.json)",
                             hint=LAYOUT_HINT)
    return Corpus(root=root, windows=load_windows(folder, path=labels), profiles=load_profiles(folder))


def stream_keys(corpus: Corpus, pattern: str | None = None) -> list[str]:
    """The streams under the corpus (``<category>/<stream>.csv``, sorted), those matching ``pattern`` when given:
    globs separated by commas, each on that key or on the stream's name. Each must have its labels."""
    keys = sorted(p.relative_to(corpus.root).as_posix() for p in corpus.root.glob("*/*.csv"))
    if pattern:
        globs = [g.strip() for g in pattern.split(",") if g.strip()]
        keys = [k for k in keys if any(fnmatch.fnmatch(k, g) or fnmatch.fnmatch(Path(k).stem, g) for g in globs)]
    if not keys:
        what = f"matching {pattern!r} " if pattern else ""
        raise LakeforgeError(f"no NAB stream {what}under {corpus.root}",
                             hint=LAYOUT_HINT if not pattern else "--streams is a glob such as 'realKnownCause/*'")
    unlabeled = [k for k in keys if k not in corpus.windows]
    if unlabeled:
        raise LakeforgeError(f"{len(unlabeled)} NAB stream(s) have no entry in the labels: {', '.join(unlabeled[:5])}",
                             hint="add them to the labels file (an empty list for a stream without anomalies), "
                                  "or leave them out with --streams")
    return keys


class StreamResult(TypedDict):
    category: str
    windows: int
    scores: dict[str, float | None]  # profile -> NAB's normalized score (None: no labeled windows)
    raw: dict[str, float]  # profile -> raw score at the profile's corpus threshold
    false_positives: dict[str, int]  # profile -> detections outside every window
    windows_detected: dict[str, int]


class GroupResult(TypedDict):
    streams: int
    windows: int
    scores: dict[str, float | None]
    false_positives: dict[str, int]


class ProfileResult(TypedDict):
    threshold: float
    score: float
    windows_detected: int
    windows_missed: int
    false_positives: int


class NabEvaluation(TypedDict):
    """The corpus's standard score and threshold; every profile's; each category's and each stream's."""

    score: float
    threshold: float
    profiles: dict[str, ProfileResult]
    categories: dict[str, GroupResult]
    streams: dict[str, StreamResult]
    published: dict[str, float]
    detector: object  # the detector's parameters: their describe(), else their repr
    # standard profile, leave one category out: each category scored at the threshold chosen on the others (None:
    # fewer than two categories); the headline, since ``score``'s threshold was chosen on the streams it scores
    cross_validated: float | None
    folds: list[Fold]


def detect_corpus(corpus: Corpus, keys: list[str], *, params: Any = None) -> dict[str, StreamScores]:
    """Each stream's anomaly scores from the streaming detector (``params``: its settings, default the
    detector's), with its timestamps and windows."""
    from lakeforge.ml.anomaly import detect

    params = params if params is not None else DetectorParams()
    runs: dict[str, StreamScores] = {}
    for key in keys:
        timestamps, values = load_stream(corpus.root, key)
        anomaly, _ = detect(values, timestamps, params=params)
        runs[key] = (timestamps, anomaly, corpus.windows[key])
    return runs


def score_corpus(runs: Mapping[str, StreamScores], profiles: Mapping[str, CostMatrix]
                 ) -> tuple[dict[str, ProfileResult], dict[str, GroupResult], dict[str, StreamResult]]:
    """NAB's scoring of scored streams: per profile the corpus threshold and score, then per category and per
    stream at that threshold."""
    per: dict[str, dict[str, dict[str, Any]]] = {}
    totals: dict[str, ProfileResult] = {}
    for name, cost in profiles.items():
        best = optimize_threshold(list(runs.values()), cost)
        per[name] = {key: score(ts, anomaly >= best["threshold"], windows, cost)
                     for key, (ts, anomaly, windows) in runs.items()}
        group = _group(list(per[name].values()))
        totals[name] = {"threshold": best["threshold"], "score": round(float(group["normalized"] or 0.0), 2),
                        "windows_detected": group["windows_detected"], "windows_missed": group["windows_missed"],
                        "false_positives": group["false_positives"]}
    streams: dict[str, StreamResult] = {}
    for key, (_, _, windows) in runs.items():
        figures = {name: per[name][key] for name in profiles}
        streams[key] = {"category": key.split("/", 1)[0], "windows": len(list(windows)),
                        "scores": {n: _normalized(f) for n, f in figures.items()},
                        "raw": {n: round(float(f["raw"]), 4) for n, f in figures.items()},
                        "false_positives": {n: int(f["false_positives"]) for n, f in figures.items()},
                        "windows_detected": {n: int(f["windows_detected"]) for n, f in figures.items()}}
    categories: dict[str, GroupResult] = {}
    for category in sorted({s["category"] for s in streams.values()}):
        members = [k for k, s in streams.items() if s["category"] == category]
        groups = {n: _group([per[n][k] for k in members]) for n in profiles}
        categories[category] = {"streams": len(members), "windows": sum(streams[k]["windows"] for k in members),
                                "scores": {n: g["normalized"] for n, g in groups.items()},
                                "false_positives": {n: g["false_positives"] for n, g in groups.items()}}
    return totals, categories, streams


def _normalized(figures: Mapping[str, Any]) -> float | None:
    """NAB's normalized score of a stream, or None for one without labeled windows (null = perfect = 0)."""
    return None if figures["perfect"] == figures["null"] else round(float(figures["normalized"]), 2)


def _group(figures: list[dict[str, Any]]) -> dict[str, Any]:
    raw, null, perfect = (sum(float(f[k]) for f in figures) for k in ("raw", "null", "perfect"))
    return {"normalized": None if perfect == null else round(normalize(raw, null, perfect), 2),
            "windows_detected": sum(int(f["windows_detected"]) for f in figures),
            "windows_missed": sum(int(f["windows_missed"]) for f in figures),
            "false_positives": sum(int(f["false_positives"]) for f in figures)}


def evaluate(data_dir: Path | str, *, streams: str | None = None, params: Any = None) -> NabEvaluation:
    """Run the detector over the corpus in ``data_dir`` (every stream, or those matching the glob ``streams``) and
    score it as NAB does, for every profile; ``score`` and ``threshold`` are the standard profile's."""
    corpus = open_corpus(data_dir)
    if "standard" not in corpus.profiles:
        raise LakeforgeError("the NAB profiles have no 'standard' profile", hint="use NAB's labels/profiles.json")
    used = params if params is not None else DetectorParams()
    keys = stream_keys(corpus, streams)
    runs = detect_corpus(corpus, keys, params=used)
    totals, categories, per_stream = score_corpus(runs, corpus.profiles)
    folds, cross_validated = _leave_one_category_out([runs], keys, corpus.profiles["standard"])
    return {
        "score": totals["standard"]["score"],
        "threshold": totals["standard"]["threshold"],
        "profiles": totals,
        "categories": categories,
        "streams": per_stream,
        "published": dict(PUBLISHED),
        "detector": used.describe() if hasattr(used, "describe") else repr(used),
        "cross_validated": cross_validated,
        "folds": folds,
    }



# -- leave-one-category-out cross-validation ------------------------------------------------------------------------
class Fold(TypedDict):
    held_out: str  # the category scored
    chosen: int  # the index in the grid of the settings chosen on the other categories
    threshold: float  # chosen with them, on the other categories
    train_score: float  # the other categories' standard score with them
    score: float | None  # the held-out category's standard score (None: it has no windows)
    false_positives: int


class CrossValidation(TypedDict):
    """The standard score of the held-out categories, each scored with the detector settings and the threshold
    chosen on the other categories; beside it the in-sample score (settings and threshold chosen on every stream)."""

    score: float
    in_sample: float
    in_sample_chosen: int
    folds: list[Fold]
    grid: list[object]


def cross_validate(data_dir: Path | str, *, grid: list[Any], streams: str | None = None) -> CrossValidation:
    """Leave one category out: for each category, choose among ``grid`` (detector settings) and the threshold on
    the other categories' streams (the best standard corpus score there), then score the held-out category with
    that choice; the cross-validated score normalizes the held-out raw scores summed over the folds."""
    if not grid:
        raise LakeforgeError("cross-validation needs at least one detector setting")
    corpus = open_corpus(data_dir)
    keys = stream_keys(corpus, streams)
    cost = corpus.profiles["standard"]
    runs = [detect_corpus(corpus, keys, params=p) for p in grid]
    folds, cross_validated = _leave_one_category_out(runs, keys, cost)
    whole = [optimize_threshold(list(r.values()), cost) for r in runs]
    best = max(range(len(grid)), key=lambda i: (whole[i]["normalized"], -i))
    if cross_validated is None:
        raise LakeforgeError("cross-validation over categories needs streams of at least two categories",
                             hint="score more of the corpus (leave out --streams)")
    return {"score": cross_validated,
            "in_sample": round(whole[best]["normalized"], 2), "in_sample_chosen": best, "folds": folds,
            "grid": [p.describe() if hasattr(p, "describe") else repr(p) for p in grid]}


def _leave_one_category_out(runs: list[dict[str, StreamScores]], keys: list[str], cost: CostMatrix
                            ) -> tuple[list[Fold], float | None]:
    """Each category held out in turn: the setting (an index into ``runs``) and the threshold best on the other
    categories score it; the held-out raw scores summed over the folds, normalized. None: fewer than 2 categories."""
    categories = sorted({k.split("/", 1)[0] for k in keys})
    if len(categories) < 2:
        return [], None
    folds: list[Fold] = []
    totals = {"raw": 0.0, "null": 0.0, "perfect": 0.0}
    for category in categories:
        train = [k for k in keys if not k.startswith(f"{category}/")]
        held = [k for k in keys if k.startswith(f"{category}/")]
        fits = [optimize_threshold([r[k] for k in train], cost) for r in runs]
        chosen = max(range(len(runs)), key=lambda i: (fits[i]["normalized"], -i))
        threshold = fits[chosen]["threshold"]
        scored = [score(ts, anomaly >= threshold, windows, cost) for ts, anomaly, windows in
                  (runs[chosen][k] for k in held)]
        group = _group(scored)
        for key in totals:
            totals[key] += sum(float(s[key]) for s in scored)
        folds.append({"held_out": category, "chosen": chosen, "threshold": threshold,
                      "train_score": round(fits[chosen]["normalized"], 2), "score": group["normalized"],
                      "false_positives": group["false_positives"]})
    return folds, round(normalize(totals["raw"], totals["null"], totals["perfect"]), 2)
