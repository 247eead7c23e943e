"""The end of ``prepare`` (and ``import``): the units' results merged into one manifest, written
last, and the side folder swapped in (or, for ``-o s3://``, committed remotely by ``remote_out``).

    >>> _commit(out, side, tok, options, inputs_meta, results, force=False, plan_id=plan_id)
    TokenStore('store/')

The manifest lists each split's shard parts in unit order, sums the skipped-document counts, and
settles ``split_by="auto"`` once the document lengths are known (a tail split rewrites the last
parts, ``store.shards._retail``). Nothing here reads inputs or runs units: ``driver.py`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import RemoteStoreWriter
from ..store.shards import _fix_copies, _retail
from ..store.sidefolders import swap_in
from ..store.splits import choose_split
from ..store.tokenstore import (
    FORMAT,
    MANIFEST,
    VERSION,
    TokenStore,
    dtype_for,
    store_id_for,
    write_json_atomic,
)
from ..tokenizers import Tokenizer
from . import remote_out
from .instruction_units import split_names
from .sources import InputError


def _sum_squared_lengths(side: Path, splits: dict[str, list[dict[str, Any]]]) -> int:
    """Sum of squared document lengths, from the parts' document indexes (8 bytes a document)."""
    total = 0
    for parts in splits.values():
        for part in parts:
            ends = np.fromfile(side / part["index"], dtype="<u8").astype(np.int64)
            lengths = np.diff(ends, prepend=-1) - 1  # one separator between documents
            total += int((lengths.astype(np.float64) ** 2).sum())
    return total


def _commit(
    out: Path,
    side: Path,
    tok: Tokenizer,
    options: dict[str, Any],
    inputs_meta: list[dict[str, Any]],
    results: list[dict[str, Any]],
    *,
    force: bool,
    plan_id: str,
    writer: RemoteStoreWriter | None = None,
) -> TokenStore:
    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in split_names(options)}
    for r in results:
        for s in splits:
            splits[s] += r["parts"][s]
    stats: dict[str, int] = {}  # documents skipped, by reason
    counts = {"documents": 0, "special_text": 0}  # documents read; with a literal <|endoftext|>
    for r in results:
        for k, v in r["stats"].items():
            if k in counts:
                counts[k] += v
            elif k != "bytes":
                stats[k] = stats.get(k, 0) + v
    n_docs = sum(p["documents"] for parts in splits.values() for p in parts)
    if n_docs == 0:
        skipped = ", ".join(f"{v:,} {k}" for k, v in stats.items() if v) or "nothing"
        raise InputError(
            f"empty corpus: no non-empty documents in the inputs (skipped: {skipped}). "
            "Check the paths and text_field=."
        )
    if tok.eot_id is None and any(
        len(p) > 1 or (p and p[0]["documents"] > 1) for p in splits.values()
    ):
        raise ValueError(
            f"tokenizer {tok.name} has no <|endoftext|> token to put between "
            "documents. Add it to the tokenizer's vocabulary."
        )
    options = dict(options)
    if options["split_by"] == "auto":
        tokens = sum(r["tokens"] for r in results)
        val_tokens = sum(p["tokens"] - p["documents"] + 1 for p in splits["val"])
        sum_sq = _sum_squared_lengths(side, splits)
        options["split_by"] = choose_split(
            "auto", options["val_fraction"], tokens, sum_sq, val_tokens
        )
        if options["split_by"] == "tail":
            _retail(side, results, tok, options)
            splits = {s: [p for r in results for p in r["parts"][s]] for s in ("train", "val")}
    elif options["split_by"] == "tail" and options["val_fraction"] > 0 and len(results) > 1:
        _fix_copies(side, results, tok, options)  # identical documents in different units
        splits = {s: [p for r in results for p in r["parts"][s]] for s in ("train", "val")}
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "tokenizer": {
            "name": tok.name,
            "fingerprint": tok.fingerprint,
            "vocab_size": tok.vocab_size,
            "eot_id": tok.eot_id,
        },
        "dtype": dtype_for(tok.vocab_size).name,
        "splits": {
            name: {
                "tokens": sum(p["tokens"] for p in parts) + max(len(parts) - 1, 0),
                "documents": sum(p["documents"] for p in parts),
                "shards": parts,
            }
            for name, parts in splits.items()
        },
        "options": options,
        "inputs": inputs_meta,
        "stats": stats,
        "counts": counts,
    }
    manifest["store_id"] = store_id_for(manifest)  # readers notice a replaced store
    return finish_commit(out, side, manifest, force=force, plan_id=plan_id, writer=writer)


def finish_commit(
    out: Path,
    side: Path,
    manifest: dict[str, Any],
    *,
    force: bool,
    plan_id: str,
    writer: RemoteStoreWriter | None = None,
) -> TokenStore:
    """Write ``manifest`` into ``side`` and put the store in place: ``out`` locally, else the
    bucket (``remote_out.commit``), ``out`` then being the local copy ``prepare`` removes."""
    if writer is not None:
        remote_out.commit(writer, side, manifest)
        force = True  # below: the local copy, removed once the lock is released
    else:
        write_json_atomic(side / MANIFEST, manifest)
    swap_in(side, out, force=force, plan_id=plan_id)
    return TokenStore.open(out)


def committed_manifest(side: Path) -> dict[str, Any] | None:
    """The manifest a killed run's commit wrote into ``side`` (atomically, after its last
    rewrite of the parts), or None: then the units still decide what is left to do.

    A tail split's rewrite removes the units' markers, so without this a run killed during the
    upload to a bucket would tokenize everything again for the same bytes.
    """
    try:
        manifest = json.loads((side / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and "store_id" in manifest else None
