"""snakepit: pools of external worker processes on a trio supervision tree."""

from __future__ import annotations

import os

# We fork+exec workers; grpc's fork handlers have deadlocked such code (DESIGN.md §4). This
# must happen before grpc is first imported, so it is the first thing the package does.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from snakepit.errors import *  # noqa: E402,F401,F403
from snakepit.errors import __all__ as _errors_all  # noqa: E402

__version__ = "0.1.0"

__all__ = ["__version__", *_errors_all]
