"""Check a parsed ``manifest.json`` before anything in it is trusted: types, ranges, totals, paths.

``check_manifest`` is pure, no file access: ``store.TokenStore.open`` runs it first, then looks
at the files (``inside`` keeps each path in the store). Every rule names the field it refuses, so
a tampered or hand-edited manifest gives one clear line instead of a traceback (or, for
``"dtype": "object"``, a crashed reader). Also here: the store id that tells a reader its store
was replaced (``store_id_for``, ``read_store_id``, ``map_shards``).

    >>> check_manifest({**manifest, "dtype": "object"})
    Traceback (most recent call last):
    ManifestError: 'dtype' is 'object'; gptdata stores only uint16 or uint32 token IDs.

Deliberately not checked by ``check_manifest``: anything that needs the files (sizes, indexes,
sha256 sums, where a path resolves once symlinks are followed); ``store.py`` does those.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from pathlib import Path
from typing import Any

import numpy as np

from .layout import MANIFEST as MANIFEST  # re-exported
from .masks import check_mask_entry

# The element types gptdata writes, by the rule of store.dtype_for: uint16 up to 65,536 IDs.
DTYPES = ("uint16", "uint32")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_STORE_ID = re.compile(r"[0-9a-f]{32}")  # store.store_id_for: sha256 of the rest, shortened
SHARD_FIELDS = ("file", "index", "tokens", "documents", "sha256", "index_sha256")


def store_id_for(manifest: dict[str, Any]) -> str:
    """A store's id: sha256 of its manifest without ``store_id`` (canonical JSON), 32 hex digits.

    It changes with any shard (the manifest holds their sha256 sums), so a reader notices a
    replaced store; stores with the same bytes share it, so stores stay byte-identical for any
    ``workers`` or engine (a random id would break that).
    """
    rest = {k: v for k, v in manifest.items() if k != "store_id"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:32]


def inside(root: Path, rel: str) -> bool:
    """Whether ``root/rel`` resolves (symlinks followed) to a path inside ``root``."""
    real_root = root.resolve()
    real = (root / rel).resolve()
    return real != real_root and real.is_relative_to(real_root)


def read_store_id(root: Path) -> str | None:
    """The ``store_id`` in ``root``'s manifest now (None for stores written before it existed).

    Raises ``OSError``/``ValueError`` when the manifest is gone or unreadable (mid-replace).
    """
    doc = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    store_id = doc.get("store_id") if isinstance(doc, dict) else "?"
    return store_id if store_id is None or isinstance(store_id, str) else "?"


def map_shards(
    root: Path, shards: list[Any], dtype: np.dtype, store_id: str | None
) -> tuple[list[np.memmap], str]:
    """Map each shard, then check the maps are the store's that ``store_id`` names.

    Returns the maps and "" when all is well, else what differs (the store was replaced).
    """
    maps: list[np.memmap] = []
    try:
        for s in shards:
            if not inside(root, s.file):
                return maps, f"{s.file} now resolves outside the store"
            maps.append(np.memmap(root / s.file, dtype=dtype, mode="r"))
    except (OSError, ValueError) as exc:
        return maps, f"cannot map {s.file} ({type(exc).__name__})"
    try:
        now = read_store_id(root)
    except (OSError, ValueError):
        now = "missing"
    if now != store_id:
        return maps, f"store_id {store_id} when opened, {now} now"
    for s, m in zip(shards, maps, strict=True):
        if len(m) != s.tokens:
            return maps, f"{s.file} holds {len(m):,} tokens, the manifest read {s.tokens:,}"
    return maps, ""


class ManifestError(ValueError):
    """One manifest field is missing, of the wrong type, or out of range; the message names it."""


def _kind(value: Any) -> str:
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
    }
    return kinds.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def _get(doc: dict[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise ManifestError(f"'{where}{key}' is missing.")
    return doc[key]


def _object(value: Any, field: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{field} must be an object of {what}, got {_kind(value)}.")
    return value


def _count(value: Any, field: str, *, low: int = 0) -> int:
    # bool is an int in Python and 3.0 is a float in JSON: neither is a count.
    if type(value) is not int:
        raise ManifestError(f"{field} must be an integer, got {_kind(value)} ({value!r:.40}).")
    if value < low:
        raise ManifestError(f"{field} is {value:,}, but must be >= {low}.")
    if value >= 1 << 62:  # readers compute offsets in int64 (tokens x itemsize, cumulative sums)
        raise ManifestError(f"{field} is {value:,}, more than a store can hold (2**62).")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{field} must be a non-empty string, got {_kind(value)}.")
    return value


def check_relative_path(rel: Any, field: str) -> str:
    """A store path: relative, '/'-separated, normalized, no '..', not the manifest itself.

    'shards/00000.train.000.bin' -> ok;  '/etc/passwd', '../x.bin', 'shards//a.bin' -> refused
    """
    rel = _string(rel, field)
    if (
        "\\" in rel
        or "\0" in rel
        or rel.startswith("/")
        or re.match(r"[A-Za-z]:", rel)
        or posixpath.normpath(rel) != rel
        or ".." in rel.split("/")
        or rel in (".", MANIFEST)
    ):
        raise ManifestError(
            f"{field} is {rel!r}: a store's files must be named by normalized paths inside its "
            "folder (like 'shards/00000.train.000.bin'), never absolute or with '..'."
        )
    return rel


def _check_split(name: str, split: Any, seen: set[str]) -> tuple[int, int]:
    where = f"splits.{name}."
    split = _object(split, f"'splits.{name}'", "tokens, documents and shards")
    tokens = _count(_get(split, "tokens", where), f"'{where}tokens'")
    documents = _count(_get(split, "documents", where), f"'{where}documents'")
    shards = _get(split, "shards", where)
    if not isinstance(shards, list):
        raise ManifestError(f"'{where}shards' must be a list of shards, got {_kind(shards)}.")
    sum_tokens = sum_docs = 0
    for k, shard in enumerate(shards):
        at = f"{where}shards[{k}]."
        shard = _object(shard, f"'{where}shards[{k}]'", "file, index, tokens, documents, sha256")
        for key in ("file", "index"):
            rel = check_relative_path(_get(shard, key, at), f"'{at}{key}'")
            if rel in seen:
                raise ManifestError(f"'{at}{key}' is {rel!r}, which another entry names too.")
            seen.add(rel)
        n_docs = _count(_get(shard, "documents", at), f"'{at}documents'", low=1)
        # Each document has >= 1 token and a separator after every one but the last.
        n_tok = _count(_get(shard, "tokens", at), f"'{at}tokens'", low=2 * n_docs - 1)
        for key in ("sha256", "index_sha256"):
            digest = _get(shard, key, at)
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                raise ManifestError(f"'{at}{key}' must be 64 lowercase hex digits.")
        if "mask" in shard:  # optional: instruction stores (masks.py)
            try:
                rel = check_mask_entry(shard["mask"], n_tok, at)
            except ValueError as exc:
                raise ManifestError(str(exc)) from None
            rel = check_relative_path(rel, f"'{at}mask.file'")
            if rel in seen:
                raise ManifestError(f"'{at}mask.file' is {rel!r}, which another entry names too.")
            seen.add(rel)
        sum_tokens += n_tok
        sum_docs += n_docs
    # One separator is implied between consecutive shards (docs/FORMAT.md).
    want_tokens = sum_tokens + max(len(shards) - 1, 0)
    for key, declared, got in (("tokens", tokens, want_tokens), ("documents", documents, sum_docs)):
        if declared != got:
            raise ManifestError(
                f"split {name!r} declares {declared!r} {key}, its shards add up to {got:,}."
            )
    return tokens, documents


def check_manifest(doc: Any) -> None:
    """Raise ``ManifestError`` naming the first field that is missing, mistyped or out of range.

    Format and version are the caller's to check (they decide which rules apply).
    """
    doc = _object(doc, "the manifest", "fields")
    tok = _object(_get(doc, "tokenizer", ""), "'tokenizer'", "name, fingerprint, vocab_size")
    _string(_get(tok, "name", "tokenizer."), "'tokenizer.name'")
    _string(_get(tok, "fingerprint", "tokenizer."), "'tokenizer.fingerprint'")
    vocab_size = _count(_get(tok, "vocab_size", "tokenizer."), "'tokenizer.vocab_size'", low=1)
    eot_id = _get(tok, "eot_id", "tokenizer.")
    if eot_id is not None:
        _count(eot_id, "'tokenizer.eot_id'")
        if eot_id >= vocab_size:
            raise ManifestError(
                f"'tokenizer.eot_id' is {eot_id:,}, outside the vocabulary "
                f"(vocab_size {vocab_size:,}: IDs 0..{vocab_size - 1:,})."
            )
    dtype = _get(doc, "dtype", "")
    if dtype not in DTYPES:
        raise ManifestError(
            f"'dtype' is {dtype!r:.40}; gptdata stores only {' or '.join(DTYPES)} token IDs."
        )
    want = "uint16" if vocab_size <= 1 << 16 else "uint32"  # the rule of store.dtype_for
    if dtype != want:
        raise ManifestError(
            f"'dtype' is {dtype}, but vocab_size {vocab_size:,} is stored as {want}."
        )
    splits = _get(doc, "splits", "")
    if not isinstance(splits, dict) or not splits:
        raise ManifestError(
            f"'splits' must be a non-empty object of split name -> split, got {_kind(splits)}"
            + (" (empty)." if splits == {} else ".")
        )
    seen: set[str] = set()
    counts = [_check_split(name, split, seen) for name, split in splits.items()]
    if eot_id is None and any(docs > 1 for _, docs in counts):
        raise ManifestError(
            "'tokenizer.eot_id' is null, but a split holds several documents, which need an "
            "end-of-text ID between them."
        )
    if "store_id" in doc:
        store_id = doc["store_id"]
        if not isinstance(store_id, str) or not _STORE_ID.fullmatch(store_id):
            raise ManifestError("'store_id' must be 32 lowercase hex digits.")
    if "options" in doc:
        _object(doc["options"], "'options'", "option name -> value")
    if "inputs" in doc:
        inputs = doc["inputs"]
        if not isinstance(inputs, list):
            raise ManifestError(f"'inputs' must be a list of files, got {_kind(inputs)}.")
        for k, entry in enumerate(inputs):
            entry = _object(entry, f"'inputs[{k}]'", "path and bytes")
            if not isinstance(entry.get("path"), str):
                raise ManifestError(f"'inputs[{k}].path' must be a string.")
            if "bytes" in entry:
                _count(entry["bytes"], f"'inputs[{k}].bytes'")
    for group in ("stats", "counts"):  # stats: documents skipped; counts: documents read
        if group in doc:
            for key, value in _object(doc[group], f"'{group}'", "name -> count").items():
                _count(value, f"'{group}.{key}'")
    if "documents" in doc.get("counts", {}):
        n = doc["counts"]["documents"]
        # Input documents: one cut between two splits counts in each split, once here.
        low, high = max(d for _, d in counts), sum(d for _, d in counts)
        if not low <= n <= high:
            raise ManifestError(
                f"'counts.documents' is {n:,}, but the splits hold {high:,} (a document cut "
                f"between splits counts in each), so it must be in {low:,}..{high:,}."
            )
