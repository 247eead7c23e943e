"""Sizes as people write them: ``--cache-limit 10GB`` on the command line, ``cache_limit="10GB"``.

One parser for both doors, so the CLI and Python take the same words:

    >>> parse_size("10GB"), parse_size("512MiB"), parse_size("4096")
    (10000000000, 536870912, 4096)
    >>> cache_limit_bytes("10MB"), cache_limit_bytes(10**6), cache_limit_bytes(None)
    (10000000, 1000000, None)

Left out: printing sizes back (each report formats its own numbers).
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}  # fmt: skip
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")
UNITS_HINT = "KB, MB, GB, TB; KiB, MiB, GiB, TiB"


def parse_size(text: str, flag: str = "--cache-limit") -> int:
    """A size in bytes: '10GB' -> 10_000_000_000; '512MiB' -> 536_870_912; '4096' -> 4096.

    ``flag`` names the option in the error: ``--cache-limit`` (the CLI) or ``cache_limit=``.
    """
    m = _SIZE.fullmatch(text)
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in _UNITS or float(m.group(1)) * _UNITS[unit] < 1:
        said, example = (
            (f"{flag}{text!r}", f"{flag}'10GB'") if flag.endswith("=") else
            (f"{flag} {text!r}", f"{flag} 10GB")
        )  # fmt: skip
        raise ValueError(
            f"{said} is not a size: write a number of bytes with a unit, e.g. "
            f"{example} ({UNITS_HINT})."
        )
    return int(float(m.group(1)) * _UNITS[unit])


def cache_limit_bytes(value: object) -> int | None:
    """``cache_limit=`` as Python takes it: None (no limit), bytes as an int, or '10GB'.

    "10MB" -> 10_000_000; 4096 -> 4096; None -> None; 0, -5, 1.5, "ten" -> ValueError.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return parse_size(value, "cache_limit=")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"cache_limit={value!r} is not a size: give bytes as an int (10**10) or a string "
            f"with a unit, e.g. cache_limit='10GB' ({UNITS_HINT}); None for no limit."
        )
    if value < 1:
        raise ValueError(f"cache_limit={value} must be at least 1 byte, or None for no limit.")
    return value
