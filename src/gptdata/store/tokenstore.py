"""The token store: a folder of raw little-endian token IDs, a document index, and a manifest.

    store/
      manifest.json                 format, version, tokenizer, dtype, splits -> shards, options, inputs
      shards/00000.train.000.bin    token IDs, uint16 when vocab_size <= 65,536 else uint32
      shards/00000.train.000.idx    uint64 cumulative document end offsets within the shard

A split's tokens are its shards in manifest order. Documents are joined with the tokenizer's
end-of-text ID between them (none after the last), also across shard boundaries: the separator
between two shards is implied, not stored, so shards stay independent. See docs/FORMAT.md.
A split read as one token array (``Split``, across its shards) is ``_splitarray``; re-exported here.

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
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import Location, is_remote, lost_url
from ..storage.sizes import cache_limit_bytes
from ..tokenizers import Tokenizer, get_tokenizer
from .layout import FORMAT as FORMAT  # re-exported: the format name in every manifest
from .manifest import (
    MANIFEST,
    SHARD_FIELDS,
    ManifestError,
    check_manifest,
    inside,
)
from .manifest import store_id_for as store_id_for  # re-exported: prepare writes it
from .masks import mask_bytes
from .remote import OPENED, RemoteSplit
from .remote_open import cache_root, check_remote_files, read_remote_manifest, remote_store_id
from .split import Shard as Shard  # re-exported: a split's files and reads live there
from .split import Split as Split
from .split import StoreError as StoreError

VERSION = 1


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
        # A store on object storage (see store.remote): root is then its cache folder.
        self.location: Location | None = None
        self.cache_dir: Path | None = None
        self.cache_limit: int | None = None
        self._splits = {
            name: [
                Shard(**{k: s[k] for k in SHARD_FIELDS}, mask=s.get("mask")) for s in info["shards"]
            ]
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
        if self.location is not None:
            return RemoteSplit(
                self.location, self.cache_dir, self.cache_limit, self.root, name, shards,
                self.dtype, self.eot_id, fp, str(self.store_id),
            )  # fmt: skip
        return Split(self.root, name, shards, self.dtype, self.eot_id, fp, self.store_id)

    @property
    def url(self) -> str:
        """Where the store is: its URL on object storage, else its folder."""
        return self.location.url if self.location is not None else str(self.root)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | Location,
        *,
        storage_options: dict[str, Any] | None = None,
        cache_limit: int | str | None = None,
    ) -> TokenStore:
        """Open and check: every manifest field, paths inside the store, shard sizes, document
        indexes. Reads only the manifest and the indexes.

        ``path`` may be a URL of object storage (``s3://bucket/stores/web``) or a ``Location``:
        then its shards are read through the local cache, at most ``cache_limit`` bytes (an int,
        or a size as the CLI's ``--cache-limit`` takes it: ``"10GB"``, ``"512MiB"``; None: no
        limit), downloaded when first read (see ``store.remote``).
        """
        if isinstance(path, Location) or is_remote(path):
            return cls._open_remote(path, storage_options, cache_limit)
        if cache_limit is not None and Path(path) not in OPENED:
            raise ValueError(
                f"cache_limit applies to stores on object storage; {os.fspath(path)} is a "
                "local folder, read in place. Drop cache_limit."
            )
        if Path(path) in OPENED:  # a remote store's cache folder, opened in this process
            return OPENED[Path(path)]  # type: ignore[no-any-return]
        root = Path(path)
        mpath = root / MANIFEST
        if not mpath.is_file():
            hint = (
                " A prepare run may still be going, or was killed: run it again to resume."
                if Path(str(root) + ".partial").exists()
                else ""
            )
            raise StoreError(
                f"{root}: not a token store (no {MANIFEST}).{hint or lost_url(os.fspath(path))} "
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
        store = cls(root, cls._checked(manifest, mpath))
        store._check_structure()
        return store

    @staticmethod
    def _checked(manifest: Any, mpath: object) -> dict[str, Any]:
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
        return manifest  # type: ignore[no-any-return]

    @classmethod
    def _open_remote(
        cls,
        path: str | os.PathLike[str] | Location,
        storage_options: dict[str, Any] | None,
        cache_limit: int | str | None,
    ) -> TokenStore:
        limit = cache_limit_bytes(cache_limit)  # "10GB" as --cache-limit takes it; bad: one line
        loc = path if isinstance(path, Location) else Location(
            os.fspath(path), storage_options=storage_options
        )  # fmt: skip
        if isinstance(path, Location) and storage_options:
            loc = Location(path.url, storage_options={**path.storage_options, **storage_options})
        manifest, files = read_remote_manifest(loc)
        manifest = cls._checked(manifest, f"{loc.url}/{MANIFEST}")
        store_id = remote_store_id(manifest)
        store = cls(cache_root(store_id), manifest)
        store.store_id = store_id
        store.location, store.cache_limit = loc, limit
        store.cache_dir = store.root.parent.parent
        check_remote_files(loc.url, store._splits, files, store.dtype.itemsize)
        # The manifest beside the cached files: code that reads a split's files by path (export,
        # the store_id check there) finds the folder laid out as the store.
        store.root.mkdir(parents=True, exist_ok=True)
        if not (store.root / MANIFEST).is_file():
            write_json_atomic(store.root / MANIFEST, manifest)
        OPENED[store.root] = store
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
                if s.mask is not None:
                    self._check_mask(name, k, s)
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

    def _check_mask(self, name: str, k: int, s: Shard) -> None:
        rel = s.mask["file"]  # type: ignore[index]
        if not inside(self.root, rel):
            raise StoreError(
                f"{self.root / MANIFEST}: 'splits.{name}.shards[{k}].mask.file' is {rel!r}, "
                "which resolves outside the store (a symlink?). Re-run gptdata prepare."
            )
        path = self.root / rel
        if not path.is_file():
            raise StoreError(f"{path}: mask file is missing. Re-run gptdata prepare.")
        want = mask_bytes(s.tokens)
        if path.stat().st_size != want:
            raise StoreError(
                f"{path}: {path.stat().st_size:,} bytes, but {s.tokens:,} tokens need "
                f"{want:,} bytes of mask (one bit each). Re-run gptdata prepare."
            )

    @property
    def has_masks(self) -> bool:
        """Whether the store keeps a response mask per token (an instruction store)."""
        return any(s.mask is not None for shards in self._splits.values() for s in shards)

    def verify(self) -> None:
        """Also read every byte: sha256 of each shard and index, and every ID < vocab_size.

        A remote store's files are downloaded into the cache first (verified there too)."""
        held = []
        if self.location is not None:
            for name in self.splits:
                held += self.split(name).fetch_all(masks=True, data=True)  # type: ignore[attr-defined]
        try:
            self._verify_files()
        finally:
            for h in held:
                h.release()

    def _verify_files(self) -> None:
        for shards in self._splits.values():
            for s in shards:
                files = [(s.file, s.sha256), (s.index, s.index_sha256)]
                if s.mask is not None:
                    files.append((s.mask["file"], s.mask["sha256"]))
                for rel, want in files:
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

    def reading_tokenizer(self, tokenizer: str | Tokenizer | None = None) -> Tokenizer:
        """The tokenizer that reads this store's IDs: ``tokenizer`` when it made them.

        A GPT-2 store reads with GPT-2 whatever is passed (its IDs have one meaning); any other
        store needs the tokenizer that made it: "vocab.json" for a store prepared with it.
        """
        tok = get_tokenizer(tokenizer or "gpt2")
        if tok.fingerprint == self.fingerprint:
            return tok
        if self.tokenizer_name == "gpt2":
            return get_tokenizer("gpt2")
        raise ValueError(
            f"{self.root} was made with tokenizer {self.tokenizer_name}; pass the same one with "
            f"tokenizer=PATH (it has vocab_size {self.vocab_size:,})."
        )

    def describe(self) -> str:
        """The manifest in human terms (what ``gptdata info`` prints)."""
        m = self.manifest
        lines = [
            f"store      {self.url}",
            f"format     {m['format']} v{m['version']}",
            f"tokenizer  {self.tokenizer_name} (vocab_size {self.vocab_size:,}, "
            f"eot_id {self.eot_id}, {self.fingerprint[:19]}...)",
            f"dtype      {self.dtype.name} ({self.dtype.itemsize} bytes per token)",
        ]
        for name in self.splits:
            sp = self.split(name)
            size = sum(s.tokens for s in sp.shards) * self.dtype.itemsize  # open() checked it
            lines.append(
                f"split      {name}: {sp.n_tokens:,} tokens, {sp.n_documents:,} documents, "
                f"{len(sp.shards)} shards, {size / 1e6:,.1f} MB"
            )
        text = self.n_tokens - self.n_separators
        lines.append(
            f"total      {self.n_tokens:,} tokens ({text:,} of text + {self.n_separators:,} "
            f"separators), {self.n_documents:,} documents"
        )
        if self.has_masks:
            lines.append("masks      a response mask per token (1 bit each): an instruction store")
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
