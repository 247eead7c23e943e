"""A mixture of sources in exact proportions, in Megatron-LM's order, with per-source epochs.

Sample ``i`` of a mixture comes from the source and per-source sample number that megatron-core's
``build_blending_indices`` gives (``gptdata.windows.blending``); per-source sample ``j`` of a source with
``n`` windows is window ``j % n`` of that source's epoch ``j // n``, in a fresh seeded shuffle per
epoch (``shuffle=True``), so a small source is upsampled epoch after epoch.

    >>> mix = Mixture([(0.7, web_ids), (0.3, code_ids)], max_length=4, stride=4, seed=0)
    >>> mix.locate(np.arange(4))   # (source, window) of samples 0..3
    (array([0, 1, 0, 0]), array([...]))
    >>> loader = create_dataloader(mix, batch_size=8)

Left out: Megatron's cache files, and splits: pass one store split per source.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..tokenizers import Tokenizer
from .blending import BlendingIndex, megatron_weights, split_sizes
from .dataset import SlidingWindowDataset
from .documents import Batch, BatchFormat, Documents, Format
from .loaderstate import epoch_seed, is_int


class Mixture:
    """Windows from several sources, ``weights`` shares of them, in Megatron-LM's order.

    ``sources``: ``[(weight, source), ...]``, each source anything ``SlidingWindowDataset``
    takes. ``size``: the samples the mixture is asked for (Megatron's ``S``); ``len(mixture)``
    is ``sum(ceil(S * w))`` as Megatron's blend (1/1/1, S=1000 -> 1002). By default ``S`` is one
    epoch of the largest share's source. ``normalize_twice=True`` follows Megatron's
    ``--data-path`` route; ``False`` a ``BlendedDataset`` built directly.

    Two mixtures over the same source draw from it independently: the per-source position is
    the mixture's own (it is a pure function of the sample number).
    """

    def __init__(
        self,
        sources: Sequence[tuple[float, Any]],
        *,
        max_length: int,
        stride: int,
        documents: Documents = "concat",
        batch_format: BatchFormat = "tuple",
        eot_id: int | None = None,
        tokenizer: str | Tokenizer = "gpt2",
        split: str = "train",
        size: int | None = None,
        seed: int = 0,
        shuffle: bool = True,
        normalize_twice: bool = True,
    ) -> None:
        pairs = list(sources)
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(
                    f"mixture entry {i} is {pair!r}: give (weight, source) pairs, e.g. "
                    "Mixture([(0.7, Path('web/')), (0.3, Path('code/'))], ...)."
                )
            if pair[1] is None:
                raise ValueError(f"mixture entry {i} has no source (None): pass a path or IDs.")
        if not is_int(seed) or seed < 0:
            raise ValueError(f"seed={seed!r} must be an integer >= 0.")
        self.weights = megatron_weights([p[0] for p in pairs], normalize_twice=normalize_twice)
        self.datasets = [
            SlidingWindowDataset(
                source,
                max_length=max_length,
                stride=stride,
                tokenizer=tokenizer,
                split=split,
                documents=documents,
                batch_format=batch_format,
                eot_id=eot_id,
            )
            for _, source in pairs
        ]
        self.max_length, self.stride = int(max_length), int(stride)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.format: Format = self.datasets[0].format
        self.windows = np.array([len(d) for d in self.datasets], dtype=np.int64)
        if size is None:
            top = int(np.argmax(self.weights))  # the largest share's source: one epoch of it
            size = int(self.windows[top] / self.weights[top])
        if not is_int(size) or size < 1:
            raise ValueError(f"size={size!r} must be an integer >= 1 (samples asked for).")
        self.size = int(size)
        self.targets, _ = split_sizes(self.weights, self.size)
        self.index = BlendingIndex(self.weights)
        self._orders: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return int(self.targets.sum())

    def __repr__(self) -> str:
        shares = ", ".join(f"{w:.3f}" for w in self.weights)
        return f"Mixture(sources={len(self.datasets)}, weights=[{shares}], samples={len(self):,})"

    @property
    def fingerprint(self) -> str:
        """Weights, each source's identity, seed and shuffle: what fixes the sample stream."""
        blob = json.dumps(
            [self.weights.tolist(), self.sources(), self.seed, self.shuffle], sort_keys=True
        )
        return "mix:" + hashlib.sha256(blob.encode()).hexdigest()

    def sources(self) -> list[str]:
        """Each source's identity: its token fingerprint with max_length and stride."""
        return [d.fingerprint for d in self.datasets]

    def with_order(self, *, seed: int, shuffle: bool) -> Mixture:
        """The same mixture with another per-source shuffle (shares the blending index)."""
        other = copy.copy(self)
        other.seed, other.shuffle, other._orders = int(seed), bool(shuffle), OrderedDict()
        return other

    def _order(self, source: int, epoch: int) -> np.ndarray:
        """Window order of ``source`` in its ``epoch`` (the loader's per-epoch seeding)."""
        key = (source, epoch)
        order = self._orders.get(key)
        if order is None:
            g = torch.Generator()
            # One seed per source, then the loader's (seed, epoch) rule on it.
            g.manual_seed(epoch_seed(epoch_seed(self.seed, source), epoch))
            order = torch.randperm(int(self.windows[source]), generator=g).numpy()
            self._orders[key] = order
            if len(self._orders) > 2 * len(self.datasets) + 2:  # a batch spans <= 2 epochs
                self._orders.popitem(last=False)
        return order

    def locate(self, samples: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mixture sample numbers (any >= 0; past ``len`` the stream goes on) -> (source, window)."""
        d, j = self.index.lookup(np.asarray(samples, dtype=np.int64))
        windows = np.empty_like(j)
        for s in np.unique(d).tolist():
            at = d == s
            epoch, pos = np.divmod(j[at], self.windows[s])
            if not self.shuffle:
                windows[at] = pos
                continue
            out = np.empty_like(pos)
            for e in np.unique(epoch).tolist():
                here = epoch == e
                out[here] = self._order(s, e)[pos[here]]
            windows[at] = out
        return d, windows

    def rows(self, samples: Any) -> np.ndarray:
        """Samples -> (B, max_length + 1) rows of token IDs, int64."""
        d, windows = self.locate(samples)
        rows = np.empty((len(d), self.max_length + 1), dtype=np.int64)
        for s in np.unique(d).tolist():
            at = d == s
            ds = self.datasets[s]
            rows[at] = ds.tokens.gather(windows[at] * ds.stride, self.max_length + 1)
        return rows  # (B, L + 1)

    def get_batch(self, samples: Any) -> Batch:
        """Samples -> one batch in the mixture's format: (B, max_length) inputs and targets."""
        rows = self.rows(samples)  # (B, L + 1)
        if not self.format.plain:
            return self.format(rows)
        rows_t = torch.from_numpy(rows)
        # Each its own contiguous tensor, as torch.stack gives (issue 19).
        return rows_t[:, :-1].contiguous(), rows_t[:, 1:].contiguous()  # (B, L), (B, L)

    def __getitem__(self, index: int) -> Batch:
        """One sample: (input, target), ``(max_length,)`` int64 each."""
        x, y = self.get_batch([int(index)])[:2]  # type: ignore[misc]
        return x[0], y[0]


def report(mixture: Mixture, *, samples: int | None = None) -> list[dict[str, Any]]:
    """Per source: share, windows, samples and tokens drawn, epochs consumed, upsampled or not.

    For ``samples`` mixture samples (default ``len(mixture)``): weights 0.5/0.5 over sources of
    100 and 10 windows, 200 samples -> source 1 draws 100 samples, 10.0 epochs: upsampled.
    """
    n = len(mixture) if samples is None else int(samples)
    drawn = mixture.index.counts_at(n)
    rows = []
    for i, ds in enumerate(mixture.datasets):
        epochs = float(drawn[i]) / float(mixture.windows[i])
        rows.append(
            {
                "source": f"source {i} ({ds.corpus.description})",
                "share": float(mixture.weights[i]),
                "windows": int(mixture.windows[i]),
                "samples": int(drawn[i]),
                "tokens": int(drawn[i]) * mixture.max_length,
                "epochs": epochs,
                "upsampled": epochs > 1.0,
            }
        )
    return rows


def report_text(mixture: Mixture, *, samples: int | None = None) -> str:
    """``report`` as lines: ``code: share 0.200, 1,000 windows, 3,200 samples, 3.20 epochs: upsampled``."""
    lines = []
    for r in report(mixture, samples=samples):
        note = ": upsampled" if r["upsampled"] else ""
        lines.append(
            f"{r['source']}: share {r['share']:.3f}, {r['windows']:,} windows, "
            f"{r['samples']:,} samples, {r['tokens']:,} tokens, {r['epochs']:.2f} epochs{note}"
        )
    return "\n".join(lines)


def epochs_needed(mixture: Mixture, samples: int) -> list[int]:
    """How many epochs each source starts to give ``samples`` mixture samples."""
    drawn = mixture.index.counts_at(samples)
    return [math.ceil(int(c) / int(n)) for c, n in zip(drawn, mixture.windows, strict=True)]
