"""The model-side verbs on URLs (moto's server): inspect, plan and eval read instruction data, an
instruction store and unigram:/bigram: stores by URL with --storage-option and --cache-limit, as
they read the local copies; a URL where only a local file works is one line saying so."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from gptdata.cli.entry import main
from gptdata.prepare.driver import prepare
from s3fixtures import needs_s3, upload

pytestmark = needs_s3

WORDS = "the a cat sat on mat dog ran far away under bright blue sky while birds sang".split()


def records(n: int = 12) -> list[dict[str, str]]:
    return [
        {"instruction": f"Repeat {i}.", "input": "x" * (i % 3), "output": f"w{i} " * 3}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.json, an instruction store sft/ (train and val) and a text store web/."""
    root = tmp_path_factory.mktemp("local")
    (root / "data.json").write_text(json.dumps(records()), encoding="utf-8")
    prepare(
        [str(root / "data.json")], root / "sft", instructions=True, val_fraction=0.3,
        workers=1, quiet=True,
    )  # fmt: skip
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) for _ in range(40)]
    prepare(None, root / "web", texts=texts, val_fraction=0.2, workers=1, quiet=True)
    return root


def opt(s3: dict[str, Any]) -> list[str]:
    return ["--storage-option", f"endpoint_url={s3['options']['endpoint_url']}"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    got = capsys.readouterr()
    return code, got.out, got.err


def test_inspect_and_plan_instructions_from_a_url(s3, local, capsys) -> None:
    data = upload(local / "data.json", s3, "sft/data.json")
    store = upload(local / "sft", s3, "stores/sft")
    for here, there in ((local / "data.json", data), (local / "sft", store)):
        args = ["--instructions", "--start", "1"]
        code, want, err = run(["inspect", str(here), *args], capsys)
        assert code == 0, err
        code, got, err = run(["inspect", there, *args, *opt(s3)], capsys)
        assert code == 0, err
        assert got == want
        sizes = ["--instructions", "--max-length", "64", "--batch-size", "2"]
        code, want, err = run(["plan", str(here), *sizes], capsys)
        assert code == 0, err
        code, got, err = run(["plan", there, *sizes, *opt(s3), "--cache-limit", "10MB"], capsys)
        assert code == 0, err
        assert got == want.replace(str(here), there)  # a file is named by its URL
    assert f"{data}: 12 examples" in got or "val: " in got


def test_eval_instructions_and_baselines_from_urls(s3, local, capsys) -> None:
    data = upload(local / "data.json", s3, "sft/data.json")
    web = upload(local / "web", s3, "stores/web")
    base = ["--instructions", "--json", "--quiet", "--max-length", "64"]
    code, want, err = run(["eval", str(local / "data.json"), "--model", f"bigram:{local / 'web'}",
                           *base], capsys)  # fmt: skip
    assert code == 0, err
    code, got, err = run(["eval", data, "--model", f"bigram:{web}", *base, *opt(s3),
                          "--cache-limit", "10MB"], capsys)  # fmt: skip
    assert code == 0, err
    here, there = json.loads(want)["models"][0], json.loads(got)["models"][0]
    assert there["loss"] == here["loss"] and there["tokens"] == here["tokens"]
    # --cache-limit bounds the model's store when the source is local.
    local_source = ["eval", str(local / "data.json"), "--model", f"bigram:{web}", *base]
    code, got, err = run([*local_source, *opt(s3), "--cache-limit", "10MB"], capsys)
    assert code == 0, err
    assert json.loads(got)["models"][0]["loss"] == here["loss"]
    # unigram: by URL on its own store; the header names the store URL, not the cache.
    code, out, err = run(["eval", web, "--model", f"unigram:{web}", "--max-length", "16",
                          "--split", "val", *opt(s3)], capsys)  # fmt: skip
    assert code == 0, err
    assert f"on {web} split 'val'" in err and "cache" not in err.split("\n")[0]


def test_evaluate_in_python_reads_urls(s3, local) -> None:
    from gptdata.evaluation.scoring import evaluate

    data = upload(local / "data.json", s3, "sft/data.json")
    web = upload(local / "web", s3, "stores/web")
    here = evaluate(f"bigram:{local / 'web'}", local / "data.json", instructions=True,
                    max_length=64, progress=False)  # fmt: skip
    there = evaluate(f"bigram:{web}", data, instructions=True, max_length=64, progress=False,
                     storage_options=s3["options"], cache_limit=10**7)  # fmt: skip
    assert there.loss == here.loss and there.tokens == here.tokens


def test_blend_reads_store_urls(s3, local, capsys) -> None:
    web = upload(local / "web", s3, "stores/web")
    blend = ["--blend", "0.5", web, "0.5", str(local / "web")]
    code, out, err = run(["inspect", *blend, "--max-length", "8", "-n", "4", *opt(s3),
                          "--cache-limit", "10MB"], capsys)  # fmt: skip
    assert code == 0, err
    assert web in out
    sizes = ["--max-length", "8", "--stride", "8", "--batch-size", "2"]
    code, out, err = run(["plan", *blend, *sizes, *opt(s3)], capsys)
    assert code == 0, err
    assert f"{web} (split 'train'): share 0.500" in out
    local_only = ["--blend", "0.5", str(local / "web"), "0.5", str(local / "web")]
    code, out, err = run(["plan", *local_only, *sizes, "--cache-limit", "10MB"], capsys)
    assert code == 1 and "every --blend path is local" in err


def test_a_url_where_a_local_file_is_written_or_read_is_one_line(s3, local, capsys) -> None:
    source = str(local / "data.json")
    model = ["--model", f"unigram:{local / 'web'}", "--max-length", "8", "--quiet"]
    for flag, what in (
        ("--per-document", "writes a local file"),
        ("--plot", "writes a local file"),
    ):
        url = f"{s3['url']}/out/x.png"
        code, _, err = run(["eval", source, *model, flag, url, *opt(s3)], capsys)
        assert code == 1
        assert err.startswith(f"error: {flag} {what}; a URL is not supported here ({url})")
        assert err.count("\n") == 1 and "s3:/b" not in err
    for argv, line in (
        (["inspect", source, "--instructions", "--template", f"{s3['url']}/t.txt"],
         "--template reads a local file; a URL is not supported here"),
        (["inspect", source, "--tokenizer", f"{s3['url']}/vocab.json"],
         "--tokenizer reads a local file; a URL is not supported here"),
        (["demo", f"{s3['url']}/x.txt"], "FILE reads a local file; a URL is not supported here"),
        (["eval", source, "--model", f"py:{s3['url']}/m.py:make", "--max-length", "8"],
         "py: loads a local file; a URL is not supported here"),
        (["eval", source, "--model", f"hf:{s3['url']}/m", "--max-length", "8"],
         "hf: loads a local folder; a URL is not supported here"),
    ):  # fmt: skip
        code, _, err = run([*argv, *opt(s3)] if argv[0] != "demo" else argv, capsys)
        assert code == 1 and line in err and err.count("\n") == 1, err


TINY_MODEL = """
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50257, 4)
        self.head = nn.Linear(4, 50257, bias=False)

    def forward(self, idx):
        return self.head(self.emb(idx))  # (B, T, V)

def make():
    torch.manual_seed(0)
    return Tiny()
"""


def test_eval_reads_a_checkpoint_from_a_bucket(s3, local, tmp_path, capsys) -> None:
    """--checkpoint s3://...: the same numbers as the local file; a missing object is one line."""
    import torch

    (tmp_path / "tiny.py").write_text(TINY_MODEL, encoding="utf-8")
    scope: dict[str, Any] = {}
    exec(TINY_MODEL, scope)
    torch.manual_seed(1)  # other weights than make()'s, so a checkpoint ignored would show
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": scope["Tiny"]().state_dict(), "iter_num": 7}, ckpt)  # nanoGPT's layout
    url = upload(ckpt, s3, "runs/ckpt.pt")
    base = ["eval", str(local / "data.json"), "--model", f"py:{tmp_path / 'tiny.py'}:make",
            "--max-length", "8", "--json", "--quiet"]  # fmt: skip
    code, out, err = run([*base, "--checkpoint", str(ckpt)], capsys)
    assert code == 0, err
    want = json.loads(out)["models"][0]
    code, out, err = run([*base, "--checkpoint", url, *opt(s3)], capsys)
    assert code == 0, err
    got = json.loads(out)["models"][0]
    assert got["loss"] == want["loss"] and got["tokens"] == want["tokens"] > 0
    code, out, err = run([*base, *opt(s3)], capsys)  # no checkpoint: make()'s own weights
    assert json.loads(out)["models"][0]["loss"] != want["loss"]
    code, _, err = run([*base, "--checkpoint", url + ".missing", *opt(s3)], capsys)
    assert code == 1 and err.count("\n") == 1
    assert f"--checkpoint {url}.missing: no such file" in err


def test_export_summary_names_the_store_and_force_is_named_once(s3, local, capsys) -> None:
    out = f"{s3['url']}/exports/web"
    args = ["export", str(local / "web"), "--format", "nanogpt", "-o", out, *opt(s3)]
    code, _, err = run(args, capsys)
    assert code == 0, err
    assert f"exported {local / 'web'} as nanogpt to {out} (" in err
    code, _, err = run(args, capsys)
    assert code == 1 and "--force" in err and "(--force)" not in err


def test_storage_option_help_says_what_it_applies_to(capsys) -> None:
    for verb, what in (
        ("info", "the store"),
        ("verify", "the store"),
        ("export", "the store and an -o URL"),
        ("prepare", "the inputs and an -o URL"),
        ("eval", "SOURCE and unigram:/bigram: store URLs"),
    ):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"an fsspec option for {what}" in text, verb
