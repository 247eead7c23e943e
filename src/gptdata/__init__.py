"""gptdata: raw text to training-ready data for GPT-style language models.

This is the public API; everything else is an implementation detail. Modules that need torch
(windows, loader, embeddings, evaluation) load on first use, so ``import gptdata`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._startup import quiet_interrupt

with quiet_interrupt():  # Ctrl-C while the gptdata command starts: one line, no traceback
    from .booktokenizers import SimpleTokenizerV1, SimpleTokenizerV2, build_vocab, split_words
    from .corpus import Corpus, load_tokens
    from .formats import FormatError, export_store, import_store
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
    "GPTDatasetV1": "book",
    "create_dataloader_v1": "book",
    "causal_document_mask": "attention",
    "flex_document_mask": "attention",
    "cu_seqlens": "attention",
    "evaluate": "evaluation",
    "EvalResult": "evaluation",
    "InstructionDataset": "finetune",
    "instruction_collate": "finetune",
}

if TYPE_CHECKING:
    from .attention import causal_document_mask, cu_seqlens, flex_document_mask
    from .book import GPTDatasetV1, create_dataloader_v1
    from .embeddings import GPTEmbedding, RotaryEmbedding
    from .evaluation import EvalResult, evaluate
    from .finetune import InstructionDataset, instruction_collate
    from .loader import GPTDataLoader, create_dataloader
    from .windows import SlidingWindowDataset


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gptdata' has no attribute {name!r}")


__all__ = [
    "Corpus",
    "EvalResult",
    "FormatError",
    "GPT2Tokenizer",
    "GPTDatasetV1",
    "GPTDataLoader",
    "GPTEmbedding",
    "HFTokenizer",
    "InputError",
    "InstructionDataset",
    "RotaryEmbedding",
    "SimpleTokenizer",
    "SimpleTokenizerV1",
    "SimpleTokenizerV2",
    "SlidingWindowDataset",
    "Split",
    "StoreError",
    "TokenStore",
    "Tokenizer",
    "build_vocab",
    "causal_document_mask",
    "create_dataloader_v1",
    "create_dataloader",
    "cu_seqlens",
    "evaluate",
    "export_store",
    "flex_document_mask",
    "get_tokenizer",
    "load_tokens",
    "import_store",
    "instruction_collate",
    "prepare",
    "split_words",
]
