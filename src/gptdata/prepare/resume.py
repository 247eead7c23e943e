"""Which work units a killed ``prepare`` finished: its side folder's ``units/*.json`` markers.

A marker counts only when every shard file it names is there at its full size (and, for the
split policies that need them, the unit's ``.order`` / ``.tail`` records); any other marker is
deleted, and its unit runs again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..store.masks import mask_bytes


def _resume_ok(side: Path, result: Any, itemsize: int, split_by: str) -> bool:
    """A recorded unit counts as done only if all its shard files are there at full size."""
    if not isinstance(result, dict) or not isinstance(result.get("index"), int):
        return False
    order = side / "units" / f"{result['index']:05d}.order"
    if split_by == "auto" and not order.is_file() and result["tokens"]:
        return False
    tail = side / "units" / f"{result['index']:05d}.tail"
    if split_by == "tail" and not tail.is_file():
        return False  # a unit of an earlier gptdata (no copy numbers): tokenize it again
    for parts in result["parts"].values():
        for p in parts:
            data, index = side / p["file"], side / p["index"]
            if not data.is_file() or data.stat().st_size != p["tokens"] * itemsize:
                return False
            if not index.is_file() or index.stat().st_size != p["documents"] * 8:
                return False
            if "mask" in p:
                mask = side / p["mask"]["file"]
                if not mask.is_file() or mask.stat().st_size != mask_bytes(p["tokens"]):
                    return False
    return True


def _load_done(side: Path, itemsize: int, split_by: str) -> dict[int, dict[str, Any]]:
    """The units a killed run finished; a marker that does not parse means 'not done'."""
    done: dict[int, dict[str, Any]] = {}
    for marker in sorted((side / "units").glob("*.json")):
        try:
            result = json.loads(marker.read_bytes())
            if _resume_ok(side, result, itemsize, split_by):
                done[result["index"]] = result
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            pass
        marker.unlink(missing_ok=True)  # redo the unit
    return done
