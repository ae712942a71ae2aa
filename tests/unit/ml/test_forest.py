"""The isolation forest kept as arrays scores as scikit-learn's own ``score_samples`` does (differential)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from lakeforge.ml import forest


def _reference(x: np.ndarray, *, seed: int, trees: int, max_samples: int, rows: np.ndarray) -> np.ndarray:
    model = IsolationForest(n_estimators=trees, max_samples=max_samples, random_state=seed).fit(x)
    return -model.score_samples(rows)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(2, 400), d=st.integers(1, 6), seed=st.integers(0, 2**16), trees=st.integers(1, 30),
       max_samples=st.sampled_from([2, 16, 256]), ties=st.booleans())
def test_scores_equal_scikit_learn(n: int, d: int, seed: int, trees: int, max_samples: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, size=(n, d))
    if ties:  # repeated values and columns that never vary
        x = np.round(x, 1)
        x[:, 0] = 1.0
    rows = np.vstack([x[: min(n, 50)], rng.normal(scale=8.0, size=(20, d)), np.full((1, d), 1e6)])
    fitted = forest.fit(x, seed=seed, trees=trees, max_samples=max_samples)
    expected = _reference(x, seed=seed, trees=trees, max_samples=min(max_samples, n), rows=rows)
    np.testing.assert_allclose(fitted.score(rows), expected, rtol=1e-12, atol=1e-12)


def test_round_trip_through_bytes() -> None:
    x = np.random.default_rng(1).normal(size=(300, 4))
    fitted = forest.fit(x, seed=3)
    again = forest.Forest.from_bytes(fitted.to_bytes())
    rows = np.random.default_rng(2).normal(scale=3.0, size=(40, 4))
    np.testing.assert_array_equal(again.score(rows), fitted.score(rows))
    assert again.score(np.full((1, 4), 50.0))[0] > again.score(np.zeros((1, 4)))[0]


def test_rows_of_another_width_are_refused() -> None:
    fitted = forest.fit(np.random.default_rng(0).normal(size=(100, 3)), seed=0)
    with pytest.raises(ValueError, match="3 features"):
        fitted.score(np.zeros((2, 4)))
