"""The token store: a folder of raw little-endian token IDs, a document index, and a manifest.

    store/
      manifest.json                 format, version, tokenizer, dtype, splits -> shards, options, inputs
      shards/00000.train.000.bin    token IDs, uint16 when vocab_size <= 65,536 else uint32
      shards/00000.train.000.idx    uint64 cumulative document end offsets within the shard

A split's tokens are its shards in manifest order. Documents are joined with the tokenizer's
end-of-text ID between them (none after the last), also across shard boundaries: the separator
between two shards is implied, not stored, so shards stay independent. See docs/FORMAT.md.

    >>> store = TokenStore.open("store/")
    >>> train = store.split("train")
    >>> len(train), train[:3]
    (4690, array([  40,  367, 2885], dtype=uint16))

Opening checks every manifest field and the structure cheaply (paths stay inside the store,
sizes, document index); ``verify()`` also reads every byte and checks the sha256 sums. A split
reopened in another process checks that the store was not replaced meanwhile (``store_id``).
No pickle anywhere: JSON and raw arrays only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._layout import FORMAT as FORMAT  # re-exported: the format name in every manifest
from ._manifest import (
    MANIFEST,
    SHARD_FIELDS,
    ManifestError,
    check_manifest,
    inside,
    map_shards,
)
from ._manifest import store_id_for as store_id_for  # re-exported: prepare writes it

VERSION = 1


class StoreError(ValueError):
    """A token store that is missing, corrupt, or of an unknown format; names the file."""


def dtype_for(vocab_size: int) -> np.dtype:
    """uint16 holds IDs up to 65,535, so vocab_size <= 65,536 fits; larger needs uint32.

    50257 -> uint16;  65536 -> uint16;  65537 -> uint32
    """
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}.")
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write JSON to ``path.tmp``, fsync, then rename: readers see the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Shard:
    """One shard file of a split, as the manifest describes it."""

    file: str
    index: str
    tokens: int
    documents: int
    sha256: str
    index_sha256: str

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Split:
    """One split as a single logical token array (a lazy memmap per shard, never loaded whole).

    Pickles as paths and counts only; each process opens its own memmaps on first use.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        shards: list[Shard],
        dtype: np.dtype,
        eot_id: int | None,
        fingerprint: str,
        store_id: str | None = None,
    ) -> None:
        self.root, self.name, self.shards, self.dtype = root, name, shards, dtype
        self.eot_id = eot_id
        self.fingerprint = fingerprint  # identifies the store and split, for loader state
        self.store_id = store_id  # the commit this split was opened from; None in older stores
        sizes = np.array([s.tokens for s in shards], dtype=np.int64)
        # Shard k starts after shards 0..k-1 and one implied separator after each.
        self._starts = np.concatenate([[0], np.cumsum(sizes + 1)[:-1]]).astype(np.int64)
        self._sizes = sizes
        self.n_tokens = int(sizes.sum() + max(len(shards) - 1, 0))
        self.n_documents = sum(s.documents for s in shards)
        self._maps: list[np.memmap] | None = None
        self._views: dict[int, list[np.ndarray | None]] = {}  # window length -> per-shard views

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = None  # memmaps reopen lazily in the worker
        state["_views"] = {}
        return state

    def _memmaps(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = self._reopen()
        return self._maps

    def _reopen(self) -> list[np.memmap]:
        """Map the shards, then check they are this store's: once per process, never per batch.

        Map first, check after: a later commit has another ``store_id``, so an id that still
        matches means the maps hold this commit's bytes (open maps keep a replaced file's).
        """
        maps, problem = map_shards(self.root, self.shards, self.dtype, self.store_id)
        if problem:
            raise StoreError(
                f"{self.root}: the store was replaced while being read ({problem}). Open it again "
                "with TokenStore.open and restart the reader; never replace a store in use."
            )
        return maps

    def __len__(self) -> int:
        """Tokens in the split's stream: its documents' tokens plus one end-of-text separator
        between consecutive documents (stored inside a shard, implied between shards).

        3 documents of 4, 2 and 5 tokens -> 4 + 2 + 5 + 2 separators = 13
        """
        return self.n_tokens

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}, tokens={self.n_tokens:,}, documents={self.n_documents:,}, "
            f"shards={len(self.shards)})"
        )

    def __getitem__(self, key: slice | int) -> np.ndarray | int:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.n_tokens if key < 0 else 0)
            if not 0 <= i < self.n_tokens:
                raise IndexError(f"token {key} is outside 0..{self.n_tokens - 1}")
            return int(self._slice(i, i + 1)[0])
        start, stop, step = key.indices(self.n_tokens)
        if step < 0:  # like NumPy: read the covered range once, then walk it backwards
            picked = range(start, stop, step)
            if not picked:
                return np.empty(0, dtype=self.dtype)
            return self._slice(picked[-1], picked[0] + 1)[::step]
        if step != 1:
            return self._slice(start, max(start, stop))[::step]
        return self._slice(start, max(start, stop))

    def _slice(self, start: int, stop: int) -> np.ndarray:
        if stop > start and (start < 0 or stop > self.n_tokens):  # empty ranges stay empty
            raise IndexError(
                f"tokens[{start}:{stop}] reads past the split {self.name!r}, which holds "
                f"tokens 0..{self.n_tokens - 1}."
            )
        maps = self._memmaps()
        parts: list[np.ndarray] = []
        first = int(np.searchsorted(self._starts, start, side="right") - 1)
        for k in range(max(first, 0), len(maps)):
            s0 = int(self._starts[k])
            if k > 0 and start < s0 <= stop:  # the implied separator at s0 - 1, before shard k
                parts.append(np.array([self.eot_id], dtype=self.dtype))
            if s0 >= stop:
                break
            lo, hi = max(start - s0, 0), min(stop - s0, int(self._sizes[k]))
            if hi > lo:
                parts.append(np.asarray(maps[k][lo:hi]))
        out = np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)
        if len(out) != max(stop - start, 0):  # a shard shorter than the manifest says
            raise StoreError(
                f"{self.root}: tokens[{start}:{stop}] of split {self.name!r} came back with "
                f"{len(out):,} tokens; a shard is shorter than the manifest says. Run gptdata "
                "verify."
            )
        return out

    def _windows(self, length: int) -> list[np.ndarray | None]:
        """Per shard, a zero-copy ``(size - length + 1, length)`` view of all its windows."""
        views = self._views.get(length)
        if views is None:
            views = [
                sliding_window_view(m, length) if len(m) >= length else None
                for m in self._memmaps()
            ]
            self._views = {length: views}  # a loader uses one length: keep just the last
        return views

    def _past(self, start: int, length: int) -> IndexError:
        return IndexError(
            f"window tokens[{start}:{start + length}] reads past the split {self.name!r}, which "
            f"holds tokens 0..{self.n_tokens - 1}."
        )

    def gather(self, starts: np.ndarray, length: int) -> np.ndarray:
        """Rows ``tokens[s : s + length]`` for each start, as one (len(starts), length) array.

        A row take from each shard's window view: numpy copies whole rows, 10-30x faster than
        an index array of B x length positions (measured for B=8..512, length=257..1025). Only
        windows that cross a shard boundary are cut by hand. A start past the end raises.
        """
        starts = np.asarray(starts, dtype=np.int64)
        if length < 1:
            raise ValueError(f"length={length} must be >= 1.")
        views = self._windows(length)
        if len(views) == 1 and views[0] is not None:  # the common case: no boundary to cross
            # numpy refuses rows past the last window itself; only a negative start would wrap.
            if starts.size and starts.min() < 0:
                raise self._past(int(starts.min()), length)
            try:
                return views[0][starts]  # (B, length)
            except IndexError:
                raise self._past(int(starts.max()), length) from None
        if not views:
            if starts.size:
                raise self._past(int(starts[0]), length)
            return np.empty((0, length), dtype=self.dtype)
        out = np.empty((len(starts), length), dtype=self.dtype)  # (B, length)
        shard = np.searchsorted(self._starts, starts, side="right") - 1
        local = starts - self._starts[shard]
        inside = local + length <= self._sizes[shard]
        ks = np.unique(shard[inside])
        if len(ks) and ks[0] < 0:  # a negative start lies before shard 0 (sorted: free to see)
            raise self._past(int(starts.min()), length)
        for k in ks:
            rows = np.flatnonzero(inside & (shard == k))
            out[rows] = views[k][local[rows]]  # (b, length)
        for row in np.flatnonzero(~inside):  # _slice raises past the end
            out[row] = self._slice(int(starts[row]), int(starts[row]) + length)
        return out

    def document_ends(self) -> np.ndarray:
        """Cumulative document end offsets in split coordinates (int64, one per document)."""
        ends = [
            np.fromfile(self.root / s.index, dtype="<u8").astype(np.int64) + self._starts[k]
            for k, s in enumerate(self.shards)
        ]
        return np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)

    def document_lengths(self) -> np.ndarray:
        """Tokens per document (separators excluded)."""
        ends = self.document_ends()
        starts = np.concatenate([[0], ends[:-1] + 1])
        return ends - starts

    def iter_chunks(self, chunk: int = 1 << 24) -> Iterator[np.ndarray]:
        for start in range(0, self.n_tokens, chunk):
            yield self._slice(start, min(start + chunk, self.n_tokens))


class TokenStore:
    """A token store folder, opened and structurally validated."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        tok = manifest["tokenizer"]
        self.tokenizer_name: str = tok["name"]
        self.fingerprint: str = tok["fingerprint"]
        self.vocab_size: int = tok["vocab_size"]
        self.eot_id: int | None = tok["eot_id"]
        self.dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
        self.store_id: str | None = manifest.get("store_id")  # None: written before store ids
        self._splits = {
            name: [Shard(**{k: s[k] for k in SHARD_FIELDS}) for s in info["shards"]]
            for name, info in manifest["splits"].items()
        }

    @property
    def n_tokens(self) -> int:
        """Tokens of all splits: the sum of ``len(split)``, separators between documents included.

        The one token count gptdata reports (prepare's summary, ``gptdata info``, ``verify``).
        """
        return sum(info["tokens"] for info in self.manifest["splits"].values())

    @property
    def n_separators(self) -> int:
        """End-of-text IDs between documents in all splits (``n_tokens`` minus the text's tokens)."""
        return sum(max(info["documents"] - 1, 0) for info in self.manifest["splits"].values())

    @property
    def n_documents(self) -> int:
        """Documents in the store: one cut between train and val (tail split) counts once."""
        pieces = sum(info["documents"] for info in self.manifest["splits"].values())
        return int(self.manifest.get("counts", {}).get("documents", pieces))

    @property
    def splits(self) -> list[str]:
        return list(self._splits)

    def split(self, name: str = "train") -> Split:
        if name not in self._splits:
            raise KeyError(f"{self.root}: no split {name!r}; this store has {self.splits}.")
        shards = self._splits[name]
        ident = json.dumps([self.fingerprint, name, [s.sha256 for s in shards]])
        fp = "sha256:" + hashlib.sha256(ident.encode()).hexdigest()
        return Split(self.root, name, shards, self.dtype, self.eot_id, fp, self.store_id)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TokenStore:
        """Open and check: every manifest field, paths inside the store, shard sizes, document
        indexes. Reads only the manifest and the indexes."""
        root = Path(path)
        mpath = root / MANIFEST
        if not mpath.is_file():
            hint = (
                " A prepare run may still be going, or was killed: run it again to resume."
                if Path(str(root) + ".partial").exists()
                else ""
            )
            raise StoreError(
                f"{root}: not a token store (no {MANIFEST}).{hint} "
                "Create one with: gptdata prepare INPUT -o STORE"
            )
        try:
            if not inside(root, MANIFEST):
                raise StoreError(f"{mpath}: the manifest resolves outside the store (a symlink?).")
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise StoreError(
                f"{mpath}: corrupt manifest ({type(exc).__name__}: {str(exc)[:80]}). "
                "Re-run gptdata prepare."
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise StoreError(f"{mpath}: not a gptdata token store manifest (format != {FORMAT!r}).")
        if manifest.get("version") != VERSION:
            raise StoreError(
                f"{mpath}: store format version {manifest.get('version')!r}, but this gptdata "
                f"reads version {VERSION}. Upgrade gptdata or re-run gptdata prepare."
            )
        try:
            check_manifest(manifest)
        except ManifestError as exc:
            raise StoreError(f"{mpath}: {exc} Re-run gptdata prepare.") from None
        store = cls(root, manifest)
        store._check_structure()
        return store

    def _check_structure(self) -> None:
        itemsize = self.dtype.itemsize
        for name, shards in self._splits.items():
            for k, s in enumerate(shards):
                data, index = self.root / s.file, self.root / s.index
                for key, rel in (("file", s.file), ("index", s.index)):
                    # Before any stat: nothing about a file outside the store may leak out.
                    if not inside(self.root, rel):
                        raise StoreError(
                            f"{self.root / MANIFEST}: 'splits.{name}.shards[{k}].{key}' is "
                            f"{rel!r}, which resolves outside the store (a symlink?). A store's "
                            "files must stay inside its folder; re-run gptdata prepare."
                        )
                for f in (data, index):
                    if not f.is_file():
                        raise StoreError(
                            f"{f}: shard file is missing or not a regular file. "
                            "Re-run gptdata prepare."
                        )
                size = data.stat().st_size
                if size != s.tokens * itemsize:
                    raise StoreError(
                        f"{data}: {size:,} bytes, but the manifest says {s.tokens:,} tokens x "
                        f"{itemsize} bytes = {s.tokens * itemsize:,}. The shard is truncated or "
                        "replaced; re-run gptdata prepare."
                    )
                index_size = index.stat().st_size
                if index_size != s.documents * 8:  # before reading it: it may be any size
                    raise StoreError(
                        f"{index}: {index_size / 8:,.1f} documents, manifest says {s.documents:,}."
                    )
                ends = np.fromfile(index, dtype="<u8")
                if s.documents and (
                    ends[-1] != s.tokens
                    or ends[0] < 1
                    or (len(ends) > 1 and np.diff(ends.astype(np.int64)).min() < 2)
                ):
                    raise StoreError(
                        f"{index}: document index is not increasing or does not end at the "
                        f"shard's {s.tokens:,} tokens. Re-run gptdata prepare."
                    )

    def verify(self) -> None:
        """Also read every byte: sha256 of each shard and index, and every ID < vocab_size."""
        for shards in self._splits.values():
            for s in shards:
                for rel, want in ((s.file, s.sha256), (s.index, s.index_sha256)):
                    if not inside(self.root, rel):  # swapped for a symlink since open()
                        raise StoreError(f"{self.root / rel}: now resolves outside the store.")
                    got = sha256_file(self.root / rel)
                    if got != want:
                        raise StoreError(
                            f"{self.root / rel}: sha256 mismatch (file has {got[:12]}..., "
                            f"manifest {want[:12]}...): the file changed after it was written. "
                            "Re-run gptdata prepare."
                        )
                top = int(np.memmap(self.root / s.file, dtype=self.dtype, mode="r").max(initial=0))
                if top >= self.vocab_size:
                    raise StoreError(
                        f"{self.root / s.file}: token ID {top} >= vocab_size {self.vocab_size}."
                    )

    def describe(self) -> str:
        """The manifest in human terms (what ``gptdata info`` prints)."""
        m = self.manifest
        lines = [
            f"store      {self.root}",
            f"format     {m['format']} v{m['version']}",
            f"tokenizer  {self.tokenizer_name} (vocab_size {self.vocab_size:,}, "
            f"eot_id {self.eot_id}, {self.fingerprint[:19]}...)",
            f"dtype      {self.dtype.name} ({self.dtype.itemsize} bytes per token)",
        ]
        for name in self.splits:
            sp = self.split(name)
            size = sum((self.root / s.file).stat().st_size for s in sp.shards)
            lines.append(
                f"split      {name}: {sp.n_tokens:,} tokens, {sp.n_documents:,} documents, "
                f"{len(sp.shards)} shards, {size / 1e6:,.1f} MB"
            )
        text = self.n_tokens - self.n_separators
        lines.append(
            f"total      {self.n_tokens:,} tokens ({text:,} of text + {self.n_separators:,} "
            f"separators), {self.n_documents:,} documents"
        )
        opts = ", ".join(f"{k}={v}" for k, v in m.get("options", {}).items())
        lines.append(f"options    {opts}")
        inputs = m.get("inputs", [])
        lines.append(
            f"inputs     {len(inputs):,} files, {sum(i.get('bytes', 0) for i in inputs):,} bytes"
        )
        stats = m.get("stats", {})
        if stats:
            lines.append("skipped    " + ", ".join(f"{k} {v:,}" for k, v in stats.items()))
        return "\n".join(lines)
