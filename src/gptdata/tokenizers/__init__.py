"""Stage 1, tokenizers: text in, token IDs out (and back).

GPT-2's exact BPE (offline), Hugging Face ``tokenizer.json`` models, the book's word-level
tokenizers, and tiktoken's calling conventions; :func:`get_tokenizer` turns a name, a path or an
Encoding into a :class:`Tokenizer`, which every later stage takes. Nothing here imports torch.
"""

from .base import UNK, Tokenizer, check_ids, token_byte_lengths
from .dialect import ENDOFTEXT
from .gpt2 import GPT2Tokenizer, HFTokenizer
from .registry import get_tokenizer
from .simple import SimpleTokenizer

__all__ = [
    "ENDOFTEXT",
    "UNK",
    "GPT2Tokenizer",
    "HFTokenizer",
    "SimpleTokenizer",
    "Tokenizer",
    "check_ids",
    "get_tokenizer",
    "token_byte_lengths",
]
