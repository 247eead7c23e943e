"""The data loader: batches of sliding windows, seeded, distributed, resumable mid-epoch.

``create_dataloader`` has the classic ``create_dataloader_v1`` defaults and, with ``seed=None``,
its exact batches: the shuffle draws from torch's global generator the way
``DataLoader(dataset, shuffle=True)`` does, so after ``torch.manual_seed(123)`` both loaders give
the same batches. With ``seed=int`` the order comes from ``(seed, epoch)`` alone.

A sampler in the main process draws every epoch's order, so the order never depends on
``num_workers`` and a resume only has to skip indices. Each batch is one vectorized gather from the
token array: in-process with ``num_workers=0``; with workers, torch's ``DataLoader`` fetches
~1 MiB of rows per transfer (several batches), which the main process cuts into batches.

    >>> loader = create_dataloader("some text ...", batch_size=2, max_length=4, stride=4)
    >>> inputs, targets = next(iter(loader))           # (2, 4), (2, 4), int64
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from .tokenizers import Tokenizer
from .windows import SlidingWindowDataset

STATE_VERSION = 1


def _epoch_seed(seed: int, epoch: int) -> int:
    # SeedSequence mixes both numbers, so (seed=1, epoch=0) and (seed=0, epoch=1) differ.
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


class _BatchSampler:
    """Yields this rank's window indices for the current epoch, ``per_item`` batches at a time.

    Each item is an int64 array of up to ``per_item * batch_size`` window indices, batch-aligned.
    """

    def __init__(self, loader: GPTDataLoader, skip: int, per_item: int = 1) -> None:
        self.loader, self.skip, self.per_item = loader, skip, per_item

    def __len__(self) -> int:
        return math.ceil((len(self.loader) - self.skip) / self.per_item)

    def __iter__(self) -> Iterator[np.ndarray]:
        # A generator, so the permutation is drawn at the first batch, as RandomSampler does.
        order = self.loader._epoch_order()
        bs, end = self.loader.batch_size, len(self.loader)
        for b in range(self.skip, end, self.per_item):
            yield order[b * bs : min(b + self.per_item, end) * bs]


class _Rows:
    """What a worker fetches: window indices -> one (n, max_length + 1) int64 block of rows."""

    def __init__(self, dataset: SlidingWindowDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, indices: np.ndarray) -> torch.Tensor:
        rows = self.dataset.tokens.gather(
            indices * self.dataset.stride, self.dataset.max_length + 1
        )
        return torch.from_numpy(rows.astype(np.int64, copy=False))  # (n, L + 1)


# Worker results cross processes through shared memory, at a fixed cost per transfer (~0.8 ms
# here); sending ~1 MiB of rows at a time instead of one small batch made 2 workers 10x faster.
WORKER_TRANSFER_BYTES = 1 << 20


class GPTDataLoader:
    """Iterable of ``(inputs, targets)``, each ``(batch_size, max_length)`` int64.

    Distributed (``world_size > 1``): every epoch's order is shared by all ranks (``seed``
    defaults to 0 there), then cut so each rank gets a disjoint, equal-size share: with
    ``drop_last=True`` the last ``len(dataset) % world_size`` windows of the order are dropped
    (and each rank drops its partial batch); with ``drop_last=False`` the order is padded with
    its own first windows, like ``DistributedSampler``, so together the ranks cover every window.
    """

    def __init__(
        self,
        dataset: SlidingWindowDataset,
        *,
        batch_size: int = 4,
        shuffle: bool = True,
        drop_last: bool = True,
        num_workers: int = 0,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        pin_memory: bool = False,
        multiprocessing_context: Any = None,
    ) -> None:
        if (
            rank is None
            and world_size is None
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
        ):
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        rank, world_size = rank or 0, world_size or 1
        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("world_size", world_size, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
        if not 0 <= rank < world_size:
            raise ValueError(
                f"rank={rank} must be in 0..{world_size - 1} for world_size={world_size}."
            )
        if world_size > 1 and seed is None:
            seed = 0  # every rank must draw the same order
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.num_workers, self.seed = drop_last, num_workers, seed
        self.rank, self.world_size, self.pin_memory = rank, world_size, pin_memory
        self.multiprocessing_context = multiprocessing_context
        n = len(dataset)
        self.per_rank = n // world_size if drop_last else math.ceil(n / world_size)
        self.n_batches = (
            self.per_rank // batch_size if drop_last else math.ceil(self.per_rank / batch_size)
        )
        if self.n_batches == 0:
            where = f" per rank (world_size={world_size})" if world_size > 1 else ""
            raise ValueError(
                f"batch_size={batch_size} with drop_last={drop_last} gives 0 batches: there are "
                f"{self.per_rank:,} windows{where} ({len(dataset.tokens):,} tokens, "
                f"max_length={dataset.max_length}, stride={dataset.stride}). Lower batch_size, "
                "max_length or stride, add text, or pass drop_last=False."
            )
        self.epoch = 0
        self._batches_done = 0  # batches of the current epoch handed out so far
        self._perm_seed: int | None = None  # seed=None: what the global RNG gave this epoch
        self._skip = 0

    def __len__(self) -> int:
        return self.n_batches

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` at the next iteration (reshuffles when ``seed`` is set)."""
        self.epoch, self._batches_done, self._skip, self._perm_seed = int(epoch), 0, 0, None

    def _epoch_order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            order = torch.arange(n)
        else:
            if self.seed is None:
                if self._perm_seed is None:
                    # Exactly RandomSampler's draw from the global generator.
                    self._perm_seed = int(torch.empty((), dtype=torch.int64).random_().item())
                seed = self._perm_seed
            else:
                seed = _epoch_seed(self.seed, self.epoch)
            g = torch.Generator()
            g.manual_seed(seed)
            order = torch.randperm(n, generator=g)
        order_np = order.numpy()
        if self.world_size > 1:
            total = self.per_rank * self.world_size
            if total > n:  # drop_last=False: pad with the order's own start
                order_np = np.concatenate([order_np, order_np[: total - n]])
            order_np = order_np[:total][self.rank :: self.world_size]
        return order_np

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._batches_done >= self.n_batches:  # the last epoch was finished
            self.set_epoch(self.epoch + 1)
        skip, self._skip = self._skip, 0
        if skip == 0:
            self._batches_done = 0
            if self.seed is None:
                self._perm_seed = None
        self._batches_done = skip
        if self.num_workers == 0:
            # In-process: gather straight from the sampler's indices; DataLoader's per-batch
            # machinery cost 3-4x the gather itself (bench/loader.py). Draw the base seed that
            # DataLoader's iterator draws, so the global RNG stream matches the classic loader.
            torch.empty((), dtype=torch.int64).random_()
            stride = self.dataset.stride
            for indices in _BatchSampler(self, skip):
                batch = self.dataset.batch_at(indices * stride)
                if self.pin_memory:
                    batch = (batch[0].pin_memory(), batch[1].pin_memory())
                self._batches_done += 1
                yield batch
            return
        bs, row_bytes = self.batch_size, (self.dataset.max_length + 1) * 8
        per_item = max(1, WORKER_TRANSFER_BYTES // (bs * row_bytes))
        loader = DataLoader(
            _Rows(self.dataset),
            batch_size=None,
            sampler=_BatchSampler(self, skip, per_item),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            multiprocessing_context=self.multiprocessing_context,
        )
        for block in loader:  # (up to per_item * B, L + 1)
            for start in range(0, len(block), bs):
                rows = block[start : start + bs]  # (B, L + 1)
                self._batches_done += 1
                yield rows[:, :-1], rows[:, 1:]  # (B, L), (B, L)

    # The protocol torchdata's StatefulDataLoader calls.
    def _settings(self) -> dict[str, Any]:
        return {
            "max_length": self.dataset.max_length,
            "stride": self.dataset.stride,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where the loader is: enough for a new loader to yield exactly the remaining batches."""
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "batches_done": self._batches_done,
            "perm_seed": self._perm_seed,
            "data": self.dataset.tokens.fingerprint,
            "settings": self._settings(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration yields the batches not yet handed out."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a gptdata loader state (version {STATE_VERSION} expected).")
        if state["data"] != self.dataset.tokens.fingerprint:
            raise ValueError(
                "this loader state was saved over other token data (fingerprint "
                f"{state['data'][:19]}..., this loader has "
                f"{self.dataset.tokens.fingerprint[:19]}...). Load it into a loader "
                "over the same store split or tokens."
            )
        mine = self._settings()
        diff = {k: (v, mine.get(k)) for k, v in state["settings"].items() if mine.get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"this loader state was saved with other settings ({shown}). "
                "Create the loader with the saved settings."
            )
        self.epoch = int(state["epoch"])
        self._batches_done = self._skip = int(state["batches_done"])
        self._perm_seed = state["perm_seed"]
        if self._skip >= self.n_batches:
            self._skip = self._batches_done = self.n_batches


def create_dataloader(
    source: Any,
    *,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool = False,
    tokenizer: str | Tokenizer = "gpt2",
    split: str = "train",
) -> GPTDataLoader:
    """Sliding-window batches from a Path (file, folder or store), store, split, IDs or text.

    ``source`` is anything ``SlidingWindowDataset`` takes; ``split`` picks a store's split.

    "In the heart of the city ...", batch_size=8, max_length=4, stride=4
        -> (inputs, targets), each (8, 4) int64, targets = inputs shifted by one token.
    """
    dataset = SlidingWindowDataset(
        source, max_length=max_length, stride=stride, tokenizer=tokenizer, split=split
    )
    return GPTDataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        seed=seed,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
    )
