"""NodeAdapter: workers are ``node <bridge>/worker.js --script tools.js``.

The Node runtime ships inside the installed package (``snakepit_bridge/node``). Its npm
dependencies (pinned by the committed lockfile) are installed on first use into
``<state_dir>/node/<lockfile hash>/node_modules`` with ``npm ci`` — or ahead of time with
:func:`install_node_deps` — so a pip-installed snakepit works without running npm by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import attrs
import trio

from snakepit.adapters.base import Adapter, CheckResult, LaunchOptions, version_of
from snakepit.errors import ConfigError

log = logging.getLogger("snakepit")


def _bridge_dir() -> Path:
    import snakepit_bridge
    return Path(snakepit_bridge.__file__).resolve().parent / "node"


def _abs_script(value: object) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ConfigError(f"NodeAdapter.script must be a path to a .js file, got {value!r}")
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"NodeAdapter.script {str(value)!r} does not exist ({path})")
    return str(path)


def deps_dir(state_dir: str | os.PathLike[str]) -> Path:
    lock = (_bridge_dir() / "package-lock.json").read_bytes()
    return Path(state_dir) / "node" / hashlib.sha256(lock).hexdigest()[:16]


def install_node_deps(state_dir: str | os.PathLike[str], npm: str = "npm") -> Path:
    """Install the Node bridge's dependencies (idempotent, safe across processes);
    returns the ``node_modules`` directory."""
    target = deps_dir(state_dir)
    modules = target / "node_modules"
    if (target / ".complete").exists():
        return modules
    if shutil.which(npm) is None:
        raise ConfigError(f"npm is not installed (needed once to install the Node worker's "
                          f"dependencies into {target}); install Node.js 18+ with npm")
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(_bridge_dir() / name, target / name)
            # The first Node use waits seconds for this: say so rather than sit silent.
            log.warning("first use of the Node worker: installing its npm dependencies into "
                        "%s (npm ci, once per snakepit version; `snakepit setup node` does it "
                        "ahead of time)", target)
            t0 = time.monotonic()
            proc = subprocess.run([npm, "ci", "--omit=dev", "--no-audit", "--no-fund"],
                                  cwd=target, capture_output=True, text=True)
            if proc.returncode != 0:
                raise ConfigError(f"installing the Node worker's dependencies failed "
                                  f"(npm ci in {target}):\n{proc.stderr[-2000:]}")
            (target / ".complete").write_text("ok\n")
            log.warning("Node worker dependencies installed in %.1f s", time.monotonic() - t0)
    return modules


@attrs.frozen
class NodeAdapter(Adapter):
    """``NodeAdapter(script="tools.js")``: ``module.exports = { tools: {...} }``."""

    script: str = attrs.field(converter=_abs_script)
    node: str = "node"
    capacity: int | None = None
    extra_env: dict[str, str] = attrs.field(factory=dict)
    deps_dir: str | None = None   # where to install the npm dependencies (default: state dir)
    _modules: list[str] = attrs.field(factory=list, eq=False, repr=False)

    def command(self, opts: LaunchOptions) -> list[str]:
        return [self.node, str(_bridge_dir() / "worker.js"), "--script", self.script,
                *opts.worker_flags()]

    def env(self, opts: LaunchOptions) -> dict[str, str]:
        env = dict(self.extra_env)
        if self._modules:
            env["NODE_PATH"] = self._modules[0]
        return env

    async def prepare(self, state_dir: str) -> None:
        if shutil.which(self.node) is None:
            raise ConfigError(f"Node.js ({self.node!r}) is not installed; NodeAdapter needs "
                              f"Node.js 18+ on PATH")
        modules = await trio.to_thread.run_sync(install_node_deps, self.deps_dir or state_dir)
        self._modules[:] = [str(modules)]

    def check(self) -> CheckResult:
        ok, out = version_of([self.node, "--version"])
        return CheckResult(ok=ok, runtime="node", version=out if ok else "",
                           message="" if ok else out)


