"""snakepit: pools of external worker processes on a trio supervision tree.

    import snakepit
    config = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=4)])
    async with snakepit.start(config) as app:
        await app.execute("add", {"a": 2, "b": 3})      # -> 5

Importing the package is cheap and has no side effects: the pool, transports and telemetry
(grpc, protobuf, OpenTelemetry, psutil, orjson) load on first use of a name that needs them
(PEP 562), so ``from snakepit import otp`` costs no more than trio and attrs. No environment
variable is set at import; what the host and its workers need is set when an application
starts (``snakepit.Application.run``) and in each worker's spawn environment.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from snakepit.errors import *  # noqa: F401,F403  (plain exception classes: stdlib only)
from snakepit.errors import __all__ as _errors_all

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from snakepit import adapters, otp, telemetry
    from snakepit.api import App, Client, SyncStream, current_app, execute, run_as_script, start
    from snakepit.application import Application
    from snakepit.config import Config, HeartbeatConfig, PoolConfig, SessionConfig
    from snakepit.placement import RayPlacement
    from snakepit.chunk import Chunk

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "adapters": ("snakepit.adapters", None),
    "otp": ("snakepit.otp", None),
    "telemetry": ("snakepit.telemetry", None),
    **{name: ("snakepit.api", name) for name in
       ("App", "Client", "SyncStream", "current_app", "execute", "run_as_script", "start")},
    "Application": ("snakepit.application", "Application"),
    **{name: ("snakepit.config", name) for name in
       ("Config", "HeartbeatConfig", "PoolConfig", "SessionConfig")},
    "Chunk": ("snakepit.chunk", "Chunk"),
    "RayPlacement": ("snakepit.placement", "RayPlacement"),
}

__all__ = ["__version__", "adapters", "otp", "telemetry", "App", "Application", "Chunk", "Client",
           "Config", "HeartbeatConfig", "PoolConfig", "RayPlacement", "SessionConfig", "SyncStream",
           "current_app", "execute", "run_as_script", "start", *_errors_all]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'snakepit' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value   # resolved once; later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
