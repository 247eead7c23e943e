"""``python -m gptdata`` is the same as the ``gptdata`` command."""

import sys

from .cli import main

sys.exit(main())
