"""The names of what gptdata writes on disk, and how to recognize a folder of ours.

At the bottom of the pipeline, so that reading inputs can skip gptdata's own folders
(a store, or a side folder of a run) without importing the store:

    >>> is_gptdata_folder("corpus/")          # a folder of text files
    False
    >>> is_gptdata_folder("store/")           # manifest.json with format gptdata-token-store
    True
"""

from __future__ import annotations

import json
import os
from typing import Any

FORMAT = "gptdata-token-store"
MANIFEST = "manifest.json"
SIDE_MARKER = "gptdata-side.json"
SIDE_FORMAT = "gptdata-side-folder"
_LEGACY_PLAN = "plan.json"  # the marker of gptdata <= 0.1.0 side folders: {"id": plan_id}


def is_store(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a manifest of ours that parses (the only thing force replaces)."""
    try:
        with open(os.path.join(folder, MANIFEST), "rb") as fh:
            doc = json.loads(fh.read(1 << 24))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def side_marker(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of a side folder we made, or None when there is none (or it does not parse)."""
    try:
        with open(os.path.join(folder, SIDE_MARKER), "rb") as fh:
            doc = json.loads(fh.read(1 << 16))
        if isinstance(doc, dict) and doc.get("format") == SIDE_FORMAT:
            return doc
    except (OSError, ValueError, RecursionError):
        pass
    try:
        with open(os.path.join(folder, _LEGACY_PLAN), "rb") as fh:
            doc = json.loads(fh.read(1 << 16))
        if (
            isinstance(doc, dict)
            and set(doc) == {"id"}
            and os.path.isdir(os.path.join(folder, "units"))
        ):
            return {"format": SIDE_FORMAT, "role": "partial", "plan": doc["id"]}
    except (OSError, ValueError, RecursionError):
        pass
    return None


def is_gptdata_folder(folder: str | os.PathLike[str]) -> bool:
    """A store or a side folder of ours: never read as corpus input."""
    return side_marker(folder) is not None or is_store(folder)
