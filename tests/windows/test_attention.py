"""gptdata.attention against plain loops, and the point of it all: documents attend alone."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gptdata import causal_document_mask, cu_seqlens, flex_document_mask
from gptdata.windows.documents import Format

E = 50256


def window_batch() -> dict[str, torch.Tensor]:
    rows = np.array(
        [
            [10, 11, 12, E, 20, 21, E, 30, 31, 32, 33],
            [E, 1, 2, 3, 4, 5, 6, 7, E, E, 9],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, E, 11],
        ]
    )
    return Format("mask", "dict", E)(rows)


def plain_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    b, t = doc_ids.shape
    out = torch.zeros(b, 1, t, t, dtype=torch.bool)
    for i in range(b):
        for q in range(t):
            for k in range(t):
                out[i, 0, q, k] = k <= q and doc_ids[i, k] == doc_ids[i, q]
    return out


def test_causal_document_mask_equals_plain_loop() -> None:
    doc_ids = window_batch()["doc_ids"]
    mask = causal_document_mask(doc_ids)
    assert mask.shape == (4, 1, 10, 10) and mask.dtype == torch.bool
    assert torch.equal(mask, plain_mask(doc_ids))
    assert torch.equal(
        causal_document_mask(torch.tensor([[0, 0, 1]]))[0, 0].int(),
        torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.int32),
    )


def test_cu_seqlens_equals_plain_loop() -> None:
    doc_ids = window_batch()["doc_ids"]
    cu, longest = cu_seqlens(doc_ids)
    want, offset = [0], 0
    for row in doc_ids.tolist():
        for d in sorted(set(row)):
            offset += row.count(d)
            want.append(offset)
    assert cu.dtype == torch.int32 and cu.tolist() == want
    assert longest == max(b - a for a, b in zip(want[:-1], want[1:], strict=True))
    # Rows that both hold one document still split at the row boundary.
    assert cu_seqlens(torch.zeros(2, 3, dtype=torch.int64))[0].tolist() == [0, 3, 6]
    cu, longest = cu_seqlens(torch.tensor([[0, 0, 1], [0, 1, 1]]))  # the docstring's example
    assert (cu.tolist(), longest) == ([0, 2, 3, 4, 6], 2)


def test_flex_mask_mod_equals_plain_loop() -> None:
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    doc_ids = window_batch()["doc_ids"]
    b, t = doc_ids.shape
    mask_mod = flex_document_mask(doc_ids)
    dense = flex.create_mask(mask_mod, b, None, t, t, device="cpu")  # (B, 1, T, T)
    assert torch.equal(dense.bool(), plain_mask(doc_ids))
    block = flex.create_block_mask(mask_mod, b, None, t, t, device="cpu")
    assert block.shape == (b, 1, t, t)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"doc_ids must be a \(batch, length\) tensor, got \(3,\)"):
        causal_document_mask(torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"doc_ids must be integers, got dtype torch.float32"):
        cu_seqlens(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"doc_ids must be a \(batch, length\) tensor"):
        flex_document_mask([[0, 1]])  # type: ignore[arg-type]


class TinyAttention(torch.nn.Module):
    """Token and learned position embeddings, one causal attention layer: enough to leak."""

    def __init__(self, vocab: int = E + 1, dim: int = 8, context: int = 16) -> None:
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Embedding(context, dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)

    def qkv_of(self, ids: torch.Tensor, positions: torch.Tensor) -> list[torch.Tensor]:
        x = self.tok(ids) + self.pos(positions)  # (B, T, C)
        return [t[:, None] for t in self.qkv(x).chunk(3, dim=-1)]  # 3 x (B, 1, T, C)

    def forward(self, ids, positions, mask=None) -> torch.Tensor:
        q, k, v = self.qkv_of(ids, positions)
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)[:, 0]  # (B, T, C)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)[:, 0]


@pytest.fixture(scope="module")
def model() -> TinyAttention:
    torch.manual_seed(0)
    return TinyAttention().double()


def alone(
    model: TinyAttention, batch: dict[str, torch.Tensor]
) -> list[tuple[int, slice, torch.Tensor]]:
    """Each document of each row run by itself, positions from 0: (row, its slice, outputs)."""
    out = []
    for b, row in enumerate(batch["doc_ids"].tolist()):
        for d in sorted(set(row)):
            lo, hi = row.index(d), len(row) - row[::-1].index(d)
            ids = batch["input_ids"][b : b + 1, lo:hi]
            out.append((b, slice(lo, hi), model(ids, torch.arange(hi - lo)[None])[0]))
    return out


def test_each_document_attends_alone(model) -> None:
    batch = window_batch()
    with torch.no_grad():
        packed = model(
            batch["input_ids"], batch["position_ids"], causal_document_mask(batch["doc_ids"])
        )
        leaky = model(batch["input_ids"], batch["position_ids"])  # causal only: documents leak
        for b, span, want in alone(model, batch):
            assert torch.allclose(packed[b, span], want, atol=1e-12)
        assert not torch.allclose(packed, leaky)


def test_each_document_alone_with_cu_seqlens(model) -> None:
    # flash-attn's varlen contract, run as plain causal attention per cu_seqlens segment.
    batch = window_batch()
    cu, longest = cu_seqlens(batch["doc_ids"])
    b, t = batch["input_ids"].shape
    with torch.no_grad():
        q, k, v = (
            x.reshape(b * t, -1) for x in model.qkv_of(batch["input_ids"], batch["position_ids"])
        )
        varlen = torch.cat(
            [
                F.scaled_dot_product_attention(q[lo:hi], k[lo:hi], v[lo:hi], is_causal=True)
                for lo, hi in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)
            ]
        ).reshape(b, t, -1)
        for row, span, want in alone(model, batch):
            assert torch.allclose(varlen[row, span], want, atol=1e-12)
    assert longest <= t


def test_each_document_alone_with_flex_attention(model) -> None:
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    batch = window_batch()
    b, t = batch["input_ids"].shape
    block = flex.create_block_mask(
        flex_document_mask(batch["doc_ids"]), b, None, t, t, device="cpu"
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager flex_attention on CPU warns it is unfused
        q, k, v = model.qkv_of(batch["input_ids"], batch["position_ids"])
        out = flex.flex_attention(q, k, v, block_mask=block, scale=1 / math.sqrt(q.shape[-1]))[:, 0]
        for row, span, want in alone(model, batch):
            assert torch.allclose(out[row, span], want, atol=1e-10)
