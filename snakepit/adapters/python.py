"""PythonAdapter: workers are ``python -m snakepit_bridge --adapter module:Class``."""

from __future__ import annotations

import importlib.machinery
import os
import site
import sys
import sysconfig
from typing import Any

import attrs

from snakepit.adapters.base import Adapter, CheckResult, LaunchOptions, version_of
from snakepit_bridge.adapter_loading import PATH_ENV


def _installed_dirs() -> set[str]:
    """The interpreter's own stdlib and site-packages: never passed to a worker (whose
    interpreter may be another Python)."""
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return {os.path.realpath(p) for p in paths}


def host_import_root(module: str) -> str | None:
    """The ``sys.path`` directory the host would import ``module``'s top-level package
    from — found without importing it — unless that is an installed-packages directory.

        host_import_root("mytools")   # -> "/home/me/project" for /home/me/project/mytools.py
    """
    top = module.split(".", 1)[0]
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, sys.path)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:          # a package: its parent directory
        where = os.path.dirname(list(spec.submodule_search_locations)[0])
    elif spec.origin:
        where = os.path.dirname(spec.origin)
    else:
        return None
    where = os.path.realpath(where)
    return None if where in _installed_dirs() else where


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

    def env(self, opts: LaunchOptions) -> dict[str, str]:
        """Where the host imports the adapter's module from travels to the worker, so a
        script's own modules work from any current directory."""
        root = host_import_root(self.spec.partition(":")[0])
        return {PATH_ENV: root} if root else {}

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


