"""Names → live values, with lifetimes tied to the code that registered them.

    registry = otp.Registry()                       # unique keys
    with registry.register(("worker", "default-1"), worker):
        registry.whereis(("worker", "default-1"))   # -> worker
    registry.whereis(("worker", "default-1"))       # -> None: gone when the block exits

    groups = otp.Registry(keys="duplicate")         # pub/sub style groups
    with groups.register("pool:default", w1), groups.register("pool:default", w2):
        groups.lookup("pool:default")               # -> [w1, w2]

A registration is a context manager: the entry disappears when the owning block exits, for
any reason (return, exception, cancellation), so a crashed child never leaves a stale name.
``registry.via(key)`` is a reference resolved at each use (OTP's ``{via, ...}``).
"""

from __future__ import annotations

import enum
from typing import Any, Hashable

import trio

from snakepit.otp.errors import AlreadyRegistered
from snakepit.otp.spec import parse_enum


class Keys(str, enum.Enum):
    UNIQUE = "unique"
    DUPLICATE = "duplicate"


class Registration:
    """One entry; leave its ``with`` block (or call :meth:`unregister`) to remove it."""

    __slots__ = ("_registry", "key", "value", "_active")

    def __init__(self, registry: "Registry", key: Hashable, value: Any) -> None:
        self._registry, self.key, self.value, self._active = registry, key, value, True

    def unregister(self) -> None:
        if self._active:
            self._active = False
            self._registry._remove(self)

    def __enter__(self) -> "Registration":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unregister()


class Via:
    """A name resolved at each use: ``Via(registry, key).resolve()`` → the value or raise."""

    __slots__ = ("registry", "key")

    def __init__(self, registry: "Registry", key: Hashable) -> None:
        self.registry, self.key = registry, key

    def resolve(self) -> Any:
        value = self.registry.whereis(self.key)
        if value is None:
            raise LookupError(f"nothing registered as {self.key!r}")
        return value

    def __repr__(self) -> str:
        return f"<Via {self.key!r}>"


class Registry:
    def __init__(self, keys: str | Keys = "unique") -> None:
        self.keys = parse_enum(Keys, keys, "keys")
        self._entries: dict[Hashable, list[Registration]] = {}
        self._changed = trio.Event() if _in_trio() else None

    def register(self, key: Hashable, value: Any = None) -> Registration:
        """Register ``value`` under ``key``; raises :class:`AlreadyRegistered` for a taken
        unique key. Use the result as a context manager to bound the entry's lifetime."""
        hash(key)
        entries = self._entries.setdefault(key, [])
        if entries and self.keys is Keys.UNIQUE:
            raise AlreadyRegistered(key, entries[0].value)
        reg = Registration(self, key, value)
        entries.append(reg)
        self._notify()
        return reg

    def unregister(self, key: Hashable) -> None:
        """Remove every entry under ``key`` (no error when there is none)."""
        for reg in list(self._entries.get(key, ())):
            reg.unregister()

    def whereis(self, key: Hashable) -> Any:
        """The value under a unique key (the first one for duplicate keys), or ``None``."""
        entries = self._entries.get(key)
        return entries[0].value if entries else None

    def lookup(self, key: Hashable) -> list[Any]:
        return [r.value for r in self._entries.get(key, ())]

    def via(self, key: Hashable) -> Via:
        return Via(self, key)

    def registered_keys(self) -> list[Hashable]:
        return list(self._entries)

    async def wait_registered(self, key: Hashable) -> Any:
        """Wait until something is registered under ``key``; return its value."""
        while key not in self._entries:
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()
        return self._entries[key][0].value

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def _remove(self, reg: Registration) -> None:
        entries = self._entries.get(reg.key)
        if entries is None:
            return
        try:
            entries.remove(reg)
        except ValueError:
            return
        if not entries:
            del self._entries[reg.key]
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True
