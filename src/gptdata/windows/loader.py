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

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..tokenizers import Tokenizer
from .batches import pass_batches
from .dataset import SlidingWindowDataset
from .documents import Batch, BatchFormat, Documents
from .loaderstate import (
    STATE_VERSION,
    batches_per_rank,
    check_loader_args,
    check_same_data,
    check_settings,
    check_state,
    epoch_seed,
    is_int,
    resume_batches,
)
from .mixture import Mixture


def _accelerator_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return bool(accelerator.is_available())
    return bool(torch.cuda.is_available())


class GPTDataLoader:
    """Iterable of ``(inputs, targets)``, each ``(batch_size, max_length)`` int64.

    Distributed (``world_size > 1``): every epoch's order is shared by all ranks (``seed``
    defaults to 0 there), then cut so each rank gets a disjoint, equal-size share: with
    ``drop_last=True`` the last ``len(dataset) % world_size`` windows of the order are dropped
    (and each rank drops its partial batch); with ``drop_last=False`` the order is padded with
    its own first windows, like ``DistributedSampler``, so together the ranks cover every window.

    ``for x, y in loader`` is one pass (an epoch); ``loader.forever()`` is an endless stream of
    batches across epochs for loops that count steps. See ``state_dict`` for what is saved.

    ``documents``, ``batch_format``, ``eot_id``: when given, override the dataset's (see
    ``SlidingWindowDataset``); the order, ranks and resume do not depend on them.
    """

    def __init__(
        self,
        dataset: SlidingWindowDataset | Mixture,
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
        documents: Documents | None = None,
        batch_format: BatchFormat | None = None,
        eot_id: int | None = None,
    ) -> None:
        mixture = isinstance(dataset, Mixture)
        if not mixture and not (hasattr(dataset, "tokens") and hasattr(dataset, "max_length")):
            raise TypeError(
                f"GPTDataLoader takes a SlidingWindowDataset, got {type(dataset).__name__}. For "
                "a Path, store, split, IDs or text use create_dataloader(source, max_length=..., "
                "stride=...)."
            )
        if mixture and (documents is not None or batch_format is not None or eot_id is not None):
            raise ValueError(
                "documents, batch_format and eot_id of a Mixture are set when it is built: "
                "Mixture([...], documents=..., batch_format=...)."
            )
        if documents is not None or batch_format is not None or eot_id is not None:
            dataset = dataset.with_format(
                documents=documents, batch_format=batch_format, eot_id=eot_id
            )
        batch_size, num_workers, seed, rank, world_size = check_loader_args(
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )
        if isinstance(dataset, Mixture):
            # A mixture's order is Megatron's; seed and shuffle act inside each source.
            if seed is not None or not shuffle:
                dataset = dataset.with_order(
                    seed=dataset.seed if seed is None else seed, shuffle=shuffle
                )
            seed = dataset.seed
        if world_size > 1 and seed is None:
            seed = 0  # every rank must draw the same order
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.num_workers, self.seed = drop_last, num_workers, seed
        self.rank, self.world_size, self.pin_memory = rank, world_size, pin_memory
        self.multiprocessing_context = multiprocessing_context
        if pin_memory and not _accelerator_available():
            # As torch's DataLoader does: pinning needs an accelerator; go on without it.
            warnings.warn(
                "pin_memory=True, but no accelerator is available: batches are not pinned. "
                "Pass pin_memory=False on machines without a GPU.",
                stacklevel=2,
            )
            self.pin_memory = False
        self.per_rank, self.n_batches = batches_per_rank(
            len(dataset), batch_size, world_size, drop_last
        )
        if self.n_batches == 0:
            where = f" per rank (world_size={world_size})" if world_size > 1 else ""
            what = (
                repr(dataset) if isinstance(dataset, Mixture) else f"{len(dataset.tokens):,} tokens"
            )
            raise ValueError(
                f"batch_size={batch_size} with drop_last={drop_last} gives 0 batches: there are "
                f"{self.per_rank:,} windows{where} ({what}, "
                f"max_length={dataset.max_length}, stride={dataset.stride}). Lower batch_size, "
                "max_length or stride, add text, or pass drop_last=False."
            )
        self.epoch = 0
        self._batches_done = 0  # batches of the current epoch handed out so far
        self._perm_seed: int | None = None  # seed=None: what the global RNG gave this epoch
        self._skip = 0
        self._owner: object | None = None  # the live iterator whose pass state_dict() follows

    def __len__(self) -> int:
        return self.n_batches

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` at the next iteration (reshuffles when ``seed`` is set)."""
        self.epoch, self._batches_done, self._skip, self._perm_seed = int(epoch), 0, 0, None

    def _epoch_order(self) -> np.ndarray:
        n = len(self.dataset)
        if isinstance(self.dataset, Mixture):
            # Epoch e is mixture samples e*n .. e*n + n - 1: later epochs go on down the
            # blending stream, so forever() extends the mixture and sources keep their epochs.
            order = torch.arange(self.epoch * n, (self.epoch + 1) * n)
        elif not self.shuffle:
            order = torch.arange(n)
        else:
            if self.seed is None:
                if self._perm_seed is None:
                    # Exactly RandomSampler's draw from the global generator.
                    self._perm_seed = int(torch.empty((), dtype=torch.int64).random_().item())
                seed = self._perm_seed
            else:
                seed = epoch_seed(self.seed, self.epoch)
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

    def _side_order(self) -> np.ndarray:
        """A side pass's order: its own draw as a new torch DataLoader iterator makes (seed=None),
        else the current epoch's order from its start. Touches no state of the training pass."""
        saved = self._perm_seed
        if self.shuffle and self.seed is None and not isinstance(self.dataset, Mixture):
            self._perm_seed = None  # _epoch_order draws a fresh one from the global generator
        try:
            return self._epoch_order()
        finally:
            self._perm_seed = saved

    def __iter__(self) -> Iterator[Batch]:
        """One pass: the rest of the current epoch, or the next epoch when it was finished."""
        return self._iterate(forever=False)

    def forever(self) -> Iterator[Batch]:
        """Batches without end, epoch after epoch (each reshuffled as ``set_epoch`` does).

        For training loops that count steps, not epochs; ``state_dict()`` at any step resumes
        the stream exactly, across epoch ends too. With ``seed=None`` the first epoch's order
        comes from torch's global generator (as the classic loader's) and each later epoch's
        from the one before, so the saved state alone fixes every later epoch.

            >>> stream = loader.forever()
            >>> for step in range(10_000):
            ...     inputs, targets = next(stream)             # (B, L), (B, L)
        """
        return self._iterate(forever=True)

    def _iterate(self, *, forever: bool) -> Iterator[Batch]:
        token = object()  # identifies this iterator; only the oldest live one moves the state
        if self._owner is not None:
            # A side pass (the book's chapter-5 loop evaluates on the training loader): its own
            # order, as a second torch DataLoader iterator; no warning, no state moved.
            while True:
                yield from self._pass(token, side=True)
                if not forever:
                    return
        try:
            while True:
                self._begin_pass(token, chain=forever)
                yield from self._pass(token)
                if not forever:
                    return
        finally:
            if self._owner is token:
                self._owner = None

    def _begin_pass(self, token: object, *, chain: bool) -> None:
        chained = None
        if self._batches_done >= self.n_batches:  # the last epoch was finished
            prev = self._perm_seed
            self.set_epoch(self.epoch + 1)
            if chain and prev is not None:  # forever(), seed=None: from the last epoch's seed
                chained = epoch_seed(prev, self.epoch)
        skip, self._skip = self._skip, 0
        if skip == 0 and self.seed is None:
            self._perm_seed = chained
        self._batches_done = skip
        self._owner = token

    def _pass(self, token: object, *, side: bool = False) -> Iterator[Batch]:
        for batch in pass_batches(self, 0 if side else self._batches_done, side=side):
            if self._owner is token:  # a side pass never owns the state
                self._batches_done += 1
            yield batch

    # The protocol torchdata's StatefulDataLoader calls.
    def _data_id(self) -> str:
        if isinstance(self.dataset, Mixture):
            return self.dataset.fingerprint
        return self.dataset.tokens.fingerprint

    def _settings(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if isinstance(self.dataset, Mixture):
            extra = {
                "weights": self.dataset.weights.tolist(),
                "sources": self.dataset.sources(),
                "size": self.dataset.size,
            }
        return extra | {
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
        """Where the loader is: enough for a new loader to yield exactly the remaining batches.

        The state is the position of the current pass: ``epoch``, the batches of that epoch
        handed out so far (``batches_done``) and the epoch's shuffle seed. Several passes:

        * a pass that runs to its end leaves ``batches_done == len(loader)``; the next pass
          (``for``, ``iter`` or ``forever()``) starts epoch ``epoch + 1``;
        * a pass started while another is live is a side pass (the book's chapter-5 loop
          evaluates on the training loader): it yields its own order, as a second torch
          DataLoader iterator would, and neither warns nor moves the state, which follows the
          oldest live pass;
        * ``forever()`` is one stream across epochs: its state resumes it exactly, mid-epoch or
          at an epoch's end.

            >>> state = loader.state_dict()                      # after 7 of 18 batches
            >>> fresh = create_dataloader(same_source, ...)      # same settings
            >>> fresh.load_state_dict(state)                     # yields batches 8..18
        """
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "batches_done": self._batches_done,
            # Position in the epoch's global order: every rank's batches so far (elastic resume).
            "samples_done": self._batches_done * self.batch_size * self.world_size,
            "perm_seed": self._perm_seed,
            "data": self._data_id(),
            "settings": self._settings(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration yields the batches not yet handed out.

        Elastic: ``rank``, ``world_size`` and ``batch_size`` may differ from the saved ones. With
        the same global batch (``batch_size * world_size``) the stream resumes at the same global
        sample; with another, at the next global-batch boundary (a warning says which samples
        are skipped). Every other setting must match.
        """
        if (
            not isinstance(state, dict)
            or not is_int(state.get("version"))
            or state["version"] != STATE_VERSION
        ):
            raise ValueError(f"not a gptdata loader state (version {STATE_VERSION} expected).")
        check_state(state, self.n_batches, ranges=False)
        saved, mine = state["settings"], self._settings()
        check_settings(saved, mine, before_data=True)
        check_same_data(state, mine, self._data_id(), mixture=isinstance(self.dataset, Mixture))
        check_settings(saved, mine, before_data=False)
        batches, message = resume_batches(
            state,
            n_windows=len(self.dataset),
            batch_size=self.batch_size,
            world_size=self.world_size,
            drop_last=self.drop_last,
        )
        if message:
            warnings.warn(message, stacklevel=2)
        self.epoch = int(state["epoch"])
        self._batches_done = self._skip = batches
        self._perm_seed = state["perm_seed"]
        self._owner = None  # iterators from before the load no longer move the state


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
    documents: Documents = "concat",
    batch_format: BatchFormat = "tuple",
    eot_id: int | None = None,
) -> GPTDataLoader:
    """Sliding-window batches from a Path (file, folder or store), store, split, IDs or text.

    ``source`` is anything ``SlidingWindowDataset`` takes; ``split`` picks a store's split; or
    a ``Mixture`` (its own max_length, stride and format; the others here are ignored).

    "In the heart of the city ...", batch_size=8, max_length=4, stride=4
        -> (inputs, targets), each (8, 4) int64, targets = inputs shifted by one token.
    documents="mask", batch_format="dict" -> {"input_ids", "targets", "position_ids",
        "doc_ids"}, each (8, 4), targets -100 after each end-of-text (see gptdata.documents).
    """
    if isinstance(source, Mixture):
        return GPTDataLoader(
            source,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=num_workers,
            seed=seed,
            rank=rank,
            world_size=world_size,
            pin_memory=pin_memory,
        )
    dataset = SlidingWindowDataset(
        source,
        max_length=max_length,
        stride=stride,
        tokenizer=tokenizer,
        split=split,
        documents=documents,
        batch_format=batch_format,
        eot_id=eot_id,
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
