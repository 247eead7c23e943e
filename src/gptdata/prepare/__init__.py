"""Stage 3, prepare: a user's corpora in, a token store (or tokens in memory) out.

Inputs (text, JSONL, Parquet, Arrow, Hugging Face folders) are found and read here, split into work
units, tokenized by local or Ray workers and committed as a store. ``load_tokens`` is the one
reader every later stage uses to turn any source (text, files, stores, splits, IDs) into tokens.
"""

from .corpus import Corpus, load_tokens
from .driver import DEFAULT_SHARD_TOKENS, prepare
from .sources import InputError

__all__ = ["DEFAULT_SHARD_TOKENS", "Corpus", "InputError", "load_tokens", "prepare"]
