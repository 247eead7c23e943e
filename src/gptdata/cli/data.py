"""The data verbs of ``gptdata``: tokenize, prepare, info, verify, export and import.

Each verb is an ``add_<verb>`` that adds its subparser to ``cli.build_parser`` and a
``cmd_<verb>`` that runs it; ``cli.main`` dispatches and turns errors into one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .options import (
    TOKENIZER_HELP,
    add_backend,
    add_cache_limit,
    add_instruction_options,
    add_storage_option,
    add_verb,
    fraction,
    source_arg,
    storage_options,
    whole,
)


def add_tokenize(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata tokenize TEXT``: token IDs and each token's text."""
    t = add_verb(sub, "tokenize", "print token IDs and each token's text", common)
    t.add_argument("text", help="text to tokenize, or - for stdin")
    t.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    add_backend(t)


def add_prepare(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata prepare INPUT... -o STORE``: a corpus into a token store."""
    pr = add_verb(sub, "prepare", "tokenize a corpus into a token store", common)
    pr.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, folders or globs, local or s3:// (a prefix or a glob of objects)",
    )
    pr.add_argument(
        "-o", "--out", required=True, help="the store to create: a folder, or an s3:// prefix"
    )
    pr.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
    add_backend(pr)
    pr.add_argument("--workers", type=whole(1), default=None, help="processes (default: all cores)")
    pr.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.1,
        help="share of documents for the val split, in [0, 1) (default 0.1)",
    )
    pr.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.0,
        help="share of documents for a held-out test split (default 0; the book's 85/10/5: "
        "--test-fraction 0.1 --val-fraction 0.05)",
    )
    pr.add_argument(
        "--shard-tokens",
        type=whole(1),
        default=None,
        help="max tokens per shard file (default 100,000,000)",
    )
    add_instruction_options(pr)
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
    add_storage_option(pr, "the inputs and an -o URL")


def add_store_verbs(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata info STORE`` and ``gptdata verify STORE``."""
    for verb, helptext in (
        ("info", "print a store's manifest in human terms"),
        ("verify", "check a store's structure and sha256 sums"),
    ):
        v = add_verb(sub, verb, helptext, common)
        v.add_argument(
            "store", help="a token store folder (made by gptdata prepare), or its s3:// URL"
        )
        add_storage_option(v, "the store")
        add_cache_limit(v)


def add_export(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata export STORE --format F -o OUT``: a trainer's format."""
    ex = add_verb(
        sub, "export", "write a store in a trainer's format (megatron, nanogpt, llmc, hf)", common
    )
    ex.add_argument("store", help="the token store to export: a folder, or an s3:// prefix")
    ex.add_argument("--format", required=True, help="megatron, nanogpt, llmc or hf")
    ex.add_argument("-o", "--out", required=True, help="the folder to create, or an s3:// prefix")
    ex.add_argument("--split", default="all", help="train, val or all (default)")
    ex.add_argument(
        "--shard-tokens", type=whole(1), default=None, help="llmc: max tokens per shard (100 M)"
    )
    ex.add_argument(
        "--min-shard-tokens",
        type=whole(0),
        default=None,
        help="llmc: a last shard below this joins the one before it (default: a tenth of "
        "--shard-tokens); llm.c needs every shard >= num_processes*B*T + 1 tokens",
    )
    ex.add_argument(
        "--shards",
        type=whole(1),
        default=None,
        help="llmc: cut each split into N equal shards instead of --shard-tokens each",
    )
    ex.add_argument(
        "--tokenizer",
        default=None,
        help="the store's tokenizer file (checked): copied into the export so import reads it "
        "back; nanogpt's meta.pkl gets stoi/itos",
    )
    ex.add_argument("--force", action="store_true", help="replace an earlier export")
    ex.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_storage_option(ex, "the store and an -o URL")
    add_cache_limit(ex)


def add_import(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``gptdata import FORMAT PATH -o STORE``: pre-tokenized data in."""
    im = add_verb(
        sub, "import", "read pre-tokenized data (megatron, nanogpt, llmc) into a store", common
    )
    im.add_argument("format", metavar="FORMAT", help="megatron, nanogpt or llmc")
    im.add_argument(
        "path",
        metavar="PATH",
        help="a .bin/.idx prefix, a .bin file or a folder; local or s3:// (downloaded first)",
    )
    im.add_argument(
        "-o", "--out", required=True, help="the store to create: a folder, or an s3:// prefix"
    )
    im.add_argument(
        "--tokenizer",
        default=None,
        help="the tokenizer that made the IDs (default: the one a gptdata export recorded, "
        "else gpt2, said in the summary)",
    )
    im.add_argument("--shard-tokens", type=whole(1), default=None, help="max tokens per shard file")
    im.add_argument("--force", action="store_true", help="replace an existing store")
    im.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_storage_option(im, "PATH and an -o URL")


def cmd_tokenize(a: argparse.Namespace) -> int:
    from ..inspect.pairs import escape
    from ..tokenizers import get_tokenizer

    text = sys.stdin.read() if a.text == "-" else a.text
    tok = get_tokenizer(a.tokenizer, backend=a.backend)
    ids = tok.encode(text)
    print(ids)
    for i in ids:
        print(f"{i} '{escape(tok.decode([i]))}'")
    return 0


def _flag(name: str, value: object) -> str:
    """An option as the command line spells it: ('val_fraction', 0.3) -> '--val-fraction 0.3'."""
    return f"--{name.replace('_', '-')} {value}"


def cmd_prepare(a: argparse.Namespace) -> int:
    from ..prepare.driver import DEFAULT_SHARD_TOKENS, prepare

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
        name_option=_flag,  # the summary names --val-fraction, not val_fraction=
        test_fraction=a.test_fraction,
        instructions=a.instructions,
        template=a.template,
        fields=a.fields,
        storage_options=storage_options(a),
    )
    print(store.describe())
    return 0


def cmd_store(a: argparse.Namespace) -> int:
    from ..store import TokenStore

    store = source_arg(a, "store")  # a URL holding a store opens through the cache
    if not isinstance(store, TokenStore):
        store = TokenStore.open(store)  # a folder, or a URL with no store: open() says why
    if a.verb == "info":
        print(store.describe())
    else:
        store.verify()
        print(
            f"ok: {a.store} verified ({store.n_tokens:,} tokens, {store.n_documents:,} documents, "
            "structure and sha256 sums)"
        )
    return 0


def _stopped(verb: str, out: str, exc: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM during import/export: one line, exit 128 + signal. Neither verb resumes
    (its side folder is already removed), so the line says that rather than "run again"."""
    from ..storage import is_remote

    signum = getattr(exc, "signum", 2)
    what = "terminated (SIGTERM)" if signum == 15 else "interrupted"
    if verb == "export" and is_remote(out):  # objects already uploaded stay: S3 has no rename
        print(
            f"{what}: export stopped before its listing was uploaded, so {out} holds no export; "
            "run the same command again to take over what it left.",
            file=sys.stderr,
        )
        return 128 + signum
    print(
        f"{what}: {verb} stopped; its partial output was removed and {out} was not written "
        f"({verb} does not resume: a new run starts over).",
        file=sys.stderr,
    )
    return 128 + signum


def _stoppable(verb: str, run: Any, a: argparse.Namespace) -> int:
    """Run an import or export with SIGTERM handled like Ctrl-C: side folder removed, one line."""
    from ..prepare.executors import _TermAsInterrupt

    try:
        with _TermAsInterrupt():
            return int(run(a))
    except KeyboardInterrupt as exc:
        return _stopped(verb, a.out, exc)


def cmd_export(a: argparse.Namespace) -> int:
    return _stoppable("export", _export, a)


def _export(a: argparse.Namespace) -> int:
    from ..formats.export import DEFAULT_SHARD_TOKENS, check_format, export_store

    check_format(a.format, flag="--format")
    opts = storage_options(a)
    store = source_arg(a, "store")  # a store URL opens through the cache, as for the other verbs
    options: dict[str, Any] = {
        "format": a.format,
        "split": a.split,
        "shard_tokens": a.shard_tokens or DEFAULT_SHARD_TOKENS,
        "min_shard_tokens": a.min_shard_tokens,
        "shards": a.shards,
        "tokenizer": a.tokenizer,
        "force": a.force,
        "quiet": a.quiet,
    }
    # An -o URL: written locally, then uploaded with the listing last (formats.remote).
    result = export_store(store, a.out, storage_options=opts, **options)
    for name, r in result["splits"].items():
        print(f"{a.out}  {name}: {r['documents']:,} documents, {r['tokens']:,} tokens")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    return _stoppable("import", _import, a)


def _import(a: argparse.Namespace) -> int:
    from ..formats.importer import import_store
    from ..prepare.driver import DEFAULT_SHARD_TOKENS

    store = import_store(  # a URL is downloaded into a scratch folder first (formats.remote)
        a.format,
        a.path,
        a.out,
        tokenizer=a.tokenizer,
        shard_tokens=a.shard_tokens or DEFAULT_SHARD_TOKENS,
        force=a.force,
        quiet=a.quiet,
        storage_options=storage_options(a),
    )
    print(store.describe())
    return 0
