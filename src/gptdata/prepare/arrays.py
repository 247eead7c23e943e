"""Token IDs a user holds in memory (a list, a NumPy array, a tensor), as a gatherable array.

>>> ids_array([40, 367, 2885]).gather(np.array([0, 1]), 2).tolist()
[[40, 367], [367, 2885]]
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import numpy as np


class ArrayTokens:
    """A 1-D in-memory token array with the same ``gather`` as a store ``Split``.

    The array is kept as given (uint16 stays uint16); only gathered rows are new memory.

        >>> ArrayTokens(np.array([5, 6, 7, 8], dtype=np.uint16)).gather(np.array([1]), 3)
        array([[6, 7, 8]], dtype=uint16)
    """

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.array)

    def __repr__(self) -> str:
        return f"ArrayTokens(tokens={len(self.array):,}, dtype={self.array.dtype})"

    def gather(self, starts: np.ndarray, length: int) -> np.ndarray:
        return self.array[np.asarray(starts)[:, None] + np.arange(length)]  # (B, length)

    @property
    def fingerprint(self) -> str:
        """sha256 of the IDs as little-endian int64, so the same IDs in any dtype match."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            step = 1 << 20  # hash 1M tokens at a time: an int64 copy of one chunk, not the array
            for start in range(0, len(self.array), step):
                chunk = np.asarray(self.array[start : start + step]).astype("<i8")
                digest.update(chunk.tobytes())
            self._fingerprint = f"sha256:{digest.hexdigest()}"
        return self._fingerprint


def _tensor_to_numpy(source: Any) -> np.ndarray | None:
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is loaded
    if torch is not None and isinstance(source, torch.Tensor):
        return source.detach().cpu().numpy()  # shares memory for CPU tensors
    return None


def ids_array(source: Any) -> ArrayTokens:
    array = _tensor_to_numpy(source)
    if array is None:
        array = np.asarray(source)
        if array.dtype == object:
            raise TypeError(
                f"cannot read token IDs from {type(source).__name__} holding mixed values. Pass "
                "a list of ints, a NumPy array, a 1-D tensor, a Path, or text."
            )
    if array.ndim != 1:
        raise ValueError(f"token IDs must be 1-D, got shape {array.shape}. Flatten them first.")
    if array.size == 0:
        array = array.astype(np.int64)
    elif not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"token IDs must be integers, got dtype {array.dtype}.")
    return ArrayTokens(array)
