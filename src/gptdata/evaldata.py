"""What evaluation reads: any source as one token sequence with document boundaries and sizes.

Every source becomes the *stream layout* the store uses, with one prefix token in front:

    seq = [p] t0 [p] t1 [p] t2        p = the tokenizer's end-of-text (50256 for GPT-2)

so document ``k`` is ``seq[offsets[k] + 1 : offsets[k] + 1 + lengths[k]]`` and ``seq[offsets[k]]``
is the token that conditions its first prediction. A store split is already laid out this way (its
separators are end-of-text), so it is read as stored; text is tokenized here.

    >>> data = load_eval_data("Hello world", tokenizer=get_tokenizer("gpt2"))
    >>> data.seq.tolist(), data.offsets.tolist(), data.lengths.tolist(), data.bytes.tolist()
    ([50256, 15496, 995], [0], [2], [11])

Documents are read and encoded exactly as ``prepare`` reads them (``sources.read_documents``, then
the same encoder with ``special_text="ordinary"``): a literal ``<|endoftext|>`` inside a text is
ordinary text, so a file and the store prepared from it score the same tokens. ``bytes`` are the
UTF-8 bytes of the scored text tokens in every path (end-of-text: 0 bytes; a tokenizer without
``token_bytes`` counts its decoded text); words are counted on the original text where gptdata
has it (files, strings) and on the decoded tokens for a store or token IDs. A trailing
end-of-text in token IDs (nanoGPT's ``val.bin``) ends the last document; no empty documents.
Deliberately torch-free.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._units import _encode_batch
from .corpus import _names_existing_path
from .sources import ReadStats, plan_units, read_documents, resolve_inputs
from .store import MANIFEST, Split, TokenStore
from .tokenizers import Tokenizer, get_tokenizer

_WS = re.compile(r"\s+")


def count_words(text: str) -> int:
    """Words as lm-evaluation-harness counts them: ``len(re.split(r"\\s+", text))``.

    'a b' -> 2;  'a b\\n' -> 3 (a trailing newline leaves an empty last field, as in the harness);
    '' -> 0 (no document, no word; the harness never sees an empty one)
    """
    return len(_WS.split(text)) if text else 0


@dataclass
class EvalData:
    """Token IDs in the stream layout, document boundaries and sizes (see the module docstring)."""

    seq: np.ndarray  # (1 + tokens + separators,) integer IDs
    offsets: np.ndarray  # (D,) int64: position in seq of each document's prefix token
    lengths: np.ndarray  # (D,) int64: tokens per document, separators excluded
    bytes: np.ndarray  # (D,) int64: UTF-8 bytes per document
    words: np.ndarray  # (D,) int64: words per document (count_words)
    tokenizer: Tokenizer
    prefix: int
    name: str
    counted_on: str  # "text" or "decoded tokens": where words come from
    trailing_separator: bool = False  # token IDs ended with end-of-text: it ends the last document

    @property
    def documents(self) -> int:
        return len(self.offsets)


def _prefix_of(tokenizer: Tokenizer) -> int:
    if tokenizer.eot_id is None:
        raise ValueError(
            f"tokenizer {tokenizer.name} has no <|endoftext|> token, which evaluation needs as the "
            "prefix of each document. Use a tokenizer whose vocabulary has it."
        )
    return int(tokenizer.eot_id)


def _byte_table(tokenizer: Tokenizer) -> np.ndarray | None:
    """UTF-8 bytes of every token ID (end-of-text: 0), when the tokenizer can tell them apart."""
    token_bytes = getattr(tokenizer, "token_bytes", None)
    if token_bytes is None:
        return None
    table = np.array([len(token_bytes(i)) for i in range(tokenizer.vocab_size)], dtype=np.int64)
    if tokenizer.eot_id is not None:
        table[tokenizer.eot_id] = 0
    return table


def _token_bytes(
    seq: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, tokenizer: Tokenizer
) -> tuple[np.ndarray, list[str]]:
    """UTF-8 bytes of each document's tokens (end-of-text: 0) and its decoded text."""
    table = _byte_table(tokenizer)
    nbytes = np.zeros(len(lengths), dtype=np.int64)
    texts: list[str] = []
    for k, (o, n) in enumerate(zip(offsets.tolist(), lengths.tolist(), strict=True)):
        ids = seq[o + 1 : o + 1 + n]
        text = tokenizer.decode(ids.tolist())
        texts.append(text)
        nbytes[k] = int(table[ids].sum()) if table is not None else len(text.encode("utf-8"))
    return nbytes, texts


def _from_stream(
    seq: np.ndarray,
    lengths: np.ndarray,
    tokenizer: Tokenizer,
    name: str,
    *,
    trailing_separator: bool = False,
) -> EvalData:
    """Documents known only as tokens: bytes from the tokens, words from the decoded tokens."""
    lengths = lengths.astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    nbytes, texts = _token_bytes(seq, offsets, lengths, tokenizer)
    words = np.array([count_words(t) for t in texts], dtype=np.int64)
    prefix = _prefix_of(tokenizer)
    return EvalData(
        seq, offsets, lengths, nbytes, words, tokenizer, prefix, name, "decoded tokens",
        trailing_separator,
    )  # fmt: skip


def _from_texts(texts: Sequence[str], tokenizer: Tokenizer, name: str) -> EvalData:
    prefix = _prefix_of(tokenizer)
    if not texts:
        raise ValueError(f"{name}: no documents (every document is empty). Pass some text.")
    # prepare's own encoder: a literal <|endoftext|> is ordinary text (special_text="ordinary").
    encoded = _encode_batch(tokenizer, list(texts), "ordinary", ReadStats())
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    parts: list[Any] = []
    for ids in encoded:
        parts.append([prefix])
        parts.append(ids)
    seq = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
    offsets = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    table = _byte_table(tokenizer)
    if (
        table is not None
    ):  # the scored tokens' bytes, not the text's: they differ for some tokenizers
        nbytes = np.array([int(table[np.asarray(e, np.int64)].sum()) for e in encoded], np.int64)
    else:
        nbytes, _ = _token_bytes(seq, offsets, lengths, tokenizer)
    words = np.array([count_words(t) for t in texts], dtype=np.int64)
    return EvalData(seq, offsets, lengths, nbytes, words, tokenizer, prefix, name, "text")


def _from_split(split: Split, tokenizer: Tokenizer | str | None) -> EvalData:
    store = TokenStore.open(split.root)
    tok = store.reading_tokenizer(tokenizer)
    where = f"{split.root} split {split.name!r}"
    if split.n_tokens == 0:
        raise ValueError(
            f"{where} is empty (0 tokens). Evaluate another split (split='train') or "
            "prepare the store with a validation split (gptdata prepare --val-fraction)."
        )
    prefix = _prefix_of(tok)
    if split.eot_id != prefix:
        raise ValueError(f"{where}: separator {split.eot_id} is not the tokenizer's {prefix}.")
    seq = np.empty(split.n_tokens + 1, dtype=split.dtype)
    seq[0] = prefix
    pos = 1
    for chunk in split.iter_chunks():
        seq[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    return _from_stream(seq, split.document_lengths(), tok, where)


def load_eval_data(
    source: Any,
    *,
    tokenizer: Tokenizer | str | None = None,
    split: str | None = None,
    text_field: str = "text",
) -> EvalData:
    """A store split, a store (its ``split``, default 'val'), a Path to a store folder or to a
    text/JSONL/Parquet file or a folder of them (one document per text file or record), a ``str`` of text, or token IDs (one stream; documents end at end-of-text).
    """
    if isinstance(source, Split):
        return _from_split(source, tokenizer)
    if isinstance(source, TokenStore):
        name = split or "val"
        if name not in source.splits:
            raise ValueError(
                f"{source.root} has no split {name!r} (it has {source.splits}); pass "
                "another split, e.g. split='train'."
            )
        return _from_split(source.split(name), tokenizer)
    if isinstance(source, os.PathLike):
        path = Path(source)
        if (path / MANIFEST).is_file():
            return load_eval_data(TokenStore.open(path), tokenizer=tokenizer, split=split)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist. Pass a text or JSONL file or a store.")
        texts: list[str] = []
        for unit in plan_units(resolve_inputs([path])):
            texts.extend(read_documents(unit, text_field=text_field))
        return _from_texts(texts, get_tokenizer(tokenizer or "gpt2"), str(path))
    if isinstance(source, str):
        if not source:
            raise ValueError("source is an empty string: nothing to evaluate.")
        if _names_existing_path(source):  # the same rule as load_tokens: a str is text
            raise ValueError(
                f"source {source!r} is a str that names an existing file or folder; a str is read "
                f"as raw text. Pass Path({source!r}) to evaluate the file."
            )
        return _from_texts([source], get_tokenizer(tokenizer or "gpt2"), "text")
    tok = get_tokenizer(tokenizer or "gpt2")
    ids = np.asarray(source.tolist() if hasattr(source, "tolist") else list(source), np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise ValueError(f"token IDs must be a non-empty 1-D sequence, got shape {ids.shape}.")
    if ids.min() < 0 or ids.max() >= tok.vocab_size:
        raise ValueError(
            f"token ID {int(ids.max())} or {int(ids.min())} is outside 0..{tok.vocab_size - 1} "
            f"of tokenizer {tok.name}; pass the tokenizer that made them (tokenizer=...)."
        )
    prefix = _prefix_of(tok)
    seq = np.concatenate([[prefix], ids]).astype(np.int64)
    # A trailing end-of-text (nanoGPT's val.bin ends every document with one) ends the last
    # document instead of opening an empty one; it stays in seq, scored by="stream".
    trailing = bool(ids[-1] == prefix)
    body = ids[:-1] if trailing else ids
    if len(body) == 0:
        raise ValueError("token IDs hold only an end-of-text: nothing to evaluate.")
    seps = np.flatnonzero(body == prefix)
    ends = np.concatenate([seps, [len(body)]])
    starts = np.concatenate([[0], seps + 1])
    lengths = (ends - starts).astype(np.int64)
    return _from_stream(seq, lengths, tok, "token IDs", trailing_separator=trailing)
