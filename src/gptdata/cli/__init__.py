"""The ``gptdata`` command: one module per verb group, on top of every stage.

``entry`` holds the parser and ``main``; ``data`` the data verbs (tokenize, prepare, info, verify,
export, import); ``model`` the verbs that show and score (inspect, plan, eval, demo); ``options``
the shared option types, help texts and examples.
"""

from .entry import main

__all__ = ["main"]
