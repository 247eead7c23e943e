from __future__ import annotations

import subprocess
import sys

from gptdata.cli.entry import main

VERDICT_PAIRS = """\
[290] ----> 4920
[290, 4920] ----> 2241
[290, 4920, 2241] ----> 287
[290, 4920, 2241, 287] ----> 257
 and ---->  established
 and established ---->  himself
 and established himself ---->  in
 and established himself in ---->  a
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_exact_pairs(capsys, tmp_path, verdict_text) -> None:
    path = tmp_path / "verdict.txt"
    path.write_text(verdict_text)
    code, out, _ = run(capsys, "inspect", str(path), "--start", "50")
    assert code == 0 and out == VERDICT_PAIRS


def test_inspect_marks_eot_and_escapes(capsys, tmp_path) -> None:
    # Two documents: the separator between them is gptdata's (a literal in a file is text).
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a\\nb"}\n{"text": "c"}\n')
    code, out, _ = run(capsys, "inspect", str(path), "--max-length", "4")
    assert code == 0
    assert out.splitlines()[4:] == [
        "a ----> \\n",
        "a\\n ----> b",
        "a\\nb ----> <|endoftext|>",
        "a\\nb<|endoftext|> ----> c",
    ]


def test_inspect_windows_from_store(capsys, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("one two three four five six seven eight nine ten")
    assert (
        run(
            capsys,
            "prepare",
            str(tmp_path / "a.txt"),
            "-o",
            str(tmp_path / "s"),
            "--val-fraction",
            "0",
            "--quiet",
        )[0]
        == 0
    )
    code, out, _ = run(
        capsys,
        "inspect",
        str(tmp_path / "s"),
        "--windows",
        "--max-length",
        "3",
        "--stride",
        "2",
        "-n",
        "2",
    )
    assert code == 0
    assert out.splitlines() == [
        "window 0 (tokens 0..3):",
        "  input  [505, 734, 1115]",
        "  target [734, 1115, 1440]",
        "  input  one two three",
        "  target  two three four",
        "window 1 (tokens 2..5):",
        "  input  [1115, 1440, 1936]",
        "  target [1440, 1936, 2237]",
        "  input   three four five",
        "  target  four five six",
    ]


def test_prepare_info_verify(capsys, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("Hello world. " * 50)
    code, out, err = run(capsys, "prepare", str(tmp_path / "a.txt"), "-o", str(tmp_path / "s"))
    assert code == 0 and "tokens/s" in err and "split      train" in out
    code, out, _ = run(capsys, "info", str(tmp_path / "s"))
    assert "tokenizer  gpt2 (vocab_size 50,257, eot_id 50256" in out and "dtype      uint16" in out
    code, out, _ = run(capsys, "verify", str(tmp_path / "s"))
    assert code == 0 and out.startswith("ok:")
    code, _, err = run(capsys, "prepare", str(tmp_path / "a.txt"), "-o", str(tmp_path / "s"))
    assert code == 1 and err.strip().endswith(
        "already exists. Pass --force to replace it, or choose another --out."
    )
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_plan(capsys, tmp_path, verdict_text) -> None:
    path = tmp_path / "v.txt"
    path.write_text(verdict_text)
    code, out, _ = run(
        capsys,
        "plan",
        str(path),
        "--max-length",
        "256",
        "--stride",
        "128",
        "--batch-size",
        "8",
        "--emb-dim",
        "256",
        "12288",
        "--plot",
        str(tmp_path / "p.png"),
    )
    assert code == 0
    assert "split text: 5,145 tokens, 1 documents" in out
    assert "windows            39 (max_length=256, stride=128)" in out
    assert "batches per epoch  4 (batch_size=8)" in out
    assert f"emb_dim    256: {(50257 + 256) * 256:>15,} parameters" in out
    assert (tmp_path / "p.png").stat().st_size > 10_000
    code, out, err = run(
        capsys, "plan", str(path), "--max-length", "256", "--stride", "128", "--batch-size", "64"
    )
    assert code == 2 and "0 batches: 39 windows < batch_size=64" in out


def test_demo_prints_every_stage(capsys) -> None:
    code, out, _ = run(capsys, "demo")
    assert code == 0
    for heading in (
        "== 1. Simple tokenizer",
        "== 2. GPT-2",
        "== 3. Next-token pairs",
        "== 4. First batch",
        "== 5. Input embeddings",
    ):
        assert heading in out
    assert "[464] ----> 46371" in out and "input embeddings (8, 4, 256)" in out


def test_errors_are_one_line(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "inspect", str(tmp_path / "missing.txt"))
    assert code == 1 and err == (
        f"error: {tmp_path / 'missing.txt'} does not exist. Pass a text, JSONL(.gz) or Parquet "
        "file, a folder or glob of them, or a token store.\n"
    )
    code, _, err = run(capsys, "tokenize", "--tokenizer", "nope", "x")
    assert code == 1 and "unknown tokenizer 'nope'" in err


def test_python_m_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gptdata", "prepare", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "examples:" in out and "gptdata prepare corpus/ --workers 8" in out
