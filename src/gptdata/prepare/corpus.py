"""The one source reader: anything a user passes -> token IDs plus document boundaries.

Every API and verb that takes a ``source`` (datasets, loaders, the book's classes, ``evaluate``,
``inspect``, ``plan``) reads it here, so each input rule (special text, JSONL fields, BOM,
documents, a file name never taken for text) holds in one place:

* ``Path("notes.txt")``, a ``.jsonl``/``.jsonl.gz``/``.parquet`` file, or a folder of them: the
  documents ``prepare`` would read, tokenized and joined by end-of-text, as in a store split;
* ``Path("store/")`` (a folder with ``manifest.json``) or a ``TokenStore``: its ``split``;
* a ``Split``: itself (memory-mapped, never loaded whole);
* a NumPy array, list or 1-D tensor of IDs: kept in the caller's integer dtype (no int64 copy);
* a URL of object storage, as a ``str`` (``"s3://bucket/corpus/"``, ``"s3://b/*.jsonl.gz"``) or
  a ``storage.Location`` (which carries its ``storage_options`` through APIs that take only a
  source): the objects it names, read as a ``Path`` to local copies would be;
* any other ``str``: raw text, tokenized. A short ``str`` that names an existing file or folder
  is an error: pass ``Path(...)`` for the file, or its text.

Asked with ``keep_text=True``, the reader also keeps each document's original text, from which
``Corpus.document_words`` counts words as lm-evaluation-harness does; ``document_bytes`` counts the
UTF-8 bytes of each document's tokens (what bits per byte divides by). Torch is never imported
here; a tensor is recognised only when torch is already loaded.

    >>> corpus = load_tokens([40, 367, 2885, 1464])
    >>> len(corpus.tokens), corpus.tokens.gather(np.array([0, 2]), 2).tolist()
    (4, [[40, 367], [2885, 1464]])
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import Location, is_remote
from ..store import MANIFEST, Split, TokenStore, dtype_for, open_url
from ..tokenizers import Tokenizer, get_tokenizer, token_byte_lengths
from .arrays import ArrayTokens, ids_array
from .sources import (
    Errors,
    InputError,
    ReadStats,
    lost_url,
    plan_units,
    read_documents,
    resolve_inputs,
)
from .units import encode_texts

# A str at most this long and without a newline may be a file name typed as text.
PATH_LIKE_CHARS = 4096
_BATCH_CHARS = 1 << 20  # tokenize ~1 MB of text per call, as prepare does
_WS = re.compile(r"\s+")
SpecialText = str  # "ordinary": a literal <|endoftext|> is text (prepare's default); "allow": eot


def count_words(text: str) -> int:
    """Words as lm-evaluation-harness counts them: ``len(re.split(r"\\s+", text))``.

    'a b' -> 2;  'a b\\n' -> 3 (a trailing newline leaves an empty last field, as in the harness);
    '' -> 0 (no document, no word; the harness never sees an empty one)
    """
    return len(_WS.split(text)) if text else 0


Tokens = Split | ArrayTokens


class Corpus:
    """Tokens from one source, with the tokenizer and document ends when they are known.

    ``tokens``: a gatherable array (``len``, ``gather(starts, length)``, ``fingerprint``).
    ``tokenizer``: the tokenizer that made the IDs (a store's is looked up when first asked),
    or None for bare IDs. ``document_ends``: cumulative end offsets (int64, one per document,
    separators excluded as in a store split) or None when the source does not say.
    """

    def __init__(
        self,
        tokens: Tokens,
        *,
        tokenizer: Any = None,
        document_ends: np.ndarray | None = None,
        description: str = "the source",
        store_root: Path | None = None,
        texts: list[str] | None = None,
    ) -> None:
        self.tokens = tokens
        self.texts = texts  # each document's original text, when read with keep_text=True
        self.description = description  # for messages: "'notes.txt'", "store/ split 'train'"
        self._tokenizer = tokenizer
        self._tokenizer_resolved = isinstance(tokenizer, Tokenizer) and store_root is None
        self._document_ends = document_ends
        self._store_root = store_root

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Corpus({self.description}, tokens={len(self.tokens):,})"

    @property
    def tokenizer(self) -> Tokenizer | None:
        """Resolved when first asked: a store is opened only by those who need its tokenizer.

        A store's: the tokenizer passed when it made the store (GPT-2 reads any GPT-2 store;
        another one raises, naming both), else the store's own when it is GPT-2, else None.
        """
        if self._tokenizer_resolved:
            return self._tokenizer
        spec, root = self._tokenizer, self._store_root
        if root is not None:
            store = TokenStore.open(root)
            if spec is not None:
                spec = store.reading_tokenizer(spec)
            elif store.tokenizer_name == "gpt2":
                tok = get_tokenizer("gpt2")
                spec = tok if tok.fingerprint == store.fingerprint else None
        elif spec is not None and not isinstance(spec, Tokenizer):
            spec = get_tokenizer(spec)  # a name or an Encoding
        self._tokenizer, self._tokenizer_resolved = spec, True
        return spec

    @property
    def document_ends(self) -> np.ndarray | None:
        if self._document_ends is None and isinstance(self.tokens, Split):
            self._document_ends = self.tokens.document_ends()
        return self._document_ends

    def document_lengths(self) -> np.ndarray | None:
        """Tokens per document, separators excluded: ends [2, 4] ([1, 2, eot, 3]) -> [2, 1]."""
        ends = self.document_ends
        if ends is None:
            return None
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        return (ends - starts).astype(np.int64)

    def document_texts(self) -> list[str]:
        """Each document's text: as read when kept (``keep_text=True``), else decoded tokens."""
        if self.texts is not None:
            return self.texts
        tok, ends = self._need_documents("document_texts")
        starts = np.concatenate([[0], ends[:-1] + 1])
        return [
            tok.decode(self.tokens.gather(np.array([a]), int(b - a))[0].tolist() if b > a else [])
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]

    def document_words(self) -> np.ndarray:
        """Words per document (``count_words``), counted once on ``document_texts``."""
        return np.array([count_words(t) for t in self.document_texts()], dtype=np.int64)

    def document_bytes(self) -> np.ndarray:
        """UTF-8 bytes of each document's tokens (end-of-text counts 0), int64 per document.

        The tokens' bytes, not the text's: they differ where a tokenizer drops or maps bytes. A
        tokenizer without ``token_bytes`` counts the bytes of its decoded text.
        """
        tok, ends = self._need_documents("document_bytes")
        table = token_byte_lengths(tok)
        if table is None:
            return np.array([len(t.encode("utf-8")) for t in self.document_texts()], np.int64)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        out = np.zeros(len(ends), dtype=np.int64)
        step = 1 << 22  # 4M tokens at a time: a store split is never loaded whole
        for lo in range(0, len(self.tokens), step):
            hi = min(lo + step, len(self.tokens))
            chunk = self.tokens.gather(np.array([lo]), hi - lo)[0]
            cum = np.concatenate([[0], np.cumsum(table[chunk])])  # bytes before each position
            a = np.clip(starts, lo, hi) - lo
            b = np.clip(ends, lo, hi) - lo
            out += cum[b] - cum[a]
        return out

    def _need_documents(self, what: str) -> tuple[Tokenizer, np.ndarray]:
        tok, ends = self.tokenizer, self.document_ends
        if tok is None or ends is None:
            raise ValueError(
                f"{self.description}: {what} needs the tokenizer and the document boundaries, "
                "which bare token IDs do not carry. Pass text, files or a store."
            )
        return tok, ends


def _names_existing_path(text: str) -> bool:
    if len(text) >= PATH_LIKE_CHARS or "\n" in text or not text.strip():
        return False
    try:
        return os.path.exists(text)
    except (OSError, ValueError):  # e.g. an embedded NUL: not a path
        return False


def encode_documents(
    texts: Any,
    tokenizer: Tokenizer,
    *,
    description: str = "the input",
    special_text: SpecialText = "ordinary",
    keep_text: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Documents -> (token IDs joined by end-of-text, cumulative document ends), like a split.

    Encoded by prepare's own encoder (``special_text`` as in prepare); ``keep_text``, a list,
    receives each document's text. ["a b", "c"] with a=1 b=2 c=3, eot=0 -> ([1, 2, 0, 3], [2, 4])
    """
    dtype = dtype_for(tokenizer.vocab_size)
    parts: list[np.ndarray] = []
    ends: list[int] = []
    total = 0
    sep = None if tokenizer.eot_id is None else np.array([tokenizer.eot_id], dtype=dtype)
    stats = ReadStats()

    def flush(batch: list[str]) -> None:
        nonlocal total
        for ids in encode_texts(tokenizer, batch, special_text, stats):
            if parts:
                if sep is None:
                    raise ValueError(
                        f"tokenizer {tokenizer.name} has no <|endoftext|> token to put between "
                        f"the documents of {description}. Add it to the tokenizer's vocabulary."
                    )
                parts.append(sep)
                total += 1
            arr = np.asarray(ids, dtype=dtype)
            parts.append(arr)
            total += len(arr)
            ends.append(total)
        if keep_text is not None:
            keep_text.extend(batch)

    batch: list[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= _BATCH_CHARS:
            flush(batch)
            batch, size = [], 0
    if batch:
        flush(batch)
    tokens = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    return tokens, np.array(ends, dtype=np.int64)


def _is_location(item: Any) -> bool:
    """A remote input: a ``Location``, or a ``str`` URL of object storage (``s3://...``)."""
    return isinstance(item, Location) or is_remote(item)


def _urls(items: Sequence[Any], storage_options: Mapping[str, Any] | None) -> tuple[list[Any], Any]:
    """Locations as URL strings, and the one set of storage options they are read with."""
    opts = dict(storage_options) if storage_options else None
    out: list[Any] = []
    for item in items:
        if isinstance(item, Location):
            if item.storage_options and opts and item.storage_options != opts:
                raise ValueError(
                    f"{item.url} carries other storage_options than the rest of the source; "
                    "read sources with different options one at a time."
                )
            opts = opts or item.storage_options or None
            item = item.url
        out.append(item)
    return out, opts


def _read_files(
    paths: Sequence[str | os.PathLike[str]],
    tokenizer: Tokenizer,
    *,
    text_field: str,
    errors: Errors,
    special_text: SpecialText,
    keep_text: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> Corpus:
    for path in paths:
        text = os.fspath(path)
        if is_remote(text):
            continue  # listed (or refused, in one line) by resolve_inputs
        if not os.path.exists(text) and not glob.has_magic(text):
            raise FileNotFoundError(
                f"{text} does not exist. Pass a text, JSONL(.gz) or Parquet file, a folder or "
                f"glob of them, or a token store.{lost_url(text)}"
            )
    files = resolve_inputs(list(paths), storage_options=storage_options)
    units = plan_units(files, storage_options=storage_options)
    names = ", ".join(f"'{os.fspath(p)}'" for p in paths)

    def documents() -> Any:
        for unit in units:
            yield from read_documents(unit, text_field=text_field, errors=errors)

    texts: list[str] | None = [] if keep_text else None
    tokens, ends = encode_documents(
        documents(), tokenizer, description=names, special_text=special_text, keep_text=texts
    )
    if len(ends) == 0:
        raise InputError(
            f"{names}: no non-empty documents (for .jsonl/.parquet, check text_field="
            f"{text_field!r})."
        )
    return Corpus(
        ArrayTokens(tokens), tokenizer=tokenizer, document_ends=ends, description=names, texts=texts
    )


def _is_store(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def _store_corpus(split: Split, tokenizer: Any) -> Corpus:
    """A store's split; its tokenizer is resolved when first asked (see ``Corpus.tokenizer``)."""
    return Corpus(
        split,
        tokenizer=tokenizer,
        description=f"split {split.name!r} of {split.root}",
        store_root=split.root,
    )


def load_tokens(
    source: Any,
    *,
    tokenizer: str | os.PathLike[str] | Tokenizer | None = None,
    split: str = "train",
    text_field: str = "text",
    errors: Errors = "strict",
    special_text: SpecialText | None = None,
    keep_text: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    cache_limit: int | None = None,
) -> Corpus:
    """Turn any source into tokens (see the module docstring for what each kind means).

    ``tokenizer`` (default ``"gpt2"``) encodes text and files; for stores and splits the IDs are
    already made, and a tokenizer passed must be the store's. ``split`` picks a store's split;
    ``text_field``/``errors`` as in ``prepare``. ``special_text``: how a literal
    ``<|endoftext|>`` is read: "ordinary" (text; the default for files, as prepare reads them)
    or "allow" (the end-of-text token; the default for a ``str``, as the book's
    ``tokenizer.encode(text, allowed_special={"<|endoftext|>"})``). ``keep_text=True`` keeps
    each document's text for ``Corpus.document_words``.

    A ``str`` that is a URL of object storage (``s3://``, ``gs://``, ``az://``: scheme, ``://``,
    bucket) is a location, never text: its objects are read as prepare reads them, with
    ``storage_options`` (fsspec's, e.g. ``{"endpoint_url": ...}``; credentials come from the
    cloud's own chain). A ``Location`` carries its own options. To tokenize such a string as
    text, encode it with the tokenizer and pass the IDs. A URL that holds a token store (its
    ``manifest.json``) is that store, read through the local shard cache (``$GPTDATA_CACHE_DIR``,
    at most ``cache_limit`` bytes; see ``TokenStore.open``).

        >>> load_tokens(Path("the-verdict.txt")).document_ends        # one .txt = one document
        array([5145])
        >>> load_tokens("Hello, world").tokens.array
        array([15496,    11,   995], dtype=uint16)
        >>> load_tokens("s3://bucket/notes.jsonl", storage_options={"anon": True}).document_ends
        array([12, 30])
    """
    if special_text not in (None, "ordinary", "allow"):
        raise ValueError(f"special_text={special_text!r} is not 'ordinary' or 'allow'.")
    if isinstance(source, Corpus):
        return source
    if isinstance(source, Split):
        return _store_corpus(source, tokenizer)
    if isinstance(source, ArrayTokens):
        return Corpus(source, tokenizer=tokenizer, description="the source")
    if isinstance(source, TokenStore):
        return _store_corpus(source.split(split), tokenizer)
    if _is_location(source):
        source = [source]
    if isinstance(source, str):
        if _names_existing_path(source):
            kind = "folder" if os.path.isdir(source) else "file"
            raise ValueError(
                f"source {source!r} is a str that names an existing {kind}; a str is read as "
                f"raw text. Pass Path({source!r}) to read the {kind}, or pass its text "
                f"(Path({source!r}).read_text())."
            )
        tok = get_tokenizer(tokenizer if tokenizer is not None else "gpt2")
        mode = special_text or "allow"
        ids, ends = encode_documents([source] if source else [], tok, special_text=mode)
        return Corpus(
            ArrayTokens(ids),
            tokenizer=tok,
            document_ends=ends,
            description="the text",
            texts=[source] if keep_text and source else ([] if keep_text else None),
        )
    if isinstance(source, os.PathLike) or (
        isinstance(source, (list, tuple))
        and source
        and all(isinstance(p, os.PathLike) or _is_location(p) for p in source)
    ):
        items = [source] if isinstance(source, os.PathLike) else list(source)
        paths, opts = _urls(items, storage_options)
        if len(paths) == 1 and not is_remote(paths[0]) and _is_store(Path(paths[0])):
            return _store_corpus(TokenStore.open(paths[0]).split(split), tokenizer)
        if len(paths) == 1 and is_remote(paths[0]):
            found = open_url(paths[0], storage_options=opts, cache_limit=cache_limit)
            if isinstance(found, TokenStore):  # a store: its shards through the local cache
                return _store_corpus(found.split(split), tokenizer)
        tok = get_tokenizer(tokenizer if tokenizer is not None else "gpt2")
        return _read_files(
            paths,
            tok,
            storage_options=opts,
            text_field=text_field,
            errors=errors,
            special_text=special_text or "ordinary",
            keep_text=keep_text,
        )
    if isinstance(source, (bytes, bytearray)):
        raise TypeError(
            "source is bytes: decode it to text first (data.decode('utf-8')), or pass a Path."
        )
    return Corpus(ids_array(source), tokenizer=tokenizer, description="the source")
