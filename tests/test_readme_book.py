"""README.md's "Coming from the book": the right-hand column runs, top to bottom, as written."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def right_hand_column() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Coming from the book", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # skip the header
    lines = []
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert len(cells) == 2 and all(cells), row
        code = re.fullmatch(r"`([^`]+)`", cells[1])
        assert code, f"the gptdata cell must be one code span: {cells[1]}"
        lines.append(code.group(1).replace("\\|", "|"))
    return lines


def test_table_covers_the_chapter() -> None:
    lines = right_hand_column()
    assert len(lines) >= 25
    for step in ("split_words", "build_vocab", "SimpleTokenizerV1", "SimpleTokenizerV2",
                 "get_tokenizer", "GPTDatasetV1", "create_dataloader_v1", "GPTEmbedding"):  # fmt: skip
        assert any(step in line for line in lines), step


def test_right_hand_column_runs(tmp_path, monkeypatch) -> None:
    from conftest import corpus

    shutil.copy(corpus("the-verdict.txt"), tmp_path / "the-verdict.txt")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the book's steps run without a warning
        exec(compile("\n".join(right_hand_column()), "README.md", "exec"), namespace)
    ns = namespace
    assert len(ns["preprocessed"]) == 4690 and ns["unknown"] is True
    assert ns["ids"] == [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1]
    assert ns["v2_ids"] == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988,
                            1131, 7]  # fmt: skip
    assert ns["strings"] == ns["text"] and ns["integers"][8] == 50256
    assert len(ns["enc_text"]) == 5145 and len(ns["dataset"]) == 5141
    assert [t.tolist() for t in ns["first_batch"]] == [[[40, 367, 2885, 1464]],
                                                      [[367, 2885, 1464, 1807]]]  # fmt: skip
    assert ns["inputs"].shape == (8, 4) and ns["inputs"][1].tolist() == [1807, 3619, 402, 271]
    weight = ns["small"].tok_emb.weight
    assert torch.allclose(weight[0], torch.tensor([0.3374, -0.1778, -0.1690]), atol=5e-5)
    assert ns["input_embeddings"].shape == (8, 4, 256)
    x, _ = next(iter(ns["loader"]))
    assert x.shape == (8, 4)


@pytest.mark.parametrize("name", ["GPTDatasetV1", "create_dataloader_v1"])
def test_book_names_import_from_gptdata(name) -> None:
    import gptdata

    assert callable(getattr(gptdata, name)) and name in gptdata.__all__


# --- chapters 4-5 --------------------------------------------------------------------------

EXAMPLE = README.parent / "examples" / "train_gpt.py"


def chapter_5_column() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Coming from the book, chapters 4-5", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    lines = []
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        code = re.fullmatch(r"`([^`]+)`", cells[1])
        assert len(cells) == 2 and code, row
        lines.append(code.group(1))
    return lines


def calc_loss_loader(data_loader, model, num_batches=None) -> float:
    """The book's chapter-5 average, written from its description: the mean of batch means."""
    total, n = 0.0, 0
    for i, (inputs, targets) in enumerate(data_loader):
        if num_batches is not None and i >= num_batches:
            break
        logits = model(inputs)  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        total, n = total + loss.item(), n + 1
    return total / n if n else float("nan")


@pytest.fixture
def in_tmp_with_example(tmp_path, monkeypatch):
    from conftest import corpus

    shutil.copy(corpus("the-verdict.txt"), tmp_path / "the-verdict.txt")
    shutil.copy(EXAMPLE, tmp_path / "train_gpt.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_chapter_5_column_runs(in_tmp_with_example) -> None:
    import gptdata

    ns: dict = {"torch": torch, "gptdata": gptdata, "Path": Path}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile("\n".join(chapter_5_column()), "README.md", "exec"), ns)
    assert ns["inputs"].shape == ns["targets"].shape == (2, 32)
    assert 9 < ns["loss"].item() < 13  # an untrained model: about ln(50257) = 10.8
    assert ns["result"].tokens == ns["store"].split("val").n_tokens
    assert ns["perplexity"] == pytest.approx(float(np.exp(ns["val_loss"])))
    assert torch.load("ckpt.pt", weights_only=True)["loader"]["batches_done"] == 1


def test_calc_loss_loader_and_evaluate_agree_when_configured_alike(in_tmp_with_example) -> None:
    from train_gpt import GPT_CONFIG_124M, GPTModel

    import gptdata

    L, B, k = 16, 2, 8  # k windows of L targets each: 4 equal batches
    cfg = dict(GPT_CONFIG_124M, context_length=L, emb_dim=32, n_heads=2, n_layers=1)
    torch.manual_seed(0)
    model = GPTModel(cfg).eval()
    body = gptdata.get_tokenizer("gpt2").encode(Path("the-verdict.txt").read_text())[: k * L]
    ids = [50256, *body]  # begins with end-of-text, as an llm.c shard does
    loader = gptdata.create_dataloader(ids, batch_size=B, max_length=L, stride=L, shuffle=False)
    assert len(loader) == k // B
    with torch.no_grad():
        book = calc_loss_loader(loader, model)
    ours = gptdata.evaluate(model, body, max_length=L, stride=L, progress=False)
    assert ours.tokens == k * L
    assert ours.loss == pytest.approx(book, rel=1e-5)
