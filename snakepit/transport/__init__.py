"""How a Worker talks to its process: the :class:`Transport` interface and its gRPC form."""

from snakepit.transport.base import Transport

__all__ = ["Transport"]
