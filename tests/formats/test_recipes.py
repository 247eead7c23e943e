"""README's Hugging Face `Trainer` recipes, run as written at toy size with `Trainer` recorded.

`make crosscheck` (crosscheck/test_recipes.py) trains with the real `Trainer`, which needs
accelerate; here the recipe's `Trainer(...)` is replaced by a recorder, and what it was handed
(dataset and `default_data_collator`) is batched as `Trainer`'s DataLoader batches it. The point
pinned: labels equal the inputs and every end-of-text keeps its label, so a GPT-2 model's own
loss counts predicting end-of-text.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import gptdata
from gptdata.formats import export_store

transformers = pytest.importorskip("transformers")  # a dev dependency: installed for make test

README = Path(__file__).resolve().parents[2] / "README.md"
EOT = 50256
TEXTS = [f"Line {i}: " + "a small boat on a grey sea. " * (1 + i % 5) for i in range(120)]


def trainer_recipe(index: int, old: str, new: str) -> str:
    """README's ``index``-th Trainer block with one size substituted (checked to be there)."""
    section = README.read_text(encoding="utf-8").split("**Hugging Face `Trainer`**", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section.split("\n**", 1)[0], re.S)[index]
    assert old in code, f"README's Trainer recipe {index + 1} no longer has {old!r}"
    return code.replace(old, new)


class RecordedTrainer:
    def __init__(self, *, model, args, train_dataset, data_collator) -> None:
        self.model, self.train_dataset, self.data_collator = model, train_dataset, data_collator


@pytest.fixture
def run_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # transformers replaces its own sys.modules entry when it first loads Trainer, so load it
    # first and patch the module that `from transformers import Trainer` then reads.
    _ = transformers.Trainer
    monkeypatch.setattr(sys.modules["transformers"], "Trainer", RecordedTrainer)
    store = gptdata.prepare(None, "store", texts=TEXTS, workers=1, quiet=True)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32)
    model = transformers.GPT2LMHeadModel(config).eval()

    def run(code: str) -> tuple[RecordedTrainer, list[dict]]:
        namespace = {"model": model, "args": None}
        exec(compile(code, "README.md", "exec"), namespace)
        trainer = namespace["trainer"]
        assert trainer.data_collator is transformers.default_data_collator
        loader = DataLoader(trainer.train_dataset, batch_size=4, collate_fn=trainer.data_collator)
        return trainer, list(loader)

    run.store = store
    run.model = model
    return run


def check_labels(batches: list[dict], model) -> None:
    eots = 0
    for b in batches:
        assert b["input_ids"].dtype == b["labels"].dtype == torch.int64
        assert torch.equal(b["labels"], b["input_ids"])  # the model shifts them itself
        eots += int((b["input_ids"] == EOT).sum())
    assert eots > 0, "no end-of-text in the batches: the check would pass vacuously"
    # GPT-2's own loss is the mean over every next token, end-of-text included.
    b = batches[0]
    with torch.no_grad():
        out = model(**b)
    targets = b["input_ids"][:, 1:]
    mean = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), targets.flatten())
    assert (targets == EOT).any() and torch.allclose(out.loss, mean, atol=1e-6)


def test_windows_with_default_data_collator(run_recipe) -> None:
    code = trainer_recipe(0, "max_length=1024, stride=1024", "max_length=32, stride=32")
    trainer, batches = run_recipe(code)
    assert isinstance(trainer.train_dataset, gptdata.SlidingWindowDataset)
    assert set(batches[0]) == {"input_ids", "labels", "position_ids"}
    assert batches[0]["input_ids"].shape == (4, 32)
    # The windows are the train split's tokens, in order (no shuffle here).
    tokens = run_recipe.store.split("train")[:].tolist()
    assert batches[0]["input_ids"][1].tolist() == tokens[32:64]
    check_labels(batches, run_recipe.model)


def test_hf_export_packed_with_labels(run_recipe) -> None:
    export_store(run_recipe.store, "hf-data", format="hf", quiet=True)
    trainer, batches = run_recipe(trainer_recipe(1, "block = 50256, 1024", "block = 50256, 32"))
    assert set(batches[0]) == {"input_ids", "labels"} and batches[0]["input_ids"].shape == (4, 32)
    # Blocks are the documents, end-of-text after each, cut every 32 tokens: the store's stream.
    tokens = run_recipe.store.split("train")[:].tolist() + [EOT]
    assert batches[0]["input_ids"].flatten().tolist() == tokens[: 4 * 32]
    check_labels(batches, run_recipe.model)


def test_masked_documents_keep_the_end_of_text_label(run_recipe) -> None:
    """documents="mask": only a new document's first token loses its label, never end-of-text."""
    code = trainer_recipe(0, 'batch_format="hf")', 'batch_format="hf", documents="mask")')
    _, batches = run_recipe(code.replace("1024", "32"))
    b = batches[0]
    inputs, labels = b["input_ids"], b["labels"]
    after_eot = torch.zeros_like(inputs, dtype=torch.bool)
    after_eot[:, 1:] = inputs[:, :-1] == EOT
    assert after_eot.any()
    assert (labels[inputs == EOT] == EOT).all()
    assert (labels[after_eot] == -100).all() and torch.equal(labels[~after_eot], inputs[~after_eot])
