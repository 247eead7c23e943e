"""The fast GPT-2 backend: ``fastokens`` (Rust) loaded from the official GPT-2 files, behind a gate.

Built from the same ``encoder.json``/``vocab.bpe`` as the tiktoken path: vocab = encoder.json,
merges = the lines of vocab.bpe after the first, ByteLevel pre-tokenizer and decoder without a
prefix space. ``fastokens.Tokenizer.from_tiktoken`` is *not* used: it splits U+180E differently.
``<|endoftext|>`` is not registered as a special token; the caller inserts 50256 where the text
has the literal, exactly as the tiktoken path does.

The exactness gate: on first use of a fastokens version, a fixed fixture (the sample text, tricky
strings, a seeded batch of random Unicode) is encoded by both backends; the verdict is recorded
beside the GPT-2 cache, keyed by the version. ``backend="auto"`` uses fastokens only when it is
installed and its version passed; a failure falls back to tiktoken with one warning.

Measured here (bench/tokenize.py): ~2.5x tiktoken per core on cold text, more on repeated text.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..samples import TRICKY, gate_fixture  # noqa: F401  (re-exported: the gate's fixture)
from .dialect import ENDOFTEXT
from .gpt2files import EOT_ID, cache_dir, source_files

PINNED_VERSION = "0.3.5"  # the version the gate was developed against; gptdata[fast] pins it
GATE_FILE = "fastokens-gate.json"


def installed_version() -> str | None:
    """fastokens' version when it can be imported, else None."""
    try:
        import fastokens  # noqa: F401
    except ImportError:
        return None
    return _distribution_version()


@functools.lru_cache(maxsize=1)
def _distribution_version() -> str:
    # Read once per process: the metadata lookup cost 2.7 ms of every get_tokenizer("gpt2").
    try:
        return metadata.version("fastokens")
    except metadata.PackageNotFoundError:
        return "unknown"


def repair_surrogates(text: str) -> str:
    """tiktoken's repair for lone surrogates: a UTF-16 round trip with replacement."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def build_spec() -> str:
    """The tokenizer.json text for GPT-2, from the verified official files."""
    from .gpt2files import ENCODER_JSON_SHA256, VOCAB_BPE_SHA256, _read_verified

    vocab_path, encoder_path = source_files()
    encoder = json.loads(_read_verified(encoder_path, ENCODER_JSON_SHA256))
    lines = _read_verified(vocab_path, VOCAB_BPE_SHA256).decode("utf-8").split("\n")[1:]
    merges = [line for line in lines if line]  # "left right": 25 % faster to load than pairs
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": True,
    }
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": None,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": encoder,
            "merges": merges,
        },
    }
    return json.dumps(spec, ensure_ascii=False)


SPEC_CACHE = "gpt2-fastokens-v1.json"


def spec_path() -> Path:
    """A verified cached copy of ``build_spec()`` (building it parses 1.7 MB of JSON: 0.5 s)."""
    path = cache_dir() / SPEC_CACHE
    digest = path.with_name(path.name + ".sha256")
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() == digest.read_text().strip():
            return path
    except OSError:
        pass
    data = build_spec().encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, blob in ((path, data), (digest, hashlib.sha256(data).hexdigest().encode())):
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, target)
    return path


class FastGPT2:
    """GPT-2 encoding with fastokens; same IDs as tiktoken (checked by the gate)."""

    def __init__(self) -> None:
        import fastokens

        try:
            self._tok = fastokens.Tokenizer.from_file(str(spec_path()))
        except OSError:  # no writable cache: build in memory
            self._tok = fastokens.Tokenizer.from_json_str(build_spec())

    def _flat(self, texts: list[str]) -> list[np.ndarray]:
        try:
            ids, offsets = self._tok.encode_batch_flat(texts)
        except UnicodeEncodeError:  # lone surrogates: repair as tiktoken does, then retry
            ids, offsets = self._tok.encode_batch_flat([repair_surrogates(t) for t in texts])
        flat = np.frombuffer(ids, dtype="<u4")
        ends = np.frombuffer(offsets, dtype="<u8").astype(np.int64)
        return [flat[a:b] for a, b in zip(ends[:-1], ends[1:], strict=True)]

    def encode_arrays(self, texts: Sequence[str], *, special: bool = True) -> list[np.ndarray]:
        """Token IDs per text as uint32 arrays; with ``special``, the literal becomes 50256."""
        texts = list(texts)
        if not special or not any(ENDOFTEXT in t for t in texts):
            return self._flat(texts)
        pieces = [t.split(ENDOFTEXT) for t in texts]
        parts = self._flat([p for ps in pieces for p in ps])
        eot = np.array([EOT_ID], dtype="<u4")
        out, k = [], 0
        for ps in pieces:
            joined: list[np.ndarray] = []
            for j in range(len(ps)):
                if j:
                    joined.append(eot)
                joined.append(parts[k])
                k += 1
            out.append(np.concatenate(joined))
        return out


_INSTANCE: FastGPT2 | None = None
_LOCK = threading.Lock()


def get_fast() -> FastGPT2:
    """One FastGPT2 per process (workers get a tokenizer per task; building costs ~0.25 s).

    Thread-safe: ``prepare`` builds it in a background thread while it plans (the build releases
    the GIL), and the first real use waits for that build instead of starting another.
    """
    global _INSTANCE
    with _LOCK:
        if _INSTANCE is None:
            _INSTANCE = FastGPT2()
    return _INSTANCE


def run_gate(
    fast: Callable[[list[str]], list[list[int]]], reference: Callable[[str], list[int]]
) -> tuple[bool, str | None]:
    """Encode the fixture with both; (True, None) or (False, repr of the first differing input)."""
    fixture = gate_fixture()
    for text, got in zip(fixture, fast(fixture), strict=True):
        if got != reference(text):
            return False, repr(text[:80])
    return True, None


def _read_verdicts() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / GATE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_verdicts(verdicts: dict[str, Any]) -> None:
    path = cache_dir() / GATE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(verdicts, indent=2))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only means the gate runs again next time


_WARNED = False


def gate_passed(reference: Callable[[str], list[int]]) -> bool:
    """Whether the installed fastokens passed the gate on this machine (running it if needed)."""
    global _WARNED
    version = installed_version()
    if version is None:
        return False
    verdicts = _read_verdicts()
    verdict = verdicts.get(version)
    if not isinstance(verdict, dict) or "ok" not in verdict:
        try:
            fast = get_fast()
            ok, first = run_gate(lambda ts: [a.tolist() for a in fast.encode_arrays(ts)], reference)
        except Exception as exc:  # a broken install must not break tokenizing
            ok, first = False, f"(fastokens failed: {exc})"
        verdict = {"ok": ok, "first_mismatch": first}
        verdicts[version] = verdict
        _write_verdicts(verdicts)
    if not verdict["ok"] and not _WARNED:
        _WARNED = True
        warnings.warn(
            f"fastokens {version} gives other GPT-2 IDs than tiktoken (first differing "
            f"input: {verdict['first_mismatch']}); using tiktoken. Install "
            f"fastokens=={PINNED_VERSION}, the version gptdata was checked against.",
            stacklevel=3,
        )
    return bool(verdict["ok"])
