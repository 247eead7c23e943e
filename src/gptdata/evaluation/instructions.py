"""Evaluating a fine-tuned model: instruction examples in, response-only loss and bits per byte out.

What is scored is what the book's chapter 7 trains with prompt masking (exercise 7.2): for an
example ``ids = encode(prompt + response)`` with ``p = len(encode(prompt))``, the model reads
``ids`` and predicts ``ids[1:] + [end-of-text]``; the targets at positions ``>= p - 1`` are scored
(the response, its header included, and the end-of-text), the prompt is context only. The rule is
not written twice: the scored targets are ``instruction_collate(..., mask_prompt=True)``'s
non-ignored ones (``response_masks``).

    ids = [P0, P1, P2, R0, R1], p = 3 -> input [P0, P1, P2, R0, R1]
                                          targets [P1, P2, R0, R1, eot], scored [R0, R1, eot]

Sums, not means of means, per example and in total: ``nll`` over the scored tokens, ``loss =
nll / tokens``; ``bits_per_byte = nll_text / ln 2 / bytes`` with ``bytes`` the UTF-8 bytes of the
scored response tokens (the end-of-text counts 0 bytes and is left out of ``nll_text``).

An example longer than ``max_length`` is scored with the rolling windows text evaluation uses
(``runner.window_table``, ``stride``) over the whole example, each window keeping only its
response targets: the prompt is context (a response target has at least ``max_length - stride +
1`` tokens before it, or all of them), never scored. The book's collate would cut such an
example at ``allowed_max_length`` instead; evaluation scores the whole response.

Sources: an ``InstructionDataset`` (recognised as such), or, with ``instructions=True``, what
``InstructionDataset`` reads (a ``.json`` list, ``.jsonl``, ``.parquet``, ``.arrow``, a ``datasets``
folder, a list of dicts) with ``template`` and ``fields``; a store prepared with ``--instructions``
(its folder, a ``TokenStore`` or a ``Split``; ``split``, default 'val') is read by
``InstructionDataset`` too, from the store's response mask: there is one reader.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..prepare.corpus import count_words
from ..storage import Location
from ..store import MANIFEST, Split, TokenStore
from ..tokenizers import Tokenizer, get_tokenizer, token_byte_lengths
from ..windows.finetune import IGNORE_INDEX, Example, InstructionDataset, instruction_collate
from .data import EvalData, source_name
from .models import Scorer
from .results import EvalResult
from .runner import score_windows, window_table

__all__ = ["InstructionData", "is_instructions", "response_masks", "score_instructions"]

_COLLATE_ROWS = 64  # examples per collate call: a (64, longest) table, never all examples at once


def response_masks(examples: Sequence[Example], *, pad_token_id: int) -> list[np.ndarray]:
    """Per example, ``(len(ids),)`` bool: which targets of ``ids[1:] + [eot]`` are scored.

    Exactly the non-ignored targets of ``instruction_collate(..., mask_prompt=True)``: a row's own
    targets are its first ``len(ids)`` (later columns are padding, all ignored).

        Example([5, 6, 7, 8], prompt_length=2) -> [False, True, True, True]
    """
    out: list[np.ndarray] = []
    for c in range(0, len(examples), _COLLATE_ROWS):
        batch = list(examples[c : c + _COLLATE_ROWS])
        _, targets = instruction_collate(batch, pad_token_id=pad_token_id, mask_prompt=True)
        keep = (targets != IGNORE_INDEX).numpy()  # (B, longest)
        out += [keep[r, : len(ex.token_ids)] for r, ex in enumerate(batch)]
    return out


def is_instructions(source: Any) -> bool:
    """A source that is instruction examples by its type (a path needs ``instructions=True``)."""
    return isinstance(source, (InstructionDataset, InstructionData))


def _is_store(source: Any) -> bool:
    if isinstance(source, (TokenStore, Split)):
        return True
    return isinstance(source, (str, os.PathLike)) and os.path.isfile(os.path.join(source, MANIFEST))


def _store_examples(
    source: Any, *, split: str | None, tokenizer: Tokenizer | str | None
) -> InstructionDataset:
    """A store prepared with ``--instructions`` -> its examples at ``split`` (default 'val', as
    text evaluation), read by ``InstructionDataset`` from the store's per-token response mask:
    the one reader of instruction data (a store without masks is refused there, with the fix)."""
    name = split or "val"
    store = source if isinstance(source, TokenStore) else None
    if isinstance(source, (str, os.PathLike)):
        store = TokenStore.open(source)
    if store is not None:
        if name not in store.splits:
            raise ValueError(
                f"{store.url} has no split {name!r} (it has {store.splits}); pass "
                "another split, e.g. split='test'."
            )
        source = store.split(name)
    if tokenizer is None:
        return InstructionDataset(source)  # the store's own tokenizer
    return InstructionDataset(source, tokenizer=tokenizer)


def instruction_dataset(
    source: Any,
    *,
    tokenizer: Tokenizer | str | None = None,
    template: str | os.PathLike[str] = "alpaca",
    fields: str | Mapping[str, str] | None = None,
    split: str | None = None,
) -> InstructionDataset:
    """Any instruction source -> an ``InstructionDataset`` (a dataset is taken as it is)."""
    if isinstance(source, InstructionDataset):
        if tokenizer is not None and get_tokenizer(tokenizer).fingerprint != (
            source.tokenizer.fingerprint
        ):
            raise ValueError(
                f"tokenizer={tokenizer!r} is not the InstructionDataset's "
                f"({source.tokenizer.name}); drop tokenizer= or rebuild the dataset with it."
            )
        return source
    if _is_store(source):
        return _store_examples(source, split=split, tokenizer=tokenizer)
    if isinstance(source, str) and not os.path.exists(source) and "\n" in source:
        raise ValueError("instructions=True reads a file or a list of dicts, not a text string.")
    return InstructionDataset(
        source, tokenizer=tokenizer or "gpt2", template=template, fields=fields
    )


@dataclass
class InstructionData:
    """Examples laid out for scoring: ``ids_0 + [eot] + ids_1 + [eot] + ...`` as one sequence.

    Example ``k``'s targets are ``data.seq[offsets[k] + 1 : offsets[k] + 1 + len(ids_k)]`` (its
    ``ids[1:]`` and its end-of-text), read from ``seq[offsets[k]] = ids_k[0]`` on: the stream
    layout of ``EvalData``, whose per-document prefix is here the example's own first token.
    ``first[k] = prompt_length - 1`` is its first scored target.
    """

    examples: InstructionDataset
    data: EvalData
    first: np.ndarray  # (E,) int64: the first scored target of each example
    targets_scored: np.ndarray  # (len(seq) - 1,) bool: which targets of seq[1:] are scored

    @property
    def tokenizer(self) -> Tokenizer:
        return self.data.tokenizer

    @classmethod
    def of(
        cls,
        source: Any,
        *,
        tokenizer: Tokenizer | str | None = None,
        template: str | os.PathLike[str] = "alpaca",
        fields: str | Mapping[str, str] | None = None,
        split: str | None = None,
    ) -> InstructionData:
        """Read ``source`` (see the module docstring) and lay its examples out."""
        if isinstance(source, InstructionData):
            return source
        ds = instruction_dataset(
            source, tokenizer=tokenizer, template=template, fields=fields, split=split
        )
        where = (
            source_name(source)
            if isinstance(source, (str, os.PathLike, TokenStore, Location))
            else type(source).__name__
        )
        return cls.from_dataset(ds, name=f"{where} (template {ds.template.name})")

    @classmethod
    def from_dataset(cls, ds: InstructionDataset, *, name: str) -> InstructionData:
        tok = ds.tokenizer
        if tok.eot_id is None:
            raise ValueError(
                f"tokenizer {tok.name} has no <|endoftext|> token, which ends every example "
                "(the book appends one). Use a tokenizer whose vocabulary has it."
            )
        eot = int(tok.eot_id)
        examples = list(ds)
        for k, ex in enumerate(examples):
            if ex.prompt_length < 1:
                raise ValueError(
                    f"example {k} has an empty prompt (template {ds.template.name!r}): nothing "
                    "is context, and the book's prompt masking would score its end-of-text "
                    "alone. Use a template whose prompt holds the instruction."
                )
        masks = response_masks(examples, pad_token_id=eot)
        n = np.array([len(ex.token_ids) for ex in examples], dtype=np.int64)  # targets each
        m = np.array([int(mask.sum()) for mask in masks], dtype=np.int64)  # scored each
        first = n - m
        for k, mask in enumerate(masks):
            if m[k] == 0:
                raise ValueError(
                    f"example {k}: its prompt ({examples[k].prompt_length} tokens) covers all "
                    f"{n[k]} tokens, so no response token is left to score. Check the template."
                )
            if not mask[first[k] :].all():  # the collate masks an end-of-text ID by value
                raise ValueError(
                    f"example {k} holds the end-of-text ID {eot} inside its text, which the "
                    "book's collate masks by value. Encode '<|endoftext|>' as text "
                    "(InstructionDataset does)."
                )
        offsets = np.concatenate([[0], np.cumsum(n + 1)[:-1]]).astype(np.int64)  # (E,)
        seq = np.concatenate(
            [np.append(np.asarray(ex.token_ids, dtype=np.int64), eot) for ex in examples]
        )  # (sum(n + 1),)
        scored = np.zeros(len(seq) - 1, dtype=bool)  # (len(seq) - 1,)
        for k in range(len(examples)):
            scored[offsets[k] + first[k] : offsets[k] + n[k]] = True
        table = token_byte_lengths(tok)
        response = [ex.token_ids[int(f) + 1 :] for ex, f in zip(examples, first, strict=True)]
        texts = [tok.decode(list(ids)) for ids in response]
        if table is not None:  # the scored text tokens' bytes, as text evaluation counts them
            sizes = [int(table[np.asarray(ids, dtype=np.int64)].sum()) for ids in response]
        else:
            sizes = [len(t.encode("utf-8")) for t in texts]
        data = EvalData(
            seq, offsets, n.copy(), np.array(sizes, dtype=np.int64),
            np.array([count_words(t) for t in texts], dtype=np.int64), tok, eot, name,
            "the decoded response tokens",
        )  # fmt: skip
        return cls(ds, data, first, scored)

    def __len__(self) -> int:
        return len(self.first)


def instruction_windows(
    x: InstructionData, *, max_length: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, lengths, scored) in ``x.data.seq``: text evaluation's windows over each example,
    each keeping only its response targets; windows that score only the prompt are dropped.

    An example that fits is one window, its whole input. ``n = [10], first = [3], L = 4, s = 2``:
    text windows score targets [0, 4), [4, 6), [6, 8), [8, 10) -> here [3], [4, 5], [6, 7], [8, 9]
    -> starts [0, 2, 4, 6], lengths [4, 4, 4, 4], scored [1, 2, 2, 2]
    """
    offsets, first = x.data.offsets, x.first
    starts, lens, scored = window_table(
        offsets, x.data.lengths, max_length=max_length, stride=stride
    )  # (W,) each
    ex = np.searchsorted(offsets, starts, side="right") - 1  # (W,) the example of each window
    end = starts - offsets[ex] + lens  # one past its last scored target, in example coordinates
    keep = np.minimum(scored, end - first[ex])  # its last `keep` targets are response targets
    use = keep > 0
    return starts[use], lens[use], keep[use]


def score_instructions(
    scorer: Scorer,
    x: InstructionData,
    *,
    max_length: int,
    stride: int,
    batch_size: int = 8,
    progress: bool = True,
) -> EvalResult:
    """Response-only sums per example (``result.documents``, one entry per example) and in all."""
    # Memory follows the tokens scored: no window longer than the longest example.
    fit = max(1, min(max_length, int(x.data.lengths.max())))
    step = min(stride, fit)
    windows = instruction_windows(x, max_length=fit, stride=step)
    m = x.data.lengths - x.first
    result = score_windows(
        scorer, x.data, windows, x.targets_scored, m, max_length=fit, stride=step,
        batch_size=batch_size, by="response", progress=progress,
    )  # fmt: skip
    result.max_length, result.stride = max_length, stride
    return result
