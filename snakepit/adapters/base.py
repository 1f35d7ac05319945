"""The adapter contract: how to launch and talk to one kind of worker.

An adapter says which command starts a worker (given :class:`LaunchOptions`), with which extra
environment and working directory, how many requests one worker serves at once (``capacity``),
and may validate or reshape arguments and results on the host. Subclass :class:`Adapter`.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import attrs


@attrs.frozen
class LaunchOptions:
    """What the pool tells an adapter about the worker it is about to start."""

    worker_id: str
    host_address: str
    ready_fd: int
    max_concurrency: int = 1
    log_level: str = "info"
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 10.0
    dependent: bool = True
    shutdown_grace: float = 5.0
    pipe_fd: int | None = None     # transport="pipe": the worker's end of the socketpair

    def worker_flags(self) -> list[str]:
        """The flags every worker understands (the worker contract, protos/README.md)."""
        flags = ["--worker-id", self.worker_id, "--ready-fd", str(self.ready_fd),
                 "--max-concurrency", str(self.max_concurrency),
                 "--log-level", "error" if self.log_level == "none" else self.log_level,
                 "--heartbeat-interval", repr(self.heartbeat_interval),
                 "--heartbeat-timeout", repr(self.heartbeat_timeout),
                 "--shutdown-grace", repr(self.shutdown_grace)]
        if self.host_address:
            flags += ["--host-address", self.host_address]
        if not self.dependent:
            flags.append("--no-dependent")
        if self.pipe_fd is not None:
            flags += ["--pipe-fd", str(self.pipe_fd)]
        return flags


@attrs.frozen
class CheckResult:
    ok: bool
    runtime: str
    version: str = ""
    message: str = ""


class Adapter:
    """Base class of host-side adapters. Override :meth:`command`; the rest has defaults."""

    capacity: int | None = None   # None: the pool config decides
    supports_pipe = False         # the worker understands --pipe-fd (transport="pipe")

    def command(self, opts: LaunchOptions) -> list[str]:
        raise NotImplementedError

    def env(self, opts: LaunchOptions) -> dict[str, str]:
        return {}

    @property
    def cwd(self) -> str | None:
        return None

    def validate(self, tool: str, args: dict[str, Any]) -> None:
        """Raise ``InvalidArgumentsError`` to fail fast, before a worker is taken."""

    def prepare_args(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        return args

    def process_result(self, tool: str, result: Any) -> Any:
        return result

    def timeout(self, tool: str, args: dict[str, Any]) -> float | None:
        """A per-tool default timeout (seconds), or None for the pool's."""
        return None

    async def prepare(self, state_dir: str) -> None:
        """One-time set-up before the first worker starts (e.g. install dependencies)."""

    def check(self) -> CheckResult:
        return CheckResult(ok=True, runtime=type(self).__name__)


def version_of(argv: list[str]) -> tuple[bool, str]:
    """Run ``argv`` (e.g. ``["node", "--version"]``): (found, first output line)."""
    if shutil.which(argv[0]) is None:
        return False, f"{argv[0]} not found on PATH"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    text = (out.stdout or out.stderr).strip().splitlines()
    return out.returncode == 0, text[0] if text else ""
