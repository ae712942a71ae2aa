"""An isolation forest (Liu, Ting and Zhou 2008) that grows, tree for tree, the forest scikit-learn's
``IsolationForest(n_estimators, max_samples, random_state=seed)`` grows, and scores as its ``score_samples`` does
(negated: here higher is more anomalous), in NumPy and Python.

Why: ``ml:anomalies`` fits a forest in every run that has new readings, and importing scikit-learn takes 0.5-0.8 s
(it imports SciPy's statistics), more than the rest of a small run. The forest is a few hundred lines of
scikit-learn's Cython (``sklearn/ensemble/_iforest.py``, ``_bagging.py``, ``tree/_splitter.pyx``,
``_partitioner.pyx``, ``_criterion.pyx``, ``_tree.pyx``, ``utils/_random.pyx``, as of scikit-learn 1.9), followed
here step for step: the same random draws (NumPy's ``RandomState`` for the seeds and the bags, scikit-learn's
xorshift for the features and thresholds), the same float32 features, the same order of the samples in each node
(the same swaps), and the same floating-point sums of the target, whose variance decides when a node stops.
``tests/unit/test_iforest.py`` checks the scores against scikit-learn's, equal to the last bit, on data built to
reach every branch. Only what ``IsolationForest`` uses is here: dense finite data, ``max_features=1.0``,
``bootstrap=False``, no sample weights.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import reduce
from operator import add, mul, sub

import numpy as np

_MAX_INT = 2**31 - 1  # np.iinfo(np.int32).max: the seeds of the trees
_RAND_R_MAX = 0x7FFFFFFF
_EPSILON = float(np.finfo(np.float64).eps)  # _tree.pyx
# _partitioner.pxd: a float32 constant, added to a float32 in float32 (the sum rounded once to float32: in float64
# first, then to float32, gives the same, float64 having more than 2 * 24 + 2 bits)
_FEATURE_THRESHOLD = float(np.float32(1e-7))
_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class _Tree:
    feature: np.ndarray  # int64 per node (leaves: 0)
    threshold: np.ndarray  # float64 per node
    left: np.ndarray  # int64 child ids, -1 for a leaf
    right: np.ndarray
    path: np.ndarray  # float64 per node: its depth (root 1) + the average path length of its samples - 1


class IsolationForest:
    """``fit(X)`` then ``score(X)``: Liu et al.'s anomaly score, ``2 ** (-mean path length / c(max_samples))`` (about
    0.5 for an ordinary point, near 1 for one isolated at once) -- scikit-learn's ``-score_samples(X)``."""

    def __init__(self, *, n_estimators: int = 100, max_samples: int = 256, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.trees: list[_Tree] = []
        self.max_samples_ = 0

    def fit(self, X: np.ndarray) -> IsolationForest:
        x = np.asarray(X, dtype=np.float32)
        if x.ndim != 2 or not x.shape[0] or not x.shape[1]:
            raise ValueError("IsolationForest.fit wants a non-empty 2-d array")
        if not np.isfinite(x).all():
            raise ValueError("IsolationForest.fit wants finite values")
        n_samples, n_features = x.shape
        y = np.asarray(np.random.RandomState(self.random_state).uniform(size=n_samples)).tolist()  # the target
        max_samples = min(self.max_samples, n_samples)
        self.max_samples_ = max_samples
        max_depth = int(np.ceil(np.log2(max(max_samples, 2))))
        seeds = np.random.RandomState(self.random_state).randint(_MAX_INT, size=self.n_estimators)
        columns = [x[:, j].tolist() for j in range(n_features)]  # float32 values as Python floats (exact)
        self.trees = []
        rng = np.random.RandomState()  # seeded again for each draw below: as a new RandomState(seed), and cheaper
        for seed in seeds.tolist():
            rng.seed(seed)
            tree_seed = int(rng.randint(_MAX_INT))  # ensemble._set_random_states
            rng.seed(seed)
            bag = np.sort(_sample(n_samples, max_samples, rng)).tolist()  # _bagging._generate_bagging_indices
            rng.seed(tree_seed)
            state = int(rng.randint(0, _RAND_R_MAX))  # Splitter.init
            self.trees.append(_grow(columns, y, bag, state, max_depth))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """The anomaly score of each row of ``X`` (scikit-learn's ``-score_samples(X)``)."""
        x = np.asarray(X, dtype=np.float32)
        depths = np.zeros(x.shape[0], dtype=np.float64, order="F")
        for tree in self.trees:
            depths += tree.path[_leaves(tree, x)]
        denominator = len(self.trees) * _average_path_length(np.array([self.max_samples_]))
        scores: np.ndarray = 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths),
                                              where=denominator != 0))
        return scores


def _sample(n_population: int, n_samples: int, rng: np.random.RandomState) -> np.ndarray:
    """``sklearn.utils.random.sample_without_replacement`` (method ``auto``), drawing what it draws. (The features
    are drawn first, all of them: reservoir sampling of n out of n, which draws nothing.)"""
    ratio = n_samples / n_population if n_population else 1.0
    if 0.01 < ratio < 0.99:
        return rng.permutation(n_population)[:n_samples]
    out = np.empty(n_samples, dtype=int)
    if ratio < 0.2:  # tracking selection
        selected: set[int] = set()
        for i in range(n_samples):
            j = rng.randint(n_population)
            while j in selected:
                j = rng.randint(n_population)
            selected.add(j)
            out[i] = j
        return out
    out[:] = np.arange(n_samples)  # reservoir sampling
    for i in range(n_samples, n_population):
        j = rng.randint(0, i + 1)
        if j < n_samples:
            out[j] = i
    return out


def _grow(columns: list[list[float]], y: list[float], bag: list[int], state: int, max_depth: int) -> _Tree:
    """One tree: ``DepthFirstTreeBuilder`` with ``RandomSplitter`` (``max_features=1``), the ``MSE`` criterion
    on the random target ``y``, ``min_samples_split=2``, ``min_samples_leaf=1``, grown on the bag (its samples in
    increasing order, each of weight 1)."""
    samples = list(bag)  # Splitter.samples: reordered in place by the partitions
    n_features = len(columns)
    features = list(range(n_features))
    constants = [0] * n_features
    total_weight = float(len(samples))
    rand = [state]

    def draw() -> int:  # our_rand_r
        s = rand[0] or 1
        s ^= (s << 13) & _MASK
        s ^= s >> 17
        s ^= (s << 5) & _MASK
        rand[0] = s
        return s % (_RAND_R_MAX + 1)

    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    count: list[int] = []
    depth_of: list[int] = []
    # (start, end, depth, parent, is_left, impurity, n_constant_features)
    stack: list[tuple[int, int, int, int, bool, float, int]] = [(0, len(samples), 0, -1, False, math.inf, 0)]
    first = True
    while stack:
        start, end, depth, parent, is_left, impurity, n_known = stack.pop()
        n_node = end - start
        is_leaf = depth >= max_depth or n_node < 2
        split_pos, split_feature, split_threshold = end, 0, 0.0
        n_total = n_known
        impurity_left = impurity_right = improvement = 0.0
        if first or not is_leaf:  # Criterion.init: the node's sums, in the order of its samples
            ys = [y[s] for s in samples[start:end]]
            sum_total = reduce(add, ys, 0.0)
            sq_total = reduce(add, map(mul, ys, ys), 0.0)
            weight = float(n_node)
            if first:
                mean = sum_total / weight
                impurity = sq_total / weight - mean * mean
                first = False
        is_leaf = is_leaf or impurity <= _EPSILON
        if not is_leaf:
            # RandomSplitter.node_split with max_features=1: features drawn (Fisher-Yates) until one is not
            # constant in the node; a random threshold between its min and max
            f_i = n_features
            n_found = n_drawn = n_visited = 0
            current = 0
            while f_i > n_total and (n_visited < 1 or n_visited <= n_found + n_drawn):
                n_visited += 1
                f_j = n_drawn + draw() % (f_i - n_found - n_drawn)
                if f_j < n_known:
                    features[n_drawn], features[f_j] = features[f_j], features[n_drawn]
                    n_drawn += 1
                    continue
                f_j += n_found
                current = features[f_j]
                column = columns[current]
                node_values = [column[s] for s in samples[start:end]]  # Partitioner.find_min_max
                low, high = min(node_values), max(node_values)
                if high - low <= 1e-6 * (abs(low) + 1.0) and high <= _f32(low + _FEATURE_THRESHOLD):
                    features[f_j], features[n_total] = features[n_total], current  # constant in this node
                    n_found += 1
                    n_total += 1
                    continue
                f_i -= 1
                features[f_i], features[f_j] = features[f_j], features[f_i]
                cut = (high - low) * float(draw()) / float(_RAND_R_MAX) + low
                if cut == high:
                    cut = low
                node_samples = samples[start:end]
                order, n_left = _partition([v <= cut for v in node_values])
                samples[start:end] = [node_samples[i] for i in order]
                if n_left < 1 or n_node - n_left < 1:
                    continue
                split_pos, split_feature, split_threshold = start + n_left, current, cut
            if split_pos < end:
                if current != split_feature:  # not reached with max_features=1: the last split drawn is the best
                    raise AssertionError("isolation forest: a split other than the last one drawn")
                pos = split_pos
                n_left = pos - start
                y_left = [y[s] for s in samples[start:pos]]
                if n_left <= end - pos:  # Criterion.update(pos): sum_left from whichever end is nearer
                    sum_left = reduce(add, y_left, 0.0)
                else:
                    sum_left = reduce(sub, [y[s] for s in reversed(samples[pos:end])], sum_total)
                w_left = float(n_left)
                w_right = weight - w_left
                sum_right = sum_total - sum_left
                sq_left = reduce(add, map(mul, y_left, y_left), 0.0)  # MSE.children_impurity
                sq_right = sq_total - sq_left
                m_left, m_right = sum_left / w_left, sum_right / w_right
                impurity_left = sq_left / w_left - m_left * m_left
                impurity_right = sq_right / w_right - m_right * m_right
                improvement = (weight / total_weight) * (
                    impurity - (w_right / weight * impurity_right) - (w_left / weight * impurity_left))
            # the invariant of the constant features for the siblings and children
            features[:n_known] = constants[:n_known]
            constants[n_known:n_known + n_found] = features[n_known:n_known + n_found]
            is_leaf = split_pos >= end or improvement + _EPSILON < 0.0
        node = len(count)
        feature.append(split_feature if not is_leaf else 0)
        threshold.append(split_threshold if not is_leaf else 0.0)
        left.append(-1)
        right.append(-1)
        count.append(n_node)
        depth_of.append(depth + 1)  # Tree.compute_node_depths: the root is 1
        if parent >= 0:
            (left if is_left else right)[parent] = node
        if not is_leaf:
            stack.append((split_pos, end, depth + 1, node, False, impurity_right, n_total))
            stack.append((start, split_pos, depth + 1, node, True, impurity_left, n_total))
    counts = np.array(count, dtype=np.int64)
    path = np.array(depth_of, dtype=np.int64) + _average_path_length(counts) - 1.0
    return _Tree(np.array(feature, dtype=np.int64), np.array(threshold, dtype=np.float64),
                 np.array(left, dtype=np.int64), np.array(right, dtype=np.int64), path)


def _partition(goes_left: list[bool]) -> tuple[list[int], int]:
    """``DensePartitioner.partition_samples`` on a node: the order its swaps leave the samples in (as indices into
    the node's samples) and how many go left. The swaps (a front cursor moving over samples that go left; each
    one that goes right swapped with the last unswapped sample) amount to: the k-th sample from the front that goes
    right and lies in the left part's positions trades places with the k-th sample from the back that goes left;
    the right part holds the samples that go right in the order the cursor met them, from the last position
    backwards. Computed so, the work is per exchange rather than per sample (the same result, checked against the
    swaps in tests)."""
    n = len(goes_left)
    n_left = goes_left.count(True)
    order = list(range(n_left))
    met: list[int] = []  # samples going right, in the order the cursor meets them
    previous = n
    for front, back in zip([i for i in range(n_left) if not goes_left[i]],
                           [i for i in range(n - 1, n_left - 1, -1) if goes_left[i]], strict=False):
        order[front] = back
        met.append(front)
        met.extend(range(previous - 1, back, -1))
        previous = back
    if n_left < previous:
        met.append(n_left)
        met.extend(range(previous - 1, n_left, -1))
    met.reverse()
    return order + met, n_left


def _f32(value: float) -> float:
    """``value`` rounded to float32."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def _leaves(tree: _Tree, x: np.ndarray) -> np.ndarray:
    """The leaf of each row (``Tree.apply``: a float32 value against the float64 threshold, ``<=`` goes left)."""
    node = np.zeros(x.shape[0], dtype=np.int64)
    rows = np.arange(x.shape[0])
    inner = np.flatnonzero(tree.left[node] >= 0)
    while inner.size:
        at = node[inner]
        go_left = x[rows[inner], tree.feature[at]] <= tree.threshold[at]
        node[inner] = np.where(go_left, tree.left[at], tree.right[at])
        inner = inner[tree.left[node[inner]] >= 0]
    return node


def _average_path_length(n_samples_leaf: np.ndarray) -> np.ndarray:
    """``sklearn.ensemble._iforest._average_path_length``: c(n), the average path length of an unsuccessful search
    in a binary search tree of n samples (0 for n <= 1, 1 for n = 2)."""
    n = n_samples_leaf.reshape((1, -1))
    average = np.zeros(n.shape)
    mask_1 = n <= 1
    mask_2 = n == 2
    not_mask = ~np.logical_or(mask_1, mask_2)
    average[mask_1] = 0.0
    average[mask_2] = 1.0
    average[not_mask] = (2.0 * (np.log(n[not_mask] - 1.0) + np.euler_gamma)
                         - 2.0 * (n[not_mask] - 1.0) / n[not_mask])
    return average.reshape(n_samples_leaf.shape)
