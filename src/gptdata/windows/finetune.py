"""Fine-tuning batches: instruction examples as token IDs, and the book's chapter-7 collate.

``InstructionDataset`` encodes each example once, ``encode(prompt + response)`` as the book's
``InstructionDataset`` does, and keeps its prompt length ``len(encode(prompt))`` (exercise 7.2);
``dataset[i]`` is an ``Example(token_ids, prompt_length)``. ``instruction_collate`` pads and
masks a list of examples exactly as the book's ``custom_collate_fn``:

    [[1, 2, 3], [4, 5]], pad 0 -> padded rows [1, 2, 3, 0], [4, 5, 0, 0]
    inputs  [[1, 2, 3], [4, 5, 0]]
    targets [[2, 3, 0], [5, 0, -100]]   the first pad is the end-of-text; later pads are ignored

Used as the book uses it: ``DataLoader(ds, batch_size=8, shuffle=True,
collate_fn=partial(instruction_collate, allowed_max_length=1024))``. For gptdata's loader
(seeds, ranks, resume) the dataset is index-addressable and deterministic: a sampler of example
indices plus ``instruction_collate`` is the whole integration. Packing (several examples per row)
is ``gptdata.windows.packing``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ..prepare.instructions import (
    Errors,
    InstructionStats,
    Template,
    get_template,
    read_examples,
)
from ..storage import Location, is_remote
from ..store import MANIFEST, Split, TokenStore, open_url
from ..tokenizers import Tokenizer, get_tokenizer

IGNORE_INDEX = -100
GPT2_EOT_ID = 50256


class Example(NamedTuple):
    """One encoded example: its token IDs and how many of them are the prompt."""

    token_ids: list[int]
    prompt_length: int


class InstructionDataset:
    """Instruction examples, encoded once: ``ds[i]`` -> ``Example(token_ids, prompt_length)``.

    ``source``: a ``.json`` list, ``.jsonl``, ``.parquet``, ``.arrow``, a ``datasets`` folder, or
    a list of dicts; ``template``: ``"alpaca"`` (the book's), ``"phi3"`` or a template file;
    ``fields`` renames columns (``{"output": "completion"}`` or ``"output=completion"``).
    A ``str`` is always a path or a URL (``s3://b/sft/data.json``, a ``Location``, or a store's
    URL; ``storage_options`` as fsspec takes them), never text. A store made by ``prepare(..., instructions=True)``
    (its folder, or a ``Split``) reads its ``split`` (default train): examples are its
    documents, prompt lengths its mask's prompt bits; template and fields are the store's.

        >>> ds = InstructionDataset([{"instruction": "Say hi.", "output": "Hi!"}])
        >>> ds[0].prompt_length, len(ds[0].token_ids)
        (27, 35)
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Split,
        *,
        tokenizer: str | Tokenizer = "gpt2",
        template: str | os.PathLike[str] | Template = "alpaca",
        fields: str | Mapping[str, str] | None = None,
        errors: Errors = "strict",
        split: str = "train",
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(source, Location):  # it carries its own options
            source, storage_options = (
                source.url,
                {**source.storage_options, **(storage_options or {})},
            )
        store_split = _store_split(source, split, storage_options)
        if store_split is not None:
            self._from_split(store_split, tokenizer)
            return
        self.tokenizer = get_tokenizer(tokenizer)
        self.template = get_template(template)
        self.stats = InstructionStats()
        self.texts: list[tuple[str, str]] = []  # (prompt, response) per example
        examples = read_examples(
            source, fields=fields, errors=errors, stats=self.stats, storage_options=storage_options
        )
        for example in examples:
            self.texts.append(self.template.render(*example))
        if not self.texts:
            raise ValueError(
                f"no instruction examples in {source!r} ({self.stats.skipped:,} bad records "
                "skipped). Check the file and --fields."
            )
        # special="text": a literal "<|endoftext|>" in an example is text, never a separator
        # (the book's tiktoken call would raise on it instead).
        full = self.tokenizer.encode_batch([p + r for p, r in self.texts], special="text")
        prompts = self.tokenizer.encode_batch([p for p, _ in self.texts], special="text")
        self.examples = [Example(f, len(p)) for f, p in zip(full, prompts, strict=True)]

    def _from_split(self, split: Split, tokenizer: str | Tokenizer) -> None:
        store = TokenStore.open(split.root)
        mask = split.response_mask()
        if mask is None:
            raise ValueError(
                f"{split.root}: split {split.name!r} has no response masks; it was not prepared "
                "from instruction data. Run: gptdata prepare --instructions FILE -o STORE"
            )
        self.tokenizer = store.reading_tokenizer(tokenizer or None)
        spec = store.manifest.get("options", {}).get("instructions", {})
        text = spec.get("template_text")
        name = spec.get("template", "alpaca")
        self.template = Template.from_text(text, name=name) if text else get_template(name)
        self.stats = InstructionStats(examples=split.n_documents)
        tokens = np.asarray(split[:], dtype=np.int64)  # (N,) instruction stores are small
        ends = split.document_ends()
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        self.examples = [
            Example(tokens[a:b].tolist(), int((~mask[a:b]).sum()))
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        self.texts = [
            (
                self.tokenizer.decode(e.token_ids[: e.prompt_length]),
                self.tokenizer.decode(e.token_ids[e.prompt_length :]),
            )
            for e in self.examples
        ]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __repr__(self) -> str:
        return (
            f"InstructionDataset({len(self):,} examples, template={self.template.name!r}, "
            f"tokenizer={self.tokenizer.name!r})"
        )


def _store_split(
    source: Any, split: str, storage_options: Mapping[str, Any] | None = None
) -> Split | None:
    """The store split ``source`` names (a ``Split``, a store folder or URL), else None."""
    if isinstance(source, Split):
        return source
    if isinstance(source, str) and is_remote(source):
        found = open_url(source, storage_options=storage_options)
        return found.split(split) if isinstance(found, TokenStore) else None  # else: data
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(
        os.path.join(os.fspath(source), MANIFEST)
    ):
        return TokenStore.open(source).split(split)
    return None


def _as_example(item: Any, index: int) -> tuple[list[int], int | None]:
    """An Example, the book's (instruction_length, ids) of exercise 7.2, or bare IDs."""
    if isinstance(item, Example):
        return list(item.token_ids), item.prompt_length
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], (int, np.integer))
        and not isinstance(item[1], (int, np.integer))
    ):
        return [int(t) for t in item[1]], int(item[0])
    if isinstance(item, torch.Tensor):
        return item.tolist(), None
    if isinstance(item, (list, tuple, np.ndarray)):
        return [int(t) for t in item], None
    raise TypeError(
        f"batch item {index} is a {type(item).__name__}; expected token IDs, an Example, or "
        "the book's (instruction_length, token_ids)."
    )


def instruction_collate(
    batch: Sequence[Any],
    *,
    pad_token_id: int = GPT2_EOT_ID,
    ignore_index: int = IGNORE_INDEX,
    allowed_max_length: int | None = None,
    device: str | torch.device = "cpu",
    mask_prompt: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Examples -> the book's chapter-7 ``(inputs, targets)``, each ``(B, T)`` int64.

    Width = longest + 1; each example gets one ``pad_token_id`` (its end-of-text), then pads to
    the width; inputs drop the last column, targets the first; every target equal to
    ``pad_token_id`` after a row's first is ``ignore_index``; ``mask_prompt`` then sets
    ``targets[:prompt_length - 1]`` to ``ignore_index``; last, both are cut to
    ``allowed_max_length``.

        [[7, 8]], pad 0, allowed_max_length=None -> inputs [[7, 8]], targets [[8, 0]]
    """
    if not batch:
        raise ValueError("instruction_collate got an empty batch; batch_size must be >= 1.")
    if allowed_max_length is not None and (
        isinstance(allowed_max_length, bool) or allowed_max_length < 1
    ):
        raise ValueError(f"allowed_max_length={allowed_max_length!r} must be None or >= 1.")
    items = [_as_example(item, i) for i, item in enumerate(batch)]
    if mask_prompt and any(p is None for _, p in items):
        raise ValueError(
            "mask_prompt=True needs each example's prompt length: pass InstructionDataset "
            "items (Example) or the book's (instruction_length, token_ids) pairs."
        )
    width = max(len(ids) for ids, _ in items) + 1
    padded = np.full((len(items), width), pad_token_id, dtype=np.int64)  # (B, W)
    for row, (ids, _) in enumerate(items):
        padded[row, : len(ids)] = ids
    inputs = padded[:, :-1]  # (B, W - 1)
    targets = padded[:, 1:].copy()  # (B, W - 1)
    is_pad = targets == pad_token_id  # (B, W - 1), by value, as the book: a pad ID inside counts
    targets[is_pad & (np.cumsum(is_pad, axis=1) > 1)] = ignore_index
    if mask_prompt:
        length = width - 1
        for row, (_, prompt_length) in enumerate(items):
            stop = int(prompt_length) - 1  # type: ignore[arg-type]
            # Python slice semantics, as targets[:stop] in the book (a 0 prompt masks all but one).
            targets[row, : stop if stop >= 0 else max(length + stop, 0)] = ignore_index
    if allowed_max_length is not None:
        inputs, targets = inputs[:, :allowed_max_length], targets[:, :allowed_max_length]
    return (
        torch.from_numpy(np.ascontiguousarray(inputs)).to(device),  # (B, T)
        torch.from_numpy(np.ascontiguousarray(targets)).to(device),  # (B, T)
    )
