"""README.md's "Fine-tuning data": the right-hand column runs top to bottom, and its batches are
the book's chapter-7 DataLoader batches."""

from __future__ import annotations

import re
import shutil
import warnings
from functools import partial
from importlib import resources
from pathlib import Path

import torch
from torch.utils.data import DataLoader

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLE = resources.files("gptdata") / "data" / "instructions.json"


def right_hand_column() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Fine-tuning data", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    lines = []
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert len(cells) == 2 and all(cells), row
        code = re.fullmatch(r"`([^`]+)`", cells[1])
        assert code, f"the gptdata cell must be one code span: {cells[1]}"
        lines.append(code.group(1).replace("\\|", "|"))
    return lines


def book_format_input(entry: dict) -> str:
    """The book's format_input, as printed in chapter 7."""
    instruction_text = (
        f"Below is an instruction that describes a task. "
        f"Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


def test_right_hand_column_runs_and_equals_the_book(tmp_path, monkeypatch) -> None:
    shutil.copy(str(SAMPLE), tmp_path / "instruction-data.json")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    lines = right_hand_column()
    assert len(lines) >= 14
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile("\n".join(lines), "README.md", "exec"), ns)
    data = ns["data"]
    assert ns["model_input"] == book_format_input(data[0])
    assert ns["desired_response"] == f"\n\n### Response:\n{data[0]['output']}"
    store = ns["store"]
    assert store.splits == ["train", "val", "test"] and store.split("train").has_masks
    assert ns["toy_targets"][1].tolist() == [6, 50256, -100, -100, -100]

    # The book's loader over the same examples: the same batches after the same seed.
    train = ns["train_dataset"]
    torch.manual_seed(123)
    book = list(
        DataLoader(
            train,
            batch_size=8,
            collate_fn=ns["customized_collate_fn"],
            shuffle=True,
            drop_last=True,
        )
    )
    torch.manual_seed(123)
    ours = list(ns["gptdata"].create_dataloader(train, batch_size=8, allowed_max_length=1024))
    assert len(ours) == len(train) // 8
    for (bx, by), (ox, oy) in zip(book, ours, strict=True):
        assert torch.equal(bx, ox) and torch.equal(by, oy)
    assert ns["inputs"].shape[0] == 8

    masked_x, masked_y = next(iter(ns["masked"]))
    assert (masked_y == -100).sum() > (masked_x == 50256).sum()  # prompts are masked too
    fresh = ns["gptdata"].create_dataloader(train, batch_size=8, seed=123, mask_prompt=True)
    fresh.load_state_dict(ns["state"])
    assert len(list(fresh)) == len(fresh)  # nothing handed out before the state was taken
    batch = next(iter(ns["packed"]))
    assert set(batch) == {"input_ids", "targets", "position_ids", "doc_ids"}
    assert batch["input_ids"].shape == (2, 512)
    val = ns["val_loader"]
    assert sum(len(x) for x, _ in val) == store.split("val").n_documents


def test_book_instruction_dataset_matches(tmp_path) -> None:
    """The book's InstructionDataset over the JSON: the same token IDs as gptdata's."""
    import json

    import gptdata

    tok = gptdata.get_tokenizer("gpt2")
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    book = [
        tok.encode(book_format_input(e) + f"\n\n### Response:\n{e['output']}", special="text")
        for e in data
    ]
    ours = gptdata.InstructionDataset(str(SAMPLE))
    assert [e.token_ids for e in ours] == book
    _ = partial  # (the book's partial is the README's too)
