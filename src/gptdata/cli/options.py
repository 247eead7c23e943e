"""The parser parts every ``gptdata`` verb shares: one-line usage errors, option types, epilogs.

``whole(1)`` and ``fraction`` are argparse ``type=`` checks, so a wrong option (``--batch-size 0``)
is refused before any work, in one line, with exit status 2:

    >>> whole(1)("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be >= 1, got 0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
  gptdata prepare s3://bucket/corpus/ 's3://bucket/more/*.jsonl.gz' -o store
  gptdata prepare instruction-data.json --instructions --test-fraction 0.1 --val-fraction 0.05 -o sft
""",
    "info": "examples:\n  gptdata info store\n  gptdata info s3://bucket/stores/web\n",
    "verify": """examples:
  gptdata verify store
  gptdata verify s3://bucket/stores/web --cache-limit 10GB --storage-option endpoint_url=http://127.0.0.1:9000
""",
    "inspect": """examples:
  gptdata inspect the-verdict.txt --start 50
  gptdata inspect store --max-length 8 --windows --stride 4 -n 3
  gptdata inspect docs.jsonl --text-field content --max-length 8
  gptdata inspect test.json --instructions --start 3 --model hf:tuned
  gptdata inspect store --max-length 8 --windows --documents mask
  gptdata inspect val.txt --model py:mymodel.py:make --checkpoint model.pth --model bigram:store
  gptdata inspect --blend 0.7 web/ 0.3 code/ --max-length 16 -n 8
""",
    "plan": """examples:
  gptdata plan store --max-length 256 --stride 128 --batch-size 8
  gptdata plan store --max-length 1024 --stride 1024 --batch-size 32 --world-size 8 --emb-dim 768 12288
  gptdata plan the-verdict.txt --max-length 256 --stride 128 --batch-size 2 --plot plan.png
  gptdata plan 'data/*.jsonl.gz' --text-field content --max-length 1024 --stride 1024 --batch-size 8
  gptdata plan store --max-length 1024 --stride 1024 --batch-size 32 --documents mask
  gptdata plan --blend 0.7 web/ 0.2 code/ 0.1 books/ --max-length 1024 --stride 1024 --batch-size 8 --tokens 1000000000
  gptdata plan instruction-data.json --instructions --max-length 1024 --batch-size 8
""",
    "demo": "examples:\n  gptdata demo\n  gptdata demo my-text.txt\n",
    "export": """examples:
  gptdata export store --format megatron -o megatron-data
  gptdata export store --format llmc --shards 8 -o llmc-data
  gptdata export store --format nanogpt --tokenizer vocab.json -o nanogpt-data
""",
    "import": """examples:
  gptdata import megatron data/train_text_document -o store
  gptdata import llmc dev/data/fineweb10B/ --tokenizer gpt2 -o store
  gptdata import nanogpt my-export/ -o store   # a gptdata export: its tokenizer is read back
""",
    "eval": """examples:
  gptdata eval store --model hf:checkpoints/base --max-length 1024
  gptdata eval store --model bigram:store --model hf:base --model hf:tuned --plot eval.png
  gptdata eval notes.jsonl --model hf:base --stride 512 --per-document docs.csv --json
  gptdata eval the-verdict.txt --model py:mymodel.py:make --checkpoint model.pth --bootstrap-unit chunk
  gptdata eval test.json --instructions --model hf:base --model hf:tuned   # responses only
""",
}


class Parser(argparse.ArgumentParser):
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
    "what prepare reads (a text, JSONL(.gz) or Parquet file, a folder or glob, or an s3:// "
    "URL of them), or a store"
)
STORAGE_OPTION_HELP = (
    "an fsspec option for {what} on s3:// (gs://, az://), e.g. "
    "endpoint_url=http://127.0.0.1:9000 or anon=true; repeat for more. Credentials come from the "
    "AWS chain (env, ~/.aws, roles)"
)


def add_verb(
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


def add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["auto", "tiktoken", "fastokens"],
        default="auto",
        help="GPT-2 encoder: auto = fastokens when installed and gate-checked",
    )


def add_storage_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--storage-option key=value`` (repeatable): ``storage_options(args)`` makes the dict.
    ``what`` says what it applies to on this verb: 'the store', 'the inputs and an -o URL'."""
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=STORAGE_OPTION_HELP.format(what=what),
    )


def storage_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The parsed ``--storage-option`` values, or None when none was given.

    ['endpoint_url=http://127.0.0.1:9000', 'anon=true'] -> {'endpoint_url': ..., 'anon': True}
    """
    from ..storage import parse_storage_options

    items = getattr(args, "storage_option", None) or []
    return parse_storage_options(items) or None


def parse_size(text: str, flag: str = "--cache-limit") -> int:
    """A size in bytes: '10GB' -> 10_000_000_000 (``storage.sizes``: one parser for both doors)."""
    from ..storage.sizes import parse_size as parse

    return parse(text, flag)


def add_cache_limit(parser: argparse.ArgumentParser) -> None:
    """``--cache-limit SIZE``: the local shard cache's bound, for stores read from a URL."""
    parser.add_argument(
        "--cache-limit",
        default=None,
        metavar="SIZE",
        help="for a store on object storage: keep at most SIZE of its shards in the local cache "
        "($GPTDATA_CACHE_DIR), least recently used evicted (e.g. 10GB; default no limit)",
    )


def cache_limit(args: argparse.Namespace) -> int | None:
    text = getattr(args, "cache_limit", None)
    return None if text is None else parse_size(text)


def source_arg(args: argparse.Namespace, name: str = "source") -> Any:
    """A verb's SOURCE as ``load_tokens`` takes it from the command line: a ``Path`` (the CLI
    never takes raw text there), or a ``Location`` with ``--storage-option`` for a URL, or the
    ``TokenStore`` there when the URL holds a store (read through the cache, ``--cache-limit``).

    's3://b/notes.jsonl' -> Location('s3://b/notes.jsonl'); 'notes.jsonl' -> Path('notes.jsonl')
    """
    return open_source(getattr(args, name), args)


def open_source(text: str, args: argparse.Namespace) -> Any:
    """One SOURCE word as ``source_arg`` reads it (``--blend`` takes several):
    's3://b/stores/web' -> the TokenStore there; 'web/' -> Path('web/')."""
    from ..storage import is_remote
    from ..store import open_url

    limit = cache_limit(args)
    if is_remote(text):
        return open_url(text, storage_options=storage_options(args), cache_limit=limit)
    if limit is not None and not any("://" in w for w in getattr(args, "model", None) or []):
        raise ValueError(
            f"--cache-limit bounds the cache of a store on object storage; {text} is local, "
            "read in place. Drop --cache-limit."
        )
    return Path(text)


def add_reading(parser: argparse.ArgumentParser, urls: str) -> None:
    """The options that say how input files are read: the same words and defaults as prepare,
    and ``--storage-option`` for inputs on object storage."""
    parser.add_argument(
        "--text-field", default="text", help="JSONL/Parquet field with the text (default text)"
    )
    parser.add_argument(
        "--errors",
        choices=["strict", "replace", "skip"],
        default="strict",
        help="invalid UTF-8: stop (strict), use U+FFFD (replace), drop the document",
    )
    add_storage_option(parser, urls)
    add_cache_limit(parser)


def add_instruction_options(p: argparse.ArgumentParser) -> None:
    """``--instructions``, ``--template`` and ``--fields``: inputs are instruction examples."""
    p.add_argument(
        "--instructions",
        action="store_true",
        help="inputs are instruction data (.json list, .jsonl, .parquet, .arrow, datasets "
        "folder): each example a document, with a prompt/response mask",
    )
    p.add_argument(
        "--template",
        default="alpaca",
        help="with --instructions: alpaca (the book's), phi3, or a file with {instruction}, "
        "{input} and {output} (default alpaca)",
    )
    p.add_argument(
        "--fields",
        default=None,
        metavar="OURS=THEIRS,...",
        help="with --instructions: rename fields, e.g. instruction=prompt,output=completion",
    )


PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_output(path: str | None, flag: str, *, plot: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work (an hour of evaluation
    lost to a typo in the folder name). 's3://b/pd.csv' -> one line: give a local path."""
    if path is None:
        return
    import os

    check_output_url(path, flag)
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ValueError(f"{flag} {path} is a folder; name a file in it, e.g. {out / 'out'}.")
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: no folder {parent}. Create it first (mkdir -p {parent}).")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"{flag} {path}: not writable. Choose another path.")
    if plot:
        if out.suffix.lower() not in PLOT_SUFFIXES:
            raise ValueError(f"{flag} {path}: the file name must end in one of {PLOT_SUFFIXES}.")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise RuntimeError(
                f"{flag} needs matplotlib. Fix: pip install 'gptdata[plot]'"
            ) from None


# Options that name a local file only (a URL through Path() loses a slash: s3:/b/x).
LOCAL_READS = {"tokenizer": "--tokenizer", "template": "--template", "file": "FILE"}
LOCAL_WRITES = {"plot": "--plot", "per_document": "--per-document"}


def check_urls(args: argparse.Namespace) -> None:
    """Refuse a URL where a verb reads or writes a local file only, in one line, before any work:
    --template s3://b/t.txt -> "--template reads a local file; a URL is not supported here"."""
    for name, flag in LOCAL_READS.items():
        value = getattr(args, name, None)
        if isinstance(value, str) and "://" in value:
            raise ValueError(
                f"{flag} reads a local file; a URL is not supported here ({value}): download "
                "it first and give its local path."
            )
    for name, flag in LOCAL_WRITES.items():
        check_output_url(getattr(args, name, None), flag)


def check_output_url(path: str | None, flag: str) -> None:
    if path is not None and "://" in path:  # Path() would make s3://b/pd.csv into s3:/b/pd.csv
        raise ValueError(
            f"{flag} writes a local file; a URL is not supported here ({path}): give a local "
            "path, then copy it up (e.g. aws s3 cp)."
        )
