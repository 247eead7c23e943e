"""gptdata: raw text to training-ready data for GPT-style language models.

This is the public API; everything else is an implementation detail. Modules that need torch
(windows, loader, embeddings) load on first use, so ``import gptdata`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .corpus import Corpus, load_tokens
from .prepare import prepare
from .sources import InputError
from .store import Split, StoreError, TokenStore
from .tokenizers import (
    GPT2Tokenizer,
    HFTokenizer,
    SimpleTokenizer,
    Tokenizer,
    get_tokenizer,
)

__version__ = "0.1.0"

_LAZY = {
    "SlidingWindowDataset": "windows",
    "create_dataloader": "loader",
    "GPTDataLoader": "loader",
    "GPTEmbedding": "embeddings",
    "RotaryEmbedding": "embeddings",
}

if TYPE_CHECKING:
    from .embeddings import GPTEmbedding, RotaryEmbedding
    from .loader import GPTDataLoader, create_dataloader
    from .windows import SlidingWindowDataset


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gptdata' has no attribute {name!r}")


__all__ = [
    "Corpus",
    "GPT2Tokenizer",
    "GPTDataLoader",
    "GPTEmbedding",
    "HFTokenizer",
    "InputError",
    "RotaryEmbedding",
    "SimpleTokenizer",
    "SlidingWindowDataset",
    "Split",
    "StoreError",
    "TokenStore",
    "Tokenizer",
    "create_dataloader",
    "get_tokenizer",
    "load_tokens",
    "prepare",
]
