"""What evaluation scores: a source, read by the one reader, laid out as one token sequence.

Every source becomes the *stream layout* the store uses, with one prefix token in front:

    seq = [p] t0 [p] t1 [p] t2        p = the tokenizer's end-of-text (50256 for GPT-2)

so document ``k`` is ``seq[offsets[k] + 1 : offsets[k] + 1 + lengths[k]]`` and ``seq[offsets[k]]``
is the token that conditions its first prediction. The reading itself (files, stores, text, IDs,
and every input rule) is ``prepare.load_tokens``'s; here only the layout and what evaluation adds:

* text and files are read as ``prepare`` reads them: a literal ``<|endoftext|>`` inside a text is
  ordinary text, so a file and the store prepared from it score the same tokens;
* ``bytes`` are the UTF-8 bytes of each document's tokens (end-of-text: 0); words are counted on
  the original text where gptdata has it (files, strings) and on the decoded tokens otherwise;
* token IDs are one stream whose documents end at end-of-text; a trailing end-of-text (nanoGPT's
  ``val.bin``) ends the last document, no empty documents.

    >>> data = load_eval_data("Hello world", tokenizer=get_tokenizer("gpt2"))
    >>> data.seq.tolist(), data.offsets.tolist(), data.lengths.tolist(), data.bytes.tolist()
    ([50256, 15496, 995], [0], [2], [11])

Deliberately torch-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..prepare.corpus import ArrayTokens, Corpus, count_words, load_tokens
from ..store import MANIFEST, Split, TokenStore
from ..tokenizers import Tokenizer, get_tokenizer

__all__ = ["EvalData", "count_words", "load_eval_data", "open_url"]


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


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)


def _documents(corpus: Corpus, name: str) -> EvalData:
    """A corpus whose documents are known (text, files, a store split)."""
    tok = corpus.tokenizer
    if tok is None:  # a store made by another tokenizer: its own message says which to pass
        tok = TokenStore.open(corpus.tokens.root).reading_tokenizer(None)  # type: ignore[union-attr]
    prefix = _prefix_of(tok)
    if isinstance(corpus.tokens, Split) and corpus.tokens.eot_id != prefix:
        raise ValueError(
            f"{name}: separator {corpus.tokens.eot_id} is not the tokenizer's {prefix}."
        )
    lengths = corpus.document_lengths()
    assert lengths is not None
    if len(lengths) == 0:
        raise ValueError(f"{name}: no documents (every document is empty). Pass some text.")
    seq = np.empty(len(corpus) + 1, dtype=_dtype(corpus))
    seq[0] = prefix
    if isinstance(corpus.tokens, Split):
        pos = 1
        for chunk in corpus.tokens.iter_chunks():  # a copy in the store's dtype, chunk by chunk
            seq[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
    else:
        seq[1:] = corpus.tokens.array  # type: ignore[union-attr]
    counted_on = "text" if corpus.texts is not None else "decoded tokens"
    return EvalData(
        seq, _offsets(lengths), lengths, corpus.document_bytes(), corpus.document_words(), tok,
        prefix, name, counted_on,
    )  # fmt: skip


def _dtype(corpus: Corpus) -> np.dtype:
    tokens = corpus.tokens
    return tokens.dtype if isinstance(tokens, Split) else tokens.array.dtype  # type: ignore[union-attr]


def _stream(ids: np.ndarray, tok: Tokenizer) -> EvalData:
    """Bare token IDs: one stream, documents end at end-of-text."""
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
    ends = np.concatenate([seps, [len(body)]]).astype(np.int64)
    corpus = Corpus(ArrayTokens(body), tokenizer=tok, document_ends=ends, description="token IDs")
    lengths = corpus.document_lengths()
    assert lengths is not None
    return EvalData(
        seq, _offsets(lengths), lengths, corpus.document_bytes(), corpus.document_words(), tok,
        prefix, "token IDs", "decoded tokens", trailing,
    )  # fmt: skip


def open_url(
    source: Any,
    *,
    storage_options: dict[str, Any] | None = None,
    cache_limit: int | None = None,
) -> Any:
    """A URL ``str`` -> the ``TokenStore`` there, else its ``Location`` (``store.open_url``); any
    other source as it is.

        's3://b/stores/web' -> TokenStore; 's3://b/sft/data.json' -> Location; Path(...) -> Path(...)
    """
    from ..storage import is_remote
    from ..store import open_url as locate

    if not (isinstance(source, str) and is_remote(source)):
        return source
    return locate(source, storage_options=storage_options, cache_limit=cache_limit)


def source_name(source: Any) -> str:
    """How a source is named to the user: a URL as given, never the local cache folder.

    TokenStore at s3://b/web -> 's3://b/web'; its Split 'val' -> "s3://b/web split 'val'"
    """
    if isinstance(source, Split):
        loc = getattr(source, "location", None)  # a RemoteSplit: its root is the cache
        return f"{loc.url if loc is not None else source.root} split {source.name!r}"
    url = getattr(source, "url", None)  # a TokenStore or a Location
    return url if isinstance(url, str) else os.fspath(source)


def load_eval_data(
    source: Any,
    *,
    tokenizer: Tokenizer | str | None = None,
    split: str | None = None,
    text_field: str = "text",
) -> EvalData:
    """Any source ``load_tokens`` reads, as evaluation lays it out: a store split, a store (its
    ``split``, default 'val'), a Path to a store or to text/JSONL/Parquet files or a folder of them
    (one document per text file or record), a ``str`` of text, or token IDs (one stream)."""
    if isinstance(source, str) and not source:
        raise ValueError("source is an empty string: nothing to evaluate.")
    if isinstance(source, Corpus) and source.document_ends is None:
        source = source.tokens.array  # type: ignore[union-attr]
    name = split or "val"
    store = source if isinstance(source, TokenStore) else None
    if isinstance(source, os.PathLike) and os.path.isfile(os.path.join(source, MANIFEST)):
        store = TokenStore.open(source)  # a store's folder: its val split unless told
    if store is not None:
        if name not in store.splits:
            raise ValueError(
                f"{store.url} has no split {name!r} (it has {store.splits}); pass "
                "another split, e.g. split='train'."
            )
        source = store.split(name)
    if isinstance(source, Split):
        where = source_name(source)
        if source.n_tokens == 0:
            raise ValueError(
                f"{where} is empty (0 tokens). Evaluate another split (split='train') or "
                "prepare the store with a validation split (gptdata prepare --val-fraction)."
            )
        return _documents(load_tokens(source, tokenizer=tokenizer), where)
    corpus = load_tokens(
        source,
        tokenizer=tokenizer or "gpt2",
        text_field=text_field,
        special_text="ordinary",  # as prepare reads text: a file and its store score alike
        keep_text=True,
    )
    if corpus.document_ends is None:  # bare IDs
        array = corpus.tokens.array  # type: ignore[union-attr]
        return _stream(np.asarray(array).astype(np.int64), get_tokenizer(tokenizer or "gpt2"))
    where = getattr(source, "url", None) or (
        str(source) if isinstance(source, os.PathLike) else None
    )
    return _documents(corpus, where or "text")
