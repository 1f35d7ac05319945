"""Checks of what callers hand to ``execute`` / ``stream``, raising InvalidArgumentsError.

    seconds = check_seconds(timeout, "timeout")      # NaN, <= 0, bools and strings refused
    args_json, blobs = encode_args("embed", args)    # refused values named by their path

Each error names the field (or the path of the value inside ``args``), the value and what is
allowed, in its message and in ``details``.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from snakepit.errors import InvalidArgumentsError
from snakepit_bridge import serialization, shm
from snakepit_bridge.proto import bridge_pb2 as pb

SECONDS_ALLOWED = "a positive number of seconds (math.inf: no limit)"


def check_seconds(value: Any, field: str) -> float:
    """``value`` (a timeout, a TTL) as seconds: a positive int or float, ``math.inf`` for no
    limit. NaN (which compares false with everything, so it passes a ``<= 0`` check) is
    refused."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
            or value <= 0):
        raise InvalidArgumentsError(f"{field} must be {SECONDS_ALLOWED}, got {value!r}",
                                    details={"field": field, "value": repr(value),
                                             "allowed": SECONDS_ALLOWED})
    return float(value)


def encode_args(tool: str, args: Any) -> tuple[bytes, dict[str, pb.Blob]]:
    """The wire form of a call's arguments, or InvalidArgumentsError naming the path of the
    first value that has no exact form (``args["x"][3]["y"]``).

    Buffers of ``shm.THRESHOLD`` bytes or more are not copied here: the request holds them as
    ``pending-`` blobs until its transport sends it (the pipe copies each once, into shared
    memory; gRPC into the message), for as long as the calling trio task lives."""
    try:
        owner = trio.lowlevel.current_task()
    except RuntimeError:   # not in trio: no task to tie the buffers to; copied now
        owner = None
    try:
        return serialization.encode(args, root="args",
                                    large=shm.Deferred(owner) if owner is not None else None)
    except serialization.Unserializable as exc:
        raise InvalidArgumentsError(
            f"arguments of {tool!r} cannot be encoded: {exc}",
            details={"tool": tool, "path": exc.path, "reason": exc.reason}) from None
