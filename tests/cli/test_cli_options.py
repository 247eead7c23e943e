"""The command line as a tool: --version, help on every option, numeric checks, closed pipes."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import gptdata
from gptdata.cli.entry import build_parser, main


def parsers(parser: argparse.ArgumentParser, name: str = "gptdata"):
    """The parser and every sub-command's parser, with their names."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, sub in action.choices.items():
                yield from parsers(sub, f"{name} {verb}")


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"gptdata {gptdata.__version__}\n"


def test_every_option_of_every_verb_has_help() -> None:
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in parsers(build_parser())
        for action in parser._actions
        if not (action.help or "").strip()
    ]
    assert len(list(parsers(build_parser()))) >= 10  # gptdata and its nine verbs, at least
    assert missing == []


def test_every_verb_help_runs(capsys) -> None:
    for name, _ in parsers(build_parser()):
        with pytest.raises(SystemExit) as exc:
            main([*name.split()[1:], "--help"])
        assert exc.value.code == 0
        assert "--debug" in capsys.readouterr().out


BIG = "Hello world. " * 20_000  # 40,000 tokens: far more output than a pipe buffer holds


def test_closed_pipe_is_quiet(tmp_path) -> None:
    (tmp_path / "big.txt").write_text(BIG)
    # A real shell pipe: head takes one line and exits while gptdata still writes.
    script = (
        f"'{sys.executable}' -m gptdata tokenize - < big.txt | head -1 > first.txt; "
        "echo ${PIPESTATUS[0]}"
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.stderr == ""
    assert done.stdout.strip() == "0"
    assert (tmp_path / "first.txt").read_text().startswith("[15496, 995, 13, 18435, 995, 13,")


def test_full_pipe_still_gets_everything(tmp_path) -> None:
    (tmp_path / "t.txt").write_text("Hello, world")
    done = subprocess.run(
        [sys.executable, "-m", "gptdata", "tokenize", "-"],
        stdin=(tmp_path / "t.txt").open(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "[15496, 11, 995]",
        "15496 'Hello'",
        "11 ','",
        "995 ' world'",
    ]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("one two three four five six seven eight nine ten")  # 10 tokens
    return path


PLAN = ["--max-length", "2", "--stride", "1", "--batch-size", "1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "{f}", *PLAN, "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["plan", "{f}", *PLAN, "--world-size", "0"], "argument --world-size: must be >= 1, got 0"),
        (["plan", "{f}", *PLAN, "--emb-dim", "-5"], "argument --emb-dim: must be >= 1, got -5"),
        (["plan", "{f}", *PLAN, "--emb-dim", "64", "0"], "argument --emb-dim: must be >= 1, got 0"),
        (
            ["plan", "{f}", *PLAN, "--max-length", "-3"],
            "argument --max-length: must be >= 1, got -3",
        ),
        (["plan", "{f}", *PLAN, "--stride", "0"], "argument --stride: must be >= 1, got 0"),
        (
            ["plan", "{f}", *PLAN, "--batch-size", "2.5"],
            "argument --batch-size: expected a whole number >= 1, got '2.5'",
        ),
        (["inspect", "{f}", "--max-length", "-3"], "argument --max-length: must be >= 1, got -3"),
        (["inspect", "{f}", "--windows", "-n", "-1"], "argument -n: must be >= 1, got -1"),
        (["inspect", "{f}", "--windows", "-n", "0"], "argument -n: must be >= 1, got 0"),
        (
            ["inspect", "{f}", "--windows", "--stride", "0"],
            "argument --stride: must be >= 1, got 0",
        ),
        (["inspect", "{f}", "--start", "-1"], "argument --start: must be >= 0, got -1"),
        (
            ["prepare", "{f}", "-o", "{o}", "--workers", "0"],
            "argument --workers: must be >= 1, got 0",
        ),
        (
            ["prepare", "{f}", "-o", "{o}", "--shard-tokens", "0"],
            "argument --shard-tokens: must be >= 1, got 0",
        ),
        (
            ["export", "{f}", "--format", "llmc", "-o", "{o}", "--shard-tokens", "0"],
            "argument --shard-tokens: must be >= 1, got 0",
        ),
        (
            ["import", "nanogpt", "{f}", "-o", "{o}", "--shard-tokens", "-2"],
            "argument --shard-tokens: must be >= 1, got -2",
        ),
        (
            ["prepare", "{f}", "-o", "{o}", "--val-fraction", "1"],
            "argument --val-fraction: must be in [0, 1), e.g. 0.1 for 10 %, got 1.0",
        ),
        (
            ["prepare", "{f}", "-o", "{o}", "--val-fraction", "-0.1"],
            "argument --val-fraction: must be in [0, 1), e.g. 0.1 for 10 %, got -0.1",
        ),
    ],
)
def test_numeric_options_are_checked_in_one_line(capsys, text_file, args, message) -> None:
    argv = [a.format(f=text_file, o=text_file.parent / "store") for a in args]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    verb = argv[0]
    assert exc.value.code == 2 and out == ""
    assert err == f"error: {message}. See gptdata {verb} --help.\n"
    assert not (text_file.parent / "store").exists()


def test_start_beyond_the_data(capsys, text_file) -> None:
    for extra in ([], ["--windows"]):
        code = main(["inspect", str(text_file), "--start", "9", *extra])
        _, err = capsys.readouterr()
        assert code == 1
        assert err == (
            f"error: --start 9 is beyond the data: split 'text' of {text_file} has 10 tokens, "
            "so --start can be at most 8.\n"
        )
    assert main(["inspect", str(text_file), "--start", "8", "--max-length", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == " nine ---->  ten"


def test_usage_mistakes_are_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        "error: the following arguments are required: --max-length, --batch-size. "
        "See gptdata plan --help.\n"
    )
    # SOURCE may be left out for --blend; with neither, one line says so.
    assert main(["plan", "--max-length", "8", "--stride", "8", "--batch-size", "2"]) == 1
    assert capsys.readouterr().err == (
        "error: give a SOURCE or a mixture with --blend WEIGHT PATH ..., not both.\n"
    )


def test_as_flags_names_a_flag_once() -> None:
    from gptdata.cli.entry import as_flags

    args = argparse.Namespace(verb="export", debug=False, force=False, val_fraction=0.1)
    got = as_flags("Pass --force (force=True) to replace it, or choose another -o.", args)
    assert got == "Pass --force to replace it, or choose another -o."
    assert (
        as_flags("Pass force=True (--force) to replace it.", args) == "Pass --force to replace it."
    )
    assert as_flags("Pass val_fraction=0.05 or force=True.", args) == (
        "Pass --val-fraction 0.05 or --force."
    )


def test_local_file_options_refuse_a_url_before_any_work(capsys, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("Hello world, hello there.", encoding="utf-8")
    argv = ["eval", str(tmp_path / "a.txt"), "--model", "unigram:x", "--per-document"]
    assert main([*argv, "s3://b/pd.csv"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: --per-document writes a local file; a URL is not supported here (s3://b/pd.csv): "
        "give a local path, then copy it up (e.g. aws s3 cp).\n"
    )
