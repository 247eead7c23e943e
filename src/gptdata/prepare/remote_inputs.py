"""Remote corpus inputs (``s3://``, ``gs://``, ``az://``): the objects an input names, by the
local rules.

``sources.resolve_inputs`` hands every input that ``storage.is_remote`` here; what comes back is
the sorted ``(url, size)`` of each object to read, chosen as a local folder, file or glob would be:

* a key: that object (refused inside a gptdata store or its side folder);
* a prefix: every object below it with a corpus suffix, recursively; hidden "folders" (a key
  part starting with ``.``) and gptdata stores (or side folders) are skipped, and a Hugging Face
  ``save_to_disk`` prefix gives the data files its ``state.json`` lists (``hf_input``);
* a glob (``*``, ``?``, ``[``, ``**``): the matching objects, never those inside a store.

    >>> remote_inputs("s3://b/corpus/", None, (".txt",))
    [('s3://b/corpus/a.txt', 2), ('s3://b/corpus/sub/b.txt', 3)]

One listing per input (S3 returns 1,000 keys a request); only the small JSON files that say what a
prefix is (``manifest.json``, ``gptdata-side.json``, ``state.json``, ``dataset_dict.json``) are read.

``list_apart`` (prepare's driver) lists in a short-lived process of its own and signs each object
there (``storage.signed``): the driver and its workers then read through the signed URLs and never
build the filesystem's client (~41 MiB per process for S3, measured).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from typing import Any

from ..storage import Location, RemoteNotFound, expand
from ..storage import signed as _signed
from ..store.layout import FORMAT, MANIFEST, SIDE_FORMAT, SIDE_MARKER
from .hf_input import DATASET_DICT, STATE, remote_hf_files
from .processes import run_apart
from .readers import InputError

_GLOB = re.compile(r"[*?\[]")


def _ours(folder: Location, names: set[str], cache: dict[str, bool]) -> bool:
    """Whether the prefix ``folder`` (whose direct object names are ``names``) is a gptdata
    store or side folder: its manifest or marker parses as ours."""
    if folder.url not in cache:
        cache[folder.url] = any(
            name in names and _json_format(folder.child(name)) == fmt
            for name, fmt in ((MANIFEST, FORMAT), (SIDE_MARKER, SIDE_FORMAT))
        )
    return cache[folder.url]


def _json_format(loc: Location) -> Any:
    try:
        doc = json.loads(loc.read_bytes(limit=1 << 24))
    except (RemoteNotFound, ValueError, RecursionError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def _direct_names(below: Mapping[str, int]) -> dict[str, set[str]]:
    """folder (relative, "" for the prefix itself) -> the names of the objects directly in it."""
    names: dict[str, set[str]] = {}
    for rel in below:
        folder, _, name = rel.rpartition("/")
        names.setdefault(folder, set()).add(name)
        while folder:  # a folder holding only folders still exists
            folder = folder.rpartition("/")[0]
            names.setdefault(folder, set())
    return names


def _walk(
    root: Location, below: Mapping[str, int], suffixes: tuple[str, ...], cache: dict[str, bool]
) -> list[tuple[str, int]]:
    """Corpus objects below ``root`` (listing ``below``), skipping as a local folder walk does."""
    names = _direct_names(below)
    pruned: list[str] = []  # folders whose objects are not read (or read through state.json)
    hits: list[tuple[str, int]] = []
    for folder in sorted(names, key=lambda f: (f.count("/"), f)):  # parents before children
        if not folder or any(folder.startswith(p + "/") for p in pruned):
            continue
        loc = root.child(folder)
        if folder.rpartition("/")[2].startswith(".") or _ours(loc, names[folder], cache):
            pruned.append(folder)
            continue
        if names[folder] & {STATE, DATASET_DICT}:
            sub = {k[len(folder) + 1 :]: n for k, n in below.items() if k.startswith(folder + "/")}
            found = remote_hf_files(loc, sub)
            if found is not None:
                sizes = {root.child(k).url: n for k, n in below.items()}
                hits += [(url, sizes[url]) for url in found]
                pruned.append(folder)
    for rel, size in below.items():
        folder, _, name = rel.rpartition("/")
        if any(folder == p or folder.startswith(p + "/") for p in pruned):
            continue
        if name.lower().endswith(suffixes) and not name.startswith("."):
            hits.append((root.child(rel).url, size))
    return hits


def remote_inputs(
    item: str, storage_options: Mapping[str, Any] | None, suffixes: tuple[str, ...]
) -> list[tuple[str, int]]:
    """The ``(url, size)`` of every object the remote input ``item`` names (see the module)."""
    cache: dict[str, bool] = {}
    root = Location(item, storage_options=storage_options)
    if _GLOB.search(root.path):
        hits = []
        for loc, size in expand(item, storage_options=storage_options):
            if _hidden_match(root.path, loc.path):
                continue
            parent = Location(loc.url.rpartition("/")[0], storage_options=storage_options)
            if not _inside_ours(parent, cache):
                hits.append((loc.url, size))
        if not hits:
            raise InputError(f"no objects match '{item}' outside gptdata stores.")
        return hits
    below = root.files()
    if not below:
        (loc, size), *_ = expand(item, storage_options=storage_options)  # a key, or not found
        parent = Location(loc.url.rpartition("/")[0], storage_options=storage_options)
        if _inside_ours(parent, cache):
            raise InputError(
                f"'{item}' lies inside a gptdata store (or its side folder), which is never "
                "read as input. Point at the text files instead."
            )
        return [(loc.url, size)]
    found = remote_hf_files(root, below)
    if found is not None:
        return [(url, below[url[len(root.url) + 1 :]]) for url in found]
    if _ours(root, _direct_names(below).get("", set()), cache):
        raise InputError(
            f"'{item}' is a gptdata store (or its side folder), not a corpus: prepare reads text. "
            "Open it with TokenStore.open or the verbs, or point at the text files instead."
        )
    hits = _walk(root, below, suffixes, cache)
    if not hits:
        raise InputError(
            f"'{item}' holds no {', '.join(suffixes)} objects. "
            "Point at the objects themselves or use a glob."
        )
    return hits


def _hidden_match(pattern: str, path: str) -> bool:
    """Whether the glob ``pattern`` reached ``path`` through a hidden name (a key part starting
    with ".") that no part of the pattern names: a local glob's wildcards never match those.

    >>> _hidden_match("b/**/*.txt", "b/web/.hidden/x.txt"), _hidden_match("b/.d/*.txt", "b/.d/x.txt")
    (True, False)
    """
    named = [part for part in pattern.split("/") if part.startswith(".")]
    return any(
        part.startswith(".") and not any(fnmatch.fnmatchcase(part, n) for n in named)
        for part in path.split("/")
    )


def _inside_ours(folder: Location, cache: dict[str, bool]) -> bool:
    """Whether ``folder`` or its parent is a gptdata store or side folder (``store/shards``)."""
    locs = [folder]
    if "/" in folder.path:  # the bucket itself has no parent
        locs.append(Location(folder.url.rpartition("/")[0], storage_options=folder.storage_options))
    return any(_ours(loc, {MANIFEST, SIDE_MARKER}, cache) for loc in locs)


Listed = list[tuple[str, int, str | None]]  # (url, size, signed URL or None), one per object


def list_and_sign(
    items: list[str], storage_options: Mapping[str, Any] | None, suffixes: tuple[str, ...]
) -> list[Listed]:
    """``remote_inputs`` of each item, each object with a signed URL (None where the filesystem
    cannot sign: it is read through fsspec)."""
    out = []
    for item in items:
        hits = remote_inputs(item, storage_options, suffixes)
        signed = [
            _signed.sign(Location(u, storage_options=storage_options), size=n) for u, n in hits
        ]
        out.append([(u, n, s[0] if s else None) for (u, n), s in zip(hits, signed, strict=True)])
    return out


def list_apart(
    items: list[str], storage_options: Mapping[str, Any] | None, suffixes: tuple[str, ...]
) -> dict[str, Listed]:
    """``list_and_sign`` in a process of its own (``processes.run_apart``): item -> objects.

    >>> list_apart(["s3://b/corpus/"], None, (".txt",))
    {'s3://b/corpus/': [('s3://b/corpus/a.txt', 2, 'https://b.s3.amazonaws.com/corpus/a.txt?X-Amz-...')]}
    """
    if not items:
        return {}
    opts = dict(storage_options) if storage_options else None
    return dict(zip(items, run_apart(list_and_sign, items, opts, suffixes), strict=True))
