"""Planning before training: windows, batches, stride coverage and document sizes per split.

    >>> report, ok = plan_report(source_splits(Path("notes.txt")), max_length=256, stride=256,
    ...                          batch_size=8)

Every source is read by the one reader (``prepare.load_tokens``); a store contributes each of its
non-empty splits, anything else one split ("text" for text and files, "ids" for token IDs).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..prepare.corpus import ArrayTokens, Corpus, load_tokens
from ..prepare.sources import Errors
from ..storage import Location, is_remote
from ..store import MANIFEST, Split, TokenStore, open_url
from ..tokenizers import Tokenizer, get_tokenizer


@dataclass
class Loaded:
    """Token IDs per split, with the tokenizer that reads them."""

    splits: dict[str, Any]  # name -> np.ndarray or store Split
    tokenizer: Tokenizer
    documents: dict[str, np.ndarray]  # name -> document lengths in tokens


def _ids(corpus: Corpus) -> Any:
    return corpus.tokens.array if isinstance(corpus.tokens, ArrayTokens) else corpus.tokens


def source_splits(
    source: Any,
    *,
    tokenizer: str | Tokenizer = "gpt2",
    text_field: str = "text",
    errors: Errors = "strict",
) -> Loaded:
    """A source as named splits of token IDs, each read by ``load_tokens``.

    * a store (``Path`` to its folder, or a ``TokenStore``): its non-empty splits; a ``Split``;
    * a ``Path`` to a text, JSONL(.gz) or Parquet file, a folder or a glob of them, raw text or
      token IDs: one split, ``text`` (documents as ``prepare`` reads them) or ``ids`` (one
      document).

        >>> source_splits(Path("notes.jsonl")).documents["text"]   # two lines {"text": ...}
        array([12, 30])
    """
    if isinstance(source, os.PathLike) and (Path(source) / MANIFEST).is_file():
        source = TokenStore.open(source)
    if isinstance(source, (TokenStore, Split)):
        store = source if isinstance(source, TokenStore) else TokenStore.open(source.root)
        tok = store.reading_tokenizer(tokenizer)
        if isinstance(source, Split):
            corpora = {source.name: load_tokens(source, tokenizer=tok)}
        else:
            names = [n for n in store.splits if store.split(n).n_tokens]
            corpora = {n: load_tokens(store, split=n, tokenizer=tok) for n in names}
        docs = {name: c.document_lengths() for name, c in corpora.items()}
        return Loaded({n: _ids(c) for n, c in corpora.items()}, tok, docs)  # type: ignore[arg-type]
    tok = get_tokenizer(tokenizer)
    corpus = load_tokens(source, tokenizer=tok, text_field=text_field, errors=errors)
    ids = _ids(corpus)
    lengths = corpus.document_lengths()
    name = "text" if lengths is not None else "ids"
    docs = lengths if lengths is not None else np.array([len(ids)], dtype=np.int64)
    return Loaded({name: ids}, corpus.tokenizer or tok, {name: docs})


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
    from ..windows.dataset import SlidingWindowDataset
    from ..windows.documents import document_stats

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


def instruction_plan(
    source: str | os.PathLike[str] | TokenStore | Location,
    *,
    batch_size: int,
    max_length: int,
    tokenizer: str | Tokenizer = "gpt2",
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Per split of instruction data: pad tokens per epoch, padded against packed, and the loss
    tokens per batch (all targets, and only the response's with ``mask_prompt``).

    A file (``.json`` list, ...) is one split; a store prepared with ``--instructions`` gives each
    of its splits that holds examples. A URL (``s3://b/sft/data.json``, a store's) is read with
    ``storage_options``; a ``TokenStore`` opened from one keeps its cache limit.

        plan data.json --instructions --max-length 1024 --batch-size 8
        -> "data.json: 1,100 examples, ... padded batches add 40,112 pad tokens in 138 ..."
    """
    from ..windows.finetune import InstructionDataset  # torch: loaded only for this report
    from ..windows.packing import padding_report

    if isinstance(source, str) and is_remote(source):
        source = open_url(source, storage_options=storage_options)
    names: list[str | None] = [None]
    if not isinstance(source, (TokenStore, Location)) and os.path.isfile(
        os.path.join(os.fspath(source), MANIFEST)
    ):
        source = TokenStore.open(source)
    if isinstance(source, TokenStore):
        names = [s for s in source.splits if source.split(s).n_documents]
    where = source.url if isinstance(source, (TokenStore, Location)) else os.fspath(source)
    lines = []
    for name in names:
        part = source if name is None else source.split(name)  # type: ignore[union-attr]
        ds = InstructionDataset(part, tokenizer=tokenizer)  # type: ignore[arg-type]
        full = padding_report(list(ds), batch_size=batch_size, max_length=max_length)
        masked = padding_report(
            list(ds), batch_size=batch_size, max_length=max_length, mask_prompt=True
        )
        lines += [
            f"{name or where}: {full.examples:,} examples, {full.tokens:,} tokens with end-of-text",
            f"  padded  {full.padded_batches:,} batches of {batch_size}, "
            f"{full.padded_pad_tokens:,} pad tokens per epoch "
            f"({full.padded_pad_tokens / max(full.tokens, 1):.1%} of the example tokens)",
            f"  packed  {full.packed_rows:,} rows of {max_length + 1:,} tokens, "
            f"{full.packed_pad_tokens:,} fill tokens per epoch",
            f"  loss tokens per padded batch: {full.loss_tokens_per_batch:,.1f} "
            f"(mask_prompt: {masked.loss_tokens_per_batch:,.1f}, the response's only)",
        ]
    return "\n".join(lines)
