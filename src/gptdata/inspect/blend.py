"""Seeing a mixture before training: per source its share, windows, tokens and epochs drawn.

``gptdata plan --blend 0.7 web/ 0.2 code/ 0.1 books/ --max-length 256 --stride 256 --batch-size 8``
takes Megatron-LM's ``--data-path`` syntax (weight, path pairs) and prints, for the samples asked
for, what each source gives and how often it is read over:

    mixture: 3 sources, 12,000 samples of max_length 256 (3,072,000 tokens)
      code (store/code split 'train'): share 0.200, 750 windows, 2,400 samples, 3.20 epochs: upsampled

``inspect --blend`` shows which source each of the first windows came from.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..windows.mixture import Mixture, report


def parse_blend(words: list[str], *, flag: str = "--blend") -> list[tuple[float, Path | str]]:
    """Megatron's ``--data-path`` list -> (weight, path) pairs; one bare path has weight 1. A URL
    stays a ``str``, for the caller to open with its storage options.

    ['0.7', 'web/', '0.3', 's3://b/code'] -> [(0.7, Path('web/')), (0.3, 's3://b/code')]
    """
    if len(words) == 1:
        words = ["1", words[0]]
    if len(words) % 2:
        raise ValueError(
            f"{flag} takes weight and path pairs (Megatron's --data-path syntax), but got "
            f"{len(words)} words: {' '.join(words)}. Give e.g. {flag} 0.7 web/ 0.3 code/."
        )
    pairs: list[tuple[float, Path | str]] = []
    for i in range(0, len(words), 2):
        weight, path = words[i], words[i + 1]
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(
                f"{flag}: {weight!r} (word {i + 1}) is not a weight; pairs are WEIGHT PATH, "
                f"e.g. {flag} 0.7 {path}."
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{flag}: weight {weight} of {path} must be a number >= 0.")
        if "://" in path:  # a URL: Path() would fold its '//'
            pairs.append((value, path))
            continue
        if not os.path.exists(path):
            raise FileNotFoundError(f"{flag}: {path} does not exist. Pass a store or text files.")
        pairs.append((value, Path(path)))
    if sum(w for w, _ in pairs) <= 0:
        raise ValueError(f"{flag}: the weights add up to 0; give at least one weight > 0.")
    return pairs


def _label(path: Path | str) -> str:
    """'web/' -> 'web'; a URL as given: 's3://b/stores/web'."""
    return path if isinstance(path, str) else (path.name or str(path))


def _names(mixture: Mixture, paths: list[Path | str] | None) -> list[str]:
    out = []
    for i, ds in enumerate(mixture.datasets):
        label = _label(paths[i]) if paths else f"source {i}"
        split = getattr(ds.tokens, "name", None)  # a store's split; files have none
        out.append(f"{label} (split {split!r})" if split else label)
    return out


def blend_report(
    mixture: Mixture,
    *,
    samples: int | None = None,
    batch_size: int = 1,
    world_size: int = 1,
    drop_last: bool = True,
    paths: list[Path | str] | None = None,
) -> str:
    """The plan of a mixture: per source share, windows, samples, tokens and epochs drawn, then
    the mixture's batches per epoch (``samples`` default: the mixture's own size)."""
    n = len(mixture) if samples is None else int(samples)
    names = _names(mixture, paths)
    L = mixture.max_length
    lines = [
        f"mixture: {len(mixture.datasets)} sources, {n:,} samples of max_length {L} "
        f"({n * L:,} tokens), stride {mixture.stride}; Megatron's order (weights normalized "
        "twice, as --data-path)"
    ]
    for name, row in zip(names, report(mixture, samples=n), strict=True):
        note = ": upsampled" if row["upsampled"] else ""
        lines.append(
            f"  {name}: share {row['share']:.3f}, {row['windows']:,} windows, "
            f"{row['samples']:,} samples, {row['tokens']:,} tokens, "
            f"{row['epochs']:.2f} epochs{note}"
        )
    per_rank = n // world_size if drop_last else math.ceil(n / world_size)
    batches = per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)
    rank_note = f" per rank ({world_size} ranks)" if world_size > 1 else ""
    lines.append(f"  batches per epoch  {batches:,}{rank_note} (batch_size={batch_size})")
    return "\n".join(lines)


def cumulative_shares(mixture: Mixture, samples: int, *, points: int = 512) -> tuple[Any, Any]:
    """(sample counts n, (n, sources) shares of each source among the first n samples)."""
    n = np.unique(np.linspace(1, samples, num=min(points, samples)).astype(np.int64))
    counts = np.stack([mixture.index.counts_at(int(k)) for k in n])  # (P, S)
    return n, counts / n[:, None]


def plot_shares(
    mixture: Mixture, samples: int, path: str | os.PathLike[str], names: list[str]
) -> None:
    """Each source's share of the first n samples against n, beside its weight, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib. Fix: pip install 'gptdata[plot]'") from None
    n, shares = cumulative_shares(mixture, samples)
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, name in enumerate(names):
        (line,) = ax.plot(n, shares[:, i], label=name)
        ax.axhline(mixture.weights[i], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set(title="cumulative share per source", xlabel="samples", ylabel="share of samples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def blend_windows(mixture: Mixture, tokenizer: Any, *, n: int, names: list[str]) -> list[str]:
    """The first ``n`` samples: which source and window each came from, and its input text."""
    from .pairs import escape

    sources, windows = mixture.locate(np.arange(n))
    rows = mixture.rows(np.arange(n))  # (n, L + 1)
    lines = []
    for k in range(n):
        s, w = int(sources[k]), int(windows[k])
        text = escape(tokenizer.decode(rows[k, :-1].tolist()))
        lines.append(f"sample {k}: {names[s]} window {w:,}: {text}")
    return lines
