"""lakeforge's isolation forest grows scikit-learn's trees: the scores equal ``-IsolationForest.score_samples`` to
the last bit, on data built to reach every branch (bags drawn three ways, constant features, ties, a spread at the
constant threshold, a wide range of values, fewer rows than ``max_samples``); the partition shortcut equals the
swaps it replaces."""

from __future__ import annotations

import itertools
import random
import warnings

import numpy as np
import pytest

from lakeforge.ml import iforest

ensemble = pytest.importorskip("sklearn.ensemble")
RNG = np.random.default_rng(20261207)


def _cases() -> list[tuple[str, np.ndarray, int]]:
    normal = RNG.normal(size=(480, 4))
    constant = RNG.normal(size=(600, 4))
    constant[:, 2] = 1.0
    rounded = np.round(RNG.normal(size=(600, 4)), 1)
    rounded[:300, 1] = 0.0
    wide = RNG.normal(size=(600, 4))
    wide[:, 0] *= 1e12
    spikes = RNG.normal(size=(500, 3))
    spikes[::50] *= 40.0
    return [
        ("normal", normal, 0), ("normal, another seed", normal, 42),
        ("fewer rows than max_samples", RNG.normal(size=(150, 4)), 3),
        ("bag by reservoir sampling", RNG.normal(size=(257, 4)), 4),
        ("bag by permutation", RNG.normal(size=(5000, 2)), 5),
        ("bag by tracking selection", RNG.normal(size=(30000, 4)), 6),
        ("ties everywhere (constant features in nodes)", RNG.integers(0, 3, size=(600, 4)).astype(float), 7),
        ("a constant column", constant, 8),
        ("rounded, half of a column constant", rounded, 9),
        ("spread near the constant threshold", RNG.normal(size=(600, 4)) * 1e-7 + 1.0, 10),
        ("a wide range", wide, 11),
        ("spikes, three features", spikes, 12),
        ("one feature", RNG.exponential(size=(400, 1)), 13),
    ]


@pytest.mark.parametrize(("name", "x", "seed"), _cases(), ids=[c[0] for c in _cases()])
def test_scores_equal_scikit_learns(name: str, x: np.ndarray, seed: int) -> None:
    queries = np.concatenate([x[:300], RNG.normal(size=(50, x.shape[1])) * 3.0])
    ours = iforest.IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(x).score(queries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # max_samples above the rows: scikit-learn says so
        reference = ensemble.IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(x)
    np.testing.assert_array_equal(ours, -reference.score_samples(queries))


def test_the_trees_are_scikit_learns() -> None:
    x = RNG.normal(size=(700, 4))
    ours = iforest.IsolationForest(n_estimators=20, max_samples=256, random_state=1).fit(x)
    reference = ensemble.IsolationForest(n_estimators=20, max_samples=256, random_state=1).fit(x)
    for mine, theirs in zip(ours.trees, reference.estimators_, strict=True):
        inner = theirs.tree_.children_left >= 0
        np.testing.assert_array_equal(mine.left, np.where(inner, theirs.tree_.children_left, -1))
        np.testing.assert_array_equal(mine.right, np.where(inner, theirs.tree_.children_right, -1))
        np.testing.assert_array_equal(mine.feature[inner], theirs.tree_.feature[inner])
        np.testing.assert_array_equal(mine.threshold[inner], theirs.tree_.threshold[inner])


def test_input_is_checked() -> None:
    with pytest.raises(ValueError, match="finite"):
        iforest.IsolationForest().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="2-d"):
        iforest.IsolationForest().fit(np.zeros(5))


def _swaps(goes_left: list[bool]) -> tuple[list[int], int]:
    """``DensePartitioner.partition_samples``, swap for swap."""
    order, flags = list(range(len(goes_left))), list(goes_left)
    front, back = 0, len(order)
    while front < back:
        if flags[front]:
            front += 1
        else:
            back -= 1
            flags[front], flags[back] = flags[back], flags[front]
            order[front], order[back] = order[back], order[front]
    return order, back


def test_the_partition_shortcut_equals_the_swaps() -> None:
    for n in range(11):
        for flags in itertools.product([True, False], repeat=n):
            assert iforest._partition(list(flags)) == _swaps(list(flags))
    draw = random.Random(7)
    for _ in range(3000):
        share = draw.random()
        flags = [draw.random() < share for _ in range(draw.randint(1, 300))]
        assert iforest._partition(flags) == _swaps(flags)
