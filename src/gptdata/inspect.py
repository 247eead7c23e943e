"""Seeing the data: next-token pairs, windows, and a plan of what training will see.

    >>> print("\\n".join(context_pairs(ids[50:], tok, max_length=2)))
    [290] ----> 4920
    [290, 4920] ----> 2241
     and ---->  established
     and established ---->  himself

Nothing here trains anything; it prints what the dataset and loader will produce, so a stride,
a max_length or a tokenizer can be checked before hours are spent.
"""

from __future__ import annotations

import glob
import math
import os
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import ArrayTokens, load_tokens
from .samples import sample_text  # noqa: F401  (re-exported for demo and users)
from .sources import Errors
from .store import MANIFEST, Split, TokenStore
from .tokenizers import Tokenizer, get_tokenizer


def escape(text: str) -> str:
    """Show control and other invisible characters as escapes: 'a\\nb' -> 'a\\\\nb'."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif unicodedata.category(ch)[0] == "C":
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class Loaded:
    """Token IDs per split, with the tokenizer that reads them."""

    splits: dict[str, Any]  # name -> np.ndarray or store Split
    tokenizer: Tokenizer
    documents: dict[str, np.ndarray]  # name -> document lengths in tokens


def _lengths(ends: np.ndarray) -> np.ndarray:
    """Cumulative document ends (a separator after each but the last) -> tokens per document."""
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    return ends - starts


def load_source(
    source: Any,
    *,
    tokenizer: str | Tokenizer = "gpt2",
    text_field: str = "text",
    errors: Errors = "strict",
) -> Loaded:
    """Any source, as ``prepare`` and the datasets read it -> token IDs per split.

    * a store (``Path`` to its folder, or a ``TokenStore``): its non-empty splits; a ``Split``;
    * a ``Path`` to a text, JSONL(.gz) or Parquet file, a folder or a glob of them: the documents
      ``prepare`` reads (a .txt file is one document, a JSONL line or Parquet row is one),
      tokenized and joined by end-of-text, as one split ``text``;
    * raw text (a ``str``; one that names a file is refused: pass ``Path``) or token IDs.

        >>> load_source(Path("notes.jsonl")).documents["text"]   # two lines {"text": ...}
        array([12, 30])
    """
    if isinstance(source, os.PathLike) and (Path(source) / MANIFEST).is_file():
        source = TokenStore.open(source)
    if isinstance(source, (TokenStore, Split)):
        store = source if isinstance(source, TokenStore) else TokenStore.open(source.root)
        tok = store.reading_tokenizer(tokenizer)
        if isinstance(source, Split):
            splits = {source.name: source}
        else:
            splits = {n: store.split(n) for n in store.splits if store.split(n).n_tokens}
        docs = {name: sp.document_lengths() for name, sp in splits.items()}
        return Loaded(splits, tok, docs)
    if isinstance(source, os.PathLike):
        text = os.fspath(source)
        if not os.path.exists(text) and not glob.has_magic(text):
            raise FileNotFoundError(
                f"{text} does not exist. Pass a text, JSONL(.gz) or Parquet file, a folder or "
                "glob of them, or a token store."
            )
    tok = get_tokenizer(tokenizer)
    corpus = load_tokens(source, tokenizer=tok, text_field=text_field, errors=errors)
    ids = corpus.tokens.array if isinstance(corpus.tokens, ArrayTokens) else corpus.tokens
    name = "text" if corpus.document_ends is not None else "ids"
    ends = corpus.document_ends
    docs = _lengths(ends) if ends is not None else np.array([len(ids)], dtype=np.int64)
    return Loaded({name: ids}, corpus.tokenizer or tok, {name: docs})


def _text(tok: Tokenizer, ids: list[int]) -> str:
    return escape(tok.decode(ids))


MASKED = "[masked]"  # a target with no loss (-100) in the text line of `inspect --documents mask`


def _target_text(tok: Tokenizer, ids: list[int]) -> str:
    """Target text with each masked (-100) target shown as ``[masked]``, not as the token the
    window holds there: the model is not trained to guess it. [13, -100, 32] -> '.[masked]A'"""
    parts: list[str] = []
    run: list[int] = []
    for i in [*ids, None]:  # None flushes the last run
        if i is not None and i != -100:
            run.append(i)
            continue
        if run:
            parts.append(_text(tok, run))
            run = []
        if i == -100:
            parts.append(MASKED)
    return "".join(parts)


def context_pairs(ids: Any, tok: Tokenizer, *, max_length: int = 4) -> list[str]:
    """For each prefix of the first ``max_length`` tokens: prefix ----> next token, IDs then text."""
    ids = [int(i) for i in ids[: max_length + 1]]
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens from --start, got {len(ids)}.")
    steps = range(1, len(ids))
    lines = [f"{ids[:i]} ----> {ids[i]}" for i in steps]
    lines += [f"{_text(tok, ids[:i])} ----> {_text(tok, [ids[i]])}" for i in steps]
    return lines


def window_rows(
    ids: Any,
    tok: Tokenizer,
    *,
    max_length: int,
    stride: int,
    start: int = 0,
    count: int = 4,
    documents: str = "concat",
) -> list[str]:
    """The dataset's (input, target) rows from ``start``, as IDs and text.

    A window holding an end-of-text gets a ``doc_ids`` line marking where each document starts;
    with ``documents="mask"`` the targets show -100 where no loss is taken (``[masked]`` in the
    text line), and positions restart.
    """
    from .windows import SlidingWindowDataset

    n = len(ids)
    if n - start < max_length + 1:
        raise ValueError(
            f"max_length={max_length} needs {max_length + 1} tokens after "
            f"--start {start}, but only {max(n - start, 0)} remain."
        )
    if documents not in ("concat", "mask"):
        raise ValueError(f"documents={documents!r} is not one of 'concat', 'mask'.")
    if documents == "mask" and tok.eot_id is None:
        raise ValueError(
            f"--documents mask needs an end-of-text ID, but tokenizer {tok.name} has none."
        )
    ds = SlidingWindowDataset(np.asarray(ids[start:]), max_length=max_length, stride=stride)
    marked = None
    if tok.eot_id is not None:
        marked = ds.with_format(documents="mask", batch_format="dict", eot_id=tok.eot_id)
    lines = []
    for k in range(min(count, len(ds))):
        x, y = ds[k]
        xs, ys = x.tolist(), y.tolist()
        item = marked[k] if marked is not None else None
        lines.append(
            f"window {k} (tokens {start + k * stride}..{start + k * stride + max_length}):"
        )
        lines.append(f"  input  {xs}")
        targets = item["targets"].tolist() if item is not None and documents == "mask" else ys
        lines.append(f"  target {targets}")
        # A boundary: an end-of-text among the inputs, also at the last one (where the next
        # document starts only in the targets and every doc_id is still 0).
        if item is not None and tok.eot_id in xs:
            doc_ids = item["doc_ids"].tolist()
            ends = ""
            if xs[-1] == tok.eot_id:
                ends = f"  (document {doc_ids[-1]} ends at the last input)"
            lines.append(f"  doc_ids {doc_ids}{ends}")
            if documents == "mask":
                lines.append(f"  positions {item['position_ids'].tolist()}")
        lines.append(f"  input  {_text(tok, xs)!s}")
        lines.append(f"  target {_target_text(tok, targets)!s}")
    return lines


def embedding_params(vocab_size: int, context_length: int, emb_dim: int) -> int:
    """Parameters of a token table plus a learned position table."""
    return (vocab_size + context_length) * emb_dim


def plan_report(
    loaded: Loaded,
    *,
    max_length: int,
    stride: int,
    batch_size: int,
    world_size: int = 1,
    drop_last: bool = True,
    emb_dims: tuple[int, ...] = (256,),
    documents: str = "concat",
) -> tuple[str, bool]:
    """Per split: tokens, documents, windows, batches per epoch (per rank), unused tokens.

    With ``documents="mask"`` also the targets masked and the mean documents per window.
    Returns the report and whether every split yields at least one batch.
    """
    from .documents import document_stats
    from .windows import SlidingWindowDataset

    for name, value in (("batch_size", batch_size), ("world_size", world_size)):
        if value < 1:
            raise ValueError(f"{name}={value} must be an integer >= 1.")
    if not emb_dims or min(emb_dims) < 1:
        raise ValueError(f"emb_dims={emb_dims} must hold one or more integers >= 1, e.g. (256,).")
    if documents not in ("concat", "mask"):
        raise ValueError(f"documents={documents!r} is not one of 'concat', 'mask'.")

    lines: list[str] = []
    ok = True
    vocab = loaded.tokenizer.vocab_size
    for name, tokens in loaded.splits.items():
        n = len(tokens)
        docs = len(loaded.documents[name])
        lines.append(f"split {name}: {n:,} tokens, {docs:,} documents")
        if n < max_length + 1:
            lines.append(
                f"  0 windows: max_length={max_length} needs {max_length + 1} tokens. "
                "Lower --max-length or add text."
            )
            ok = False
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report below states the stride gaps itself
            ds = SlidingWindowDataset(tokens, max_length=max_length, stride=stride)
        cov = ds.coverage()
        per_rank = len(ds) // world_size if drop_last else math.ceil(len(ds) / world_size)
        batches = per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)
        rank_note = f" per rank ({world_size} ranks)" if world_size > 1 else ""
        lines.append(f"  windows            {len(ds):,} (max_length={max_length}, stride={stride})")
        lines.append(f"  batches per epoch  {batches:,}{rank_note} (batch_size={batch_size})")
        lines.append(
            f"  never a target     {cov.targets_never:,} tokens "
            f"({cov.gap_tokens:,} in stride gaps, {cov.tail_tokens:,} in the tail)"
        )
        lines.append(f"  overlap            x{cov.overlap:.2f} (targets per covered token)")
        if documents == "mask":
            eot = getattr(tokens, "eot_id", None)
            eot = loaded.tokenizer.eot_id if eot is None else eot
            if eot is None:
                raise ValueError(
                    f"--documents mask needs an end-of-text ID, but tokenizer "
                    f"{loaded.tokenizer.name} has none."
                )
            stats = document_stats(tokens, eot_id=eot, max_length=max_length, stride=stride)
            share = stats.masked_targets / max(len(ds) * max_length, 1)
            lines.append(
                f"  masked targets     {stats.masked_targets:,} ({100 * share:.2f} % of targets; "
                f"documents=mask, eot_id {eot})"
            )
            lines.append(f"  documents/window   {stats.mean_documents:.2f} (mean)")
        if batches == 0:
            ok = False
            lines.append(
                f"  0 batches: {per_rank:,} windows{rank_note} < batch_size={batch_size}. "
                "Lower --batch-size, --max-length or --stride, or add text."
            )
    lines.append(
        f"embedding tables (vocab_size {vocab:,}, context_length {max_length:,}, float32):"
    )
    for d in emb_dims:
        p = embedding_params(vocab, max_length, d)
        lines.append(f"  emb_dim {d:>6,}: {p:>15,} parameters, {p * 4 / 2**20:>10,.1f} MiB")
    return "\n".join(lines), ok


def plot(loaded: Loaded, path: str | os.PathLike[str]) -> None:
    """Document-length histogram and token rank/frequency curve, side by side, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib. Fix: pip install 'gptdata[plot]'") from None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    # Document lengths span orders of magnitude: log-spaced bins, shared by all splits.
    longest = max(int(d.max()) for d in loaded.documents.values() if len(d))
    bins = np.unique(np.logspace(0, np.log10(max(longest, 2)) + 0.01, 40).astype(int))
    ax1.set_xscale("log")
    for name, tokens in loaded.splits.items():
        ax1.hist(loaded.documents[name], bins=bins, alpha=0.6, label=name)
        counts = np.zeros(loaded.tokenizer.vocab_size, dtype=np.int64)
        chunks = tokens.iter_chunks() if hasattr(tokens, "iter_chunks") else [tokens]
        for chunk in chunks:
            counts += np.bincount(chunk, minlength=len(counts))
        freq = np.sort(counts[counts > 0])[::-1]
        ax2.loglog(np.arange(1, len(freq) + 1), freq, label=name)
    ax1.set(title="document length", xlabel="tokens per document", ylabel="documents")
    ax2.set(title="token rank / frequency", xlabel="rank", ylabel="count")
    ax1.legend()
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_pairs(scorer: Any, ids: list[int], tokenizer: Tokenizer, *, top: int = 3) -> list[str]:
    """Each ``context ----> desired`` pair with P(desired) and the model's top predictions.

    One forward pass over ``ids[:-1]``: position ``i - 1`` predicts ``ids[i]``. Probabilities
    are the softmax over all the model's logits, as ``evaluate`` scores them: a padded vocabulary
    (nanoGPT's 50,304 for GPT-2's 50,257) keeps its extra IDs, shown as ``<pad 50300>``.
    """
    import torch

    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens from --start, got {len(ids)}.")
    x = torch.tensor([ids[:-1]], dtype=torch.long, device=scorer.device)  # (1, T)
    y = torch.tensor([ids[1:]], dtype=torch.long, device=scorer.device)  # (1, T)
    with torch.inference_mode():
        logits = scorer.logits(x, y)[0].float()  # (T, V); nanoGPT-style models too
    probs = torch.softmax(logits, dim=-1)  # (T, V)
    best_p, best = probs.topk(min(top, probs.shape[-1]), dim=-1)  # (T, top)

    def shown(t: int) -> str:  # an ID past the tokenizer's vocabulary is the model's padding
        return escape(tokenizer.decode([t])) if t < tokenizer.vocab_size else f"<pad {t}>"

    lines = []
    for i in range(1, len(ids)):
        want = ids[i]
        p = float(probs[i - 1, want])
        guesses = ", ".join(
            f"{int(t)} '{shown(int(t))}' {float(q):.3f}"
            for t, q in zip(best[i - 1], best_p[i - 1], strict=True)
        )
        context = escape(tokenizer.decode(ids[:i]))
        lines.append(
            f"{context} ----> '{escape(tokenizer.decode([want]))}' ({want})  p={p:.4f}  "
            f"top {top}: {guesses}"
        )
    return lines
