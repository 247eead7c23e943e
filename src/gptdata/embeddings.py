"""Input embeddings: token embedding + positional embedding -> what a GPT block eats.

``GPTEmbedding`` is a ``vocab_size x emb_dim`` lookup table plus a position term (learned, as in
GPT-2; sinusoidal, fixed; or none). ``RotaryEmbedding`` is the relative alternative that rotates
query/key vectors inside attention instead of adding anything to the input.

A lookup is a one-hot vector times a weight matrix, without the matrix product:
``emb(ids) == one_hot(ids) @ emb.weight`` exactly (see bench/embeddings.py for the speed).

    >>> emb = GPTEmbedding(vocab_size=50257, emb_dim=256, context_length=4)
    >>> emb(torch.tensor([[40, 367, 2885, 1464]])).shape
    torch.Size([1, 4, 256])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

Positional = Literal["learned", "sinusoidal", "none"]


def check_token_ids(token_ids: torch.Tensor, vocab_size: int) -> None:
    """Raise a clear error for float IDs or IDs outside 0..vocab_size-1."""
    if not isinstance(token_ids, torch.Tensor):
        raise TypeError(f"token_ids must be a torch.Tensor, got {type(token_ids).__name__}.")
    if token_ids.is_floating_point() or token_ids.dtype == torch.bool:
        raise TypeError(
            f"token_ids have dtype {token_ids.dtype}; embedding lookups need integer "
            "IDs. Use token_ids.long() (torch.long)."
        )
    if token_ids.numel():
        top, low = int(token_ids.max()), int(token_ids.min())
        if top >= vocab_size or low < 0:
            bad = top if top >= vocab_size else low
            raise IndexError(
                f"token ID {bad} is outside the embedding table: vocab_size="
                f"{vocab_size:,} allows 0..{vocab_size - 1}. Use the tokenizer the "
                "table was sized for, or a larger vocab_size."
            )


def sinusoidal_table(context_length: int, emb_dim: int) -> torch.Tensor:
    """Fixed sine/cosine positions (Vaswani et al. 2017): (context_length, emb_dim).

    Even columns sin(pos / 10000^(2i/emb_dim)), odd columns the cosine of the same angle.
    """
    pos = torch.arange(context_length, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(
        torch.arange(0, emb_dim, 2, dtype=torch.float32) * (-math.log(10000.0) / emb_dim)
    )  # (ceil(C/2),)
    table = torch.zeros(context_length, emb_dim)  # (T, C)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: emb_dim // 2])
    return table


class GPTEmbedding(nn.Module):
    """token_ids (B, T) -> token embedding + positional embedding, (B, T, emb_dim).

    The token table is created first, so after ``torch.manual_seed(s)`` it equals
    ``nn.Embedding(vocab_size, emb_dim)`` made after the same seed.
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        context_length: int,
        *,
        positional: Positional = "learned",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("emb_dim", emb_dim),
            ("context_length", context_length),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1.")
        if positional not in ("learned", "sinusoidal", "none"):
            raise ValueError(
                f"positional={positional!r}: choose 'learned', 'sinusoidal' or 'none'."
            )
        self.vocab_size, self.emb_dim, self.context_length = vocab_size, emb_dim, context_length
        self.positional = positional
        self.tok_emb = nn.Embedding(vocab_size, emb_dim)  # (vocab_size, emb_dim)
        self.pos_emb: nn.Embedding | None = None
        if positional == "learned":
            self.pos_emb = nn.Embedding(context_length, emb_dim)  # (context_length, emb_dim)
        elif positional == "sinusoidal":
            self.register_buffer(
                "pos_table", sinusoidal_table(context_length, emb_dim), persistent=False
            )
        self.drop = nn.Dropout(dropout)

    def position_table(self, length: int) -> torch.Tensor | None:
        """Positional rows for positions 0..length-1: (length, emb_dim), or None."""
        if self.pos_emb is not None:
            return self.pos_emb(torch.arange(length, device=self.pos_emb.weight.device))
        if self.positional == "sinusoidal":
            return self.pos_table[:length]
        return None

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        check_token_ids(token_ids, self.vocab_size)
        if token_ids.dim() != 2:
            raise ValueError(
                f"token_ids must be (batch, length), got shape {tuple(token_ids.shape)}."
            )
        T = token_ids.shape[1]
        if T > self.context_length:
            raise ValueError(
                f"sequence length {T} > context_length={self.context_length}. "
                "Cut windows with max_length <= context_length, or build a larger table."
            )
        x = self.tok_emb(token_ids)  # (B, T) -> (B, T, C)
        pos = self.position_table(T)  # (T, C) or None
        if pos is not None:
            x = x + pos  # (B, T, C) + (T, C) broadcasts over the batch
        return self.drop(x)

    def extra_repr(self) -> str:
        return f"positional={self.positional!r}"


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE, Su et al. 2021) for query/key vectors.

    Each pair of channels (i, i + head_dim/2) at position m is rotated by m * theta_i, so
    <rope(q, m), rope(k, n)> depends only on m - n. Input (..., T, head_dim); output same shape.
    """

    def __init__(self, head_dim: int, context_length: int, *, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim < 2 or head_dim % 2:
            raise ValueError(
                f"head_dim={head_dim} must be even and >= 2 (channels rotate in pairs)."
            )
        self.head_dim, self.context_length = head_dim, context_length
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
        angles = torch.arange(context_length, dtype=torch.float32)[:, None] * inv_freq  # (T, D/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, D)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        T = x.shape[-2]
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"last dimension {x.shape[-1]} != head_dim={self.head_dim}.")
        if offset + T > self.context_length:
            raise ValueError(
                f"positions up to {offset + T - 1} need context_length > "
                f"{offset + T - 1}, but it is {self.context_length}."
            )
        cos = self.cos[offset : offset + T].to(x.dtype)  # (T, D)
        sin = self.sin[offset : offset + T].to(x.dtype)  # (T, D)
        half = self.head_dim // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (..., T, D)
        return x * cos + rotated * sin
