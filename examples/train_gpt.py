"""Store -> a small GPT -> training steps -> evaluate on val -> checkpoint -> resume, bit-exact.

The model is the book's chapter-4 architecture (token and learned position embeddings, pre-norm
transformer blocks with causal multi-head attention and a GELU feed-forward, a final norm and an
untied output head), written here in a few lines; the loop is chapter 5's ``train_model_simple``
with gptdata's loader. A checkpoint holds the model, the optimizer, the loader's position and the
torch RNG (dropout), so a run stopped at any step and resumed gives the same weights, to the bit,
as a run that never stopped.

    gptdata prepare the-verdict.txt -o store --val-fraction 0.1
    python examples/train_gpt.py store --steps 20 --checkpoint ckpt.pt          # stops at 20
    python examples/train_gpt.py store --steps 40 --checkpoint ckpt.pt --resume # 21..40
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

import gptdata

GPT_CONFIG_124M = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


class MultiHeadAttention(nn.Module):
    """Causal self-attention: each position attends to itself and the positions before it."""

    def __init__(self, d: int, heads: int, context_length: int, drop: float, bias: bool) -> None:
        super().__init__()
        assert d % heads == 0, f"emb_dim={d} must be divisible by n_heads={heads}"
        self.heads, self.head_dim = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d, bias=bias)
        self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(drop)
        mask = torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), 1)
        self.register_buffer("mask", mask, persistent=False)  # True above the diagonal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).unbind(2)  # (B, T, H, d)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, T)
        scores = scores.masked_fill(self.mask[:T, :T], float("-inf"))
        weights = self.drop(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.proj(out)


class LayerNorm(nn.Module):
    """The book's layer norm: biased variance, learned scale and shift, eps 1e-5."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d))
        self.shift = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + 1e-5) + self.shift


class TransformerBlock(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        d = cfg["emb_dim"]
        self.norm1, self.norm2 = LayerNorm(d), LayerNorm(d)
        self.att = MultiHeadAttention(
            d, cfg["n_heads"], cfg["context_length"], cfg["drop_rate"], cfg["qkv_bias"]
        )
        # GELU with the tanh approximation, as GPT-2 and the book use.
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU("tanh"), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.att(self.norm1(x)))  # shortcut around attention
        return x + self.drop(self.ff(self.norm2(x)))  # and around the feed-forward


class GPTModel(nn.Module):
    """(B, T) token IDs -> (B, T, vocab_size) logits."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))  # (B, T, D)
        x = self.trf_blocks(self.drop_emb(x))
        return self.out_head(self.final_norm(x))  # (B, T, V)


def calc_loss_batch(inputs: torch.Tensor, targets: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """The book's batch loss: mean cross-entropy over every (B * T) target."""
    logits = model(inputs)  # (B, T, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def train(
    store: str | Path,
    *,
    steps: int,
    checkpoint: str | Path,
    resume: bool = False,
    config: dict[str, Any] | None = None,
    batch_size: int = 4,
    lr: float = 4e-4,
    seed: int = 123,
    eval_every: int = 0,
) -> dict[str, Any]:
    """Train to ``steps`` optimizer steps (continuing a checkpoint with ``resume``), save the
    checkpoint, and return the step, the last training loss and the validation result."""
    store = gptdata.TokenStore.open(store)
    cfg = dict(config or GPT_CONFIG_124M, vocab_size=store.vocab_size)
    torch.manual_seed(seed)
    model = GPTModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    # seed=int: the order comes from (seed, epoch) alone, so the loader state resumes it exactly.
    loader = gptdata.create_dataloader(
        store.split("train"),
        batch_size=batch_size,
        max_length=cfg["context_length"],
        stride=cfg["context_length"],
        seed=seed,
    )
    step, loss = 0, float("nan")
    batches = loader.forever()
    pending = None
    if resume:
        ckpt = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(ckpt["model_state_dict"])
        optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        loader.load_state_dict(ckpt["loader"])
        step = ckpt["step"]
        # Starting a pass draws one number from torch's RNG, as torch's DataLoader does; draw
        # it first, then put the RNG back where training stopped, so dropout continues exactly.
        pending = next(batches) if step < steps else None
        torch.set_rng_state(ckpt["torch_rng"])
    model.train()
    while step < steps:
        inputs, targets = pending if pending is not None else next(batches)  # (B, L), (B, L)
        pending = None
        optimizer.zero_grad()
        batch_loss = calc_loss_batch(inputs, targets, model)
        batch_loss.backward()
        optimizer.step()
        step, loss = step + 1, batch_loss.item()
        if eval_every and step % eval_every == 0:
            print(f"step {step}: train loss {loss:.3f}")
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "loader": loader.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
        },
        checkpoint,
    )
    rng = torch.get_rng_state()  # evaluation draws nothing, but keep the training stream intact
    val = None
    if "val" in store.splits and store.split("val").n_tokens > 1:
        val = gptdata.evaluate(
            model, store.split("val"), max_length=cfg["context_length"], progress=False
        )
    torch.set_rng_state(rng)
    return {"step": step, "train_loss": loss, "val": val, "model": model}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store", help="a gptdata store (gptdata prepare ... -o STORE)")
    p.add_argument("--steps", type=int, default=100, help="train up to this many steps")
    p.add_argument("--checkpoint", default="ckpt.pt", help="where to save (and resume from)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--context-length", type=int, default=256)
    p.add_argument("--emb-dim", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=4)
    a = p.parse_args()
    cfg = dict(
        GPT_CONFIG_124M,
        context_length=a.context_length,
        emb_dim=a.emb_dim,
        n_layers=a.n_layers,
        n_heads=a.n_heads,
    )
    out = train(
        a.store,
        steps=a.steps,
        checkpoint=a.checkpoint,
        resume=a.resume,
        config=cfg,
        batch_size=a.batch_size,
        eval_every=10,
    )
    val = out["val"]
    val_text = (
        "no val split" if val is None else f"val loss {val.loss:.3f}, ppl {val.perplexity:.1f}"
    )
    print(f"step {out['step']}: train loss {out['train_loss']:.3f}; {val_text}")


if __name__ == "__main__":
    main()
