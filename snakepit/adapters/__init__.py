"""How to launch each kind of worker: :class:`PythonAdapter`, :class:`CommandAdapter`, or your
own :class:`Adapter` subclass."""

from snakepit.adapters.base import Adapter, CheckResult, LaunchOptions
from snakepit.adapters.command import CommandAdapter
from snakepit.adapters.node import NodeAdapter, install_node_deps
from snakepit.adapters.python import PythonAdapter
from snakepit.adapters.ruby import RubyAdapter

__all__ = ["Adapter", "CheckResult", "CommandAdapter", "LaunchOptions", "NodeAdapter",
           "PythonAdapter", "RubyAdapter", "install_node_deps"]
