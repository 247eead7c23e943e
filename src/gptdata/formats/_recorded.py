"""The tokenizer an export recorded, so ``import`` never guesses what made the IDs.

gptdata's own exports say which tokenizer made them: ``gptdata-export.json`` (every format)
carries ``tokenizer`` (name, vocab_size, eot_id, fingerprint) and, when export was given the
tokenizer, a copy of its file (``tokenizer.file``); nanoGPT exports also carry ``meta.json``.
Import uses that tokenizer, refuses a ``--tokenizer`` that disagrees, and when nothing records
one says which it assumed.

    >>> choose_tokenizer(Path("x/"), None)       # x/ exported from a GPT-2 store
    (GPT2Tokenizer(...), None)
    >>> choose_tokenizer(Path("y.bin"), None)    # a bare nanoGPT file: nothing recorded
    (GPT2Tokenizer(...), 'gpt2 (assumed: nothing in y.bin records a tokenizer)')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..tokenizers import SimpleTokenizer, Tokenizer, get_tokenizer
from ._common import MARKER, FormatError

TOKENIZER_DIR = "tokenizer"  # inside an export: the copy of the tokenizer's file


def _folder_of(path: Path) -> Path:
    """The export folder a path names: itself, or the folder holding a file or prefix."""
    return path if path.is_dir() else path.parent


def recorded_tokenizer(path: Path) -> tuple[dict[str, Any], Path] | None:
    """(the recorded tokenizer, the file that records it) for an export of ours, else None."""
    folder = _folder_of(path)
    for name, key in ((MARKER, "tokenizer"), ("meta.json", None)):
        try:
            doc = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rec = doc.get(key) if key and isinstance(doc, dict) else doc
        if isinstance(rec, dict) and isinstance(rec.get("name"), str):
            return rec, folder / name
    return None


def _same(tok: Tokenizer, rec: dict[str, Any]) -> bool:
    if "fingerprint" in rec:
        return tok.fingerprint == rec["fingerprint"]
    # meta.json alone holds no fingerprint: the name and sizes must agree
    return (tok.name, tok.vocab_size, tok.eot_id) == (
        rec.get("name"),
        rec.get("vocab_size"),
        rec.get("eot_id"),
    )


def _describe(rec: dict[str, Any]) -> str:
    return (
        f"{rec.get('name')} (vocab_size {rec.get('vocab_size', '?'):,}, eot_id {rec.get('eot_id')})"
    )


def choose_tokenizer(
    path: Path, tokenizer: str | os.PathLike[str] | Tokenizer | None
) -> tuple[Tokenizer, str | None]:
    """(the tokenizer that made ``path``'s IDs, a note when it was assumed rather than recorded)."""
    found = recorded_tokenizer(path)
    if found is None:
        tok = get_tokenizer(tokenizer if tokenizer is not None else "gpt2")
        if tokenizer is not None:
            return tok, None
        return tok, f"{tok.name} (assumed: nothing in {path} records a tokenizer; pass --tokenizer)"
    rec, where = found
    if tokenizer is not None:
        tok = get_tokenizer(tokenizer)
        if not _same(tok, rec):
            raise FormatError(
                f"{where} records tokenizer {_describe(rec)}, but the tokenizer given is "
                f"{tok.name} (vocab_size {tok.vocab_size:,}, eot_id {tok.eot_id}): the IDs "
                "would mean other text. Pass the tokenizer that made them, or leave it out."
            )
        return tok, None
    if rec.get("file"):
        copy = where.parent / str(rec["file"])
        real, root = os.path.realpath(copy), os.path.realpath(where.parent)
        if os.path.commonpath([real, root]) == root and copy.is_file():
            tok = get_tokenizer(copy)
            if _same(tok, rec):
                return tok, None
    if rec.get("name") in ("gpt2", "gpt-2"):
        tok = get_tokenizer("gpt2")
        if _same(tok, rec):
            return tok, None
    raise FormatError(
        f"{where} records tokenizer {_describe(rec)}, and gptdata cannot load it from there. "
        "Pass the tokenizer that made the IDs (e.g. --tokenizer vocab.json)."
    )


def save_tokenizer(tok: Tokenizer, folder: Path) -> str | None:
    """Copy ``tok``'s file into ``folder/tokenizer/``: its path there, or None (GPT-2: no file)."""
    path = getattr(tok, "path", None)
    if isinstance(tok, SimpleTokenizer):
        (folder / TOKENIZER_DIR).mkdir(exist_ok=True)
        tok.save(folder / TOKENIZER_DIR / "vocab.json")
        return f"{TOKENIZER_DIR}/vocab.json"
    if isinstance(path, Path) and path.is_file():
        (folder / TOKENIZER_DIR).mkdir(exist_ok=True)
        (folder / TOKENIZER_DIR / path.name).write_bytes(path.read_bytes())
        return f"{TOKENIZER_DIR}/{path.name}"
    return None
