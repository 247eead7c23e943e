"""Instruction data: templates equal to the book's chapter-7 text, fields, chat, readers, bad records."""

from __future__ import annotations

import gzip
import json
from importlib import resources

import pytest

from gptdata import get_tokenizer
from gptdata.prepare.instructions import (
    InstructionStats,
    Template,
    format_example,
    get_template,
    parse_fields,
    read_examples,
)
from gptdata.prepare.sources import InputError

WITH_INPUT = {
    "instruction": "Rewrite as a question.",
    "input": "It rains.",
    "output": "Does it rain?",
}
NO_INPUT = {"instruction": "Name a color.", "input": "", "output": "Blue."}


def book_format_input(entry: dict) -> str:
    """The book's format_input, written from its description (reference doc, chapter 7)."""
    text = "Below is an instruction that describes a task. "
    text += "Write a response that appropriately completes the request."
    text += "\n\n### Instruction:\n" + entry["instruction"]
    if entry["input"]:
        text += "\n\n### Input:\n" + entry["input"]
    return text


def test_alpaca_golden_strings_checked_by_hand() -> None:
    prompt, response = format_example(WITH_INPUT)
    assert prompt == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nRewrite as a question.\n\n### Input:\nIt rains."
    )
    assert response == "\n\n### Response:\nDoes it rain?"
    prompt, response = format_example(NO_INPUT)
    assert prompt.endswith("completes the request.\n\n### Instruction:\nName a color.")
    assert "### Input" not in prompt  # the input block only when the input is non-empty
    assert response == "\n\n### Response:\nBlue."


def test_phi3_golden_strings_exercise_7_1() -> None:
    assert format_example(WITH_INPUT, template="phi3") == (
        "<|user|>\nRewrite as a question.\nIt rains.",
        "\n<|assistant|>:\nDoes it rain?",
    )
    assert format_example(NO_INPUT, template="phi3") == (
        "<|user|>\nName a color.",
        "\n<|assistant|>:\nBlue.",
    )


def sample_records() -> list[dict]:
    text = resources.files("gptdata").joinpath("data/instructions.json").read_text("utf-8")
    return json.loads(text)


def test_encoding_equals_the_books_for_the_shipped_set() -> None:
    tok = get_tokenizer("gpt2")
    records = sample_records()
    assert (
        len(records) >= 30
        and any(r["input"] for r in records)
        and any(not r["input"] for r in records)
    )
    for entry in records:
        prompt, response = format_example(entry)
        book = tok.encode(book_format_input(entry) + "\n\n### Response:\n" + entry["output"])
        assert tok.encode(prompt + response) == book
        # The boundary is stable: the prompt's own tokens are the start of the example's.
        assert book[: len(tok.encode(prompt))] == tok.encode(prompt)
        p3, r3 = format_example(entry, template="phi3")
        assert tok.encode(p3 + r3)[: len(tok.encode(p3))] == tok.encode(p3)


def test_file_template_prompt_is_the_text_before_output(tmp_path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Q: {instruction} {input}\nA: {output}</s>", encoding="utf-8")
    template = get_template(path)
    assert template.render("Add {1}", "2 and 3", "5") == ("Q: Add {1} 2 and 3\nA: ", "5</s>")
    with pytest.raises(ValueError, match=r"must hold '\{output\}' exactly once \(it has 0\)"):
        Template.from_text("Q: {instruction}")
    with pytest.raises(ValueError, match="unknown template 'nope'"):
        get_template("nope")


def test_parse_fields_string_and_mapping() -> None:
    assert parse_fields("instruction=prompt, output=completion") == {
        "instruction": "prompt",
        "input": "input",
        "output": "completion",
    }
    assert parse_fields({"input": "context"})["input"] == "context"
    with pytest.raises(ValueError, match="unknown field 'answer'"):
        parse_fields("answer=x")
    with pytest.raises(ValueError, match="is not NAME=COLUMN"):
        parse_fields("instruction")


def test_renamed_fields_and_missing_input() -> None:
    records = [{"prompt": "Say hi.", "completion": "Hi!"}]
    assert list(read_examples(records, fields="instruction=prompt,output=completion")) == [
        ("Say hi.", "", "Hi!")
    ]


def test_chat_records_single_and_multi_turn() -> None:
    single = {
        "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    }
    multi = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "6"},
        ]
    }
    assert list(read_examples([single, multi])) == [
        ("Hi?", "", "Hello."),
        ("And 3+3?", "system: Be brief.\nuser: 2+2?\nassistant: 4", "6"),
    ]
    bad = {"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}
    with pytest.raises(
        InputError,
        match=r"record 0: a chat must end with a user turn then an assistant turn \(roles: assistant, user\)",
    ):
        list(read_examples([bad]))


GOOD = [WITH_INPUT, NO_INPUT]
EXPECTED = [
    ("Rewrite as a question.", "It rains.", "Does it rain?"),
    ("Name a color.", "", "Blue."),
]


def test_every_reader_format(tmp_path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(GOOD), encoding="utf-8")
    lines = "\n".join(json.dumps(r) for r in GOOD) + "\n"
    (tmp_path / "a.jsonl").write_text(lines, encoding="utf-8")
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(lines)
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(GOOD), tmp_path / "a.parquet")
    (tmp_path / "bom.json").write_text("\ufeff" + json.dumps(GOOD), encoding="utf-8")
    for name in ("a.json", "bom.json", "a.jsonl", "a.jsonl.gz", "a.parquet"):
        assert list(read_examples(tmp_path / name)) == EXPECTED, name
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(GOOD).save_to_disk(str(tmp_path / "hf"))
    assert list(read_examples(tmp_path / "hf")) == EXPECTED


def test_bad_records_name_file_and_record(tmp_path) -> None:
    path = tmp_path / "d.json"
    cases = [
        ({"instruction": "x"}, r"d.json: record 2: no field 'output' \(output\)"),
        (
            {"instruction": "x", "output": 5},
            r"d.json: record 2: field 'output' is int, not a string",
        ),
        ({"instruction": "  ", "output": "y"}, r"d.json: record 2: empty instruction"),
        ("text", r"d.json: record 2: a str, not an object"),
    ]
    for bad, message in cases:
        path.write_text(json.dumps([*GOOD, bad, NO_INPUT]), encoding="utf-8")
        with pytest.raises(InputError, match=message):
            list(read_examples(path))
        stats = InstructionStats()
        assert len(list(read_examples(path, errors="skip", stats=stats))) == 3
        assert (stats.examples, stats.skipped) == (3, 1)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        json.dumps(NO_INPUT) + "\n\n" + json.dumps({"output": "y"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match=r"d.jsonl:3: no field 'instruction'"):
        list(read_examples(jsonl))
    (tmp_path / "o.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InputError, match="holds a dict; expected a list of objects"):
        list(read_examples(tmp_path / "o.json"))


def test_boundary_merge_keeps_the_books_prompt_count() -> None:
    # An instruction ending in a newline: BPE joins it with alpaca's "\n\n###" into one token.
    from gptdata import InstructionDataset

    tok = get_tokenizer("gpt2")
    entry = {"instruction": "Say hi\n", "input": "", "output": "Hi"}
    prompt, response = format_example(entry)
    ids, book_count = tok.encode(prompt + response), len(tok.encode(book_format_input(entry)))
    shared = next(
        i for i, (a, b) in enumerate(zip(tok.encode(prompt), ids, strict=False)) if a != b
    )
    assert shared == book_count - 1  # the merge: one token of the prompt is not in the example
    assert InstructionDataset([entry])[0].prompt_length == book_count  # the book's count, kept
