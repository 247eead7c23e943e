"""The ``gptdata`` command line: ``gptdata <verb>``; results on stdout, progress on stderr.

Errors print one line ``error: ...`` and exit 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

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
""",
    "plan": """examples:
  gptdata plan store --max-length 256 --stride 128 --batch-size 8
  gptdata plan store --max-length 1024 --stride 1024 --batch-size 32 --world-size 8 --emb-dim 768 12288
  gptdata plan the-verdict.txt --max-length 256 --stride 128 --batch-size 2 --plot plan.png
""",
    "demo": "examples:\n  gptdata demo\n  gptdata demo my-text.txt\n",
}


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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p = argparse.ArgumentParser(
        prog="gptdata",
        parents=[common],
        description="Raw text to training-ready data for GPT-style models.",
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    t = _add(sub, "tokenize", "print token IDs and each token's text", common)
    t.add_argument("text", help="text to tokenize, or - for stdin")
    t.add_argument("--tokenizer", default="gpt2", help="gpt2, tokenizer.json or vocab.json")
    _backend(t)

    pr = _add(sub, "prepare", "tokenize a corpus into a token store", common)
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    pr.add_argument("-o", "--out", required=True, help="the store folder to create")
    pr.add_argument("--tokenizer", default="gpt2")
    _backend(pr)
    pr.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    pr.add_argument("--val-fraction", type=float, default=0.1)
    pr.add_argument("--shard-tokens", type=int, default=None, help="max tokens per shard file")
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
    pr.add_argument("--quiet", action="store_true")
    pr.add_argument("--engine", choices=["local", "ray"], default="local")
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
        v.add_argument("store")

    i = _add(sub, "inspect", "show next-token pairs or windows of a text file or store", common)
    i.add_argument("source")
    i.add_argument("--tokenizer", default="gpt2")
    _backend(i)
    i.add_argument("--max-length", type=int, default=4)
    i.add_argument("--start", type=int, default=0, help="token offset to start from")
    i.add_argument(
        "--stride", type=int, default=None, help="stride for --windows (default max-length)"
    )
    i.add_argument("--windows", action="store_true", help="show dataset (input, target) rows")
    i.add_argument("-n", type=int, default=4, help="number of windows to show")
    i.add_argument("--split", default=None, help="store split (default: the first)")

    pl = _add(sub, "plan", "windows, batches and embedding sizes before training", common)
    pl.add_argument("source")
    pl.add_argument("--tokenizer", default="gpt2")
    _backend(pl)
    pl.add_argument("--max-length", type=int, required=True)
    pl.add_argument("--stride", type=int, required=True)
    pl.add_argument("--batch-size", type=int, required=True)
    pl.add_argument("--world-size", type=int, default=1)
    pl.add_argument("--emb-dim", type=int, nargs="+", default=[256])
    pl.add_argument("--plot", default=None, metavar="FILE.png")

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
            f"ok: {a.store} verified ({sum(len(store.split(s)) for s in store.splits):,} tokens, "
            "structure and sha256 sums)"
        )
    return 0


def _cmd_inspect(a: argparse.Namespace) -> int:
    from .inspect import context_pairs, load_source, window_rows
    from .tokenizers import get_tokenizer

    loaded = load_source(a.source, tokenizer=get_tokenizer(a.tokenizer, backend=a.backend))
    name = a.split or next(iter(loaded.splits))
    if name not in loaded.splits:
        raise ValueError(f"no split {name!r}; choose from {list(loaded.splits)}.")
    tokens = loaded.splits[name]
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

    loaded = load_source(a.source, tokenizer=get_tokenizer(a.tokenizer, backend=a.backend))
    report, ok = plan_report(
        loaded,
        max_length=a.max_length,
        stride=a.stride,
        batch_size=a.batch_size,
        world_size=a.world_size,
        emb_dims=tuple(a.emb_dim),
    )
    print(report)
    if a.plot:
        plot(loaded, a.plot)
        print(f"wrote {a.plot}", file=sys.stderr)
    if not ok:
        print("error: a split yields zero batches; see the fix above.", file=sys.stderr)
    return 0 if ok else 2


def _cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    text = None
    if a.file:
        with open(a.file, encoding="utf-8") as fh:
            text = fh.read()
    run_demo(text)
    return 0


COMMANDS = {
    "tokenize": _cmd_tokenize,
    "prepare": _cmd_prepare,
    "info": _cmd_store,
    "verify": _cmd_store,
    "inspect": _cmd_inspect,
    "plan": _cmd_plan,
    "demo": _cmd_demo,
}


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
        return COMMANDS[args.verb](args)
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
