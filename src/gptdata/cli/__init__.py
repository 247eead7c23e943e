"""The ``gptdata`` command: one module per verb group, on top of every stage.

``entry`` holds the parser and ``main``; ``data`` the data verbs (tokenize, prepare, info, verify,
export, import); ``model`` the verbs that show and score (inspect, plan, eval, demo); ``options``
the shared option types, help texts and examples; ``blend`` and ``instructions`` the
``--blend`` and ``--instructions`` options of those verbs.
"""

from .._startup import quiet_interrupt

with quiet_interrupt():  # Ctrl-C while the command starts (entry.py compiles on a fresh clone)
    from .entry import main

__all__ = ["main"]
