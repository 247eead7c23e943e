from __future__ import annotations

import pytest
import torch
from torch import nn

from gptdata import GPTEmbedding, RotaryEmbedding


def test_output_is_token_rows_plus_position_rows() -> None:
    torch.manual_seed(0)
    emb = GPTEmbedding(vocab_size=10, emb_dim=3, context_length=4)
    ids = torch.tensor([[1, 2, 3], [9, 0, 9]])
    out = emb(ids)  # (2, 3, 3)
    assert out.shape == (2, 3, 3)
    expected = emb.tok_emb.weight[ids] + emb.pos_emb.weight[:3]
    assert torch.equal(out, expected)
    assert torch.equal(out[1, 0], emb.tok_emb.weight[9] + emb.pos_emb.weight[0])


def test_seeded_init_equals_nn_embedding() -> None:
    torch.manual_seed(123)
    ours = GPTEmbedding(vocab_size=6, emb_dim=3, context_length=4)
    torch.manual_seed(123)
    plain = nn.Embedding(6, 3)
    assert torch.equal(ours.tok_emb.weight, plain.weight)
    assert ours.tok_emb.weight[0].tolist() == pytest.approx([0.3374, -0.1778, -0.1690], abs=1e-4)


def test_lookup_equals_one_hot_times_linear() -> None:
    torch.manual_seed(123)
    emb = nn.Embedding(7, 5)
    linear = nn.Linear(7, 5, bias=False)
    linear.weight = nn.Parameter(emb.weight.T.detach())
    ids = torch.tensor([2, 3, 1, 6])
    one_hot = nn.functional.one_hot(ids, num_classes=7).float()  # (4, 7)
    assert torch.equal(linear(one_hot), emb(ids))  # exact: one 1.0 per row, the rest 0.0


def test_positional_variants() -> None:
    ids = torch.tensor([[1, 2, 3, 4]])
    none = GPTEmbedding(10, 8, 4, positional="none")
    assert torch.equal(none(ids), none.tok_emb(ids))
    sin = GPTEmbedding(10, 8, 4, positional="sinusoidal")
    pos = sin(ids) - sin.tok_emb(ids)
    assert torch.allclose(pos[0, 0], torch.tensor([0.0, 1.0] * 4))
    assert torch.allclose(pos[0, 1, :2], torch.tensor([0.841471, 0.540302]), atol=1e-6)
    assert sum(p.numel() for p in sin.parameters()) == 80  # fixed table: not trained


def test_errors() -> None:
    emb = GPTEmbedding(10, 4, 3)
    with pytest.raises(TypeError, match=r"dtype torch\.float32.*Use token_ids\.long\(\)"):
        emb(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(
        IndexError, match=r"token ID 10 is outside the embedding table: vocab_size=10 allows 0\.\.9"
    ):
        emb(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match=r"sequence length 4 > context_length=3"):
        emb(torch.tensor([[1, 2, 3, 4]]))
    with pytest.raises(ValueError, match="positional='rope'"):
        GPTEmbedding(10, 4, 3, positional="rope")


def test_rotary_dot_product_depends_only_on_distance() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=8, context_length=64)
    q, k = torch.randn(8), torch.randn(8)

    def at(v, pos):
        x = torch.zeros(64, 8)
        x[pos] = v
        return rope(x)[pos]

    for m, n in [(5, 2), (40, 37), (63, 60)]:  # distance 3 everywhere
        assert torch.dot(at(q, m), at(k, n)) == pytest.approx(
            float(torch.dot(at(q, 3), at(k, 0))), abs=1e-4
        )
    assert torch.dot(at(q, 10), at(k, 0)) != pytest.approx(
        float(torch.dot(at(q, 3), at(k, 0))), abs=1e-3
    )
    x = torch.randn(2, 4, 16, 8)  # (B, heads, T, head_dim)
    assert rope(x).shape == x.shape
    assert torch.allclose(rope(x).norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # rotations keep length
    assert torch.equal(rope(x)[..., 0, :], x[..., 0, :])  # position 0 is not rotated
    with pytest.raises(ValueError, match="head_dim=7 must be even"):
        RotaryEmbedding(7, 8)
