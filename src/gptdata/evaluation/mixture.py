"""Evaluation of a mixture: each source scored on its own, then the totals over all of them.

A mixture trains on several corpora; how a model does on each is the question after training.
``evaluate(model, mixture)`` scores every token of every source once (each source as ``evaluate``
scores it alone) and returns the pooled result, whose ``sources`` holds each source's own:

    >>> r = evaluate(model, Mixture([(0.7, web), (0.3, code)], max_length=256, stride=256))
    >>> r.loss, {name: s.loss for name, s in r.sources.items()}
    (3.21, {'source 0': 3.02, 'source 1': 3.65})

The total is the sums over all scored tokens (sum of NLL / sum of tokens), not a mean of the
sources' means; ``weighted_loss`` gives the mixture's shares' average instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..windows.mixture import Mixture
from .results import ChunkScores, DocumentScores, EvalResult


@dataclass
class MixtureResult(EvalResult):
    """An ``EvalResult`` over all sources, with each source's own in ``sources``."""

    sources: dict[str, EvalResult] = field(default_factory=dict, repr=False)
    weights: list[float] = field(default_factory=list, repr=False)

    @property
    def weighted_loss(self) -> float:
        """The sources' losses averaged with the mixture's shares: what its stream sees."""
        return float(
            sum(w * r.loss for w, r in zip(self.weights, self.sources.values(), strict=True))
        )


def _cat(parts: list[Any], cls: type) -> Any:
    names = list(cls.__dataclass_fields__)
    return cls(*[np.concatenate([getattr(p, n) for p in parts]) for n in names])


def evaluate_mixture(score: Callable[[Any, str], EvalResult], mixture: Mixture) -> MixtureResult:
    """``score(corpus, by)`` for each source of ``mixture``, pooled into one result."""
    parts: dict[str, EvalResult] = {}
    for i, ds in enumerate(mixture.datasets):
        corpus = ds.corpus
        by = "document" if corpus.document_ends is not None else "stream"
        parts[f"source {i}"] = score(corpus, by)
    rs = list(parts.values())
    first = rs[0]
    words = [r.words for r in rs]
    chunks = [r.chunks for r in rs]
    return MixtureResult(
        name=first.name,
        source=f"mixture of {len(rs)} sources",
        by=first.by,
        max_length=first.max_length,
        stride=first.stride,
        tokens=sum(r.tokens for r in rs),
        nll=float(sum(r.nll for r in rs)),
        nll_text=float(sum(r.nll_text for r in rs)),
        bytes=sum(r.bytes for r in rs),
        words=None if any(w is None for w in words) else sum(words),  # type: ignore[arg-type]
        documents=_cat([r.documents for r in rs], DocumentScores),
        position_nll=sum((r.position_nll for r in rs), np.zeros_like(first.position_nll)),
        position_tokens=sum((r.position_tokens for r in rs), np.zeros_like(first.position_tokens)),
        seconds=sum(r.seconds for r in rs),
        counted_on=first.counted_on,
        chunks=None if any(c is None for c in chunks) else _cat(chunks, ChunkScores),
        sources=parts,
        weights=[float(w) for w in mixture.weights],
    )
