"""RayPlacement: a pool whose workers are Ray actors on the nodes of a Ray cluster.

    snakepit.RayPlacement(address=None,          # None: ray.init() as configured; or "host:port"
                          resources={"GPU": 1},  # per worker, on top of one CPU
                          strategy="SPREAD")     # even spread over nodes; or "PACK"

In TOML, a ``[pools.placement]`` table with ``kind = "ray"`` and the same keys. Validated at
construction: a bad value raises ``ConfigError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from snakepit.errors import ConfigError

STRATEGIES = ("SPREAD", "PACK")


def _fail(field: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"RayPlacement.{field} must be {allowed}, got {value!r}",
                       details={"field": f"RayPlacement.{field}", "value": repr(value),
                                "allowed": allowed})


def _check_address(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    # Ray Client ("ray://") is refused: the host must be a driver on a node, since the
    # host's service for workers binds the address Ray reports for the host's own node.
    allowed = "None (ray.init() as configured), 'auto' or 'host:port' of a Ray cluster"
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value) \
            or value.startswith("ray://"):
        raise _fail("address", value, allowed)


def _check_resources(instance: Any, attribute: Any, value: Any) -> None:
    allowed = "a dict of resource names to amounts > 0 (e.g. {'GPU': 1})"
    if not isinstance(value, dict):
        raise _fail("resources", value, allowed)
    for name, amount in value.items():
        if not isinstance(name, str) or not name or isinstance(amount, bool) or \
                not isinstance(amount, (int, float)) or not math.isfinite(amount) or \
                amount <= 0:
            raise _fail("resources", value, allowed + f"; {name!r}: {amount!r} is not")


def _check_strategy(instance: Any, attribute: Any, value: Any) -> None:
    if value not in STRATEGIES:
        raise _fail("strategy", value, "one of " + ", ".join(repr(s) for s in STRATEGIES))


@attrs.frozen
class RayPlacement:
    """Each worker of the pool is a Ray actor that starts the usual gRPC worker on its node.

    ``resources`` are per worker and come on top of one CPU each worker reserves (give
    ``"CPU"`` to reserve another amount): reserving a CPU is what makes ``"SPREAD"`` an even
    spread (per-node counts differ by at most one) rather than Ray's best effort.
    """

    address: str | None = attrs.field(default=None, validator=_check_address)
    resources: dict[str, float] = attrs.field(factory=dict, validator=_check_resources)
    strategy: str = attrs.field(default="SPREAD", validator=_check_strategy)

    def actor_options(self) -> dict[str, Any]:
        """The ``ray.remote(...).options(...)`` of one worker's actor."""
        custom = dict(self.resources)
        options: dict[str, Any] = {"num_cpus": custom.pop("CPU", 1),
                                   "num_gpus": custom.pop("GPU", 0),
                                   "scheduling_strategy": "SPREAD"
                                   if self.strategy == "SPREAD" else "DEFAULT",
                                   # a worker's wait(), stop() and start() run side by side
                                   "max_concurrency": 4}
        if "memory" in custom:
            options["memory"] = custom.pop("memory")
        if custom:
            options["resources"] = custom
        return options
