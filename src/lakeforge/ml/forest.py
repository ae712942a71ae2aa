"""The multivariate detector's isolation forest: fitted by scikit-learn, kept as arrays, scored without it.

scikit-learn fits the forest (:func:`fit`); what scoring needs of it is taken out as plain arrays per node
(feature, threshold, children and the node's path length, which scikit-learn computes at fit time:
``_decision_path_lengths + _average_path_length_per_tree - 1``) and kept in the lakehouse between runs. Scoring
(:meth:`Forest.score`) walks each tree down to its leaf, as scikit-learn's ``tree.apply`` does (float32 inputs,
``x <= threshold`` goes left) and sums the leaves' path lengths: Liu et al.'s ``s = 2 ** (-E[h(x)] / c(psi))``,
equal to ``-IsolationForest.score_samples`` (tests/unit/ml/test_forest.py compares them on random forests). A run
that only scores new readings so does not import scikit-learn, which with SciPy's statistics takes about 0.8 s.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

_LEAF = -1
_ARRAYS = ("feature", "threshold", "left", "right", "path", "roots")


@dataclass(frozen=True)
class Forest:
    """An isolation forest as arrays: all trees' nodes concatenated (``left``/``right`` are global node numbers,
    -1 at a leaf), ``roots`` the first node of each tree, ``denominator`` the trees times ``c(max_samples)``."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    path: np.ndarray
    roots: np.ndarray
    denominator: float
    features: int

    def score(self, x: np.ndarray) -> np.ndarray:
        """Liu et al.'s anomaly score of each row of ``x`` (about 0.5 ordinary, near 1 isolated at once)."""
        x = np.asarray(x, dtype=np.float32).astype(np.float64)  # what the trees were split on
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"the forest scores rows of {self.features} features, not shape {x.shape}")
        rows = np.arange(x.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.size)).copy()
        inner = self.left[node] != _LEAF
        while inner.any():
            at = node[inner]
            go_left = x[np.broadcast_to(rows, node.shape)[inner], self.feature[at]] <= self.threshold[at]
            node[inner] = np.where(go_left, self.left[at], self.right[at])
            inner = self.left[node] != _LEAF
        depth = self.path[node].sum(axis=1)
        if self.denominator == 0:  # a single training row: scikit-learn scores 1
            return np.ones(x.shape[0])
        return np.power(2.0, -depth / self.denominator)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{name: getattr(self, name) for name in _ARRAYS},
                            denominator=np.float64(self.denominator), features=np.int64(self.features))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Forest:
        with np.load(io.BytesIO(data)) as saved:
            arrays = {name: saved[name] for name in _ARRAYS}
            return cls(**arrays, denominator=float(saved["denominator"]), features=int(saved["features"]))


def fit(x: np.ndarray, *, seed: int, trees: int = 100, max_samples: int = 256) -> Forest:
    """scikit-learn's isolation forest fitted on the rows of ``x``, as a :class:`Forest`."""
    from sklearn.ensemble import IsolationForest
    from sklearn.ensemble._iforest import _average_path_length

    model = IsolationForest(n_estimators=trees, max_samples=min(max_samples, x.shape[0]), random_state=seed).fit(x)
    if model._max_features != x.shape[1]:  # every tree sees every feature, in order (max_features=1.0)
        raise ValueError("the forest subsamples features, which its arrays do not keep")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
    offset = 0
    for tree, lengths, averages in zip(model.estimators_, model._decision_path_lengths,
                                       model._average_path_length_per_tree, strict=True):
        t = tree.tree_
        leaf = t.children_left == _LEAF
        parts["feature"].append(np.where(leaf, 0, t.feature).astype(np.int64))
        parts["threshold"].append(t.threshold.astype(np.float64))
        parts["left"].append(np.where(leaf, _LEAF, t.children_left + offset).astype(np.int64))
        parts["right"].append(np.where(leaf, _LEAF, t.children_right + offset).astype(np.int64))
        parts["path"].append(np.where(leaf, lengths + averages - 1.0, 0.0).astype(np.float64))
        parts["roots"].append(np.array([offset], dtype=np.int64))
        offset += t.node_count
    denominator = len(model.estimators_) * float(_average_path_length([model._max_samples])[0])
    return Forest(**{name: np.concatenate(chunks) for name, chunks in parts.items()}, denominator=denominator,
                  features=x.shape[1])
