"""The loader on instruction data: the book's chapter-7 batches, seeded, distributed, resumable.

``InstructionLoader`` is ``GPTDataLoader`` with examples in place of windows: the same epoch
orders (``seed``, ``epoch_seed``; ``seed=None`` draws from torch's global generator as
``DataLoader(shuffle=True)`` does), the same rank cut (``DistributedSampler``'s padding or
``drop_last``), the same ``state_dict`` / ``load_state_dict`` (elastic in rank, world_size and
batch_size) and ``forever()``: those are inherited, not rewritten. Only what a batch is differs:

* padded (default): ``instruction_collate`` of the batch's examples, ``(B, T)`` int64 inputs and
  targets, ``T`` the batch's longest example (cut to ``allowed_max_length``);
* ``packing=True``: the order is over packed rows of ``max_length + 1`` tokens
  (``PackedInstructionDataset``), batches are ``packed_collate`` dicts, each ``(B, max_length)``.

Batches are built in-process (``num_workers`` is not taken): a collate of small examples costs
less than a worker transfer. Side passes (a pass started while another is live) are not kept
apart as for windows; evaluate on a second loader over the val split, as the book does.

    >>> loader = create_dataloader(InstructionDataset("instruction-data.json"), batch_size=8,
    ...                            seed=123, mask_prompt=True, allowed_max_length=1024)
    >>> inputs, targets = next(iter(loader))           # (8, T), (8, T), int64
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .batches import _BatchSampler
from .documents import pin
from .finetune import GPT2_EOT_ID, IGNORE_INDEX, InstructionDataset, instruction_collate
from .loader import GPTDataLoader
from .loader import create_dataloader as _windows_dataloader
from .loaderstate import batches_per_rank, check_loader_args
from .packing import PackedInstructionDataset, TooLong, packed_collate


def examples_fingerprint(dataset: Any) -> str:
    """sha256 over every example's token IDs and prompt length: what a saved state was over."""
    h = hashlib.sha256(b"gptdata-instructions:")
    for ids, prompt_length in dataset:
        h.update(np.asarray(ids, dtype="<i8").tobytes())
        h.update(int(prompt_length or 0).to_bytes(8, "little") + b"|")
    return "sha256:" + h.hexdigest()


class InstructionLoader(GPTDataLoader):
    """Iterable of the book's ``(inputs, targets)`` over instruction examples, or packed dicts.

    ``dataset``: an ``InstructionDataset`` (or any sequence of ``Example``); ``pad_token_id``,
    ``ignore_index``, ``allowed_max_length``, ``mask_prompt``: as ``instruction_collate``;
    ``packing=True`` packs into rows of ``max_length`` (``too_long``: "error" or "truncate").
    """

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int = 8,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        pin_memory: bool = False,
        pad_token_id: int = GPT2_EOT_ID,
        ignore_index: int = IGNORE_INDEX,
        allowed_max_length: int | None = None,
        mask_prompt: bool = False,
        device: str | torch.device = "cpu",
        packing: bool = False,
        max_length: int | None = None,
        too_long: TooLong = "error",
        num_workers: int = 0,
    ) -> None:
        if num_workers != 0:
            raise ValueError(
                f"num_workers={num_workers!r}: instruction batches are collated in this process "
                "(a collate of small examples costs less than a worker transfer); pass "
                "num_workers=0, as the book does."
            )
        if packing and max_length is None:
            raise ValueError("packing=True needs max_length=N, the tokens of a packed row.")
        self.examples = dataset
        self.collate_options = {
            "pad_token_id": pad_token_id,
            "ignore_index": ignore_index,
            "allowed_max_length": allowed_max_length,
            "mask_prompt": mask_prompt,
        }
        self.packing, self.max_length, self.device = packing, max_length, device
        items: Any = dataset
        if packing:
            items = PackedInstructionDataset(
                list(dataset),
                max_length=int(max_length),  # type: ignore[arg-type]
                eot_id=pad_token_id,
                too_long=too_long,
                mask_prompt=mask_prompt,
            )
        self._fingerprint = examples_fingerprint(dataset)
        self._setup(items, batch_size, shuffle, drop_last, seed, rank, world_size, pin_memory)

    def _setup(
        self,
        items: Any,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int | None,
        rank: int | None,
        world_size: int | None,
        pin_memory: bool,
    ) -> None:
        """The checks and state of ``GPTDataLoader.__init__``, for a dataset of examples."""
        batch_size, _, seed, rank, world_size = check_loader_args(
            batch_size=batch_size, num_workers=0, seed=seed, rank=rank, world_size=world_size
        )
        if world_size > 1 and seed is None:
            seed = 0  # every rank must draw the same order
        self.dataset, self.batch_size, self.shuffle = items, int(batch_size), shuffle
        self.drop_last, self.num_workers, self.seed = drop_last, 0, seed
        self.rank, self.world_size = rank, world_size
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.multiprocessing_context = None
        self.per_rank, self.n_batches = batches_per_rank(
            len(items), self.batch_size, world_size, drop_last
        )
        if self.n_batches == 0:
            what = "packed rows" if self.packing else "examples"
            raise ValueError(
                f"batch_size={batch_size} with drop_last={drop_last} gives 0 batches: there are "
                f"{self.per_rank:,} {what} per rank (world_size={world_size}). Lower "
                "batch_size, add examples, or pass drop_last=False."
            )
        self.epoch = 0
        self._batches_done = 0
        self._perm_seed = None
        self._skip = 0
        self._owner = None

    def _pass(self, token: object, *, side: bool = False) -> Iterator[Any]:
        skip = 0 if side else self._batches_done
        # The base seed DataLoader's iterator draws, so the global RNG stream stays the book's.
        torch.empty((), dtype=torch.int64).random_()
        for indices in _BatchSampler(self, skip, side=side):
            items = [self.dataset[int(i)] for i in indices]
            if self.packing:
                batch: Any = packed_collate(items, eot_id=self.collate_options["pad_token_id"])
                batch = {k: v.to(self.device) for k, v in batch.items()}  # each (B, L)
            else:
                batch = instruction_collate(items, device=self.device, **self.collate_options)
            if self.pin_memory:
                batch = pin(batch)
            if self._owner is token:
                self._batches_done += 1
            yield batch

    def _data_id(self) -> str:
        return self._fingerprint

    def _settings(self) -> dict[str, Any]:
        return {
            **self.collate_options,
            "packing": self.packing,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def __repr__(self) -> str:
        kind = f"packed rows of {self.max_length}" if self.packing else "padded"
        return (
            f"InstructionLoader({len(self.dataset):,} items, {kind}, batch_size={self.batch_size})"
        )


@functools.wraps(_windows_dataloader)
def create_dataloader(source: Any, **options: Any) -> GPTDataLoader:
    """``gptdata.create_dataloader``: sliding windows (``windows.loader.create_dataloader``), or,
    for an ``InstructionDataset``, the book's chapter-7 batches (``InstructionLoader``).

    Instruction options: ``pad_token_id``, ``ignore_index``, ``allowed_max_length``,
    ``mask_prompt``, ``device``, ``packing`` (rows of ``max_length``), ``too_long``.

        create_dataloader(InstructionDataset("data.json"), batch_size=8, mask_prompt=True)
    """
    if isinstance(source, InstructionDataset):
        if not options.get("packing"):
            options.pop("max_length", None)  # a padded batch is as wide as its longest example
        return InstructionLoader(source, **options)
    extra = sorted(set(options) & INSTRUCTION_OPTIONS)
    if extra:
        raise TypeError(
            f"create_dataloader got {', '.join(extra)}, options of instruction data; pass an "
            "InstructionDataset as the source for them."
        )
    return _windows_dataloader(source, **options)


INSTRUCTION_OPTIONS = {
    "pad_token_id",
    "ignore_index",
    "allowed_max_length",
    "mask_prompt",
    "device",
    "packing",
    "too_long",
}
