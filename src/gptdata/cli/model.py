"""The model-side verbs of ``gptdata``: inspect, plan, eval and demo.

Each verb is an ``add_<verb>`` that adds its subparser to ``cli.build_parser`` and a
``cmd_<verb>`` that runs it; ``cli.main`` dispatches and turns errors into one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..tokenizers import get_tokenizer
from .blend import _plan_blend, _source_or_blend, add_blend, inspect_blend
from .instructions import (
    add_instruction_reading,
    check_instruction_options,
    eval_source,
    inspect_instructions,
)
from .options import (
    SOURCE_HELP,
    TOKENIZER_HELP,
    add_backend,
    add_cache_limit,
    add_reading,
    add_storage_option,
    add_verb,
    cache_limit,
    check_output,
    source_arg,
    storage_options,
    whole,
)


def add_inspect(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata inspect SOURCE``: next-token pairs or windows."""
    i = add_verb(sub, "inspect", "show next-token pairs or windows of a text file or store", common)
    i.add_argument("source", nargs="?", help=SOURCE_HELP + " (or --blend)")
    add_blend(i)
    i.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    add_backend(i)
    i.add_argument(
        "--max-length", type=whole(1), default=4, help="tokens of context per window (default 4)"
    )
    i.add_argument(
        "--start",
        type=whole(0),
        default=0,
        help="token offset to start from; with --instructions, the first example shown",
    )
    i.add_argument(
        "--stride", type=whole(1), default=None, help="stride for --windows (default max-length)"
    )
    i.add_argument("--windows", action="store_true", help="show dataset (input, target) rows")
    i.add_argument(
        "-n",
        type=whole(1),
        default=None,
        help="number of windows to show (default 4); with --instructions, of examples (default 1)",
    )
    i.add_argument("--split", default=None, help="store split (default: the first)")
    add_reading(i, "SOURCE, --blend's URLs and unigram:/bigram: store URLs of --model")
    i.add_argument(
        "--documents",
        choices=["concat", "mask"],
        default="concat",
        help="mask: show targets masked (-100) and positions restarted after each end-of-text",
    )
    i.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="SPEC",
        help="also show a model's P(desired) and top 3 (hf:DIR, py:FILE.py:NAME, "
        "unigram:STORE, bigram:STORE); twice: side by side; with --windows, -n windows",
    )
    add_checkpoint(i)
    add_instruction_reading(
        i,
        "SOURCE holds instruction examples: show one as the model sees it, prompt and response "
        "tokens marked; with --model, each response token's probability",
    )


def add_plan(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata plan SOURCE --max-length N ...``: sizes before training."""
    pl = add_verb(sub, "plan", "windows, batches and embedding sizes before training", common)
    pl.add_argument("source", nargs="?", help=SOURCE_HELP + " (or --blend)")
    add_blend(pl)
    amount = pl.add_mutually_exclusive_group()
    amount.add_argument(
        "--samples", type=whole(1), default=None, help="with --blend: windows to draw in all"
    )
    amount.add_argument(
        "--tokens", type=whole(1), default=None, help="with --blend: tokens to train on in all"
    )
    pl.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    add_backend(pl)
    pl.add_argument(
        "--max-length", type=whole(1), required=True, help="tokens of context per window"
    )
    pl.add_argument(
        "--stride",
        type=whole(1),
        default=None,
        help="tokens between window starts (required, except with --instructions)",
    )
    pl.add_argument("--batch-size", type=whole(1), required=True, help="windows per batch")
    pl.add_argument(
        "--world-size", type=whole(1), default=1, help="data-parallel ranks (default 1)"
    )
    pl.add_argument(
        "--emb-dim",
        type=whole(1),
        nargs="+",
        default=[256],
        help="embedding widths to size the tables for (default 256)",
    )
    pl.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="also draw document lengths and token frequencies into FILE.png",
    )
    add_reading(pl, "SOURCE and --blend's URLs")
    pl.add_argument(
        "--documents",
        choices=["concat", "mask"],
        default="concat",
        help="mask: also count masked targets and documents per window",
    )
    pl.add_argument(
        "--instructions",
        action="store_true",
        help="SOURCE is instruction data (a file, or a store prepared with --instructions): "
        "pad tokens of padded vs packed batches, loss tokens per batch",
    )


def add_eval(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata eval SOURCE --model SPEC ...``: loss, perplexity, bpb."""
    ev = add_verb(sub, "eval", "loss, perplexity and bits per byte of models on a source", common)
    add_storage_option(ev, "SOURCE and unigram:/bigram: store URLs of --model")
    add_cache_limit(ev)
    ev.add_argument(
        "source",
        help="a token store, or a text/JSONL/Parquet file; with --instructions, instruction "
        "examples (.json list, .jsonl, .parquet)",
    )
    ev.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="SPEC",
        help="hf:DIR, py:FILE.py:NAME (NAME: a model or a zero-argument function returning "
        "one), unigram:STORE or bigram:STORE; repeat to compare models",
    )
    add_checkpoint(ev)
    ev.add_argument("--tokenizer", default=None, help="default: the store's, else gpt2")
    ev.add_argument(
        "--max-length",
        type=whole(1),
        default=None,
        help="window length (default: the models' context)",
    )
    ev.add_argument("--stride", type=whole(1), default=None, help="tokens scored per later window")
    ev.add_argument("--batch-size", type=whole(1), default=8, help="windows per forward pass")
    ev.add_argument(
        "--by",
        choices=["document", "stream"],
        default=None,
        help="document: each on its own (default); stream: the split as stored, one sequence",
    )
    ev.add_argument("--split", default=None, help="store split (default: val)")
    ev.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cpu)")
    ev.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    ev.add_argument("--per-document", default=None, metavar="FILE", help=".csv or .jsonl")
    ev.add_argument("--bootstrap", type=whole(1), default=1000, help="bootstrap samples")
    ev.add_argument(
        "--bootstrap-unit",
        choices=["document", "chunk"],
        default="document",
        help="what the bootstrap resamples: documents (default), or chunk: blocks of 256 "
        "tokens, so one held-out file still gets an interval (advised under 10 documents)",
    )
    ev.add_argument("--seed", type=whole(0), default=0, help="seed of the bootstrap")
    ev.add_argument(
        "--plot", default=None, metavar="FILE.png", help="loss by position, bpb per document"
    )
    ev.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_instruction_reading(
        ev,
        "SOURCE holds instruction examples: score each response only (the prompt is context, "
        "as the book's prompt masking trains), and compare models over examples",
    )


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="weights for the py: models: a state dict saved with torch.save (or a dict with "
        "'model_state_dict'), read with torch.load(weights_only=True); a path or an s3:// URL",
    )


def add_demo(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata demo [FILE]``: every stage from text to embeddings."""
    d = add_verb(sub, "demo", "every stage from text to input embeddings", common)
    d.add_argument("file", nargs="?", default=None, help="your text file (default: the sample)")


def cmd_inspect(a: argparse.Namespace) -> int:
    from ..inspect.pairs import context_pairs, window_rows
    from ..inspect.plan import source_splits

    _source_or_blend(a)
    check_instruction_options(a)
    if a.instructions:
        if a.checkpoint and not a.model:
            raise ValueError("--checkpoint loads weights into a --model py:FILE.py:NAME; pass one.")
        return inspect_instructions(a, _scorers(a) if a.model else [])
    a.n = 4 if a.n is None else a.n
    if a.blend:
        return inspect_blend(a)
    loaded = source_splits(
        source_arg(a),  # a Path or an s3:// Location: never raw text (tokenize takes that)
        tokenizer=get_tokenizer(a.tokenizer, backend=a.backend),
        text_field=a.text_field,
        errors=a.errors,
    )
    name = a.split or next(iter(loaded.splits))
    if name not in loaded.splits:
        raise ValueError(f"no split {name!r}; choose from {list(loaded.splits)}.")
    tokens = loaded.splits[name]
    if a.start > len(tokens) - 2:  # a pair needs the token at --start and the one after it
        raise ValueError(
            f"--start {a.start:,} is beyond the data: split {name!r} of {a.source} has "
            f"{len(tokens):,} tokens, so --start can be at most {max(len(tokens) - 2, 0):,}."
        )
    if a.checkpoint and not a.model:
        raise ValueError("--checkpoint loads weights into a --model py:FILE.py:NAME; pass one.")
    if a.model:
        from ..inspect.guesses import model_windows
        from ..inspect.pairs import model_pairs

        scorers = _scorers(a)
        stride = a.stride or a.max_length
        for scorer in scorers:
            scorer.check(max_length=a.max_length, tokenizer=loaded.tokenizer)
        if a.windows or a.documents == "mask":  # a mask needs the window view: one, or -n
            count = a.n if a.windows else 1
            end = a.start + (count - 1) * stride + a.max_length + 1
            lines = model_windows(
                scorers, tokens[: min(end, len(tokens))], loaded.tokenizer,
                max_length=a.max_length, stride=stride, start=a.start, count=count,
                documents=a.documents,
            )  # fmt: skip
        else:
            ids = [int(t) for t in tokens[a.start : a.start + a.max_length + 1]]
            lines = model_pairs(scorers, ids, loaded.tokenizer)
        print("\n".join(lines))
        return 0
    if a.windows:
        end = a.start + (a.n - 1) * (a.stride or a.max_length) + a.max_length + 1
        ids = tokens[: min(end, len(tokens))]
        lines = window_rows(
            ids,
            loaded.tokenizer,
            max_length=a.max_length,
            stride=a.stride or a.max_length,
            start=a.start,
            count=a.n,
            documents=a.documents,
        )
    else:
        lines = context_pairs(
            tokens[a.start : a.start + a.max_length + 1], loaded.tokenizer, max_length=a.max_length
        )
    print("\n".join(lines))
    return 0


def _scorers(a: argparse.Namespace, device: str | None = None) -> list[Any]:
    """Each --model loaded: a unigram:/bigram: store URL with --storage-option, --cache-limit."""
    from ..evaluation.models import load_model

    opts, limit = storage_options(a), cache_limit(a)
    return [
        load_model(spec, device=device, checkpoint=_checkpoint_for(spec, a),
                   storage_options=opts, cache_limit=limit)
        for spec in a.model
    ]  # fmt: skip


def _checkpoint_for(spec: str, a: argparse.Namespace) -> str | None:
    """--checkpoint goes to the py: models (one py: model, or the one it names first)."""
    if not a.checkpoint:
        return None
    pys = [m for m in a.model if m.startswith("py:")]
    if not pys:
        raise ValueError("--checkpoint loads weights into a --model py:FILE.py:NAME; pass one.")
    if len(pys) > 1:
        raise ValueError(
            "--checkpoint with two py: models is ambiguous: evaluate them one checkpoint at a "
            "time, or write each checkpoint's loading into its own NAME function."
        )
    return a.checkpoint if spec.startswith("py:") else None


def cmd_plan(a: argparse.Namespace) -> int:
    from ..inspect.plan import instruction_plan, plan_report, plot, source_splits

    _source_or_blend(a)
    if a.instructions:
        if a.blend:
            raise ValueError("--instructions plans one instruction source; drop --blend.")
        source = source_arg(a)  # a URL with --storage-option; a store URL with --cache-limit
        print(instruction_plan(source, batch_size=a.batch_size, max_length=a.max_length))
        return 0
    if a.stride is None:
        raise SystemExit(
            "error: plan needs --stride N (or --instructions). See gptdata plan --help."
        )
    check_output(a.plot, "--plot", plot=True)
    if a.blend:
        return _plan_blend(a)
    if a.samples or a.tokens:
        raise ValueError("--samples and --tokens size a mixture: use them with --blend.")
    loaded = source_splits(
        source_arg(a),  # a Path or an s3:// Location: never raw text (tokenize takes that)
        tokenizer=get_tokenizer(a.tokenizer, backend=a.backend),
        text_field=a.text_field,
        errors=a.errors,
    )
    report, ok = plan_report(
        loaded,
        max_length=a.max_length,
        stride=a.stride,
        batch_size=a.batch_size,
        world_size=a.world_size,
        emb_dims=tuple(a.emb_dim),
        documents=a.documents,
    )
    print(report)
    if a.plot:
        plot(loaded, a.plot)
        print(f"wrote {a.plot}", file=sys.stderr)
    if not ok:
        print("error: a split yields zero batches; see the fix above.", file=sys.stderr)
    return 0 if ok else 2


def cmd_eval(a: argparse.Namespace) -> int:
    from ..evaluation.compare import plot, report, write_per_document
    from ..evaluation.scoring import evaluate

    check_output(a.per_document, "--per-document")
    check_output(a.plot, "--plot", plot=True)
    data, where = eval_source(a)
    scorers = _scorers(a, device=a.device)
    max_length = a.max_length
    if max_length is None:
        known = [s.max_positions for s in scorers if s.max_positions]
        if not known:
            raise ValueError("no model states its context length; pass --max-length.")
        max_length = min(known)
    results = []
    for scorer in scorers:
        if not a.quiet:
            print(f"eval: {scorer.name} on {where}", file=sys.stderr)
        results.append(
            evaluate(
                scorer,
                data,
                max_length=max_length,
                stride=a.stride,
                batch_size=a.batch_size,
                by=a.by,
                progress=not a.quiet,
            )
        )
    print(report(results, samples=a.bootstrap, seed=a.seed, as_json=a.json, unit=a.bootstrap_unit))
    if a.per_document:
        write_per_document(results, a.per_document)
        print(f"wrote {a.per_document}", file=sys.stderr)
    if a.plot:
        plot(results, a.plot)
        print(f"wrote {a.plot}", file=sys.stderr)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from ..demo import run_demo

    text = None
    if a.file:
        with open(a.file, encoding="utf-8") as fh:
            text = fh.read()
    run_demo(text)
    return 0
