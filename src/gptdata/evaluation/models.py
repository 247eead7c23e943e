"""Models for evaluation: any logits callable, or a spec string, behind one small interface.

A model is a callable taking ``(B, T)`` int64 IDs and returning logits ``(B, T, V)``, an object
with ``.logits`` (Hugging Face), or a tuple whose first item is the logits (nanoGPT returns
``(logits, loss)``, and the last position's logits only unless given ``targets``: such a model is
called with the targets). Specs:

    hf:DIR          a Hugging Face causal LM saved in DIR (local files only; ``gptdata[hf]``)
    py:FILE.py:NAME your own model: NAME in FILE.py is a model or a zero-argument function
                    returning one; ``checkpoint`` loads a state dict into it (see pyfile.py)
    unigram:STORE   add-one unigram counted from STORE's train split  (see baselines.py)
    bigram:STORE    bigram backing off to the unigram, from STORE's train split

``Scorer.log_probs`` returns log P(target) in float32 for the scored positions only: the logits'
log-softmax is taken on the selected rows, a cache-sized slice at a time, never a float64
``(B, T, V)`` copy; count baselines answer from their tables without any logits at all.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch

from ..tokenizers import Tokenizer

SPECS = "hf:DIR, py:FILE.py:NAME, unigram:STORE, bigram:STORE"


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model's output: a tensor, ``.logits``, or the first item of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(
        f"the model returned {type(output).__name__}; evaluation needs logits (B, T, vocab): a "
        "tensor, an object with .logits, or a tuple whose first item is the logits."
    )


def _takes_targets(model: Any) -> bool:
    """Whether ``model``'s forward (or call) accepts a ``targets`` argument (nanoGPT's GPT)."""
    fn = getattr(model, "forward", model)
    try:
        return "targets" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False


def _max_positions(model: Any) -> int | None:
    """The longest input a model takes, where it says so (HF config, nanoGPT, the book's GPT)."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings", "block_size", "context_length"):
        value = getattr(config, name, None) if config is not None else None
        if value is None and isinstance(config, dict):
            value = config.get(name)
        if isinstance(value, int):
            return value
    pos_emb = getattr(model, "pos_emb", None)
    if isinstance(pos_emb, torch.nn.Embedding):
        return pos_emb.num_embeddings
    for name in ("max_positions", "context_length"):
        value = getattr(model, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _vocab_size(model: Any) -> int | None:
    config = getattr(model, "config", None)
    value = getattr(config, "vocab_size", None) if config is not None else None
    if value is None:
        value = getattr(model, "vocab_size", None)
    return value if isinstance(value, int) else None


@dataclass
class Scorer:
    """A model with what evaluation needs to know about it."""

    model: Any
    name: str
    vocab_size: int | None
    max_positions: int | None
    device: torch.device
    need_vocab: int = 0  # the source tokenizer's vocab_size, set by check()
    logits_checked: bool = False
    pass_targets: bool = False  # nanoGPT-style: all positions' logits only when given targets

    def check(self, *, max_length: int, tokenizer: Tokenizer) -> None:
        """Refuse a model that cannot read these windows: too few positions or vocabulary."""
        if self.max_positions is not None and max_length > self.max_positions:
            raise ValueError(
                f"model {self.name} has {self.max_positions:,} positions, but max_length="
                f"{max_length}. Pass max_length={self.max_positions} or less."
            )
        self.need_vocab, self.logits_checked = tokenizer.vocab_size, False
        counted_with = getattr(self.model, "fingerprint", None)  # baselines know their store's
        if isinstance(counted_with, str) and counted_with != tokenizer.fingerprint:
            made_by = getattr(self.model, "tokenizer_name", "another tokenizer")
            raise ValueError(
                f"model {self.name} was counted with tokenizer {made_by}, but the source is "
                f"tokenized with {tokenizer.name}: its IDs mean other tokens. Count the baseline "
                "from a store made with the source's tokenizer, or pass tokenizer=... to match."
            )
        if self.vocab_size is not None and self.vocab_size < tokenizer.vocab_size:
            raise ValueError(
                f"model {self.name} has a vocabulary of {self.vocab_size:,}, smaller than the "
                f"{tokenizer.vocab_size:,} of tokenizer {tokenizer.name} that made the source. "
                "Evaluate with the model's own tokenizer (tokenizer=...)."
            )

    def logits(self, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) -> (B, T, V) logits, checked.

        nanoGPT's ``GPT.forward(idx, targets=None)`` returns the last position's logits only,
        ``(B, 1, V)``, unless given targets: such a model is called again with ``targets`` (any
        valid IDs of the same shape; the loss it computes is ignored), and from then on always.
        """
        if self.pass_targets and targets is not None:
            logits = logits_of(self.model(inputs, targets=targets))
        else:
            logits = logits_of(self.model(inputs))
            if (
                logits.dim() == 3
                and logits.shape[1] == 1
                and inputs.shape[1] > 1
                and _takes_targets(self.model)
            ):
                if targets is None:
                    targets = inputs  # any valid IDs: only the logits are used
                self.pass_targets = True
                logits = logits_of(self.model(inputs, targets=targets))  # (B, T, V)
        if logits.dim() != 3 or logits.shape[:2] != inputs.shape:
            raise ValueError(
                f"model {self.name} returned logits of shape {tuple(logits.shape)} for inputs "
                f"{tuple(inputs.shape)}; expected (batch, T, vocab)."
            )
        return logits

    def log_probs(
        self, inputs: torch.Tensor, targets: torch.Tensor, index: torch.Tensor | None
    ) -> torch.Tensor:
        """log P(target) (K,) float32 at the scored positions: ``index`` (K,) holds their flat
        positions in (B, T), None = all. Indices, not a bool mask: a mask's indexing waits for
        the device (it must count the rows), an index_select does not."""
        fast = getattr(self.model, "target_log_probs", None)
        if fast is not None:
            logp = fast(inputs, targets).reshape(-1)  # (B*T,)
            return logp if index is None else logp.index_select(0, index)
        logits = self.logits(inputs, targets)  # (B, T, V)
        if not self.logits_checked:  # once: a model without a config shows its vocabulary here
            if logits.shape[-1] < self.need_vocab:
                raise ValueError(
                    f"model {self.name} returned {logits.shape[-1]:,} logits per position, fewer "
                    f"than the source tokenizer's vocabulary of {self.need_vocab:,}. Evaluate "
                    "with the model's own tokenizer (tokenizer=...)."
                )
            self.logits_checked = True
        rows, ys = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)  # (B*T, V)
        if index is not None:  # only the scored positions: (K, V)
            rows, ys = rows.index_select(0, index), ys.index_select(0, index)
        # log_softmax + gather (cross_entropy, fused) in float32, a slice of rows at a time on
        # a CPU: the (rows, V) temporary stays in cache, measured 3x faster than one call over
        # (2048, 50257) and 4x faster than logsumexp; on a GPU one call is best.
        step = len(rows) if rows.is_cuda else max(1, (1 << 23) // rows.shape[-1])
        out = [
            -torch.nn.functional.cross_entropy(
                rows[i : i + step].float(), ys[i : i + step], reduction="none"
            )  # (step,) from (step, V)
            for i in range(0, len(rows), step)
        ]
        return out[0] if len(out) == 1 else torch.cat(out)  # (K,)


def load_hf(path: str | os.PathLike[str], device: torch.device) -> Any:
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise RuntimeError(
            "hf:DIR models need transformers. Fix: pip install 'gptdata[hf]'"
        ) from None
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"hf:{path}: no such folder. Save a model there with model.save_pretrained('{path}')."
        )
    model = AutoModelForCausalLM.from_pretrained(os.fspath(path), local_files_only=True)
    return model.to(device).eval()


def load_model(
    model: Any,
    *,
    device: str | torch.device | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    cache_limit: int | None = None,
) -> Scorer:
    """A model object or spec string -> Scorer; spec models are loaded onto ``device``.

    ``checkpoint`` (``py:`` specs only) is a ``torch.save``d state dict loaded into the model, a
    path or a URL. ``storage_options`` read it, and a ``unigram:``/``bigram:`` store, by URL
    (``cache_limit`` bounds that store's cache):

        load_model("bigram:s3://b/stores/web", storage_options={"endpoint_url": URL})
    """
    if isinstance(model, str):
        kind, sep, where = model.partition(":")
        dev = torch.device(device or "cpu")
        if not sep or not where or kind not in ("hf", "py", "unigram", "bigram"):
            raise ValueError(f"model spec {model!r} is not one of {SPECS}.")
        if kind in ("hf", "py") and "://" in where:  # load_hf/load_py read local files
            raise ValueError(
                f"model spec {model!r}: {kind}: loads a local "
                f"{'folder' if kind == 'hf' else 'file'}; a URL is not supported here: download "
                "it first and give its local path (unigram:/bigram: take a store URL)."
            )
        if checkpoint is not None and kind != "py":
            raise ValueError(
                f"--checkpoint loads weights into a py:FILE.py:NAME model, not {kind}:; "
                f"drop it or name your model class with py:."
            )
        if kind == "hf":
            obj = load_hf(where, dev)
        elif kind == "py":
            from .pyfile import load_py

            obj = load_py(where, checkpoint=checkpoint, device=dev, storage_options=storage_options)
        else:
            from .baselines import baseline_from_store

            obj = baseline_from_store(
                kind, where, storage_options=storage_options, cache_limit=cache_limit
            )
        return Scorer(obj, model, _vocab_size(obj), _max_positions(obj), dev)
    if checkpoint is not None:
        raise ValueError("checkpoint= is for py:FILE.py:NAME specs; load weights into your model.")
    if not callable(model):
        raise TypeError(
            f"model is {type(model).__name__}; pass a callable returning logits or a spec string "
            f"({SPECS})."
        )
    if device is None:
        params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
        first = next(params, None)
        dev = first.device if first is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
    name = getattr(model, "name", None) or type(model).__name__
    return Scorer(model, str(name), _vocab_size(model), _max_positions(model), dev)
