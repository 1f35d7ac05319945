"""Configuration: frozen, validated at construction (every field: docs/configuration.md).

    config = snakepit.Config(pools=[snakepit.PoolConfig(
        name="default", size=4, adapter="snakepit_bridge.adapters.showcase:ShowcaseAdapter")])
    config = snakepit.Config.from_file("snakepit.toml")

A bad value raises :class:`~snakepit.errors.ConfigError` naming the field, the value and what is
allowed, before any process starts.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Callable

import attrs

from snakepit.errors import ConfigError
from snakepit.placement.spec import RayPlacement

_ADAPTER_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _fail(owner: str, field: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{owner}.{field} must be {allowed}, got {value!r}",
                       details={"field": f"{owner}.{field}", "value": repr(value),
                                "allowed": allowed})


def _number(owner: str, *, minimum: float = 0.0, strict: bool = False, integer: bool = False,
            optional: bool = False) -> Callable[[Any, Any, Any], None]:
    kind = "an integer" if integer else "a number of seconds" if not integer else ""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    allowed = f"{kind} {bound}" + (" or None" if optional else "")

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is None and optional:
            return
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            raise _fail(owner, attribute.name, value, allowed)
        # NaN compares false with every bound, so it must be refused by name
        if value != value or ((value <= minimum) if strict else (value < minimum)):
            raise _fail(owner, attribute.name, value, allowed)
    return check


def _choice(owner: str, *choices: str) -> Callable[[Any, Any, Any], None]:
    allowed = "one of " + ", ".join(repr(c) for c in choices)

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value not in choices:
            raise _fail(owner, attribute.name, value, allowed)
    return check


def _str_dict(owner: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise _fail(owner, attribute.name, value, "a dict of strings to strings")
    return check


@attrs.frozen
class HeartbeatConfig:
    """Host → worker heartbeats. ``max_missed`` missed pongs restart a ``dependent`` worker;
    a dependent worker also exits when the host's heartbeats stop for ``timeout`` seconds."""

    interval: float = attrs.field(default=2.0, validator=_number("HeartbeatConfig",
                                                                  strict=True))
    timeout: float = attrs.field(default=10.0, validator=_number("HeartbeatConfig",
                                                                  strict=True))
    max_missed: int = attrs.field(default=3, validator=_number("HeartbeatConfig", minimum=1,
                                                               integer=True))
    dependent: bool = attrs.field(default=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.dependent, bool):
            raise _fail("HeartbeatConfig", "dependent", self.dependent, "True or False")


def _default_size() -> int:
    return 2 * (os.cpu_count() or 1)


_ADAPTER_ALLOWED = "'module.path:ClassName' or an adapter object from snakepit.adapters"
_FOREIGN = {"node": "NodeAdapter(script=...)", "ruby": "RubyAdapter(script=...)",
            "js": "NodeAdapter(script=...)", "mjs": "NodeAdapter(script=...)",
            "cjs": "NodeAdapter(script=...)", "rb": "RubyAdapter(script=...)"}


def _check_adapter(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, str):
        head, _, tail = value.partition(":")
        foreign = _FOREIGN.get(head) or _FOREIGN.get(tail.rpartition(".")[2])
        if foreign:   # "node:tools.js" would otherwise be imported as a Python module
            raise _fail("PoolConfig", "adapter", value,
                        f"{_ADAPTER_ALLOWED} (a string names a Python adapter class; for this "
                        f"use {foreign}, in TOML a [pools.adapter] table with kind = "
                        f"{'node' if 'Node' in foreign else 'ruby'!r})")
        if not _ADAPTER_RE.match(value):
            raise _fail("PoolConfig", "adapter", value, _ADAPTER_ALLOWED)
    elif not callable(getattr(value, "command", None)):
        raise _fail("PoolConfig", "adapter", value, _ADAPTER_ALLOWED)


def _check_name(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _fail(type(instance).__name__, attribute.name, value,
                    "1-64 characters: letters, digits, '_', '.', '-' (not first)")


@attrs.frozen
class PoolConfig:
    name: str = attrs.field(default="default", validator=_check_name)
    adapter: Any = attrs.field(default="snakepit_bridge.adapters.showcase:ShowcaseAdapter",
                               validator=_check_adapter)
    size: int = attrs.field(factory=_default_size,
                            validator=_number("PoolConfig", minimum=1, integer=True))
    profile: str = attrs.field(default="process",
                               validator=_choice("PoolConfig", "process", "thread"))
    threads_per_worker: int = attrs.field(default=1, validator=_number("PoolConfig", minimum=1,
                                                                        integer=True))
    adapter_args: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    env: dict[str, str] = attrs.field(factory=dict, validator=_str_dict("PoolConfig"))
    python: str | None = attrs.field(default=None)
    thread_limits: dict[str, str] | None = attrs.field(default=None)
    max_queue_size: int = attrs.field(default=1000, validator=_number("PoolConfig",
                                                                       integer=True))
    queue_timeout: float = attrs.field(default=10.0, validator=_number("PoolConfig",
                                                                        strict=True))
    request_timeout: float = attrs.field(default=300.0, validator=_number("PoolConfig",
                                                                           strict=True))
    stream_timeout: float = attrs.field(default=900.0, validator=_number("PoolConfig",
                                                                          strict=True))
    startup_timeout: float = attrs.field(default=30.0, validator=_number("PoolConfig",
                                                                          strict=True))
    startup_batch_size: int = attrs.field(default=8, validator=_number("PoolConfig", minimum=1,
                                                                        integer=True))
    startup_batch_delay: float = attrs.field(default=0.0, validator=_number("PoolConfig"))
    affinity: str = attrs.field(default="hint", validator=_choice(
        "PoolConfig", "hint", "strict_queue", "strict_fail_fast"))
    worker_ttl: float | None = attrs.field(default=None, validator=_number(
        "PoolConfig", strict=True, optional=True))
    worker_max_requests: int | None = attrs.field(default=None, validator=_number(
        "PoolConfig", minimum=1, integer=True, optional=True))
    worker_max_memory_mb: float | None = attrs.field(default=None, validator=_number(
        "PoolConfig", strict=True, optional=True))
    shutdown_grace: float = attrs.field(default=6.0, validator=_number("PoolConfig"))
    # seconds a worker gets to confirm that a tool whose caller gave up has ended; then it is
    # killed and replaced (ADR 0002)
    cancel_grace: float = attrs.field(default=5.0, validator=_number("PoolConfig",
                                                                       strict=True))
    heartbeat: HeartbeatConfig = attrs.field(factory=HeartbeatConfig)
    required: bool = attrs.field(default=True)
    # requests sent ahead to wait inside a worker whose slots are all busy (pipelining;
    # docs/configuration.md, ADR 0003); 0: a request waits in the pool's queue for a free slot
    pipeline: int = attrs.field(default=0, validator=_number("PoolConfig", integer=True))
    # "auto": pipe frames for Python workers, gRPC for any other (ADR 0003 has the numbers)
    transport: str = attrs.field(default="auto", validator=_choice("PoolConfig", "auto", "grpc",
                                                                     "pipe"))
    preload: bool = attrs.field(default=False)
    # None: local worker processes; a RayPlacement: Ray actors on a cluster's nodes (ADR 0006)
    placement: RayPlacement | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        self._check_placement()
        if self.python is not None and (not isinstance(self.python, str) or not self.python):
            raise _fail("PoolConfig", "python", self.python,
                        "a path or command name of a Python interpreter, or None")
        if self.thread_limits is not None:
            _str_dict("PoolConfig")(self, attrs.fields(PoolConfig).thread_limits,
                                    self.thread_limits)
        if not isinstance(self.heartbeat, HeartbeatConfig):
            raise _fail("PoolConfig", "heartbeat", self.heartbeat, "a HeartbeatConfig")
        if not isinstance(self.required, bool):
            raise _fail("PoolConfig", "required", self.required, "True or False")
        if self.profile == "process" and self.threads_per_worker != 1:
            raise _fail("PoolConfig", "threads_per_worker", self.threads_per_worker,
                        "1 with profile='process' (use profile='thread' for more)")
        if not all(isinstance(a, str) for a in self.adapter_args):
            raise _fail("PoolConfig", "adapter_args", self.adapter_args, "a list of strings")
        if self.transport == "pipe" and not isinstance(self.adapter, str) and \
                not getattr(self.adapter, "supports_pipe", False):
            raise _fail("PoolConfig", "transport", self.transport,
                        f"'grpc' for {type(self.adapter).__name__} (only Python workers "
                        f"speak the pipe transport)")
        if not isinstance(self.preload, bool):
            raise _fail("PoolConfig", "preload", self.preload, "True or False")
        if self.preload and not isinstance(self.adapter, str) and \
                not getattr(self.adapter, "supports_preload", False):
            raise _fail("PoolConfig", "preload", self.preload,
                        f"False for {type(self.adapter).__name__} (only Python workers are "
                        f"forked from a zygote)")
        if self.heartbeat.timeout < self.heartbeat.interval:
            raise _fail("HeartbeatConfig", "timeout", self.heartbeat.timeout,
                        f"a number of seconds >= interval ({self.heartbeat.interval})")

    def _check_placement(self) -> None:
        if self.placement is None:
            return
        if not isinstance(self.placement, RayPlacement):
            raise _fail("PoolConfig", "placement", self.placement, "None or a RayPlacement")
        from snakepit.adapters.python import PythonAdapter
        if not isinstance(self.adapter, (str, PythonAdapter)):
            raise _fail("PoolConfig", "adapter", self.adapter, "a Python adapter with a "
                        "RayPlacement (only Python workers speak TLS to a remote host)")
        if self.transport == "pipe":
            raise _fail("PoolConfig", "transport", self.transport,
                        "'grpc' or 'auto' with a RayPlacement (a pipe does not reach another "
                        "node)")
        if self.preload:
            raise _fail("PoolConfig", "preload", self.preload,
                        "False with a RayPlacement (workers are started by their Ray actor)")
        if self.worker_max_memory_mb is not None:
            raise _fail("PoolConfig", "worker_max_memory_mb", self.worker_max_memory_mb,
                        "None with a RayPlacement (the host cannot read a remote worker's "
                        "memory; reserve it with RayPlacement(resources={'memory': ...}))")

    @property
    def resolved_transport(self) -> str:
        """``transport`` with "auto" decided: "pipe" if the adapter speaks it, else "grpc"
        (always "grpc" with a remote placement)."""
        if self.placement is not None:
            return "grpc"
        if self.transport != "auto":
            return self.transport
        adapter = self.adapter
        return "pipe" if isinstance(adapter, str) or getattr(adapter, "supports_pipe", False) \
            else "grpc"

    def resolved_adapter(self) -> Any:
        """The adapter object (a ``"module:Class"`` string becomes a PythonAdapter)."""
        if isinstance(self.adapter, str):
            from snakepit.adapters import PythonAdapter
            return PythonAdapter(self.adapter, python=self.python,
                                 adapter_args=self.adapter_args)
        return self.adapter

    def capacity_for(self, adapter: Any) -> int:
        """Concurrent requests per worker: the thread profile's ``threads_per_worker``,
        else the adapter's declared ``capacity``, else 1."""
        if self.profile == "thread":
            return self.threads_per_worker
        declared = getattr(adapter, "capacity", None)
        return int(declared) if declared else 1


@attrs.frozen
class SessionConfig:
    ttl: float = attrs.field(default=3600.0, validator=_number("SessionConfig", strict=True))
    cleanup_interval: float = attrs.field(default=60.0, validator=_number("SessionConfig",
                                                                           strict=True))
    max_sessions: int | None = attrs.field(default=10_000, validator=_number(
        "SessionConfig", minimum=1, integer=True, optional=True))
    max_programs_per_session: int | None = attrs.field(default=None, validator=_number(
        "SessionConfig", minimum=1, integer=True, optional=True))
    max_global_programs: int | None = attrs.field(default=None, validator=_number(
        "SessionConfig", minimum=1, integer=True, optional=True))
    max_variables_per_session: int | None = attrs.field(default=None, validator=_number(
        "SessionConfig", minimum=1, integer=True, optional=True))
    store: str = attrs.field(default="memory", validator=_choice("SessionConfig", "memory",
                                                                  "sqlite"))


def _pools(value: Any) -> tuple[PoolConfig, ...]:
    if isinstance(value, PoolConfig):
        value = [value]
    try:
        return tuple(value)
    except TypeError:
        raise _fail("Config", "pools", value, "a list of PoolConfig") from None


@attrs.frozen
class Config:
    pools: tuple[PoolConfig, ...] = attrs.field(factory=lambda: (PoolConfig(),),
                                                converter=_pools)
    sessions: SessionConfig = attrs.field(factory=SessionConfig)
    state_dir: str | None = attrs.field(default=None)
    instance_name: str = attrs.field(default="default", validator=_check_name)
    log_level: str = attrs.field(default="info", validator=_choice(
        "Config", "debug", "info", "warning", "error", "none"))
    metrics_address: str | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if not self.pools:
            raise _fail("Config", "pools", list(self.pools), "at least one PoolConfig")
        seen: set[str] = set()
        for pool in self.pools:
            if not isinstance(pool, PoolConfig):
                raise _fail("Config", "pools", pool, "a list of PoolConfig")
            if pool.name in seen:
                raise _fail("Config", "pools", pool.name, "pools with distinct names "
                            f"({pool.name!r} appears twice)")
            seen.add(pool.name)
        if not isinstance(self.sessions, SessionConfig):
            raise _fail("Config", "sessions", self.sessions, "a SessionConfig")
        ray_addresses = {p.placement.address for p in self.pools if p.placement is not None}
        if len(ray_addresses) > 1:   # one process talks to one Ray cluster
            raise _fail("Config", "pools", sorted(map(str, ray_addresses)),
                        "pools whose RayPlacement.address is the same (one Ray cluster per "
                        "application)")
        if self.state_dir is not None and not isinstance(self.state_dir, (str, os.PathLike)):
            raise _fail("Config", "state_dir", self.state_dir, "a directory path or None")

    def remote_placement(self) -> RayPlacement | None:
        """The RayPlacement the pools share, if any pool has one."""
        return next((p.placement for p in self.pools if p.placement is not None), None)

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise ConfigError(f"no pool named {name!r}; pools: {[p.name for p in self.pools]}")

    def resolved_state_dir(self) -> Path:
        """``state_dir``, else ``$XDG_STATE_HOME/snakepit``, else ``~/.local/state/snakepit``."""
        if self.state_dir is not None:
            return Path(self.state_dir).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "snakepit"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Config":
        """Load a TOML file: top-level keys, ``[sessions]``, ``[[pools]]`` with
        ``[pools.heartbeat]`` and ``[pools.adapter]`` (``kind = "python" | "node" | "ruby" |
        "command"``; relative paths in it are relative to the file). Unknown keys are errors;
        docs/configuration.md lists every key.

            [[pools]]
            name = "js"
            [pools.adapter]
            kind = "node"
            script = "tools.js"
        """
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        return cls.from_dict(data, where=str(path), base_dir=Path(path).parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config",
                  base_dir: str | os.PathLike[str] | None = None) -> "Config":
        """Build from plain data (what :meth:`from_file` reads); relative paths of adapter
        tables are resolved against ``base_dir`` (default: the current directory)."""
        data = dict(data)
        pools = []
        for i, raw in enumerate(data.pop("pools", [{}])):
            raw = dict(raw)
            if isinstance(raw.get("adapter"), dict):
                from snakepit.adapters.from_table import adapter_from_table
                raw["adapter"] = adapter_from_table(raw["adapter"], f"{where}: pools[{i}].adapter",
                                                    Path(base_dir or "."))
            if "placement" in raw:
                raw["placement"] = placement_from_table(raw["placement"],
                                                        f"{where}: pools[{i}].placement")
            if "heartbeat" in raw:
                raw["heartbeat"] = build_table(HeartbeatConfig, raw["heartbeat"],
                                          f"{where}: pools[{i}].heartbeat")
            pools.append(build_table(PoolConfig, raw, f"{where}: pools[{i}]"))
        if "sessions" in data:
            data["sessions"] = build_table(SessionConfig, data["sessions"], f"{where}: sessions")
        return build_table(cls, {**data, "pools": pools}, where)  # type: ignore[no-any-return]


def placement_from_table(raw: Any, where: str) -> RayPlacement:
    """A ``[pools.placement]`` table: ``kind = "ray"`` and RayPlacement's keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table, got {raw!r}")
    raw = dict(raw)
    kind = raw.pop("kind", None)
    if kind != "ray":
        raise ConfigError(f"{where}.kind must be 'ray', got {kind!r}",
                          details={"field": f"{where}.kind", "value": repr(kind),
                                   "allowed": "'ray'"})
    return build_table(RayPlacement, raw, where)  # type: ignore[no-any-return]


def build_table(klass: type, raw: Any, where: str) -> Any:
    """``klass(**raw)`` for a TOML table: unknown keys name the table and the known ones."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table, got {raw!r}")
    known = {a.name for a in attrs.fields(klass) if not a.name.startswith("_")}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for {klass.__name__}; "
                          f"known: {', '.join(sorted(known))}")
    return klass(**raw)
