"""snakepit: pools of external worker processes on a trio supervision tree.

    import snakepit
    config = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=4)])
    async with snakepit.start(config) as app:
        await app.execute("add", {"a": 2, "b": 3})      # -> 5
"""

from __future__ import annotations

import os

# We fork+exec workers; grpc's fork handlers have deadlocked such code (docs/architecture.md). This
# must happen before grpc is first imported, so it is the first thing the package does.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from snakepit import adapters, otp, telemetry  # noqa: E402
from snakepit.api import App, Client, SyncStream, current_app, execute, run_as_script, \
    start  # noqa: E402
from snakepit.application import Application  # noqa: E402
from snakepit.config import Config, HeartbeatConfig, PoolConfig, SessionConfig  # noqa: E402
from snakepit.errors import *  # noqa: E402,F401,F403
from snakepit.errors import __all__ as _errors_all  # noqa: E402
from snakepit.pool.pool import Chunk  # noqa: E402

__version__ = "0.1.0"

__all__ = ["__version__", "adapters", "otp", "telemetry", "App", "Application", "Chunk", "Client",
           "Config", "HeartbeatConfig", "PoolConfig", "SessionConfig", "SyncStream",
           "current_app", "execute", "run_as_script", "start", *_errors_all]
