"""gptdata: raw text to training-ready data for GPT-style language models.

This is the public API; everything else is an implementation detail. Modules that need torch
(windows, loader, embeddings, evaluation) load on first use, so ``import gptdata`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._startup import quiet_interrupt

with quiet_interrupt():  # Ctrl-C while the gptdata command starts: one line, no traceback
    from .formats import FormatError, export_store, import_store
    from .prepare import Corpus, InputError, load_tokens, prepare
    from .store import Split, StoreError, TokenStore
    from .tokenizers import GPT2Tokenizer, HFTokenizer, SimpleTokenizer, Tokenizer, get_tokenizer
    from .tokenizers.book import SimpleTokenizerV1, SimpleTokenizerV2, build_vocab, split_words

__version__ = "0.1.0"

_LAZY = {
    "SlidingWindowDataset": "windows.dataset",
    "create_dataloader": "windows.finetune_loader",  # windows.loader's, plus instruction data
    "GPTDataLoader": "windows.loader",
    "Mixture": "windows.mixture",
    "GPTEmbedding": "embeddings",
    "RotaryEmbedding": "embeddings",
    "GPTDatasetV1": "book",
    "create_dataloader_v1": "book",
    "causal_document_mask": "windows.attention",
    "flex_document_mask": "windows.attention",
    "cu_seqlens": "windows.attention",
    "evaluate": "evaluation.scoring",
    "EvalResult": "evaluation.scoring",
    "compare": "evaluation.compare",
    "Comparison": "evaluation.compare",
    "InstructionDataset": "windows.finetune",
    "instruction_collate": "windows.finetune",
    "InstructionLoader": "windows.finetune_loader",
}

if TYPE_CHECKING:
    from .book import GPTDatasetV1, create_dataloader_v1
    from .embeddings import GPTEmbedding, RotaryEmbedding
    from .evaluation.compare import Comparison, compare
    from .evaluation.scoring import EvalResult, evaluate
    from .windows.attention import causal_document_mask, cu_seqlens, flex_document_mask
    from .windows.dataset import SlidingWindowDataset
    from .windows.finetune import InstructionDataset, instruction_collate
    from .windows.finetune_loader import InstructionLoader, create_dataloader
    from .windows.loader import GPTDataLoader
    from .windows.mixture import Mixture


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gptdata' has no attribute {name!r}")


__all__ = [
    "Comparison",
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
    "InstructionLoader",
    "Mixture",
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
    "compare",
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
