"""What the loader's sampler hands out and what a worker does with it: window indices -> rows.

``_BatchSampler`` draws a pass's window order in the main process and yields it a batch (or,
for workers, ~1 MiB of batches) at a time; ``_Rows`` is what a ``DataLoader`` worker fetches from.
A split on object storage downloads ahead of need by a plan of the shards the pass will read
(``RemoteSplit.read_plan``): in-process the sampler hands the plan to the split itself; with
workers each item carries the pass's plan, since a worker's copy of the split was made (pickled
or forked) before the sampler drew the order, and without it a worker downloads each shard only
when a read waits on it.

    >>> sampler = _BatchSampler(loader, skip=0, per_item=4, plan=True)
    >>> item = next(iter(sampler))      # Item(indices (4 * batch_size,), plan (pass id, shards))
    >>> _Rows(loader.dataset)[item]      # (4 * batch_size, max_length + 1) int64, in a worker
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from .dataset import SlidingWindowDataset
from .documents import Batch, pin
from .mixture import Mixture

# Worker results cross processes through shared memory, at a fixed cost per transfer (~0.8 ms
# here); sending ~1 MiB of rows at a time instead of one small batch made 2 workers 10x faster.
WORKER_TRANSFER_BYTES = 1 << 20


class Item(NamedTuple):
    """One worker fetch: window indices and the pass's read plan (an id, the shards in order)."""

    indices: np.ndarray
    plan: tuple[str, np.ndarray] | None


class _BatchSampler:
    """Yields this rank's window indices for the current epoch, ``per_item`` batches at a time.

    Each item is an int64 array of up to ``per_item * batch_size`` window indices, batch-aligned;
    with ``plan`` (workers) an ``Item`` that also carries the pass's read plan. ``loader`` is
    the ``GPTDataLoader`` (typed ``Any``: loader.py imports this module, not the other way).
    """

    def __init__(
        self, loader: Any, skip: int, per_item: int = 1, *, side: bool = False,
        plan: bool = False,
    ) -> None:  # fmt: skip
        self.loader, self.skip, self.per_item, self.side = loader, skip, per_item, side
        self.plan = plan

    def __len__(self) -> int:
        return math.ceil((len(self.loader) - self.skip) / self.per_item)

    def __iter__(self) -> Iterator[Any]:
        # A generator, so the permutation is drawn at the first batch, as RandomSampler does.
        order = self.loader._epoch_order() if not self.side else self.loader._side_order()
        bs, end = self.loader.batch_size, len(self.loader)
        tokens = getattr(self.loader.dataset, "tokens", None)
        shards: tuple[str, np.ndarray] | None = None
        if hasattr(tokens, "read_plan"):  # a store on object storage: download ahead of need
            ds = self.loader.dataset
            plan = tokens.read_plan(order[self.skip * bs : end * bs] * ds.stride, ds.max_length + 1)
            if self.plan:  # the workers' copies follow it (a few bytes per shard per item)
                shards = (uuid.uuid4().hex, np.asarray(plan, dtype=np.int32))
            else:
                tokens.follow_plan(plan)
        for b in range(self.skip, end, self.per_item):
            indices = order[b * bs : min(b + self.per_item, end) * bs]
            yield Item(indices, shards) if self.plan else indices


class _Rows:
    """What a worker fetches: window indices -> one (n, max_length + 1) int64 block of rows."""

    def __init__(self, dataset: SlidingWindowDataset | Mixture) -> None:
        self.dataset = dataset
        self._plan_id: str | None = None  # the plan this copy follows (one per pass)

    def __getitem__(self, item: Item | np.ndarray) -> torch.Tensor:
        indices = item
        if isinstance(item, Item):
            indices = item.indices
            if item.plan is not None and item.plan[0] != self._plan_id:
                self.dataset.tokens.follow_plan(item.plan[1].tolist())  # type: ignore[union-attr]
                self._plan_id = item.plan[0]
        if isinstance(self.dataset, Mixture):
            return torch.from_numpy(self.dataset.rows(indices))  # (n, L + 1)
        rows = self.dataset.tokens.gather(
            indices * self.dataset.stride, self.dataset.max_length + 1
        )
        return torch.from_numpy(rows.astype(np.int64, copy=False))  # (n, L + 1)


def _end_pass(dataset: SlidingWindowDataset | Mixture) -> None:
    """A pass ended, its workers gone: a split on object storage evicts its cache back within
    the limit (the workers' shards are free now; each held up to its share of the limit)."""
    tokens = getattr(dataset, "tokens", None)
    if hasattr(tokens, "end_pass"):
        tokens.end_pass()


def _split(rows: np.ndarray) -> Batch:
    """(B, L + 1) rows -> inputs, targets: each its own contiguous int64 tensor, as torch.stack
    gives (views of one buffer break ``targets.view(-1)``). astype copies into C order, so this
    is one pass over the rows per tensor."""
    x = torch.from_numpy(rows[:, :-1].astype(np.int64))  # (B, L)
    y = torch.from_numpy(rows[:, 1:].astype(np.int64))  # (B, L)
    return x, y


def pass_batches(loader: Any, skip: int, *, side: bool = False) -> Iterator[Batch]:
    """One pass of ``loader`` (a ``GPTDataLoader``) from batch ``skip``: in-process, a batch per
    gather; with workers, ~1 MiB of rows per transfer, cut into batches here."""
    dataset, bs = loader.dataset, loader.batch_size
    per_item = max(1, WORKER_TRANSFER_BYTES // (bs * (dataset.max_length + 1) * 8))
    fmt = None if dataset.format.plain else dataset.format  # documents="mask", batch_format=...
    if loader.num_workers == 0:
        # DataLoader's per-batch machinery cost 3-4x the gather itself (bench/loader.py). Draw
        # the base seed its iterator draws, so the global RNG stream matches the classic loader.
        torch.empty((), dtype=torch.int64).random_()
        if isinstance(dataset, Mixture):
            # Per batch, a mixture's lookups cost 10x the gather (bench/mixture.py): locate
            # ~1 MiB of batches at once, then cut.
            for indices in _BatchSampler(loader, skip, per_item, side=side):
                yield from _cut(torch.from_numpy(dataset.rows(indices)), bs, fmt, loader.pin_memory)
            return
        for indices in _BatchSampler(loader, skip, side=side):
            if fmt is None:
                batch = _split(
                    dataset.tokens.gather(indices * dataset.stride, dataset.max_length + 1)
                )
            else:
                batch = dataset.batch_at(indices * dataset.stride)
            yield pin(batch) if loader.pin_memory else batch
        _end_pass(dataset)
        return
    workers = DataLoader(
        _Rows(dataset),
        batch_size=None,
        sampler=_BatchSampler(loader, skip, per_item, side=side, plan=True),
        num_workers=loader.num_workers,
        multiprocessing_context=loader.multiprocessing_context,
    )
    # Pinned here, batch by batch: the copy that cuts a block into batches is what must be
    # pinned (pinning the block, as DataLoader's pin_memory would, pins nothing a batch keeps).
    # Cutting in the workers instead sent twice the bytes in two tensors: 1.5-2x slower.
    for block in workers:  # (up to per_item * B, L + 1)
        yield from _cut(block, bs, fmt, loader.pin_memory)
    _end_pass(dataset)  # the iterator above shut its workers down when it ran out


def _cut(block: torch.Tensor, bs: int, fmt: Any, pin_memory: bool) -> Iterator[Batch]:
    """(n, L + 1) rows -> batches of ``bs``: inputs and targets, or ``fmt``'s batch."""
    for start in range(0, len(block), bs):
        rows = block[start : start + bs]  # (B, L + 1)
        batch = (rows[:, :-1].contiguous(), rows[:, 1:].contiguous()) if fmt is None else fmt(rows)
        yield pin(batch) if pin_memory else batch  # (B, L), (B, L)
