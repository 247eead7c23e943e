"""``--blend``: a mixture of sources in Megatron-LM's ``--data-path`` syntax, for plan and inspect.

gptdata plan --blend 0.7 web/ 0.3 code/ --max-length 1024 --stride 1024 --batch-size 8
gptdata inspect --blend 0.7 web/ 0.3 code/ --max-length 16 -n 8
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..tokenizers import get_tokenizer
from .options import open_source


def add_blend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--blend",
        nargs="+",
        metavar="WEIGHT PATH",
        default=None,
        help="a mixture in Megatron's --data-path syntax: 0.7 web/ 0.2 code/ 0.1 books/; "
        "a store may be a URL (s3://bucket/stores/web, with --storage-option)",
    )


def _source_or_blend(a: argparse.Namespace) -> None:
    if (a.source is None) == (a.blend is None):
        raise ValueError("give a SOURCE or a mixture with --blend WEIGHT PATH ..., not both.")


def _mixture(a: argparse.Namespace, *, stride: int) -> tuple[Any, list[str]]:
    from ..inspect.blend import _names, parse_blend
    from ..windows.mixture import Mixture

    pairs = parse_blend(a.blend)
    if a.cache_limit is not None and not any(isinstance(p, str) for _, p in pairs):
        raise ValueError(
            "--cache-limit bounds the cache of stores on object storage; every --blend path is "
            "local, read in place. Drop --cache-limit."
        )
    # A URL (a store's, or files') is read with --storage-option; a store's through the cache.
    sources = [(w, open_source(p, a) if isinstance(p, str) else p) for w, p in pairs]
    mix = Mixture(
        sources,
        max_length=a.max_length,
        stride=stride,
        tokenizer=get_tokenizer(a.tokenizer, backend=a.backend),
    )
    return mix, _names(mix, [p for _, p in pairs])


def inspect_blend(a: argparse.Namespace) -> int:
    """``inspect --blend``: which source and window each of the first ``-n`` samples is."""
    from ..inspect.blend import blend_windows

    mix, names = _mixture(a, stride=a.stride or a.max_length)
    tok = mix.datasets[0].corpus.tokenizer or get_tokenizer(a.tokenizer, backend=a.backend)
    print("\n".join(blend_windows(mix, tok, n=min(a.n, len(mix)), names=names)))
    return 0


def _plan_blend(a: argparse.Namespace) -> int:
    from ..inspect.blend import blend_report, parse_blend, plot_shares

    mix, names = _mixture(a, stride=a.stride)
    samples = a.samples or (-(-a.tokens // a.max_length) if a.tokens else None)
    paths = [p for _, p in parse_blend(a.blend)]
    print(
        blend_report(
            mix, samples=samples, batch_size=a.batch_size, world_size=a.world_size, paths=paths
        )
    )
    if a.plot:
        plot_shares(mix, samples or len(mix), a.plot, names)
        print(f"wrote {a.plot}", file=sys.stderr)
    return 0
