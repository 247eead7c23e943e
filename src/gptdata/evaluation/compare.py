"""Model against model: a side-by-side table, a paired bootstrap over documents, a verdict, plots.

Two models scored on the same documents are compared document by document: resampling documents
with replacement (the same draw for both models) and recomputing each model's corpus bits per byte
(a sum over a sum) gives the spread of the difference; the 2.5th and 97.5th percentiles of
``samples`` draws are the 95 % confidence interval. Seeded, so the same inputs give the same line:

    >>> print(Comparison.of(base, tuned).verdict())
    tuned is better by 0.041 bpb, 95 % CI 0.030-0.052 (412 documents)

A non-finite loss (a target given probability 0, NaN logits) gets no verdict but says where it is
("A has infinite loss on 1 document (doc 7): no comparison"); fewer than 10 documents warn, and
``unit="chunk"`` resamples blocks of 256 consecutive tokens instead (one held-out file still gets
an interval); one unit gets no interval at all rather than a zero-width one.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .results import CHUNK_TOKENS, EvalResult

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


Unit = Literal["document", "chunk"]
Metric = Literal["bits_per_byte", "loss"]
FEW = 10  # fewer documents than this: the interval rests on few, and the verdict says so
_SHORT = {"bits_per_byte": "bpb", "loss": "nats/token"}


def _per_unit(r: EvalResult, metric: str, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """(numerator, denominator) per resampling unit: bits and bytes, or nats and tokens."""
    if unit == "chunk":
        if r.chunks is None:
            raise ValueError(f"{r.name} has no chunk sums; evaluate it again to compare by chunk.")
        part: Any = r.chunks
    else:
        part = r.documents
    if metric == "bits_per_byte":
        return part.nll_text / LN2, part.bytes.astype(np.float64)
    return part.nll, part.tokens.astype(np.float64)


@dataclass(frozen=True)
class Comparison:
    """``diff = metric(a) - metric(b)``: positive means ``b`` is better.

    ``refused`` says why there is no verdict (a non-finite loss); ``warning`` that the interval
    rests on few documents; ``low``/``high`` are NaN where there is no interval (one unit).
    """

    a: str
    b: str
    diff: float
    low: float
    high: float
    documents: int
    samples: int
    unit: str = "document"
    metric: str = "bits_per_byte"
    units: int = 0  # documents, or chunks of CHUNK_TOKENS with unit="chunk"
    refused: str | None = None
    warning: str | None = None

    @classmethod
    def of(
        cls,
        a: EvalResult,
        b: EvalResult,
        *,
        samples: int = 1000,
        seed: int = 0,
        unit: Unit = "document",
        metric: Metric = "bits_per_byte",
    ) -> Comparison:
        _same_documents(a, b)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a whole number >= 1 (--bootstrap), got {samples!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0 (--seed), got {seed!r}.")
        if unit not in ("document", "chunk"):
            raise ValueError(f"unit={unit!r} is not 'document' or 'chunk' (--bootstrap-unit).")
        if metric not in _SHORT:
            raise ValueError(f"metric={metric!r} is not one of {sorted(_SHORT)}.")
        D = len(a.documents)
        keep = {"documents": D, "samples": samples, "unit": unit, "metric": metric}
        # A non-finite sum has no difference and no interval: say which model and documents,
        # rather than dropping the bootstrap draws that hold them.
        bad = [f"{r.name} has {why}" for r in (a, b) if (why := r.nonfinite(metric))]
        if bad:
            nan = float("nan")
            return cls(a.name, b.name, nan, nan, nan, units=D, refused="; ".join(bad), **keep)
        na, den = _per_unit(a, metric, unit)
        nb, _ = _per_unit(b, metric, unit)
        if den.sum() == 0:
            raise ValueError("the documents have 0 bytes of text: no bits per byte to compare.")
        diff = float((na.sum() - nb.sum()) / den.sum())
        U = len(den)
        warning = None
        if unit == "document" and D < FEW:
            warning = (
                f"the interval rests on {D} document{'s' if D != 1 else ''}; --bootstrap-unit "
                f"chunk resamples blocks of {CHUNK_TOKENS} tokens instead"
            )
        if U < 2:  # one unit: every draw is the same, a zero-width interval would claim certainty
            nan = float("nan")
            return cls(a.name, b.name, diff, nan, nan, units=U, warning=warning, **keep)
        rng = np.random.default_rng(seed)
        draws = np.empty(samples)
        rows = max(1, (1 << 22) // U)  # bound memory: rows x U indices at a time
        for r0 in range(0, samples, rows):
            r1 = min(samples, r0 + rows)
            pick = rng.integers(0, U, size=(r1 - r0, U))  # (rows, U) units drawn
            with np.errstate(invalid="ignore", divide="ignore"):  # a draw of 0-byte units
                draws[r0:r1] = (na[pick].sum(1) - nb[pick].sum(1)) / den[pick].sum(1)
        draws = draws[np.isfinite(draws)]
        low, high = np.percentile(draws, [2.5, 97.5]) if len(draws) else (diff, diff)
        return cls(a.name, b.name, diff, float(low), float(high), units=U, warning=warning, **keep)

    def verdict(self) -> str:
        """One line: which model is better, by how much, with the 95 % CI (or why not)."""
        if self.refused:
            return f"{self.refused}: no comparison"
        what = _SHORT[self.metric]
        n = self.units
        if self.unit == "chunk":
            count = f"({n:,} chunk{'s' if n != 1 else ''} of {CHUNK_TOKENS} tokens)"
        else:
            count = f"({n:,} document{'s' if n != 1 else ''})"
        if not math.isfinite(self.low):
            return (
                f"{self.a} - {self.b} = {self.diff:+.3f} {what} {count}; no confidence interval "
                f"from one {self.unit}: pass --bootstrap-unit chunk"
            )
        if self.low > 0:
            line = (
                f"{self.b} is better by {self.diff:.3f} {what}, 95 % CI "
                f"{self.low:.3f}-{self.high:.3f} {count}"
            )
        elif self.high < 0:
            line = (
                f"{self.a} is better by {-self.diff:.3f} {what}, 95 % CI "
                f"{-self.high:.3f}-{-self.low:.3f} {count}"
            )
        else:
            line = (
                f"no clear difference: {self.a} - {self.b} = {self.diff:+.3f} {what}, 95 % CI "
                f"{self.low:+.3f} to {self.high:+.3f} {count}"
            )
        return line + (f"; warning: {self.warning}" if self.warning else "")

    def to_dict(self) -> dict[str, object]:
        """Plain JSON values; non-finite numbers are None (JSON null), as in EvalResult."""
        return json_safe({**self.__dict__, "verdict": self.verdict()})


def compare(
    results: Sequence[EvalResult],
    *,
    metric: Metric = "bits_per_byte",
    samples: int = 1000,
    seed: int = 0,
    unit: Unit = "document",
) -> Comparison:
    """The paired bootstrap between two results of the same source, as ``gptdata eval`` prints.

        >>> c = compare([base, tuned], metric="bits_per_byte", samples=1000, seed=0)
        >>> c.diff, c.low, c.high, c.verdict()
        (0.041, 0.030, 0.052, 'tuned is better by 0.041 bpb, 95 % CI 0.030-0.052 (412 documents)')

    ``unit="chunk"`` resamples blocks of 256 consecutive tokens instead of documents, so one long
    held-out file still gets an interval. For more than two results, call it per pair.
    """
    if len(results) != 2 or not all(isinstance(r, EvalResult) for r in results):
        raise ValueError(
            f"compare takes two EvalResults (got {len(results)}); for more, compare each pair."
        )
    return Comparison.of(
        results[0], results[1], samples=samples, seed=seed, unit=unit, metric=metric
    )


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
    results: list[EvalResult],
    *,
    samples: int = 1000,
    seed: int = 0,
    as_json: bool = False,
    unit: Unit = "document",
) -> str:
    """What ``gptdata eval`` prints: the table, any non-finite losses, then per pair the verdict
    and the documents that changed most; or, ``as_json``, each model's ``to_dict()`` and each
    comparison's."""
    pairs = [(x, y) for i, x in enumerate(results) for y in results[i + 1 :]]
    comparisons = [Comparison.of(x, y, samples=samples, seed=seed, unit=unit) for x, y in pairs]
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
    lines += [f"{r.name}: {why}" for r in results if (why := r.nonfinite())]
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
