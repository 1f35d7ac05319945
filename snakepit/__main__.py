"""``python -m snakepit`` is the ``snakepit`` command."""

import sys

from snakepit.cli import main

sys.exit(main())
