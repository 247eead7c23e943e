"""Which split and shard names mean held-out data: one rule, used by ``prepare`` and ``import``.

A name is held out when one of its words is a held-out word; words are what is left after
cutting at ``_``, ``-``, ``.`` and digits, so suffixes and shard numbers do not hide it:

    >>> held_out_word("validation_matched"), held_out_word("fineweb-val-000000.bin")
    ('validation', 'val')
    >>> held_out_word("train_000001.bin"), held_out_word("interval")   # whole words only
    (None, None)
"""

from __future__ import annotations

import re

VAL_WORDS = ("val", "valid", "validation")  # a store has a val split for these
HELD_OUT_WORDS = (*VAL_WORDS, "dev", "test", "testing", "eval", "evaluation", "heldout")


def name_words(name: str) -> list[str]:
    """'fineweb_validation_000000.bin' -> ['fineweb', 'validation', 'bin']."""
    return [w for w in re.split(r"[_.\-\d]+", name.lower()) if w]


def held_out_word(name: str) -> str | None:
    """The first held-out word in ``name`` ('test_other' -> 'test'), or None for training data."""
    return next((w for w in name_words(name) if w in HELD_OUT_WORDS), None)


def is_val_name(name: str) -> bool:
    """Whether ``name`` is held out *as validation* ('valid_000000.bin'), which a store can hold."""
    return held_out_word(name) in VAL_WORDS
