"""``--instructions`` for the model-side verbs: reading instruction examples (``--template``,
``--fields``, the words ``prepare --instructions`` uses), ``eval`` over them, and ``inspect``
showing one as the model sees it.

    gptdata eval test.json --instructions --model hf:base --model hf:tuned
    gptdata inspect test.json --instructions --start 3 --model hf:tuned
"""

from __future__ import annotations

import argparse
from typing import Any

from .options import source_arg


def add_instruction_reading(parser: argparse.ArgumentParser, what: str) -> None:
    """--instructions, --template and --fields, the words prepare --instructions uses."""
    parser.add_argument("--instructions", action="store_true", help=what)
    parser.add_argument(
        "--template",
        default="alpaca",
        help="with --instructions: alpaca (the book's prompt, default), phi3, or a file with "
        "{instruction}, {input} and {output}",
    )
    parser.add_argument(
        "--fields",
        default=None,
        metavar="NAME=COLUMN,...",
        help="with --instructions: rename fields, e.g. instruction=prompt,output=completion",
    )


def check_instruction_options(a: argparse.Namespace) -> None:
    """--template and --fields say how instruction examples are read: refused without them;
    inspect's text-window options are refused with them. Before any model loads."""
    if a.instructions:
        for flag, used in (
            ("--windows", getattr(a, "windows", False)),
            ("--documents mask", getattr(a, "documents", None) == "mask"),
        ):
            if used:
                raise ValueError(f"{flag} shows text windows; with --instructions drop it.")
        if getattr(a, "blend", None):
            raise ValueError("--blend is a mixture of text sources; with --instructions drop it.")
        if getattr(a, "bootstrap_unit", "document") == "chunk":
            raise ValueError(
                "--bootstrap-unit chunk is for long texts: instruction results are compared "
                "over examples. Drop it."
            )
    else:
        for flag, value, default in (
            ("--template", a.template, "alpaca"),
            ("--fields", a.fields, None),
        ):
            if value != default:
                raise ValueError(f"{flag} reads instruction examples; add --instructions.")


def eval_source(a: argparse.Namespace) -> tuple[Any, str]:
    """What ``gptdata eval`` scores, read once for every model: text, or instruction examples."""
    check_instruction_options(a)
    if not a.instructions:
        from ..evaluation.data import load_eval_data

        data = load_eval_data(source_arg(a), tokenizer=a.tokenizer, split=a.split)
        return data, data.name
    from ..evaluation.instructions import InstructionData

    if a.by is not None:
        raise ValueError(
            "--by is for text: with --instructions each example is scored on its own. Drop --by."
        )
    examples = InstructionData.of(
        source_arg(a),  # a Path, or a URL read with --storage-option (a store's, --cache-limit)
        tokenizer=a.tokenizer, template=a.template, fields=a.fields, split=a.split,
    )  # fmt: skip
    return examples, examples.data.name


def inspect_instructions(a: argparse.Namespace, scorers: list[Any]) -> int:
    """``inspect --instructions``: examples from --start, prompt and response tokens marked."""
    from ..evaluation.instructions import instruction_dataset
    from ..inspect.instructions import example_lines
    from ..tokenizers import get_tokenizer

    ds = instruction_dataset(
        source_arg(a),  # a Path, or a URL read with --storage-option (a store's, --cache-limit)
        tokenizer=get_tokenizer(a.tokenizer, backend=a.backend),
        template=a.template, fields=a.fields, split=a.split,
    )  # fmt: skip
    for scorer in scorers:
        scorer.check(max_length=1, tokenizer=ds.tokenizer)  # vocabulary and tokenizer
    lines = example_lines(ds, start=a.start, count=a.n or 1, scorers=scorers)
    print("\n".join(lines))
    return 0
