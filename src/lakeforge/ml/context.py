"""Contextual anomaly detection on a few bits of the quantized value, one point at a time: the algorithm of
Smirnov's CAD OSE (NAB's ``context_ose`` detector, 69.9 on NAB's standard profile), written anew and made causal.

Each value is quantized to ``context_bits`` bits over a value range; each bit gives one *fact*. The detector keeps a
memory of *contexts*: pairs (left facts, right facts), each half a *semi-context* shared between contexts. The left
facts of a step are the previous value's facts plus the *neurons* the previous step activated (the contexts whose
right facts all came true); the right facts are the current value's. Each step:

1. the pair (previous left facts, current facts) is looked up and stored if new (a zero-level context);
2. every context whose left half was wholly present in the previous left facts was *selected*; it counts how many
   of its right facts came true (its prediction record); those whose right half came wholly true are *active*;
   the share of selected contexts that are active measures how expected the value was;
3. selected zero-level contexts partly matched yield new, smaller contexts (the matched parts) when step 1 stored
   a new context; the share of these candidates that were really new measures novelty;
4. the most-activated active contexts (at most ``context_neurons``) become the next step's neurons; the contexts
   whose left half is wholly in the new left facts and whose prediction record is best predict the next facts.

The raw score is ``(1 - active share + new share) / 2`` when a current fact was not predicted, else 0; after a raw
score of at least ``context_threshold`` the detector rests (outputs 0) for ``context_rest`` points.

Causality: CAD OSE is given the stream's global minimum and maximum. Here the range is that of the first
``context_learn`` values (widened by ``context_margin`` of it on each side); those values are then replayed through
the memory (they score 0). A later value outside the range: with ``context_replay`` > 0, the range becomes that of
the last ``context_replay`` values and this one (widened by the margin) and a new memory learns those values again
in it before the value is scored (the past scores stay as they were emitted); with 0, the range just stretches to
the value (the learned contexts keep their old quantization). Ties among active contexts are broken by their
halves' creation order, so everything is deterministic.

The memory's matching is vectorized (counts of facts per semi-context with ``np.bincount``; the contexts' records
as arrays), which gives the same contexts, predictions and scores as walking them one by one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np

from lakeforge.config.ml import DetectorParams

_NEURON = 1 << 31  # neuron facts: this plus the context's number (sensor facts are small)
_MAX_LEFT = 7  # candidate contexts from partial matches: at most this many left facts


class _Grow:
    """A growing int64 array (amortized appends; ``view`` is the filled part)."""

    __slots__ = ("data", "n")

    def __init__(self) -> None:
        self.data = np.empty(16, dtype=np.int64)
        self.n = 0

    def append(self, item: int) -> None:
        if self.n == self.data.size:
            self.data = np.concatenate([self.data, np.empty(self.n, dtype=np.int64)])
        self.data[self.n] = item
        self.n += 1

    def view(self) -> np.ndarray:
        return self.data[:self.n]


class _Memory:
    """The context memory. Semi-contexts are numbered per side in creation order, contexts too; a side's
    semi-contexts are matched against a set of facts by counting, per semi-context, its facts present
    (``np.bincount`` over the facts' inverted lists): a semi-context is *whole* when all its facts are present. Each
    context's halves, zero-level flag and prediction record are arrays indexed by its number."""

    def __init__(self) -> None:
        self.ids: tuple[dict[tuple[int, ...], int], dict[tuple[int, ...], int]] = ({}, {})
        self.facts: tuple[list[tuple[int, ...]], list[tuple[int, ...]]] = ([], [])
        self.sizes = (_Grow(), _Grow())
        self.by_fact: tuple[dict[int, _Grow], dict[int, _Grow]] = ({}, {})
        self.links: list[dict[int, int]] = []  # left semi-context -> {right semi-context: context}
        # per context: left and right halves, zero-level flag, right facts expected (summed over the times it was
        # selected), of them those that came true, times its right half came wholly true
        self.ctx = {key: _Grow() for key in ("left", "right", "zero", "trials", "hits", "active")}
        self.fresh = -1  # the zero-level context stored this step (not yet scored)
        self.left_in: tuple[int, ...] = ()  # the left facts last matched
        self.left_counts = np.zeros(0, dtype=np.int64)  # per left semi-context, its facts among them

    def _semi(self, side: int, facts: tuple[int, ...]) -> int:
        uid = self.ids[side].get(facts)
        if uid is None:
            uid = len(self.facts[side])
            self.ids[side][facts] = uid
            self.facts[side].append(facts)
            self.sizes[side].append(len(facts))
            if side == 0:
                self.links.append({})
            for fact in facts:
                self.by_fact[side].setdefault(fact, _Grow()).append(uid)
        return uid

    def store(self, left_facts: tuple[int, ...], right_facts: tuple[int, ...], zero: bool) -> bool:
        """Store the context unless known (a known one stored as zero-level becomes one); True if it was new."""
        left, right = self._semi(0, left_facts), self._semi(1, right_facts)
        cid = self.links[left].get(right)
        if cid is None:
            cid = self.ctx["left"].n
            self.links[left][right] = cid
            for key, item in (("left", left), ("right", right), ("zero", int(zero)), ("trials", 0), ("hits", 0),
                              ("active", 0)):
                self.ctx[key].append(item)
            if zero:
                self.fresh = cid
            return True
        if zero:
            self.ctx["zero"].view()[cid] = 1
        return False

    def counts(self, side: int, facts: tuple[int, ...]) -> np.ndarray:
        """Per semi-context of the side (those existing now), how many of its facts are in ``facts``."""
        lists = [self.by_fact[side][f].view() for f in facts if f in self.by_fact[side]]
        n = len(self.facts[side])
        if not lists:
            return np.zeros(n, dtype=np.int64)
        return np.bincount(np.concatenate(lists), minlength=n)

    def _matched(self, side: int, uid: int, facts: tuple[int, ...]) -> tuple[int, ...]:
        present = set(facts)
        return tuple(f for f in self.facts[side][uid] if f in present)

    def score_selected(self, right_in: tuple[int, ...], may_grow: bool
                       ) -> tuple[list[int], int, list[tuple[tuple[int, ...], tuple[int, ...]]]]:
        """Steps 2 and 3 over the contexts selected by the last left facts, given the current (right) facts: the
        active contexts (least activated first), how many were selected, the candidate new contexts."""
        got = self.counts(1, right_in)
        n_left = len(self.facts[0])
        counts = np.zeros(n_left, dtype=np.int64)
        counts[:self.left_counts.size] = self.left_counts  # semi-contexts new since: not matched
        left, right = self.ctx["left"].view(), self.ctx["right"].view()
        lc = counts[left]
        whole = (lc == self.sizes[0].view()[left]) & (lc > 0)
        if 0 <= self.fresh < whole.size:
            whole[self.fresh] = False
        hit = got[right]
        need = self.sizes[1].view()[right]
        sel = np.flatnonzero(whole)
        self.ctx["trials"].view()[sel] += need[sel]
        self.ctx["hits"].view()[sel] += hit[sel]
        full = whole & (hit > 0) & (hit == need)
        act = np.flatnonzero(full)
        activations = self.ctx["active"].view()
        activations[act] += 1
        order = np.lexsort((act, right[act], left[act], activations[act]))
        candidates: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        if may_grow:
            grow = (hit > 0) & ~full & (self.ctx["zero"].view() > 0) & (lc > 0) & (lc <= _MAX_LEFT)
            if 0 <= self.fresh < grow.size:
                grow[self.fresh] = False
            pick = np.flatnonzero(grow)
            pick = pick[np.lexsort((pick, left[pick]))]
            candidates = [(self._matched(0, int(left[c]), self.left_in), self._matched(1, int(right[c]), right_in))
                          for c in pick.tolist()]
        self.fresh = -1
        return act[order].tolist(), int(sel.size), candidates

    def predict(self, left_facts: tuple[int, ...]) -> set[int]:
        """Match the new left facts; the right facts of the best-recorded contexts whose left half is wholly in
        them."""
        self.left_in = left_facts
        self.left_counts = self.counts(0, left_facts)
        left = self.ctx["left"].view()
        lc = self.left_counts[left]
        cand = np.flatnonzero((lc == self.sizes[0].view()[left]) & (lc > 0))
        if not cand.size:
            return set()
        trials = self.ctx["trials"].view()[cand]
        hits = self.ctx["hits"].view()[cand]
        weight = np.where(trials > 0, hits / np.maximum(trials, 1), 0.0)
        chosen = np.unique(self.ctx["right"].view()[cand[weight == weight.max()]])
        out: set[int] = set()
        for right in chosen.tolist():
            out.update(self.facts[1][right])
        return out


class ContextDetector:
    """The causal CAD OSE state of one series: ``update(value)`` returns the raw anomaly score in [0, 1] (0 while
    learning the range and resting)."""

    def __init__(self, params: DetectorParams) -> None:
        self.bits = max(1, params.context_bits)
        self.levels = 2 ** self.bits - 1
        self.learn = max(1, params.context_learn)
        self.margin = max(0.0, params.context_margin)
        self.neurons = max(1, params.context_neurons)
        self.rest = max(1, params.context_rest)
        self.threshold = params.context_threshold
        self._memory = _Memory()
        self._warm: list[float] | None = []
        self._lo = self._hi = 0.0
        self._left: tuple[int, ...] = ()
        self._predicted: set[int] = set()
        self._recent: list[float] = [1.0]  # the last ``rest`` raw scores (resting at the start, as CAD OSE)
        self.replay = max(0, params.context_replay)
        self._history: deque[float] = deque(maxlen=max(1, self.replay))  # kept for a rebuild

    def update(self, value: float) -> float:
        x = float(value)
        if not math.isfinite(x):
            return 0.0
        if self._warm is not None:
            self._warm.append(x)
            if len(self._warm) < self.learn:
                return 0.0
            self._set_range(self._warm)
            warm, self._warm = self._warm, None
            self._history.extend(warm)
            for v in warm:
                self._emit(self._step(v))
            return 0.0
        if self.replay and not self._lo <= x <= self._hi:
            self._rebuild(x)
        self._history.append(x)
        return self._emit(self._step(x))

    def _set_range(self, values: Iterable[float]) -> None:
        lo, hi = min(values), max(values)
        pad = self.margin * (hi - lo)
        self._lo, self._hi = lo - pad, hi + pad

    def _rebuild(self, value: float) -> None:
        """A value beyond the range: the range of the kept history and the value (widened by the margin), and a new
        memory learned by replaying the kept history in it (its scores are not emitted: the past stays as scored)."""
        self._set_range([*self._history, value])
        self._memory = _Memory()
        self._left, self._predicted = (), set()
        for v in self._history:
            self._step(v)

    def _emit(self, raw: float) -> float:
        """The raw score, or 0 while resting (a raw score reached the threshold in the last ``rest`` points)."""
        out = raw if max(self._recent) < self.threshold else 0.0
        self._recent.append(raw)
        if len(self._recent) > self.rest:
            del self._recent[0]
        return out

    def _facts(self, value: float) -> tuple[int, ...]:
        self._lo, self._hi = min(self._lo, value), max(self._hi, value)
        span = self._hi - self._lo
        step = (span if span > 0 else float(self.levels)) / self.levels
        level = min(int((value - self._lo) / step), self.levels)
        return tuple(2 * b + ((level >> b) & 1) for b in range(self.bits))

    def _step(self, value: float) -> float:
        """The raw score of the value (the memory learns it)."""
        facts = self._facts(value)
        surprised = any(f not in self._predicted for f in facts)
        active_share, new_share = self._learn(facts)
        return (1.0 - active_share + new_share) / 2.0 if surprised else 0.0

    def _learn(self, facts: tuple[int, ...]) -> tuple[float, float]:
        """One step of the memory (steps 1 to 4 of the module's docstring): the active share and the new share;
        sets the next step's left facts and predictions."""
        memory = self._memory
        uniq: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
        new_zero = False
        if self._left:
            uniq.add((self._left, facts))
            new_zero = memory.store(self._left, facts, zero=True)
        active, selected, candidates = memory.score_selected(facts, new_zero)
        uniq.update(candidates)
        active_share = len(active) / selected if selected else 0.0
        neurons = {_NEURON + cid for cid in active[-self.neurons:]}
        self._left = tuple(sorted(set(facts) | neurons))
        added = sum(memory.store(left, right, zero=False) for left, right in candidates)
        self._predicted = memory.predict(self._left)
        added += 1 if new_zero else 0
        new_share = added / len(uniq) if new_zero and uniq else 0.0
        return active_share, new_share
