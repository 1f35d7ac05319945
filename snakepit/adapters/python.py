"""PythonAdapter: workers are ``python -m snakepit_bridge --adapter module:Class``."""

from __future__ import annotations

import sys
from typing import Any

import attrs

from snakepit.adapters.base import Adapter, CheckResult, LaunchOptions, version_of


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen
class PythonAdapter(Adapter):
    """``PythonAdapter("mypkg.tools:MyAdapter")``; ``python=None`` is the host's interpreter."""

    spec: str
    python: str | None = None
    adapter_args: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    capacity: int | None = None
    supports_pipe = True
    supports_preload = True

    def __attrs_post_init__(self) -> None:
        from snakepit.config import _ADAPTER_RE
        from snakepit.errors import ConfigError
        if not isinstance(self.spec, str) or not _ADAPTER_RE.match(self.spec):
            raise ConfigError(f"PythonAdapter.spec must be 'module.path:ClassName', "
                              f"got {self.spec!r}")

    @property
    def interpreter(self) -> str:
        return self.python or sys.executable

    def command(self, opts: LaunchOptions) -> list[str]:
        return [self.interpreter, "-m", "snakepit_bridge", "--adapter", self.spec,
                *opts.worker_flags(), *self.adapter_args]

    def check(self) -> CheckResult:
        ok, out = version_of([self.interpreter, "-c", "import snakepit_bridge, sys; "
                              "print(sys.version.split()[0])"])
        return CheckResult(ok=ok, runtime="python", version=out if ok else "",
                           message="" if ok else f"{self.interpreter}: {out}")

    def __repr__(self) -> str:
        return f"PythonAdapter({self.spec!r})"


