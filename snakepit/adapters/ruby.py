"""RubyAdapter: workers are ``ruby <bridge>/worker.rb --script tools.rb`` (Debian's ruby +
ruby-grpc; no gems from the network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs

from snakepit.adapters.base import Adapter, CheckResult, LaunchOptions, version_of
from snakepit.errors import ConfigError


def _bridge_dir() -> Path:
    import snakepit_bridge
    return Path(snakepit_bridge.__file__).resolve().parent / "ruby"


def _abs_script(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"RubyAdapter.script must be a path to a .rb file, got {value!r}")
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"RubyAdapter.script {value!r} does not exist ({path})")
    return str(path)


@attrs.frozen
class RubyAdapter(Adapter):
    """``RubyAdapter(script="tools.rb")``: a file of ``Snakepit.tool(:name) { |args, ctx| }``.

    ``capacity`` is the worker's ``--max-concurrency``; the Ruby worker's server queues calls
    beyond its thread pool (capacity + 8) instead of answering RESOURCE_EXHAUSTED."""

    script: str = attrs.field(converter=_abs_script)
    ruby: str = "ruby"
    capacity: int | None = None

    def command(self, opts: LaunchOptions) -> list[str]:
        return [self.ruby, str(_bridge_dir() / "worker.rb"), "--script", self.script,
                *opts.worker_flags()]

    async def prepare(self, state_dir: str) -> None:
        if shutil.which(self.ruby) is None:
            raise ConfigError(f"Ruby ({self.ruby!r}) is not installed; RubyAdapter needs ruby "
                              f"and the grpc gem (Debian: apt-get install ruby ruby-grpc)")

    def check(self) -> CheckResult:
        ok, out = version_of([self.ruby, "-e", "require 'grpc'; puts RUBY_VERSION + ' grpc ' + GRPC::VERSION"])
        return CheckResult(ok=ok, runtime="ruby", version=out if ok else "",
                           message="" if ok else f"ruby with grpc: {out}")
