"""README "Use it with your trainer": the litgpt, Hugging Face Trainer, torchtitan and nanochat
recipes run as written, at toy size, against the trainers' own code where it is installed.

Each recipe is read out of README.md (the fenced block after its paragraph's bold name), so the
README cannot drift from what is tested; only sizes are substituted, each substitution checked.
Everything is offline: a `gpt2` store built from texts, tiny models from configs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gptdata
from gptdata.formats import export_store

README = Path(__file__).resolve().parents[1] / "README.md"
EOT = 50256
TEXTS = [
    f"Note {i}: " + "the tide came in and the boats went out. " * (1 + i % 9) for i in range(240)
]


def recipe(name: str, index: int = 0, *, lang: str = "python", sizes: dict | None = None) -> str:
    """The ``index``-th ``lang`` block after README's ``**name**`` paragraph, sizes substituted."""
    section = README.read_text(encoding="utf-8").split("## Use it with your trainer", 1)[1]
    after = section.split(f"**{name}**", 1)[1].split("\n**", 1)[0]
    code = re.findall(rf"```{lang}\n(.*?)```", after, re.S)[index]
    for old, new in (sizes or {}).items():
        assert old in code, f"README's {name} recipe no longer has {old!r}"
        code = code.replace(old, new)
    return code


@pytest.fixture
def store(tmp_path, monkeypatch) -> gptdata.TokenStore:
    monkeypatch.chdir(tmp_path)  # the recipes name "store", "hf-data", "litdata" relative to it
    return gptdata.prepare(None, "store", texts=TEXTS, workers=1, quiet=True)


# -- litgpt / litdata ----------------------------------------------------------------------------


def _stream(folder: Path) -> np.ndarray:
    """Every token litdata wrote, in its reading order (block_size=1 drops no tail)."""
    from litdata import StreamingDataset, TokensLoader

    index = json.loads((folder / "index.json").read_text())
    assert index["chunks"], f"{folder}/index.json lists no chunks: the workers wrote nothing"
    ds = StreamingDataset(input_dir=str(folder), item_loader=TokensLoader(block_size=1))
    return np.concatenate([ds[i].numpy() for i in range(len(ds))])


def _as_pieces(stream: np.ndarray, tokens: np.ndarray, step: int) -> list[int]:
    """The starts of ``tokens``' ``step``-sized pieces that ``stream`` is made of, in its order.

    optimize() hands inputs to several workers, so pieces come back in the workers' order; each
    must still be one whole piece, byte for byte, and every piece must be there once.
    """
    pieces = {tokens[s : s + step].tobytes(): s for s in range(0, len(tokens), step)}
    order, at = [], 0
    while at < len(stream):
        for size in (step, len(tokens) % step):
            start = pieces.get(stream[at : at + size].tobytes()) if size else None
            if start is not None and len(tokens[start : start + step]) == size:
                order.append(start)
                at += size
                break
        else:
            raise AssertionError(f"token {at} of the stream starts no piece of the store")
    return order


def test_litdata_recipe_as_a_script(store, tmp_path) -> None:
    pytest.importorskip(
        "litdata",
        reason="litdata is not installed in this venv: `make crosscheck` runs this test in "
        ".venv-crosscheck-lit (crosscheck/requirements-lit.txt), since litdata's torchvision "
        "breaks transformers' Trainer here",
    )
    step = 1 << 8  # 1 << 20 in the README: here several inputs, so several workers' chunks
    script = tmp_path / "to_litdata.py"
    script.write_text(recipe("litgpt", sizes={"1 << 20": f"1 << {step.bit_length() - 1}"}))
    # A subprocess, as a user runs it: litdata's workers import the script, so the guard matters.
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for split in ("train", "val"):
        tokens = store.split(split)[:].astype(np.int32)  # as the recipe writes them
        stream = _stream(tmp_path / "litdata" / split)
        assert stream.dtype == np.int32 and len(stream) == len(tokens)
        assert sorted(_as_pieces(stream, tokens, step)) == list(range(0, len(tokens), step))
    assert EOT in stream  # documents stay joined by end-of-text


def test_litgpt_pretrain_offline(store, tmp_path) -> None:
    if importlib.util.find_spec("litdata") is None or importlib.util.find_spec("litgpt") is None:
        pytest.skip(
            "litgpt/litdata not installed in this venv: `make crosscheck` runs this test in "
            ".venv-crosscheck-lit (crosscheck/requirements-lit.txt)"
        )
    script = tmp_path / "to_litdata.py"
    script.write_text(recipe("litgpt", sizes={"1 << 20": "1 << 10"}))
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True, capture_output=True)
    command = recipe(
        "litgpt",
        lang="sh",
        sizes={
            "  block_size: 1024": "  block_size: 32",
            "  n_layer: 12": "  n_layer: 1",
            "  n_head: 12": "  n_head: 2",
            "  n_embd: 768": "  n_embd: 16",
            "--train.max_seq_length 1024": "--train.max_seq_length 16 --train.max_tokens 64 "
            "--train.micro_batch_size 2 --train.global_batch_size 2 --train.lr_warmup_steps 0 "
            "--eval.max_iters 1 --data.num_workers 0 --precision 32-true --devices 1 "
            "--logger_name csv --out_dir out",  # 2 steps of 2 x 16 tokens; csv: no tensorboard
        },
    )
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    )
    run = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:])
    assert (tmp_path / "out" / "final" / "lit_model.pth").is_file()
    weights = torch.load(tmp_path / "out" / "final" / "lit_model.pth", weights_only=True)
    assert weights["model"]["transformer.wte.weight"].shape == (50304, 16)  # covers 50,256
    losses = re.findall(r"loss train: ([\d.]+)", run.stdout)
    assert losses and all(abs(float(x) - np.log(50304)) < 1.0 for x in losses)


# -- Hugging Face Trainer ------------------------------------------------------------------------


def _train_two_steps(tmp_path: Path, code: str) -> tuple[object, list[dict]]:
    """Run a README Trainer block with a tiny GPT-2; train 2 steps; return it and 2 batches."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate", reason="Trainer needs accelerate (requirements.txt has it)")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=2,
        per_device_train_batch_size=4,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
        dataloader_num_workers=0,
    )
    namespace = {"model": model, "args": args}
    exec(compile(code, "README.md", "exec"), namespace)
    trainer = namespace["trainer"]
    before = model.lm_head.weight.detach().clone()
    result = trainer.train()
    assert result.global_step == 2 and np.isfinite(result.training_loss)
    assert not torch.equal(before, model.lm_head.weight.detach())
    batches = [b for _, b in zip(range(2), trainer.get_train_dataloader(), strict=False)]
    return trainer, batches


def _end_of_text_keeps_its_label(batches: list[dict]) -> None:
    eots = 0
    for b in batches:
        at = b["input_ids"] == EOT
        eots += int(at.sum())
        assert (b["labels"][at] == EOT).all()  # not -100: the model learns to end a document
        assert torch.equal(b["labels"], b["input_ids"])  # the model shifts them itself
    assert eots > 0, "no end-of-text in the batches: the check would pass vacuously"


def test_trainer_on_windows(store, tmp_path) -> None:
    code = recipe(
        "Hugging Face `Trainer`",
        0,
        sizes={"max_length=1024, stride=1024": "max_length=32, stride=32"},
    )
    _, batches = _train_two_steps(tmp_path, code)
    _end_of_text_keeps_its_label(batches)
    assert set(batches[0]) == {"input_ids", "labels", "position_ids"}


def test_trainer_on_hf_export(store, tmp_path) -> None:
    pytest.importorskip("datasets")
    export_store(store, tmp_path / "hf-data", format="hf", quiet=True)
    code = recipe("Hugging Face `Trainer`", 1, sizes={"block = 50256, 1024": "block = 50256, 32"})
    trainer, batches = _train_two_steps(tmp_path, code)
    _end_of_text_keeps_its_label(batches)
    # The blocks are the train split's documents, end-of-text after each, cut every 32 tokens.
    first = trainer.train_dataset["input_ids"][0]
    assert first == (store.split("train")[:].tolist() + [EOT])[:32]


def test_the_old_collator_masks_end_of_text() -> None:
    """Why the README no longer uses DataCollatorForLanguageModeling: pinned, so a fix shows."""
    transformers = pytest.importorskip("transformers")
    from gptdata.tokenizers.gpt2files import source_files

    bpe, encoder = source_files()
    merges = [tuple(x.split(" ")) for x in bpe.read_text(encoding="utf-8").splitlines()[1:] if x]
    vocab = json.loads(encoder.read_text(encoding="utf-8"))
    tok = transformers.GPT2TokenizerFast(vocab=vocab, merges=merges, eos_token="<|endoftext|>")
    rows = [{"input_ids": [464, 318, EOT, 257]}, {"input_ids": [40, EOT, 1, 2]}]
    collate = transformers.DataCollatorForLanguageModeling(tok, mlm=False)
    with pytest.raises(ValueError, match="padding token"):
        collate(rows)
    tok.pad_token = tok.eos_token
    labels = collate(rows)["labels"]
    assert (labels[torch.tensor([r["input_ids"] for r in rows]) == EOT] == -100).all()


# -- torchtitan ----------------------------------------------------------------------------------


def _titan(store):
    code = recipe("torchtitan", sizes={"batch_size=8,": "batch_size=4,", "2048": "32"})
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["loader"], namespace["batches"]


def test_torchtitan_itself(store) -> None:
    """Its IGNORE_INDEX and document mask on the adapter's batches (the adapter's interface is
    checked without torchtitan in tests/formats/test_recipes.py)."""
    why = (
        "torchtitan does not import here: not installed (0.3.0 pins datasets<4.8 and pulls "
        "wandb, tensorboard and opentelemetry, replacing what the other crosschecks run "
        "against), or installed without triton, which its main branch imports (a GPU install)"
    )
    loss = pytest.importorskip("torchtitan.components.loss", reason=why)
    attention = pytest.importorskip("torchtitan.models.common.attention", reason=why)

    assert loss.IGNORE_INDEX == -100
    get_document_mask_mod = attention.get_document_mask_mod
    _, batches = _titan(store)
    input_dict, _ = next(batches)
    positions = input_dict["positions"][0]
    mask_mod = get_document_mask_mod(positions)
    q = int(torch.nonzero(positions == 0)[1])  # the second document's first token
    zero = torch.tensor(0)
    assert not mask_mod(zero, zero, torch.tensor(q), torch.tensor(q - 1))
    assert mask_mod(zero, zero, torch.tensor(q), torch.tensor(q))


# -- nanochat ------------------------------------------------------------------------------------


def _nanochat(store):
    code = recipe(
        "nanochat", sizes={"batch_size=32,": "batch_size=4,", "2048": "32", '"cuda"': '"cpu"'}
    )
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["loader"], namespace["train_loader"]


def test_nanochat_itself(store) -> None:
    pytest.importorskip(
        "nanochat.gpt",
        reason="nanochat is not installed: it is a repository, not a package (PyPI's "
        "nanochat 0.1.2 fails to build here); put karpathy/nanochat on PYTHONPATH to run this",
    )
    from nanochat.gpt import GPT, GPTConfig

    _, train_loader = _nanochat(store)
    x, y, _ = next(train_loader)
    config = GPTConfig(
        sequence_len=32, vocab_size=50257, n_layer=1, n_head=2, n_kv_head=2, n_embd=32
    )
    model = GPT(config)
    model.init_weights()
    loss = model(x, y)
    assert torch.isfinite(loss)
