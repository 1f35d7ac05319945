"""Loading a worker's adapter class from ``module.path:ClassName``, where the host finds it.

The host puts the directory it imports the adapter's module from into ``SNAKEPIT_ADAPTER_PATH``
(``os.pathsep``-separated), so a worker imports the same module even when the host script runs
from another directory. A module that still cannot be found is reported with every place the
worker looked.

    os.environ["SNAKEPIT_ADAPTER_PATH"] = "/home/me/project"
    cls = load_adapter_class("mytools:MyAdapter")      # /home/me/project/mytools.py
"""

from __future__ import annotations

import importlib
import os
import sys

PATH_ENV = "SNAKEPIT_ADAPTER_PATH"


class AdapterNotFound(ImportError):
    """The adapter's module or class does not exist where the worker looked."""


def extend_path(environ: dict[str, str] | None = None) -> list[str]:
    """Put the host's adapter directories (``SNAKEPIT_ADAPTER_PATH``) first on ``sys.path``;
    returns the directories added."""
    value = (os.environ if environ is None else environ).get(PATH_ENV, "")
    added = [d for d in value.split(os.pathsep) if d and d not in sys.path]
    sys.path[:0] = added
    return added


def load_adapter_class(spec: str) -> type:
    """The class named by ``spec``; :class:`AdapterNotFound` says where it looked."""
    module_name, _, class_name = spec.partition(":")
    extend_path()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name
                                    or module_name.startswith(exc.name + ".")):
            raise   # the adapter's module exists; something it imports does not
        looked = "\n".join(f"  {p or '.'}" for p in sys.path)
        raise AdapterNotFound(
            f"adapter module {module_name!r} not found (no module named {exc.name!r}). The "
            f"worker (cwd {os.getcwd()}) looked in:\n{looked}\nMake it importable: install "
            f"it, put its directory in PoolConfig.env['PYTHONPATH'], or make sure the host "
            f"itself can import {module_name!r} (its directory is then passed to workers)",
            name=exc.name) from None
    try:
        cls: type = getattr(module, class_name)
    except AttributeError:
        names = sorted(n for n in dir(module) if not n.startswith("_"))
        raise AdapterNotFound(f"module {module_name!r} ({getattr(module, '__file__', '?')}) "
                              f"has no {class_name!r}; it has: {', '.join(names)}") from None
    return cls
