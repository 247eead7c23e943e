"""The book's data classes by their names and signatures: ``GPTDatasetV1``, ``create_dataloader_v1``.

Code from chapter 2 onwards runs unchanged with the import swapped. The items and, after
``torch.manual_seed(123)``, the batches are the classic ones; what changes is the cost: nothing
is stored per window (the classic dataset holds two tensors per window up front), and the source
may also be a ``Path``, a token store or a split (see ``gptdata.load_tokens``).

    >>> from gptdata import GPTDatasetV1, create_dataloader_v1
    >>> torch.manual_seed(123)
    >>> loader = create_dataloader_v1(raw_text, batch_size=8, max_length=4, stride=4)
    >>> inputs, targets = next(iter(loader))               # (8, 4), (8, 4) int64
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset

from .tokenizers import Tokenizer
from .windows.dataset import SlidingWindowDataset
from .windows.loader import GPTDataLoader, create_dataloader


class _Column:
    """``dataset.input_ids[k]`` / ``dataset.target_ids[k]`` as the classic lists, cut on demand."""

    def __init__(self, dataset: SlidingWindowDataset, part: int) -> None:
        self.dataset, self.part = dataset, part

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int) -> torch.Tensor:
        return self.dataset[k][self.part]  # (max_length,)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[k] for k in range(len(self)))


class GPTDatasetV1(SlidingWindowDataset, Dataset):  # type: ignore[misc]
    """``GPTDatasetV1(txt, tokenizer, max_length, stride)``: the classic dataset, lazily.

    ``tokenizer``: a tiktoken ``Encoding`` (``tiktoken.get_encoding("gpt2")``), any gptdata
    tokenizer (``SimpleTokenizerV2(vocab)`` too), or a name such as ``"gpt2"``. The text is
    encoded with ``<|endoftext|>`` recognized, as the classic
    ``encode(txt, allowed_special={"<|endoftext|>"})``. ``dataset[k]`` -> ``(input, target)``,
    two int64 tensors of shape ``(max_length,)``; ``input_ids``/``target_ids`` index like the
    classic lists.
    """

    def __init__(
        self, txt: Any, tokenizer: Any, max_length: int, stride: int, *, split: str = "train"
    ) -> None:
        super().__init__(
            txt, max_length=max_length, stride=stride, tokenizer=tokenizer, split=split
        )
        self.input_ids = _Column(self, 0)
        self.target_ids = _Column(self, 1)


def create_dataloader_v1(
    txt: Any,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    *,
    tokenizer: str | os.PathLike[str] | Tokenizer | Any = "gpt2",
) -> GPTDataLoader:
    """The classic ``create_dataloader_v1``: GPT-2 tokens, the same defaults and batches.

    Shuffling draws from torch's global generator as ``DataLoader(shuffle=True)`` does, so
    after ``torch.manual_seed(123)`` the batches are the classic loader's. The loader also has
    gptdata's extras: ``state_dict()``, ``forever()``, ``set_epoch``.
    """
    return create_dataloader(
        txt,
        batch_size=batch_size,
        max_length=max_length,
        stride=stride,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        tokenizer=tokenizer,
    )
