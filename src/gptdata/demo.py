"""``gptdata demo``: every stage from raw text to input embeddings, printed in order.

1. the simple word-level vocabulary, 2. GPT-2 token IDs, 3. context ----> desired pairs,
4. the first batch of (inputs, targets), 5. the input-embedding shape (batch, max_length, emb_dim).
"""

from __future__ import annotations

import sys
from typing import TextIO

from .inspect.pairs import context_pairs, escape
from .samples import sample_text
from .tokenizers import SimpleTokenizer, get_tokenizer


def run_demo(
    text: str | None = None,
    *,
    out: TextIO = sys.stdout,
    batch_size: int = 8,
    max_length: int = 4,
    emb_dim: int = 256,
) -> None:
    """Print the whole path on ``text`` (default: the sample text shipped in the package)."""
    text = sample_text() if text is None else text

    def heading(title: str) -> None:
        print(f"\n== {title} ==", file=out)

    heading("1. Simple tokenizer: vocabulary built from the text")
    simple = SimpleTokenizer.from_text(text)
    print(
        f"vocabulary size: {simple.vocab_size:,} ({simple.vocab_size - 2:,} words and "
        f"punctuation + <|endoftext|> + <|unk|>)",
        file=out,
    )
    shown = list(enumerate(simple.vocab))[:8] + list(enumerate(simple.vocab))[-2:]
    for i, word in shown:
        print(f"  {i:>5}  {word!r}", file=out)
    first = text.strip().split(". ")[0] + "."
    for sentence in (first, "Hello, lighthouse keeper."):  # the second has unknown words
        ids = simple.encode(sentence)
        print(f"encode {sentence!r}\n  -> {ids}\n  decode -> {simple.decode(ids)!r}", file=out)

    heading("2. GPT-2 byte-pair encoding")
    gpt2 = get_tokenizer("gpt2")
    ids = gpt2.encode(text)
    print(f"{len(text):,} characters -> {len(ids):,} tokens", file=out)
    print(f"first 16 IDs: {ids[:16]}", file=out)
    print("as tokens:    " + " ".join(repr(escape(gpt2.decode([i]))) for i in ids[:16]), file=out)

    heading(f"3. Next-token pairs (context ----> desired), max_length={max_length}")
    for line in context_pairs(ids, gpt2, max_length=max_length):
        print(line, file=out)

    import torch

    from .embeddings import GPTEmbedding
    from .windows.loader import create_dataloader

    heading(
        f"4. First batch: batch_size={batch_size}, max_length={max_length}, "
        f"stride={max_length}, no shuffle"
    )
    loader = create_dataloader(
        ids, batch_size=batch_size, max_length=max_length, stride=max_length, shuffle=False
    )
    inputs, targets = next(iter(loader))
    print(f"{len(loader):,} batches per epoch", file=out)
    print(f"inputs  {tuple(inputs.shape)}:\n{inputs}", file=out)
    print(f"targets {tuple(targets.shape)}:\n{targets}", file=out)

    heading(f"5. Input embeddings: token + learned position, emb_dim={emb_dim}")
    torch.manual_seed(123)
    emb = GPTEmbedding(gpt2.vocab_size, emb_dim, context_length=max_length)
    x = emb(inputs)
    print(f"token table    {tuple(emb.tok_emb.weight.shape)}", file=out)
    print(f"position table {tuple(emb.pos_emb.weight.shape)}", file=out)  # type: ignore[union-attr]
    print(f"input embeddings {tuple(x.shape)}  (batch, max_length, emb_dim)", file=out)
