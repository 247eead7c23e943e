"""Megatron-LM's blending index: which source, and which of its samples, mixture sample i is.

megatron-core's ``build_blending_indices`` (``helpers.cpp``) keeps per-source counts and, for
each sample ``s``, picks the first source maximizing ``w[i] * max(s, 1.0) - count[i]`` in
float64 (strict ``>``, so the lowest index wins ties). Its arrays are copied here exactly:

    weights 30/70, 10 samples -> dataset_index        [1, 0, 1, 1, 0, 1, 1, 0, 1, 1]
                                 dataset_sample_index [0, 0, 1, 2, 1, 3, 4, 2, 5, 6]

The rule never looks at the total size, so the arrays for N samples are a prefix of those for
any M > N: ``BlendingIndex`` is one endless stream, built lazily in blocks. The greedy state at a
block's start is just the per-source counts, so a block keeps a checkpoint of counts (int64 per
source), its sources (uint8) and each sample's rank inside the block per source (uint16): 3 bytes
per sample, and O(1) lookup once the block is built.

Left out: Megatron's cache files and its mid-level dataset surplus bookkeeping; only what changes
the arrays (the weights' double normalization and the ``ceil(S * w)`` sizes) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Megatron's per-source buffer is built 0.5 % larger than its target (megatron-core 0.16).
SURPLUS = 1.005
BLOCK = 1 << 16  # samples per block: local ranks fit uint16
GROUP_SAMPLES = 1 << 22  # samples built per call when many blocks are missing


def normalize(weights: Sequence[float]) -> np.ndarray:
    """Weights / their sum, in float64, as megatron-core's ``utils.normalize`` computes it.

    [30, 70] -> [0.3, 0.7]
    """
    w = np.asarray(weights, dtype=np.float64)
    return w / np.sum(w)


def check_weights(weights: Sequence[float]) -> np.ndarray:
    """Refuse weights no mixture can use, naming the bad one; returns them as float64."""
    w = np.asarray(list(weights), dtype=np.float64)
    if w.ndim != 1 or len(w) == 0:
        raise ValueError("a mixture needs at least one (weight, source) pair.")
    if len(w) > 255:
        raise ValueError(f"a mixture takes at most 255 sources, got {len(w)}.")
    for i, x in enumerate(w.tolist()):
        if not math.isfinite(x) or x < 0:
            raise ValueError(
                f"weight {i} is {x!r}: weights must be finite and >= 0. Fix that weight."
            )
    if w.sum() <= 0:
        raise ValueError(
            f"the weights {w.tolist()} sum to 0: give at least one source a positive weight."
        )
    return w


def megatron_weights(weights: Sequence[float], *, normalize_twice: bool = True) -> np.ndarray:
    """The weights ``build_blending_indices`` sees.

    The ``--data-path`` route normalizes in the builder and again in ``BlendedDataset``
    (``normalize_twice=True``); a ``BlendedDataset`` built directly normalizes once. The two
    differ in the last bit for 0.7/0.2/0.1, which changes the order from sample 6 on.
    """
    w = normalize(check_weights(weights))
    return normalize(w) if normalize_twice else w


def split_sizes(weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-source (target, buffer) sample counts for a blend asked for ``size`` samples.

    target ``ceil(size * w)``, buffer ``ceil(target * 1.005)``; the blend has ``sum(target)``
    samples: weights 1/1/1, size 1000 -> targets 334 each, a blend of 1002.
    """
    target = np.array([math.ceil(size * float(x)) for x in weights], dtype=np.int64)
    buffer = np.array([math.ceil(int(t) * SURPLUS) for t in target], dtype=np.int64)
    return target, buffer


def _greedy(w: np.ndarray, counts: np.ndarray, start: int, n: int) -> np.ndarray:
    """Sources of samples start..start+n-1 by the rule; advances ``counts`` in place."""
    if len(w) == 1:
        counts[0] += n
        return np.zeros(n, dtype=np.uint8)
    if n <= LANE_STEPS:
        return _greedy_loop(w, counts, start, n)
    return _greedy_lanes(w, counts, start, n)


def _greedy_loop(w: np.ndarray, counts: np.ndarray, start: int, n: int) -> np.ndarray:
    """The rule, one sample at a time: the reference the lanes are checked against."""
    out = np.empty(n, dtype=np.uint8)
    ws, c = w.tolist(), counts.tolist()
    rest = range(1, len(ws))
    for j in range(n):
        s = start + j
        x = float(s) if s > 1 else 1.0  # max(s, 1.0); float(s) is exact below 2**53
        best, top = 0, ws[0] * x - c[0]
        for i in rest:
            e = ws[i] * x - c[i]
            if e > top:
                best, top = i, e
        out[j] = best
        c[best] += 1
    counts[:] = c
    return out


# Steps per lane: numpy's per-call cost (~2 us) is paid once per step for all lanes together.
LANE_STEPS = 256


def _guess_counts(w: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Per-source counts near the rule's after ``samples`` samples: floor(w * s), the rest to
    the largest remainders. Only a start guess: every lane is checked against its neighbour."""
    ideal = samples[:, None].astype(np.float64) * w[None, :]  # (M, K)
    guess = np.floor(ideal).astype(np.int64)
    short = samples - guess.sum(axis=1)  # (M,) samples still to hand out, 0..K
    rank = np.argsort(np.argsort(guess - ideal, axis=1, kind="stable"), axis=1)
    return guess + (rank < short[:, None])


def _greedy_lanes(w: np.ndarray, counts: np.ndarray, start: int, n: int) -> np.ndarray:
    """The rule over many lanes at once, each from a guessed start, then checked exactly.

    The range is cut into lanes of LANE_STEPS samples, all stepped together (one numpy call per
    step for every lane). A lane is right when its start counts equal the previous lane's end
    counts; lanes that are not are run again from that end, until none changes. Measured: the
    rule forgets a wrong start within a few samples, so a second round fixes almost every lane
    and a third finds nothing to do; the check makes the result exact whatever the guess.
    """
    k = len(w)
    lanes = -(-n // LANE_STEPS)
    first = start + LANE_STEPS * np.arange(lanes, dtype=np.int64)  # (M,)
    begin = _guess_counts(w, first)  # (M, K)
    begin[0] = counts
    out = np.empty((lanes, LANE_STEPS), dtype=np.uint8)
    end = np.empty_like(begin)
    todo = np.arange(lanes)
    while len(todo):
        m = len(todo)
        c = begin[todo].T.astype(np.float64)  # (K, m) exact integers, as double(count)
        x0 = first[todo].astype(np.float64)  # (m,)
        picks = np.empty((LANE_STEPS, m), dtype=np.uint8)
        ws = w.tolist()
        top, e = np.empty(m), np.empty(m)
        better = np.empty(m, dtype=bool)
        for t in range(LANE_STEPS):
            x = np.maximum(x0 + t, 1.0)  # (m,) max(s, 1.0)
            pick = picks[t]
            pick[:] = 0
            np.multiply(x, ws[0], out=top)
            np.subtract(top, c[0], out=top)  # w[0] * x - count[0]
            for i in range(1, k):
                np.multiply(x, ws[i], out=e)
                np.subtract(e, c[i], out=e)
                np.greater(e, top, out=better)  # strict >: the first maximum wins ties
                pick[better] = i
                np.maximum(top, e, out=top)
            for i in range(k):  # count[pick] += 1, one source at a time
                c[i] += pick == i
        out[todo] = picks.T
        c = c.T
        end[todo] = c.astype(np.int64)
        # Lane i+1 is right iff it began where lane i ended (lane 0 began at the true counts).
        wrong = np.flatnonzero((begin[1:] != end[:-1]).any(axis=1)) + 1
        begin[wrong] = end[wrong - 1]
        todo = wrong
    flat = out.reshape(-1)[:n]
    counts += np.bincount(flat, minlength=k)
    return flat.copy()


class BlendingIndex:
    """Lazy ``(dataset_index, dataset_sample_index)`` of megatron-core, for any sample count.

        >>> index = BlendingIndex([0.3, 0.7])
        >>> index.lookup(np.arange(10))
        (array([1, 0, 1, 1, 0, 1, 1, 0, 1, 1]), array([0, 0, 1, 2, 1, 3, 4, 2, 5, 6]))

    ``weights`` are used as given (pass ``megatron_weights(...)`` for Megatron's); blocks of
    ``block_size`` samples are built when first asked for, each from the previous block's counts.
    """

    def __init__(self, weights: Sequence[float], *, block_size: int = BLOCK) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        if not 1 <= block_size <= BLOCK:
            raise ValueError(f"block_size={block_size} must be in 1..{BLOCK}.")
        self.block_size = int(block_size)
        k = len(self.weights)
        self._checkpoints = [np.zeros(k, dtype=np.int64)]  # counts at each block's start
        self._sources: list[np.ndarray] = []  # (block_size,) uint8 per built block
        self._ranks: list[np.ndarray] = []  # (block_size,) uint16: rank inside the block

    @property
    def blocks_built(self) -> int:
        return len(self._sources)

    def nbytes(self) -> int:
        """Memory held by the built blocks."""
        return sum(a.nbytes for a in self._sources + self._ranks + self._checkpoints)

    def _build_until(self, block: int) -> None:
        k, size = len(self.weights), self.block_size
        while len(self._sources) <= block:
            b = len(self._sources)
            # Blocks still missing up to ``block``, a few million samples per call: the lanes
            # (see _greedy_lanes) run faster the more samples they share a step with.
            group = min(block + 1 - b, max(1, GROUP_SAMPLES // size))
            counts = self._checkpoints[b].copy()
            src = _greedy(self.weights, counts, b * size, group * size)
            start = self._checkpoints[b].copy()
            for g in range(group):
                part = src[g * size : (g + 1) * size]
                ranks = np.empty(size, dtype=np.uint16)
                for i in range(k):
                    where = np.flatnonzero(part == i)
                    ranks[where] = np.arange(len(where), dtype=np.uint16)
                start = start + np.bincount(part, minlength=k)
                self._sources.append(part.copy())
                self._ranks.append(ranks)
                self._checkpoints.append(start)

    def counts_at(self, sample: int) -> np.ndarray:
        """How many samples each source gave to samples 0..sample-1."""
        block, offset = divmod(int(sample), self.block_size)
        if offset == 0:
            self._build_until(block - 1) if block else None
            return self._checkpoints[block].copy()
        self._build_until(block)
        src = self._sources[block][:offset]
        return self._checkpoints[block] + np.bincount(src, minlength=len(self.weights))

    def lookup(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mixture sample numbers (int64 >= 0) -> (source, that source's sample number)."""
        samples = np.asarray(samples, dtype=np.int64)
        if samples.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if samples.min() < 0:
            raise IndexError(f"mixture sample {int(samples.min())} is negative.")
        block, offset = np.divmod(samples, self.block_size)
        self._build_until(int(block.max()))
        first = int(block.min())
        if first == int(block.max()):  # the common case: all in one block
            d = self._sources[first][offset].astype(np.int64)
            return d, self._checkpoints[first][d] + self._ranks[first][offset]
        d = np.empty(samples.shape, dtype=np.int64)
        j = np.empty(samples.shape, dtype=np.int64)
        # A batch touches one or two blocks: loop over those, never over all built blocks.
        for b in np.unique(block).tolist():
            at = block == b
            d[at] = self._sources[b][offset[at]]
            j[at] = self._checkpoints[b][d[at]] + self._ranks[b][offset[at]]
        return d, j

    def arrays(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``size`` entries, as megatron-core's two arrays (int16, int64)."""
        d, j = self.lookup(np.arange(size, dtype=np.int64))
        return d.astype(np.int16), j


def build_blending_indices(weights: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Eager arrays for ``size`` samples, weights used as given (megatron-core's helper)."""
    return BlendingIndex(weights).arrays(size)
