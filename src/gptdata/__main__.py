"""``python -m gptdata`` is the same as the ``gptdata`` command."""

import sys

from .cli.entry import main

sys.exit(main())
