"""The ``gptdata`` command line: ``gptdata <verb>``; results on stdout, progress on stderr.

Errors print one line ``error: ...`` and exit 1; ``--debug`` shows the traceback instead. A wrong
option (``--batch-size 0``) is refused before any work, in one line, with exit status 2. A reader that
stops early (``gptdata tokenize ... | head -1``) ends the command quietly with status 0, as ripgrep
does: a closed pipe is the reader's choice, not an error, and ``set -o pipefail`` scripts go on.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EPILOGS = {
    "tokenize": """examples:
  gptdata tokenize "Hello, world"
  echo "Hello<|endoftext|>world" | gptdata tokenize -
  gptdata tokenize --tokenizer vocab.json "Hello, world"
""",
    "prepare": """examples:
  gptdata prepare the-verdict.txt -o verdict-store
  gptdata prepare corpus/ --workers 8 --val-fraction 0.05 -o store
  gptdata prepare 'data/*.jsonl.gz' --text-field content --errors replace -o store
""",
    "info": "examples:\n  gptdata info store\n",
    "verify": "examples:\n  gptdata verify store\n",
    "inspect": """examples:
  gptdata inspect the-verdict.txt --start 50
  gptdata inspect store --max-length 8 --windows --stride 4 -n 3
  gptdata inspect docs.jsonl --text-field content --max-length 8
  gptdata inspect store --max-length 8 --windows --documents mask
""",
    "plan": """examples:
  gptdata plan store --max-length 256 --stride 128 --batch-size 8
  gptdata plan store --max-length 1024 --stride 1024 --batch-size 32 --world-size 8 --emb-dim 768 12288
  gptdata plan the-verdict.txt --max-length 256 --stride 128 --batch-size 2 --plot plan.png
  gptdata plan 'data/*.jsonl.gz' --text-field content --max-length 1024 --stride 1024 --batch-size 8
  gptdata plan store --max-length 1024 --stride 1024 --batch-size 32 --documents mask
""",
    "demo": "examples:\n  gptdata demo\n  gptdata demo my-text.txt\n",
    "export": """examples:
  gptdata export store --format megatron -o megatron-data
  gptdata export store --format nanogpt --split all -o nanogpt-data
  gptdata export store --format llmc --shard-tokens 100000000 -o llmc-data
""",
    "import": """examples:
  gptdata import megatron data/train_text_document -o store
  gptdata import nanogpt nanoGPT/data/openwebtext/ -o store
  gptdata import llmc dev/data/fineweb10B/ --tokenizer gpt2 -o store
""",
    "eval": """examples:
  gptdata eval store --model hf:checkpoints/base --max-length 1024
  gptdata eval store --model bigram:store --model hf:base --model hf:tuned --plot eval.png
  gptdata eval notes.jsonl --model hf:base --stride 512 --per-document docs.csv --json
""",
}


class _Parser(argparse.ArgumentParser):
    """argparse, with usage mistakes reported in one line (the usage is one --help away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message.rstrip('.')}. See {self.prog} --help.\n")


def whole(minimum: int) -> Callable[[str], int]:
    """An argparse ``type=``: an integer >= ``minimum``; '0' for minimum 1 -> one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum:,}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum:,}, got {value:,}")
        return value

    parse.__name__ = f"whole number >= {minimum}"  # argparse names the type in some messages
    return parse


def fraction(text: str) -> float:
    """An argparse ``type=``: a float in [0, 1), e.g. 0.1 for 10 %."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), e.g. 0.1 for 10 %, got {value}")
    return value


TOKENIZER_HELP = "gpt2 (default), a tokenizer.json or a SimpleTokenizer vocab.json"
SOURCE_HELP = (
    "what prepare reads (a text, JSONL(.gz) or Parquet file, a folder or glob), or a store"
)


def _add(
    sub: argparse._SubParsersAction, name: str, help: str, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=EPILOGS[name],
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["auto", "tiktoken", "fastokens"],
        default="auto",
        help="GPT-2 encoder: auto = fastokens when installed and gate-checked",
    )


def _reading(parser: argparse.ArgumentParser) -> None:
    """The options that say how input files are read: the same words and defaults as prepare."""
    parser.add_argument(
        "--text-field", default="text", help="JSONL/Parquet field with the text (default text)"
    )
    parser.add_argument(
        "--errors",
        choices=["strict", "replace", "skip"],
        default="strict",
        help="invalid UTF-8: stop (strict), use U+FFFD (replace), drop the document",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p = _Parser(
        prog="gptdata",
        parents=[common],
        description="Raw text to training-ready data for GPT-style models.",
    )
    p.add_argument(
        "--version", action="version", version=f"gptdata {__version__}", help="print the version"
    )
    sub = p.add_subparsers(
        dest="verb", required=True, metavar="VERB", help="run gptdata VERB --help for its options"
    )

    t = _add(sub, "tokenize", "print token IDs and each token's text", common)
    t.add_argument("text", help="text to tokenize, or - for stdin")
    t.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    _backend(t)

    pr = _add(sub, "prepare", "tokenize a corpus into a token store", common)
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    pr.add_argument("-o", "--out", required=True, help="the store folder to create")
    pr.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    _backend(pr)
    pr.add_argument("--workers", type=whole(1), default=None, help="processes (default: all cores)")
    pr.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.1,
        help="share of documents for the val split, in [0, 1) (default 0.1)",
    )
    pr.add_argument(
        "--shard-tokens",
        type=whole(1),
        default=None,
        help="max tokens per shard file (default 100,000,000)",
    )
    pr.add_argument("--text-field", default="text", help="JSONL/Parquet field with the text")
    pr.add_argument(
        "--errors",
        choices=["strict", "replace", "skip"],
        default="strict",
        help="invalid UTF-8: stop (strict), use U+FFFD (replace), drop the document",
    )
    pr.add_argument(
        "--split-by",
        choices=["auto", "documents", "tail"],
        default="auto",
        help="val split: whole documents by hash, each document's tail, or auto (see README)",
    )
    pr.add_argument(
        "--special-text",
        choices=["ordinary", "allow"],
        default="ordinary",
        help="a literal <|endoftext|> in a document: ordinary text, or allow it as the separator",
    )
    pr.add_argument("--seed", type=int, default=0, help="seed of the train/val hash")
    pr.add_argument("--force", action="store_true", help="replace an existing store")
    pr.add_argument("--quiet", action="store_true", help="no progress on stderr")
    pr.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local processes, or Ray tasks on a cluster (default local)",
    )
    pr.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join (default: auto when RAY_ADDRESS is set, else a local Ray)",
    )

    for verb, helptext in (
        ("info", "print a store's manifest in human terms"),
        ("verify", "check a store's structure and sha256 sums"),
    ):
        v = _add(sub, verb, helptext, common)
        v.add_argument("store", help="a token store folder (made by gptdata prepare)")

    i = _add(sub, "inspect", "show next-token pairs or windows of a text file or store", common)
    i.add_argument("source", help=SOURCE_HELP)
    i.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    _backend(i)
    i.add_argument(
        "--max-length", type=whole(1), default=4, help="tokens of context per window (default 4)"
    )
    i.add_argument("--start", type=whole(0), default=0, help="token offset to start from")
    i.add_argument(
        "--stride", type=whole(1), default=None, help="stride for --windows (default max-length)"
    )
    i.add_argument("--windows", action="store_true", help="show dataset (input, target) rows")
    i.add_argument("-n", type=whole(1), default=4, help="number of windows to show (default 4)")
    i.add_argument("--split", default=None, help="store split (default: the first)")
    _reading(i)
    i.add_argument(
        "--documents",
        choices=["concat", "mask"],
        default="concat",
        help="mask: show targets masked (-100) and positions restarted after each end-of-text",
    )
    i.add_argument(
        "--model",
        default=None,
        metavar="SPEC",
        help="also show a model's P(desired) and top 3 (hf:DIR, unigram:STORE, bigram:STORE)",
    )

    pl = _add(sub, "plan", "windows, batches and embedding sizes before training", common)
    pl.add_argument("source", help=SOURCE_HELP)
    pl.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    _backend(pl)
    pl.add_argument(
        "--max-length", type=whole(1), required=True, help="tokens of context per window"
    )
    pl.add_argument("--stride", type=whole(1), required=True, help="tokens between window starts")
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
    _reading(pl)
    pl.add_argument(
        "--documents",
        choices=["concat", "mask"],
        default="concat",
        help="mask: also count masked targets and documents per window",
    )

    ex = _add(
        sub, "export", "write a store in a trainer's format (megatron, nanogpt, llmc, hf)", common
    )
    ex.add_argument("store", help="the token store folder to export")
    ex.add_argument("--format", required=True, help="megatron, nanogpt, llmc or hf")
    ex.add_argument("-o", "--out", required=True, help="the folder to create")
    ex.add_argument("--split", default="all", help="train, val or all (default)")
    ex.add_argument(
        "--shard-tokens", type=whole(1), default=None, help="llmc: max tokens per shard (100 M)"
    )
    ex.add_argument("--force", action="store_true", help="replace an earlier export")
    ex.add_argument("--quiet", action="store_true", help="no progress on stderr")

    im = _add(
        sub, "import", "read pre-tokenized data (megatron, nanogpt, llmc) into a store", common
    )
    im.add_argument("format", metavar="FORMAT", help="megatron, nanogpt or llmc")
    im.add_argument("path", metavar="PATH", help="a .bin/.idx prefix, a .bin file or a folder")
    im.add_argument("-o", "--out", required=True, help="the store folder to create")
    im.add_argument("--tokenizer", default="gpt2", help="the tokenizer that made the IDs")
    im.add_argument("--shard-tokens", type=whole(1), default=None, help="max tokens per shard file")
    im.add_argument("--force", action="store_true", help="replace an existing store")
    im.add_argument("--quiet", action="store_true", help="no progress on stderr")

    ev = _add(sub, "eval", "loss, perplexity and bits per byte of models on a source", common)
    ev.add_argument("source", help="a token store, or a text/JSONL/Parquet file")
    ev.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="SPEC",
        help="hf:DIR, unigram:STORE or bigram:STORE; repeat to compare models",
    )
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
    ev.add_argument("--seed", type=whole(0), default=0, help="seed of the bootstrap")
    ev.add_argument(
        "--plot", default=None, metavar="FILE.png", help="loss by position, bpb per document"
    )
    ev.add_argument("--quiet", action="store_true", help="no progress on stderr")

    d = _add(sub, "demo", "every stage from text to input embeddings", common)
    d.add_argument("file", nargs="?", default=None, help="your text file (default: the sample)")
    return p


def _cmd_tokenize(a: argparse.Namespace) -> int:
    from .inspect import escape
    from .tokenizers import get_tokenizer

    text = sys.stdin.read() if a.text == "-" else a.text
    tok = get_tokenizer(a.tokenizer, backend=a.backend)
    ids = tok.encode(text)
    print(ids)
    for i in ids:
        print(f"{i} '{escape(tok.decode([i]))}'")
    return 0


def _cmd_prepare(a: argparse.Namespace) -> int:
    from .prepare import DEFAULT_SHARD_TOKENS, prepare

    store = prepare(
        a.inputs,
        a.out,
        tokenizer=a.tokenizer,
        backend=a.backend,
        workers=a.workers,
        val_fraction=a.val_fraction,
        split_by=a.split_by,
        special_text=a.special_text,
        shard_tokens=a.shard_tokens or DEFAULT_SHARD_TOKENS,
        text_field=a.text_field,
        errors=a.errors,
        seed=a.seed,
        force=a.force,
        quiet=a.quiet,
        engine=a.engine,
        ray_address=a.ray_address,
    )
    print(store.describe())
    return 0


def _cmd_store(a: argparse.Namespace) -> int:
    from .store import TokenStore

    store = TokenStore.open(a.store)
    if a.verb == "info":
        print(store.describe())
    else:
        store.verify()
        print(
            f"ok: {a.store} verified ({store.n_tokens:,} tokens, {store.n_documents:,} documents, "
            "structure and sha256 sums)"
        )
    return 0


def _cmd_inspect(a: argparse.Namespace) -> int:
    from .inspect import context_pairs, load_source, window_rows
    from .tokenizers import get_tokenizer

    loaded = load_source(
        Path(a.source),  # a path: the CLI never takes raw text here (tokenize does)
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
    if a.model:
        from .inspect import model_pairs
        from .models import load_model

        ids = tokens[a.start : a.start + a.max_length + 1]
        scorer = load_model(a.model)
        scorer.check(max_length=max(len(ids) - 1, 1), tokenizer=loaded.tokenizer)
        print("\n".join(model_pairs(scorer, [int(t) for t in ids], loaded.tokenizer)))
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


def _cmd_plan(a: argparse.Namespace) -> int:
    from .inspect import load_source, plan_report, plot
    from .tokenizers import get_tokenizer

    loaded = load_source(
        Path(a.source),  # a path: the CLI never takes raw text here (tokenize does)
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


def _cmd_eval(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .compare import plot, report, write_per_document
    from .evaldata import load_eval_data
    from .evaluation import evaluate
    from .models import load_model

    data = load_eval_data(Path(a.source), tokenizer=a.tokenizer, split=a.split)
    scorers = [load_model(spec, device=a.device) for spec in a.model]
    max_length = a.max_length
    if max_length is None:
        known = [s.max_positions for s in scorers if s.max_positions]
        if not known:
            raise ValueError("no model states its context length; pass --max-length.")
        max_length = min(known)
    results = []
    for scorer in scorers:
        if not a.quiet:
            print(f"eval: {scorer.name} on {data.name}", file=sys.stderr)
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
    print(report(results, samples=a.bootstrap, seed=a.seed, as_json=a.json))
    if a.per_document:
        write_per_document(results, a.per_document)
        print(f"wrote {a.per_document}", file=sys.stderr)
    if a.plot:
        plot(results, a.plot)
        print(f"wrote {a.plot}", file=sys.stderr)
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    text = None
    if a.file:
        with open(a.file, encoding="utf-8") as fh:
            text = fh.read()
    run_demo(text)
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    from .formats.export import DEFAULT_SHARD_TOKENS, check_format, export_store

    check_format(a.format, flag="--format")
    result = export_store(
        a.store,
        a.out,
        format=a.format,
        split=a.split,
        shard_tokens=a.shard_tokens or DEFAULT_SHARD_TOKENS,
        force=a.force,
        quiet=a.quiet,
    )
    for name, r in result["splits"].items():
        print(f"{a.out}  {name}: {r['documents']:,} documents, {r['tokens']:,} tokens")
    return 0


def _cmd_import(a: argparse.Namespace) -> int:
    from .formats.importer import import_store
    from .prepare import DEFAULT_SHARD_TOKENS

    store = import_store(
        a.format,
        a.path,
        a.out,
        tokenizer=a.tokenizer,
        shard_tokens=a.shard_tokens or DEFAULT_SHARD_TOKENS,
        force=a.force,
        quiet=a.quiet,
    )
    print(store.describe())
    return 0


COMMANDS = {
    "tokenize": _cmd_tokenize,
    "prepare": _cmd_prepare,
    "info": _cmd_store,
    "verify": _cmd_store,
    "inspect": _cmd_inspect,
    "plan": _cmd_plan,
    "demo": _cmd_demo,
    "export": _cmd_export,
    "import": _cmd_import,
    "eval": _cmd_eval,
}


def _silence_stdout() -> None:
    """Point stdout at /dev/null: Python flushes it again at exit, which must not fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout without a file descriptor (a test's capture): nothing is left to flush


def as_flags(message: str, args: argparse.Namespace) -> str:
    """The library names Python arguments (``force=True``); the CLI user sees flags (``--force``).

    Only names that are options of this verb are rewritten:
    "Pass force=True or val_fraction=0.05" -> "Pass --force or --val-fraction 0.05".
    """
    names = [n for n in vars(args) if n not in ("verb", "debug")]
    if not names:
        return message
    pattern = r"\b(" + "|".join(map(re.escape, names)) + r")=('[^']*'|\"[^\"]*\"|[^\s,;)]*)"

    def flag(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2).strip("'\"")
        if value.endswith(".") and not re.fullmatch(r"\d*\.\d+", value):
            value, dot = value[:-1], "."
        else:
            dot = ""
        opt = "--" + name.replace("_", "-")
        return (opt if value in ("True", "") else f"{opt} {value}") + dot

    return re.sub(pattern, flag, message)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
    try:
        code = COMMANDS[args.verb](args)
        sys.stdout.flush()  # a reader that left shows up here, inside the handler below
        return code
    except BrokenPipeError:  # `gptdata tokenize ... | head -1`: the reader has all it wants
        _silence_stdout()
        return 0
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", 2)  # prepare raises it with 15 on SIGTERM
        what = "terminated (SIGTERM)" if signum == 15 else "interrupted"
        print(f"{what}. Run the same command again to resume.", file=sys.stderr)
        return 128 + signum
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if isinstance(exc, OSError) and exc.strerror and not exc.filename:
            msg = exc.strerror  # our own OSErrors: the message alone, without "[Errno 28]"
        print(f"error: {as_flags(str(msg), args)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
