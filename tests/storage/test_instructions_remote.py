"""prepare --instructions from object storage (moto's server): every instruction input kind
(.json list, .jsonl, .jsonl.gz, .parquet, a datasets save_to_disk prefix) gives the same store
as the local files, and a bad URL is one line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gptdata.prepare.driver import prepare
from gptdata.prepare.instructions import read_examples
from gptdata.prepare.sources import InputError
from gptdata.storage import Location
from s3fixtures import needs_s3, upload

pytestmark = needs_s3


def records(tag: str, n: int = 30) -> list[dict[str, str]]:
    return [
        {"instruction": f"{tag} {i}: repeat it.", "input": "x" * (i % 3), "output": f"w{i} " * 3}
        for i in range(n)
    ]


@pytest.fixture
def local(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "sft"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(records("a")), encoding="utf-8")
    lines = "".join(json.dumps(r) + "\n" for r in records("b"))
    (folder / "b.jsonl").write_text(lines, encoding="utf-8")
    with gzip.open(folder / "c.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records("c")))
    pq.write_table(pa.Table.from_pylist(records("d")), folder / "d.parquet")
    return folder


def shards(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())}


KW = {"instructions": True, "quiet": True, "val_fraction": 0.2}


def test_every_kind_from_a_bucket_equals_the_local_files(s3, local, tmp_path) -> None:
    url = upload(local, s3, "sft")
    names = sorted(p.name for p in local.iterdir())
    here = prepare([str(local / n) for n in names], tmp_path / "here", workers=2, **KW)
    there = prepare(
        [f"{url}/{n}" for n in names], tmp_path / "there", workers=2,
        storage_options=s3["options"], **KW,
    )  # fmt: skip
    assert shards(tmp_path / "there") == shards(tmp_path / "here") != {}
    assert there.has_masks and there.n_documents == here.n_documents == 120
    assert [i["path"] for i in there.manifest["inputs"]] == [f"{url}/{n}" for n in names]
    # A glob names the same objects, in the same order.
    prepare([f"{url}/*"], tmp_path / "glob", workers=1, storage_options=s3["options"], **KW)
    assert shards(tmp_path / "glob") == shards(tmp_path / "here")


def test_a_datasets_prefix_is_one_input_as_a_local_folder(s3, tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hf"
    datasets.Dataset.from_list(records("e", 50)).save_to_disk(str(folder))
    url = upload(folder, s3, "hf")
    prepare([str(folder)], tmp_path / "here", workers=1, **KW)
    prepare([url], tmp_path / "there", workers=1, storage_options=s3["options"], **KW)
    assert shards(tmp_path / "there") == shards(tmp_path / "here") != {}
    got = list(read_examples(url, storage_options=s3["options"]))
    assert got[0] == ("e 0: repeat it.", "", "w0 w0 w0 ") and len(got) == 50


def test_bad_urls_are_one_line(s3, local, tmp_path) -> None:
    url = upload(local, s3, "sft")
    opts = s3["options"]
    with pytest.raises(InputError, match=r"a prefix that is not a datasets save_to_disk folder"):
        prepare([url], tmp_path / "a", storage_options=opts, **KW)
    with pytest.raises(FileNotFoundError, match=r"sft/missing\.json"):
        prepare([f"{url}/missing.json"], tmp_path / "b", storage_options=opts, **KW)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_instruction_dataset_reads_a_url_and_a_store_url(s3, local, tmp_path) -> None:
    from gptdata.windows.finetune import InstructionDataset

    url = upload(local, s3, "sft")
    here = InstructionDataset(str(local / "b.jsonl"))
    there = InstructionDataset(f"{url}/b.jsonl", storage_options=s3["options"])
    assert there.examples == here.examples and len(there) == 30
    loc = Location(f"{url}/a.json", storage_options=s3["options"])
    assert InstructionDataset(loc).examples == InstructionDataset(str(local / "a.json")).examples
    store = tmp_path / "store"
    prepare([str(local / "a.json")], store, workers=1, **{**KW, "val_fraction": 0.0})
    store_url = upload(store, s3, "stores/sft")
    got = InstructionDataset(store_url, storage_options=s3["options"])
    assert got.examples == InstructionDataset(store).examples and len(got) == 30
