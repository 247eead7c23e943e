"""plan --documents mask and inspect --windows: counts and marks against the batches themselves."""

from __future__ import annotations

import numpy as np
import pytest

from gptdata import SimpleTokenizer, SlidingWindowDataset
from gptdata.windows.documents import document_stats
from reference import eot_heavy_ids

E = 50256


@pytest.fixture(scope="module")
def doc_ids_corpus() -> list[int]:
    return eot_heavy_ids(E)


@pytest.mark.parametrize(("max_length", "stride"), [(8, 1), (8, 8), (5, 7), (1, 1), (16, 3)])
def test_document_stats_equal_the_batches(doc_ids_corpus, max_length, stride) -> None:
    import warnings

    ids = np.array(doc_ids_corpus[:500])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = SlidingWindowDataset(
            ids, max_length=max_length, stride=stride, documents="mask", batch_format="dict"
        )
    batch = ds.get_batch(np.arange(len(ds)))
    stats = document_stats(ids, eot_id=E, max_length=max_length, stride=stride)
    assert stats.windows == len(ds)
    assert stats.masked_targets == int((batch["targets"] == -100).sum())
    assert stats.mean_documents == pytest.approx(
        float((batch["doc_ids"].max(1).values + 1).double().mean())
    )


def test_document_stats_docstring_example() -> None:
    stats = document_stats([1, E, 2, 3, E, 4], eot_id=E, max_length=3, stride=1)
    assert (stats.windows, stats.masked_targets) == (3, 3)
    assert stats.mean_documents == pytest.approx(5 / 3)


def test_cli_plan_and_inspect_with_documents(capsys, tmp_path) -> None:
    from gptdata.cli.entry import main

    docs = tmp_path / "d.jsonl"
    docs.write_text(
        '{"text": "The cat sat."}\n{"text": "A dog ran far away today."}\n'
        '{"text": "Birds sing."}\n{"text": "Fish swim in the deep blue sea all day."}\n'
    )
    store = str(tmp_path / "st")
    assert main(["prepare", str(docs), "-o", store, "--val-fraction", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "plan",
                store,
                "--max-length",
                "8",
                "--stride",
                "4",
                "--batch-size",
                "2",
                "--documents",
                "mask",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    from gptdata import TokenStore

    tokens = TokenStore.open(store).split("train")
    stats = document_stats(tokens, eot_id=E, max_length=8, stride=4)
    assert f"masked targets     {stats.masked_targets:,} (" in out
    assert f"documents/window   {stats.mean_documents:.2f} (mean)" in out
    assert (
        stats.masked_targets == 6
    )  # hand-checked: 28 tokens, separators at 4, 12, 17, each in 2 windows
    assert main(["plan", store, "--max-length", "8", "--stride", "4", "--batch-size", "2"]) == 0
    assert "masked targets" not in capsys.readouterr().out
    assert (
        main(["inspect", store, "--windows", "--max-length", "8", "-n", "1", "--documents", "mask"])
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1:5] == [
        "  input  [464, 3797, 3332, 13, 50256, 32, 3290, 4966]",
        "  target [3797, 3332, 13, 50256, -100, 3290, 4966, 1290]",
        "  doc_ids [0, 0, 0, 0, 0, 1, 1, 1]",
        "  positions [0, 1, 2, 3, 4, 0, 1, 2]",
    ]
    assert main(["inspect", store, "--windows", "--max-length", "8", "-n", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[2:4] == [
        "  target [3797, 3332, 13, 50256, 32, 3290, 4966, 1290]",
        "  doc_ids [0, 0, 0, 0, 0, 1, 1, 1]",
    ]


def test_plan_and_inspect_errors() -> None:
    from gptdata.inspect.pairs import window_rows
    from gptdata.inspect.plan import Loaded, plan_report

    tok = SimpleTokenizer.from_text("a b")
    ids = np.arange(3).repeat(10)
    with pytest.raises(ValueError, match=r"documents='masked' is not one of 'concat', 'mask'"):
        window_rows(ids, tok, max_length=4, stride=4, documents="masked")
    loaded = Loaded({"text": ids}, tok, {"text": np.array([30])})
    with pytest.raises(ValueError, match=r"documents='masked' is not one of 'concat', 'mask'"):
        plan_report(loaded, max_length=4, stride=4, batch_size=1, documents="masked")
    tok.eot_id = None
    with pytest.raises(
        ValueError, match=r"--documents mask needs an end-of-text ID, but tokenizer"
    ):
        window_rows(ids, tok, max_length=4, stride=4, documents="mask")
    with pytest.raises(
        ValueError, match=r"--documents mask needs an end-of-text ID, but tokenizer"
    ):
        plan_report(loaded, max_length=4, stride=4, batch_size=1, documents="mask")


def test_inspect_marks_masked_text_and_a_boundary_at_the_last_input() -> None:
    from gptdata import get_tokenizer
    from gptdata.inspect.pairs import window_rows

    tok = get_tokenizer("gpt2")
    ids = tok.encode("hello world<|endoftext|>second doc here")  # E at input position 2
    assert window_rows(ids, tok, max_length=3, stride=3, count=1, documents="mask")[1:] == [
        "  input  [31373, 995, 50256]",
        "  target [995, 50256, -100]",
        "  doc_ids [0, 0, 0]  (document 0 ends at the last input)",
        "  positions [0, 1, 2]",
        "  input  hello world<|endoftext|>",
        "  target  world<|endoftext|>[masked]",
    ]
    concat = window_rows(ids, tok, max_length=3, stride=3, count=1)
    assert concat[3] == "  doc_ids [0, 0, 0]  (document 0 ends at the last input)"
    assert concat[-1] == "  target  world<|endoftext|>second"  # concat trains on it
    # A masked target inside the window: the text around it is decoded, the target hidden.
    ids = tok.encode("a b.<|endoftext|>c d")
    rows = window_rows(ids, tok, max_length=5, stride=5, count=1, documents="mask")
    assert rows[-1] == "  target  b.<|endoftext|>[masked] d"
