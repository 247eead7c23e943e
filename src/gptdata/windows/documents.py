"""Documents inside windows: loss masks, per-document positions and ids, and batch formats.

A window cut from concatenated documents may hold the end of one document, ``<|endoftext|>``, and
the start of the next. ``documents="mask"`` gives the model each document on its own, with the
semantics of Megatron-LM's ``eod_mask_loss``, ``reset_position_ids`` and ``reset_attention_mask``
(the end-of-text token belongs to the document it ends):

    inputs     [10, 11, EOT, 20, 21, EOT, 30]     window of 7 tokens, next token 31
    targets    [11, EOT, -100, 21, EOT, -100, 31]  no loss on predicting a new document's start
    positions  [0,  1,   2,    0,  1,   2,    0]   restart after each end-of-text
    doc_ids    [0,  0,   0,    1,  1,   1,    2]   attend iff k <= q and same doc_id

Everything is computed per batch from the window's own tokens (so it is right for raw token IDs
too), vectorized over the whole ``(B, max_length + 1)`` block: no Python loop over tokens.
Positions count from the window's start for the document the window begins inside, as Megatron's.
What is deliberately left out: padding and packing (windows are always full), and attention masks
themselves (see ``gptdata.attention``, built from ``doc_ids`` on the device that needs them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..store import Split
from ..tokenizers import Tokenizer, get_tokenizer

Documents = Literal["concat", "mask"]
BatchFormat = Literal["tuple", "dict", "hf", "block"]
Batch = tuple[torch.Tensor, torch.Tensor] | dict[str, torch.Tensor] | torch.Tensor

DOCUMENTS = ("concat", "mask")
BATCH_FORMATS = ("tuple", "dict", "hf", "block")
IGNORE_INDEX = -100  # torch cross_entropy's default ignore_index, and Hugging Face's
GPT2_EOT_ID = 50256


def resolve_eot_id(eot_id: int | None, tokens: Any, tokenizer: str | Tokenizer) -> int | None:
    """The end-of-text ID: ``eot_id`` if given, else the store split's, else the tokenizer's.

    eot_id=None, a store Split made with gpt2 -> 50256; raw IDs with tokenizer="gpt2" -> 50256.
    """
    if eot_id is not None:
        if isinstance(eot_id, bool) or not isinstance(eot_id, (int, np.integer)) or eot_id < 0:
            raise ValueError(f"eot_id={eot_id!r} must be an integer token ID >= 0.")
        return int(eot_id)
    if isinstance(tokens, Split):
        return tokens.eot_id
    if isinstance(tokenizer, (str, os.PathLike)) and os.fspath(tokenizer).lower() in (
        "gpt2",
        "gpt-2",
        "r50k_base",
    ):
        return GPT2_EOT_ID  # without building the encoder just for its separator
    return get_tokenizer(tokenizer).eot_id


@dataclass(frozen=True)
class Format:
    """How a ``(B, max_length + 1)`` block of rows becomes a batch.

    ``Format("mask", "dict", eot_id=50256)(rows)`` -> ``{"input_ids", "targets",
    "position_ids", "doc_ids"}``, each ``(B, max_length)`` int64.
    """

    documents: Documents = "concat"
    batch_format: BatchFormat = "tuple"
    eot_id: int | None = None
    # Per-shape constants (aranges), made once: building them per batch cost ~5 us at 32 x 1024.
    _cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.documents not in DOCUMENTS:
            raise ValueError(f"documents={self.documents!r} is not one of {DOCUMENTS}.")
        if self.batch_format not in BATCH_FORMATS:
            raise ValueError(f"batch_format={self.batch_format!r} is not one of {BATCH_FORMATS}.")
        if self.documents == "mask":
            if self.eot_id is None:
                raise ValueError(
                    "documents='mask' needs the end-of-text ID, but the source and tokenizer "
                    "have none. Pass eot_id=ID (the token that separates documents)."
                )
            if self.batch_format == "block":
                raise ValueError(
                    "batch_format='block' hands out raw rows, with no room for document masks. "
                    "Use documents='concat' with it, or batch_format='dict' (or 'hf', 'tuple') "
                    "with documents='mask'."
                )

    @property
    def plain(self) -> bool:
        """The classic ``(inputs, targets)`` views, nothing computed."""
        return self.documents == "concat" and self.batch_format == "tuple"

    def _constants(self, b: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (b, length)
        if key not in self._cache:
            columns = np.arange(length)
            self._cache[key] = (np.arange(b * length), columns, np.tile(columns, (b, 1)))
        return self._cache[key]

    def __call__(self, rows: np.ndarray | torch.Tensor) -> Batch:
        """rows (B, L + 1) -> the batch; inputs are rows[:, :-1], targets rows[:, 1:]."""
        if isinstance(rows, torch.Tensor):
            rows = rows.numpy()
        if self.batch_format == "block":
            return torch.from_numpy(rows.astype(np.int64, copy=False))  # (B, L + 1)
        b, width = rows.shape
        length = width - 1
        hits = _NONE
        if self.documents == "mask":
            # Compared before the cast: on a store's uint16 rows it is 3x faster than on int64.
            hits = np.flatnonzero(rows[:, :-1] == self.eot_id)  # (K,) input separators, (B, L) flat
        rows = rows.astype(np.int64, copy=False)  # (B, L + 1)
        # Inputs and targets each their own contiguous array, as torch.stack gives: views of one
        # buffer break .view(-1), and an in-place edit of the targets would change the inputs.
        inputs = np.ascontiguousarray(rows[:, :-1])  # (B, L)
        targets = rows[:, 1:].copy()  # (B, L)
        if hits.size:
            targets.reshape(-1)[hits] = IGNORE_INDEX  # -100 where the input is a separator
        if self.batch_format == "tuple":
            return torch.from_numpy(inputs), torch.from_numpy(targets)  # (B, L) x2
        positions, doc_ids = self._positions(hits, b, length)
        if self.batch_format == "hf":
            # labels[:, j] = input j, or -100 where input j - 1 is a separator: the targets, one
            # step back, since Hugging Face models shift labels themselves.
            labels = np.empty((b, length), dtype=np.int64)  # (B, L)
            labels[:, 0] = rows[:, 0]
            labels[:, 1:] = targets[:, :-1]
            return {
                "input_ids": torch.from_numpy(inputs),  # (B, L)
                "labels": torch.from_numpy(labels),  # (B, L)
                "position_ids": torch.from_numpy(positions),  # (B, L)
            }
        return {
            "input_ids": torch.from_numpy(inputs),  # (B, L)
            "targets": torch.from_numpy(targets),  # (B, L)
            "position_ids": torch.from_numpy(positions),  # (B, L)
            "doc_ids": torch.from_numpy(doc_ids),  # (B, L)
        }

    def _positions(self, hits: np.ndarray, b: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and doc ids (B, L) from the separators' flat indices in the (B, L) inputs.

        Over the flattened inputs, segments start at 0 and after each separator; repeating each
        segment's start over its length gives every token's distance to the last start, which
        is its position, except before its row's first separator, where the column itself is
        smaller. Repeating the segment number gives a running count of starts, from which each
        row subtracts its first. One np.repeat each plus contiguous in-place passes: a cumsum per
        row, or the same on strided (B, L + 1) views, measured slower than the gather itself.
        """
        flat, columns, tiled = self._constants(b, length)
        if hits.size == 0:  # a copy: callers may edit the batch they are handed
            return tiled.copy(), np.zeros((b, length), dtype=np.int64)
        # A separator in the last input column starts a segment at the next row's first token,
        # which changes neither result (its distance 0 is its column; each row subtracts its
        # first count), or, in the last row, an empty one at the end.
        bounds = np.concatenate((_MINUS_ONE, hits, (b * length - 1,)))  # (K + 2,)
        bounds += 1
        starts = bounds[:-1]  # (K + 1,) segment starts, ascending
        lengths = bounds[1:] - starts  # (K + 1,) segment lengths, >= 0
        positions = np.repeat(starts, lengths)  # (B * L,) each token's segment start
        np.subtract(flat, positions, out=positions)
        positions = positions.reshape(b, length)  # (B, L)
        np.minimum(positions, columns, out=positions)
        doc_ids = np.repeat(np.arange(hits.size + 1), lengths).reshape(b, length)  # (B, L)
        doc_ids -= doc_ids[:, :1].copy()  # a segment may run on into the next row
        return positions, doc_ids


_NONE = np.empty(0, dtype=np.int64)
_MINUS_ONE = np.full(1, -1, dtype=np.int64)


def take(batch: Batch, i: int) -> Any:
    """Row ``i`` of a batch, in the same format: one window."""
    if isinstance(batch, torch.Tensor):
        return batch[i]
    if isinstance(batch, dict):
        return {k: v[i] for k, v in batch.items()}
    return tuple(t[i] for t in batch)


def pin(batch: Batch) -> Batch:
    """The batch with every tensor in pinned memory (for fast, asynchronous copies to a GPU)."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, dict):
        return {k: v.pin_memory() for k, v in batch.items()}
    return tuple(t.pin_memory() for t in batch)


@dataclass(frozen=True)
class DocumentStats:
    """What ``documents="mask"`` does to a set of windows: masked targets, documents per window."""

    windows: int
    masked_targets: int
    mean_documents: float


def document_stats(tokens: Any, *, eot_id: int, max_length: int, stride: int) -> DocumentStats:
    """Count, over all windows, the targets masked and the documents seen, from separators alone.

    Window k holds inputs s..s + L - 1 (s = k * stride); a separator at p masks one target in each
    window holding p as an input and starts a new document in each holding p at s..s + L - 2.

        tokens [1, EOT, 2, 3, EOT, 4], max_length=3, stride=1 -> 3 windows, 3 masked targets,
        mean documents (2 + 2 + 1) / 3 = 1.67
    """
    n = len(tokens)
    windows = max((n - max_length + stride - 1) // stride, 0)
    if windows == 0:
        return DocumentStats(0, 0, 0.0)
    chunks = tokens.iter_chunks() if hasattr(tokens, "iter_chunks") else [np.asarray(tokens)]
    where, offset = [], 0
    for chunk in chunks:
        where.append(np.flatnonzero(chunk == eot_id) + offset)
        offset += len(chunk)
    eots = np.concatenate(where) if where else _NONE

    def windows_holding(span: int) -> int:
        # Windows k in [0, windows) with k * stride <= p <= k * stride + span - 1.
        first = np.maximum(-((span - 1 - eots) // stride), 0)  # ceil((p - span + 1) / stride)
        last = np.minimum(eots // stride, windows - 1)
        return int(np.maximum(last - first + 1, 0).sum())

    masked = windows_holding(max_length)
    splits = windows_holding(max_length - 1) if max_length > 1 else 0
    return DocumentStats(windows, masked, 1 + splits / windows)
