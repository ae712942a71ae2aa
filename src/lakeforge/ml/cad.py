"""KNN-CAD: conformal k-nearest-neighbour anomaly detection on lagged windows (Burnaev & Ishimtsev 2016,
arXiv:1608.04585; NAB's ``knncad`` detector, 58.0 on NAB's standard profile), one point at a time.

Each point forms the vector of its last ``knn_dim`` values. Its nonconformity is the sum of its ``knn_k``
smallest Mahalanobis distances to a training set of past vectors (the matrix: the inverse of ``T'T`` over the
training vectors ``T``, re-estimated every ``min_history / 2`` points, as KNN-CAD does). The training set is the
vectors of the first ``min_history`` points (learning only); it then grows with each scored vector up to
``knn_training`` vectors and from there slides with a lag: a vector joins it ``knn_training`` points after it was
scored, the oldest leaving (KNN-CAD's training and calibration sets). The calibration scores are the training
vectors' own nonconformities (leave-one-out) at the start, then those of the last ``knn_training`` scored points.
A point's conformal p-value is ``(1 + count) / (1 + size)``, ``count`` of the ``size`` calibration scores at or
above its own; the raw surprise the detector averages and turns into a likelihood is ``-log10 p``.

Everything is deterministic and uses only the current and earlier values; the batch path of
:mod:`lakeforge.ml.anomaly` runs this class point by point, so both paths agree to the bit.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque

import numpy as np

from lakeforge.config.ml import DetectorParams


class KnnCad:
    """The KNN-CAD state of one series. ``update(value)`` returns ``(surprise, count, size)``: ``-log10`` of the
    conformal p-value, how many calibration scores reach the point's, and how many there are (0, 0, 0 while
    learning)."""

    def __init__(self, params: DetectorParams) -> None:
        self.dim = max(1, params.knn_dim)
        self.k = max(1, params.knn_k)
        self.learn = max(params.min_history, self.dim + self.k + 2)
        self.size = max(params.knn_training, self.learn)  # the training set grows to this many vectors
        self._buf: deque[float] = deque(maxlen=self.dim)
        self._train: list[np.ndarray] = []  # the training vectors while learning
        self._t: np.ndarray | None = None  # then as one array, a ring (oldest at _pos)
        self._pos = 0
        self._scores = np.empty(0)  # the calibration nonconformities, a ring once full (oldest at _spos)
        self._spos = 0
        self._calib: deque[np.ndarray] = deque()  # scored vectors waiting to join the training set
        self._sigma = np.eye(self.dim)
        self._n = 0  # values seen

    def _ncm(self, item: np.ndarray, k: int) -> float:
        assert self._t is not None
        diff = self._t - item
        d = np.sum((diff @ self._sigma) * diff, axis=1)
        return float(np.sum(np.partition(d, k - 1)[:k]))

    def _reestimate(self) -> None:
        assert self._t is not None
        with contextlib.suppress(np.linalg.LinAlgError):  # a flat series: keep the previous matrix
            self._sigma = np.linalg.inv(self._t.T @ self._t)

    def update(self, value: float) -> tuple[float, int, int]:
        self._buf.append(float(value))
        self._n += 1
        r = self._n
        if len(self._buf) < self.dim:
            return 0.0, 0, 0
        item = np.array(self._buf, dtype=np.float64)
        if r < self.learn:
            self._train.append(item)
            return 0.0, 0, 0
        if self._t is None:
            self._t = np.array(self._train, dtype=np.float64)
            self._train = []
        half = max(1, self.learn // 2)
        if (r - self.learn) % half == 0:
            self._reestimate()
        if not self._scores.size:
            k = min(self.k + 1, self._t.shape[0])
            self._scores = np.array([self._ncm(v, k) for v in self._t])
        new = self._ncm(item, min(self.k, self._t.shape[0]))
        size = int(self._scores.size)
        count = int(np.count_nonzero(self._scores >= new))
        self._remember(item, new)
        return -math.log10((1.0 + count) / (1.0 + size)), count, size

    def _remember(self, item: np.ndarray, score: float) -> None:
        """A scored vector joins the training set at once while it grows, then ``size`` points later (oldest out);
        its nonconformity joins the calibration scores (the oldest out once they number ``size``)."""
        assert self._t is not None
        if self._t.shape[0] < self.size:
            self._t = np.vstack([self._t, item[None, :]])
            self._scores = np.append(self._scores, score)
            return
        self._calib.append(item)
        if len(self._calib) > self.size:
            self._t[self._pos] = self._calib.popleft()
            self._pos = (self._pos + 1) % self.size
        if self._scores.size < self.size:
            self._scores = np.append(self._scores, score)
        else:
            self._scores[self._spos] = score
            self._spos = (self._spos + 1) % self.size
