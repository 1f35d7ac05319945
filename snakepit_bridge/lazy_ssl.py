"""asyncio without ``ssl`` until something uses TLS.

    from snakepit_bridge.lazy_ssl import import_asyncio
    asyncio = import_asyncio()   # 'ssl' not in sys.modules; TLS through asyncio still works

asyncio imports ``ssl`` when it is imported (``base_events``, ``selector_events``,
``sslproto``), although only TLS connections use it; in a worker that costs ~0.8 MB of private
memory plus libssl's pages (ADR 0003, "Start and memory"). ``import_asyncio`` imports asyncio
with ``ssl`` held back and gives those modules a stand-in in its place: the first attribute
read through it imports the real ``ssl``, puts it back where asyncio expects it and answers
from it. Code that imports ``ssl`` itself gets the real module, as always.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

# Module-level names asyncio derives from ssl when it is imported: (module, name, ssl names).
DERIVED = (("asyncio.sslproto", "SSLAgainErrors", ("SSLWantReadError", "SSLSyscallError")),)

_lock = threading.Lock()


class SslOnUse:
    """Stands in for the ``ssl`` module in asyncio's modules until one of them reads from it."""

    def __init__(self, users: list[types.ModuleType]) -> None:
        self.users = users

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)

    def load(self) -> types.ModuleType:
        ssl = importlib.import_module("ssl")
        with _lock:   # two threads may load it at once; both put back the same module
            for module in self.users:
                if module.__dict__.get("ssl") is self:
                    module.ssl = ssl   # type: ignore[attr-defined]
            for module_name, name, parts in DERIVED:
                derived_in = sys.modules.get(module_name)
                if derived_in is not None and name not in derived_in.__dict__:
                    setattr(derived_in, name, tuple(getattr(ssl, part) for part in parts))
        return ssl

    def __repr__(self) -> str:
        return "<ssl, imported on first use (snakepit_bridge.lazy_ssl)>"


def import_asyncio() -> types.ModuleType:
    """``import asyncio``, without importing ``ssl`` (see the module's docstring).

    Once asyncio or ssl is imported already, this is a plain ``import asyncio``."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return importlib.import_module("asyncio")
    before = set(sys.modules)
    sys.modules["ssl"] = None  # type: ignore[assignment]  # "import ssl" raises ImportError
    try:
        asyncio = importlib.import_module("asyncio")
    finally:
        del sys.modules["ssl"]
    # every module imported meanwhile that took "no ssl" for an answer (asyncio's three)
    users = [module for name, module in list(sys.modules.items())
             if name not in before and module is not None
             and "ssl" in module.__dict__ and module.__dict__["ssl"] is None]
    stand_in = SslOnUse(users)
    for module in users:
        module.ssl = stand_in   # type: ignore[attr-defined]
    return asyncio
