"""Ctrl-C while the ``gptdata`` command is still importing: one line, not a traceback.

Python turns a Ctrl-C during ``import`` into a ``KeyboardInterrupt`` that no handler of ours has
been installed for yet. When this process *is* the command (``gptdata ...`` or
``python -m gptdata ...``), the package's imports are wrapped in ``quiet_interrupt()``, which
exits with status 130 and one line instead; inside a user's program the interrupt goes on as usual.

    >>> with quiet_interrupt():
    ...     import numpy       # Ctrl-C here: "interrupted." and exit 130 under `gptdata`
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def running_as_command() -> bool:
    """Whether this interpreter was started as ``gptdata`` or ``python -m gptdata``."""
    if os.path.basename(sys.argv[0]) in ("gptdata", "gptdata.exe"):
        return True
    argv = list(getattr(sys, "orig_argv", ()))
    return "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "gptdata"


@contextmanager
def quiet_interrupt() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        if not running_as_command():
            raise
        print("interrupted.", file=sys.stderr)
        os._exit(130)  # half-imported modules: skip the interpreter's clean-up
