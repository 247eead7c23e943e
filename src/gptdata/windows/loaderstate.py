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
