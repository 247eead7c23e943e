"""Attention that stays inside each document, from a batch's ``doc_ids`` (torch only).

Query ``q`` may attend to key ``k`` iff ``k <= q`` and ``doc_ids[k] == doc_ids[q]`` (Megatron-LM's
``reset_attention_mask``). Three forms, for three kinds of attention kernel:

    doc_ids [[0, 0, 1]] -> causal_document_mask: [[1, 0, 0], [1, 1, 0], [0, 0, 1]] (True = attend)
                        -> flex_document_mask:   a mask_mod for FlexAttention's create_block_mask
                        -> cu_seqlens:           (tensor([0, 2, 3], dtype=int32), 2) for flash-attn

Build them on the device that runs attention (``doc_ids.to(device)`` first): the dense mask is
``B x T x T`` booleans, 32 MiB for 32 x 1024, so it is not what the loader should hand out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _check(doc_ids: torch.Tensor) -> None:
    if not isinstance(doc_ids, torch.Tensor) or doc_ids.ndim != 2:
        shape = tuple(doc_ids.shape) if isinstance(doc_ids, torch.Tensor) else type(doc_ids)
        raise ValueError(
            f"doc_ids must be a (batch, length) tensor, got {shape}. Pass the batch's "
            "'doc_ids' (documents='mask', batch_format='dict')."
        )
    if doc_ids.dtype.is_floating_point or doc_ids.dtype == torch.bool:
        raise ValueError(f"doc_ids must be integers, got dtype {doc_ids.dtype}.")


def causal_document_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) doc_ids -> (B, 1, T, T) bool, True where query q may attend to key k.

    For ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask)`` (which broadcasts over heads).
    """
    _check(doc_ids)
    t = doc_ids.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=doc_ids.device).tril()  # (T, T)
    same = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, T, T): [b, q, k]
    return (same & causal)[:, None]  # (B, 1, T, T)


def flex_document_mask(doc_ids: torch.Tensor) -> Callable[..., torch.Tensor]:
    """(B, T) doc_ids -> ``mask_mod(b, h, q_idx, kv_idx)`` for FlexAttention.

    block_mask = create_block_mask(flex_document_mask(doc_ids), B, None, T, T, device=...)
    out = flex_attention(q, k, v, block_mask=block_mask)
    """
    _check(doc_ids)

    def mask_mod(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        return (kv_idx <= q_idx) & (doc_ids[b, q_idx] == doc_ids[b, kv_idx])

    return mask_mod


def cu_seqlens(doc_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, T) doc_ids -> (cumulative sequence lengths, int32, over the flattened batch; longest).

    What flash-attn's ``flash_attn_varlen_func(q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu,
    max_seqlen_q=m, max_seqlen_k=m, causal=True)`` takes, with q, k, v of shape (B * T, heads,
    head_dim). Every row starts a new sequence, so documents never run across rows.

        doc_ids [[0, 0, 1], [0, 1, 1]] -> (tensor([0, 2, 3, 4, 6], dtype=torch.int32), 2)
    """
    _check(doc_ids)
    b, t = doc_ids.shape
    if b * t == 0:
        return torch.zeros(1, dtype=torch.int32, device=doc_ids.device), 0
    flat = doc_ids.reshape(-1)  # (B * T,)
    starts = torch.ones(b * t, dtype=torch.bool, device=doc_ids.device)
    starts[1:] = flat[1:] != flat[:-1]
    starts[::t] = True  # a row's first token starts a sequence even if its id equals the last
    cu = torch.cat([starts.nonzero().reshape(-1), torch.tensor([b * t], device=doc_ids.device)]).to(
        torch.int32
    )  # (documents + 1,)
    return cu, int((cu[1:] - cu[:-1]).max())
