"""Model against model: a side-by-side table, a paired bootstrap over documents, a verdict, plots.

Two models scored on the same documents are compared document by document: resampling documents
with replacement (the same draw for both models) and recomputing each model's corpus bits per byte
(a sum over a sum) gives the spread of the difference; the 2.5th and 97.5th percentiles of
``samples`` draws are the 95 % confidence interval. Seeded, so the same inputs give the same line:

    >>> print(Comparison.of(base, tuned).verdict())
    tuned is better by 0.041 bpb, 95 % CI 0.030-0.052 (412 documents)
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .scoring import EvalResult

LN2 = math.log(2)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-Infinity) replaced by None (JSON null).

    {"nll": inf, "low": [nan, 1.5]} -> {"nll": None, "low": [None, 1.5]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _same_documents(a: EvalResult, b: EvalResult) -> None:
    da, db = a.documents, b.documents
    if len(da) != len(db) or not np.array_equal(da.bytes, db.bytes):
        raise ValueError(
            f"{a.name} and {b.name} were scored on different documents ({len(da):,} vs "
            f"{len(db):,}); compare results of the same source."
        )


@dataclass(frozen=True)
class Comparison:
    """``diff = bpb(a) - bpb(b)``: positive means ``b`` is better."""

    a: str
    b: str
    diff: float
    low: float
    high: float
    documents: int
    samples: int

    @classmethod
    def of(cls, a: EvalResult, b: EvalResult, *, samples: int = 1000, seed: int = 0) -> Comparison:
        _same_documents(a, b)
        if samples < 1:
            raise ValueError(f"samples must be >= 1 (--bootstrap), got {samples}.")
        na, nb = a.documents.nll_text / LN2, b.documents.nll_text / LN2  # bits per document
        nbytes = a.documents.bytes.astype(np.float64)
        if nbytes.sum() == 0:
            raise ValueError("the documents have 0 bytes of text: no bits per byte to compare.")
        with np.errstate(invalid="ignore"):  # inf - inf (a probability 0 in both) is NaN
            diff = float((na.sum() - nb.sum()) / nbytes.sum())
        D = len(nbytes)
        rng = np.random.default_rng(seed)
        draws = np.empty(samples)
        rows = max(1, (1 << 22) // max(D, 1))  # bound memory: rows x D indices at a time
        for r0 in range(0, samples, rows):
            r1 = min(samples, r0 + rows)
            pick = rng.integers(0, D, size=(r1 - r0, D))  # (rows, D) documents drawn
            with np.errstate(invalid="ignore", divide="ignore"):
                draws[r0:r1] = (na[pick].sum(1) - nb[pick].sum(1)) / nbytes[pick].sum(1)
        draws = draws[np.isfinite(draws)]
        low, high = np.percentile(draws, [2.5, 97.5]) if len(draws) else (diff, diff)
        return cls(a.name, b.name, diff, float(low), float(high), D, samples)

    def verdict(self) -> str:
        """One line: which model is better, by how many bits per byte, with the 95 % CI."""
        docs = f"({self.documents:,} document{'s' if self.documents != 1 else ''})"
        if self.low > 0:
            return (
                f"{self.b} is better by {self.diff:.3f} bpb, 95 % CI "
                f"{self.low:.3f}-{self.high:.3f} {docs}"
            )
        if self.high < 0:
            return (
                f"{self.a} is better by {-self.diff:.3f} bpb, 95 % CI "
                f"{-self.high:.3f}-{-self.low:.3f} {docs}"
            )
        return (
            f"no clear difference: {self.a} - {self.b} = {self.diff:+.3f} bpb, 95 % CI "
            f"{self.low:+.3f} to {self.high:+.3f} {docs}"
        )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON values; non-finite numbers are None (JSON null), as in EvalResult."""
        return json_safe({**self.__dict__, "verdict": self.verdict()})


def changed_most(a: EvalResult, b: EvalResult, *, count: int = 3) -> list[str]:
    """The documents whose bits moved most between ``a`` and ``b`` (largest share of the diff)."""
    _same_documents(a, b)
    bits = (a.documents.nll_text - b.documents.nll_text) / LN2  # bits saved by b, per document
    bpa, bpb = a.documents.bits_per_byte(), b.documents.bits_per_byte()
    order = np.argsort(-np.abs(bits), kind="stable")[:count]
    return [
        f"  document {int(k):,} ({int(a.documents.bytes[k]):,} bytes): {bpa[k]:.3f} -> "
        f"{bpb[k]:.3f} bpb ({-bits[k]:+,.1f} bits)"
        for k in order
    ]


def table(results: list[EvalResult]) -> str:
    """Side by side: one row per model, the same columns for all."""
    name_w = max(10, *(len(r.name) for r in results))
    head = (
        f"{'model':<{name_w}} {'tokens':>12} {'loss':>8} {'perplexity':>11} "
        f"{'bits/byte':>9} {'word ppl':>12} {'tokens/s':>10}"
    )
    lines = [head]
    for r in results:
        wp = f"{r.word_perplexity:12.2f}" if r.word_perplexity is not None else f"{'-':>12}"
        lines.append(
            f"{r.name:<{name_w}} {r.tokens:>12,} {r.loss:>8.4f} {r.perplexity:>11.2f} "
            f"{r.bits_per_byte:>9.4f} {wp} {r.tokens_per_second:>10,.0f}"
        )
    return "\n".join(lines)


def report(
    results: list[EvalResult], *, samples: int = 1000, seed: int = 0, as_json: bool = False
) -> str:
    """What ``gptdata eval`` prints: the table, then per pair the verdict and the documents that
    changed most; or, ``as_json``, each model's ``to_dict()`` and each comparison's."""
    pairs = [(x, y) for i, x in enumerate(results) for y in results[i + 1 :]]
    comparisons = [Comparison.of(x, y, samples=samples, seed=seed) for x, y in pairs]
    if as_json:
        doc = {
            "models": [r.to_dict() for r in results],
            "comparisons": [c.to_dict() for c in comparisons],
        }
        return json.dumps(json_safe(doc), indent=2, allow_nan=False)
    r0 = results[0]
    lines = [
        f"{r0.source}: {len(r0.documents):,} documents, by {r0.by}, max_length "
        f"{r0.max_length:,}, stride {r0.stride:,}; bytes from the scored tokens, words from "
        f"{r0.counted_on}",
        table(results),
    ]
    for c, (x, y) in zip(comparisons, pairs, strict=True):
        lines.append(f"\n{c.a} vs {c.b}: {c.verdict()}")
        lines.append(f"documents that changed most ({c.a} -> {c.b}):")
        lines.extend(changed_most(x, y))
    return "\n".join(lines)


def write_per_document(results: list[EvalResult], path: str | os.PathLike[str]) -> None:
    """Per document: index, tokens, bytes, then nll and bits per byte for every model.

    ``.jsonl`` writes one JSON object a line (a non-finite number, e.g. the bits per byte of a
    document of 0 bytes, is null); anything else CSV (``nan``/``inf`` as Python writes them) (columns ``nll[MODEL]``,
    ``bits_per_byte[MODEL]``).
    """
    first = results[0]
    for r in results[1:]:
        _same_documents(first, r)
    docs = first.documents
    columns: dict[str, np.ndarray] = {
        "document": np.arange(len(docs)),
        "tokens": docs.tokens,
        "bytes": docs.bytes,
    }
    for r in results:
        columns[f"nll[{r.name}]"] = r.documents.nll
        columns[f"bits_per_byte[{r.name}]"] = r.documents.bits_per_byte()
    names = list(columns)
    rows = zip(*(columns[n].tolist() for n in names), strict=True)
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if path.suffix == ".jsonl":
            for row in rows:
                line = json_safe(dict(zip(names, row, strict=True)))
                fh.write(json.dumps(line, allow_nan=False) + "\n")
        else:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerows(rows)


def plot(results: list[EvalResult], path: str | os.PathLike[str]) -> None:
    """Mean loss by position in the window, and the per-document bits-per-byte histogram."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib. Fix: pip install 'gptdata[plot]'") from None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    finite = [r.documents.bits_per_byte() for r in results]
    finite = [v[np.isfinite(v)] for v in finite]
    both = np.concatenate(finite) if finite else np.array([0.0])
    bins = np.linspace(float(both.min(initial=0)), float(both.max(initial=1)) + 1e-9, 40)
    for k, (r, bpb) in enumerate(zip(results, finite, strict=True)):
        colour = f"C{k}"
        loss = r.position_loss()
        seen = r.position_tokens > 0
        ax1.plot(np.arange(1, len(loss) + 1)[seen], loss[seen], color=colour, label=r.name)
        ax2.hist(bpb, bins=bins, alpha=0.5, color=colour, label=r.name)
    ax1.set(title="loss by position in the window", xlabel="position", ylabel="mean loss (nats)")
    ax2.set(title="bits per byte per document", xlabel="bits per byte", ylabel="documents")
    ax1.legend()
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
