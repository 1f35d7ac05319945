"""Where a pool's workers run: on this host (``placement=None``) or on a Ray cluster.

    snakepit.PoolConfig(name="gpu", size=8, placement=snakepit.RayPlacement(
        address=None, resources={"GPU": 1}, strategy="SPREAD"))

:mod:`snakepit.placement.spec` holds the configuration (no Ray import);
:mod:`snakepit.placement.ray` spawns and reaches the workers (needs ``snakepit[ray]``).
"""

from snakepit.placement.spec import RayPlacement

__all__ = ["RayPlacement"]
