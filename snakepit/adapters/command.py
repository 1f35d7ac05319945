"""CommandAdapter: any executable that speaks the worker contract (protos/README.md)."""

from __future__ import annotations

import attrs

from snakepit.adapters.base import Adapter, LaunchOptions


def _argv(value: object) -> tuple[str, ...]:
    from snakepit.errors import ConfigError
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(a, str) for a in value):
        raise ConfigError(f"CommandAdapter.argv must be a non-empty list of strings, "
                          f"got {value!r}")
    return tuple(value)


@attrs.frozen
class CommandAdapter(Adapter):
    """``CommandAdapter(argv=["./my-go-worker"], capacity=8)``: the worker flags are appended."""

    argv: tuple[str, ...] = attrs.field(converter=_argv)
    extra_env: dict[str, str] = attrs.field(factory=dict)
    workdir: str | None = None
    capacity: int | None = None

    def command(self, opts: LaunchOptions) -> list[str]:
        return [*self.argv, *opts.worker_flags()]

    def env(self, opts: LaunchOptions) -> dict[str, str]:
        return dict(self.extra_env)

    @property
    def cwd(self) -> str | None:
        return self.workdir
