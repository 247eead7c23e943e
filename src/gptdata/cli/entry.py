"""The ``gptdata`` command line: ``gptdata <verb>``; results on stdout, progress on stderr.

Errors print one line ``error: ...`` and exit 1; ``--debug`` shows the traceback instead. A wrong
option (``--batch-size 0``) is refused before any work, in one line, with exit status 2. A reader that
stops early (``gptdata tokenize ... | head -1``) ends the command quietly with status 0, as ripgrep
does: a closed pipe is the reader's choice, not an error, and ``set -o pipefail`` scripts go on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .._startup import quiet_interrupt, running_as_command

with quiet_interrupt():  # Ctrl-C while the command starts: one line, no traceback
    import argparse  # not loaded by `import gptdata`: inside, so no unguarded window is left
    import re

    from . import data, model
    from .options import EPILOGS as EPILOGS  # re-exported: the pieces cli.py used to hold
    from .options import SOURCE_HELP as SOURCE_HELP
    from .options import TOKENIZER_HELP as TOKENIZER_HELP
    from .options import Parser as _Parser
    from .options import check_urls
    from .options import fraction as fraction
    from .options import whole as whole


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

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

    # The order here is the order of `gptdata --help`.
    for add in (
        data.add_tokenize,
        data.add_prepare,
        data.add_store_verbs,
        model.add_inspect,
        model.add_plan,
        data.add_export,
        data.add_import,
        model.add_eval,
        model.add_demo,
    ):
        add(sub, common)
    return p


COMMANDS = {
    "tokenize": data.cmd_tokenize,
    "prepare": data.cmd_prepare,
    "info": data.cmd_store,
    "verify": data.cmd_store,
    "inspect": model.cmd_inspect,
    "plan": model.cmd_plan,
    "demo": model.cmd_demo,
    "export": data.cmd_export,
    "import": data.cmd_import,
    "eval": model.cmd_eval,
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

    # "Pass --force (force=True)" names both spellings: one flag is left, not "--force (--force)".
    flagged = re.sub(pattern, flag, message)
    return re.sub(r"(--[\w-]+(?: [^\s()]+)?) \(\1\)", r"\1", flagged)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
    try:
        check_urls(args)  # a URL where only a local file works: one line, before any work
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
        if running_as_command():
            # Everything is on disk (finished units, markers; the kernel drops the lock). The
            # interpreter's clean-up after an interrupt can abort inside the fastokens backend's
            # threads ("FATAL: exception not rethrown", 1 run in 10 here), so leave now.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)
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
