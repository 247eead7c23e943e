"""The loader's resumable state: the epoch seeds, and the checks a loaded state must pass.

A state is a small JSON-able dict (see ``GPTDataLoader.state_dict``); kept apart from the loader
so the rules for what a valid state is stay in one place, free of torch.

    >>> check_state({"epoch": 0, "batches_done": 99, ...}, n_batches=18, ranges=True)
    ValueError: loader state batches_done=99 is impossible: it must be 0..18 ...
"""

from __future__ import annotations

from typing import Any

import numpy as np

STATE_VERSION = 1

# What may change between save and resume: the global order is shared by all ranks, so a state
# is a position in it, whatever the ranks and batch split that consumed it.
ELASTIC = ("rank", "world_size", "batch_size")


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers; bools are almost always a mistake upstream."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of ``epoch``: (seed=1, epoch=0) and (seed=0, epoch=1) differ."""
    # SeedSequence mixes both numbers; >> 1 keeps it a non-negative int64 for torch.
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def check_state(state: dict[str, Any], n_batches: int, *, ranges: bool) -> None:
    """Refuse states no loader could have saved, naming the key and the allowed values.

    ``ranges=False`` checks keys and types only (before the settings are compared: another
    batch_size changes what is in range); ``ranges=True`` also checks the numbers.
    """
    for key in ("epoch", "batches_done", "perm_seed", "data", "settings"):
        if key not in state:
            raise ValueError(f"loader state lacks {key!r}; pass what state_dict() returned.")
    for key in ("epoch", "batches_done"):
        if not is_int(state[key]):
            raise ValueError(
                f"loader state {key}={state[key]!r} is {type(state[key]).__name__}, "
                "not an integer. Pass what state_dict() returned."
            )
    if state["perm_seed"] is not None and not is_int(state["perm_seed"]):
        raise ValueError(f"loader state perm_seed={state['perm_seed']!r} must be an int or None.")
    if not isinstance(state["data"], str) or not isinstance(state["settings"], dict):
        raise ValueError("loader state 'data' must be a str and 'settings' a dict.")
    if not ranges:
        return
    if state["epoch"] < 0:
        raise ValueError(f"loader state epoch={state['epoch']} is impossible: it must be >= 0.")
    if not 0 <= state["batches_done"] <= n_batches:
        raise ValueError(
            f"loader state batches_done={state['batches_done']} is impossible: it must be "
            f"0..{n_batches} (this loader has {n_batches:,} batches per epoch). Pass the "
            "state_dict() of a loader over the same data with the same settings."
        )


def batches_per_rank(n: int, batch_size: int, world_size: int, drop_last: bool) -> tuple[int, int]:
    """(windows per rank, batches per rank and epoch) for ``n`` windows.

    n=10, batch_size=2, world_size=3, drop_last=True -> (3, 1)
    """
    per_rank = n // world_size if drop_last else -(-n // world_size)
    return per_rank, per_rank // batch_size if drop_last else -(-per_rank // batch_size)


def check_settings(saved: dict[str, Any], mine: dict[str, Any], *, before_data: bool) -> None:
    """Refuse saved settings with a key missing or invalid (``before_data``), or, after the data
    check, ones that differ from this loader's other than rank, world_size and batch_size."""
    if before_data:
        missing = [k for k in mine if k not in saved]
        if missing:
            raise ValueError(
                f"this loader state lacks the settings {missing}: it is not what state_dict() "
                "returned. Pass the saved state unchanged."
            )
        for key in ELASTIC:
            if not is_int(saved[key]) or saved[key] < (0 if key == "rank" else 1):
                raise ValueError(f"loader state {key}={saved[key]!r} is not a valid {key}.")
        return
    diff = {k: (saved[k], v) for k, v in mine.items() if k not in ELASTIC and saved[k] != v}
    if diff:
        shown = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"this loader state was saved with other settings ({shown}). "
            "Create the loader with the saved settings."
        )


def check_same_data(
    state: dict[str, Any], mine: dict[str, Any], data_id: str, *, mixture: bool
) -> None:
    """Refuse a state saved over other data; for a mixture, name the difference (weights, a
    source) before the opaque fingerprint."""
    saved = state["settings"]
    if mixture:
        for key in ("weights", "sources", "size"):
            if saved.get(key) != mine[key]:
                raise ValueError(
                    f"this loader state was saved over another mixture ({key}: saved "
                    f"{saved.get(key)!r}, now {mine[key]!r}). Build the same Mixture to resume."
                )
    if state["data"] != data_id:
        raise ValueError(
            f"this loader state was saved over other token data (fingerprint "
            f"{str(state['data'])[:19]}..., this loader has {data_id[:19]}...). Load it into a "
            "loader over the same store split or tokens."
        )


def resume_batches(
    state: dict[str, Any], *, n_windows: int, batch_size: int, world_size: int, drop_last: bool
) -> tuple[int, str | None]:
    """Batches of the saved epoch a loader with these settings skips, and a warning if inexact.

    Saved after 3 steps of 4 x 2 ranks (24 global samples): 4 x 2 or 2 x 4 or 8 x 1 -> 3 batches;
    10 x 1 -> 3 batches (global sample 30, the next boundary), 6 samples skipped, with a warning.
    """
    saved = state["settings"]
    was = (int(saved["batch_size"]), int(saved["world_size"]))
    _, saved_batches = batches_per_rank(n_windows, *was, drop_last)
    check_state(state, saved_batches, ranges=True)
    _, n_batches = batches_per_rank(n_windows, batch_size, world_size, drop_last)
    done = int(state["batches_done"])
    if done >= saved_batches:
        return n_batches, None  # the epoch was finished: the next pass starts the next
    samples = done * was[0] * was[1]  # global samples of this epoch handed out
    step = batch_size * world_size
    batches = min(-(-samples // step), n_batches)
    if batches * step == samples:
        return batches, None
    return batches, (
        f"the global batch changed from {was[0] * was[1]} ({was[0]} x {was[1]} ranks) to "
        f"{step}: resuming at global sample {batches * step:,} of epoch {state['epoch']}, the "
        f"next global-batch boundary after {samples:,}, so {batches * step - samples:,} samples "
        "are skipped. Keep batch_size * world_size to resume at the same sample."
    )


def check_loader_args(
    *,
    batch_size: Any,
    num_workers: Any,
    seed: Any,
    rank: Any,
    world_size: Any,
) -> tuple[int, int, int | None, int, int]:
    """Every loader's argument rules in one place -> (batch_size, num_workers, seed, rank,
    world_size). Ranks come from torch.distributed when it runs and neither is given.

    batch_size=8, num_workers=0, seed=None, rank=None, world_size=None -> (8, 0, None, 0, 1)
    """
    import torch  # the loaders load it anyway; this module stays importable without it

    if (
        rank is None
        and world_size is None
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    ):
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("num_workers", num_workers, 0),
        ("world_size", world_size, 1),
        ("rank", rank, 0),
    ):
        if value is None and name in ("rank", "world_size"):
            continue
        if not is_int(value) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
    if seed is not None and (not is_int(seed) or seed < 0):
        raise ValueError(f"seed={seed!r} must be an integer >= 0 or None.")
    if rank is None and world_size is not None and world_size > 1:
        raise ValueError(
            f"world_size={world_size} needs rank: torch.distributed is not initialized, so "
            "this process cannot know which rank it is. Pass rank=..., or call "
            "torch.distributed.init_process_group first."
        )
    rank, world_size = int(rank or 0), int(world_size or 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in 0..{world_size - 1} for world_size={world_size}.")
    return int(batch_size), int(num_workers), None if seed is None else int(seed), rank, world_size
