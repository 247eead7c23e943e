"""README's trainer recipes that need nothing heavy, run as written at toy size.

`make crosscheck` (crosscheck/test_recipes.py) trains with the real `Trainer`, which needs
accelerate; here the recipe's `Trainer(...)` is replaced by a recorder, and what it was handed
(dataset and `default_data_collator`) is batched as `Trainer`'s DataLoader batches it. The point
pinned: labels equal the inputs and every end-of-text keeps its label, so a GPT-2 model's own
loss counts predicting end-of-text. The torchtitan and nanochat adapters are checked against the
interfaces their training loops read (torchtitan trainer.py, nanochat base_train.py and gpt.py);
crosscheck/test_recipes.py adds their own code where it imports.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import gptdata
from gptdata.formats import export_store

transformers = pytest.importorskip("transformers")  # a dev dependency: installed for make test

README = Path(__file__).resolve().parents[2] / "README.md"
EOT = 50256
TEXTS = [f"Line {i}: " + "a small boat on a grey sea. " * (1 + i % 5) for i in range(120)]


def recipe(name: str, index: int = 0, *, sizes: dict) -> str:
    """README's ``index``-th python block after ``**name**``, sizes substituted (each checked)."""
    section = README.read_text(encoding="utf-8").split("## Use it with your trainer", 1)[1]
    code = re.findall(
        r"```python\n(.*?)```", section.split(f"**{name}**", 1)[1].split("\n**", 1)[0], re.S
    )[index]
    for old, new in sizes.items():
        assert old in code, f"README's {name} recipe no longer has {old!r}"
        code = code.replace(old, new)
    return code


def trainer_recipe(index: int, old: str, new: str) -> str:
    """README's ``index``-th Trainer block with one size substituted."""
    return recipe("Hugging Face `Trainer`", index, sizes={old: new})


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


# -- torchtitan and nanochat adapters ------------------------------------------------------------


@pytest.fixture
def store(tmp_path, monkeypatch) -> gptdata.TokenStore:
    monkeypatch.chdir(tmp_path)  # the recipes open "store"
    return gptdata.prepare(None, "store", texts=TEXTS, workers=1, quiet=True)


def _titan(store):
    code = recipe("torchtitan", sizes={"batch_size=8,": "batch_size=4,", "2048": "32"})
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["loader"], namespace["batches"]


def test_torchtitan_batches_interface(store) -> None:
    """What torchtitan's Trainer reads (trainer.py, batch_generator/post_dataloading_process)."""
    loader, batches = _titan(store)
    input_dict, labels = next(batches)
    assert set(input_dict) == {"input", "positions"}
    inputs, positions = input_dict["input"], input_dict["positions"]
    assert inputs.shape == labels.shape == positions.shape == (4, 32)
    assert inputs.dtype == labels.dtype == torch.int64
    # A document starts where positions return to 0: right after each end-of-text.
    after_eot = torch.zeros_like(inputs, dtype=torch.bool)
    after_eot[:, 1:] = inputs[:, :-1] == EOT
    assert after_eot.any() and (positions[after_eot] == 0).all()
    assert (positions[:, 1:][~after_eot[:, 1:]] == positions[:, :-1][~after_eot[:, 1:]] + 1).all()
    # Labels are the next tokens, -100 (torchtitan's IGNORE_INDEX) across a document boundary.
    assert (labels[inputs == EOT] == -100).all() and (labels[inputs != EOT] >= 0).all()
    # Resume: the stream continues from a saved state.
    state = loader.state_dict()
    want = next(batches)[1]
    loader2, batches2 = _titan(store)
    loader2.load_state_dict(state)
    assert torch.equal(next(batches2)[1], want)


def _nanochat(store):
    code = recipe(
        "nanochat", sizes={"batch_size=32,": "batch_size=4,", "2048": "32", '"cuda"': '"cpu"'}
    )
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["loader"], namespace["train_loader"]


def test_nanochat_batches_interface(store) -> None:
    """What base_train.py reads: x, y, state = next(train_loader); model(x, y)."""
    loader, train_loader = _nanochat(store)
    x, y, state = next(train_loader)
    assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64
    assert x.is_contiguous() and y.is_contiguous() and y.view(-1).numel() == 4 * 32
    assert torch.equal(x[:, 1:], y[:, :-1])  # each row cut from T + 1 tokens
    assert (y >= 0).all()  # documents="concat": nothing to ignore, end-of-text is a target
    # nanochat's loss as gpt.py computes it, ignore_index=-1, on these batches.
    logits = torch.zeros(4, 32, 50257)
    loss = torch.nn.functional.cross_entropy(logits.view(-1, 50257), y.view(-1), ignore_index=-1)
    assert loss.item() == pytest.approx(np.log(50257), rel=1e-5)
    # The state saved beside the model resumes the stream at the next batch.
    want = next(train_loader)[0]
    loader2, train_loader2 = _nanochat(store)
    loader2.load_state_dict(state)
    assert torch.equal(next(train_loader2)[0], want)


def test_nanochat_masked_targets_use_its_ignore_index(store) -> None:
    code = recipe("nanochat", sizes={"seed=0)": 'seed=0, documents="mask")', '"cuda"': '"cpu"'})
    namespace: dict = {}
    exec(compile(code.replace("2048", "32"), "README.md", "exec"), namespace)
    x, y, _ = next(namespace["train_loader"])
    assert (y[x == EOT] == -1).all() and (y != -100).all()
