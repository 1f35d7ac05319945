"""Ray placement tests: one real Ray cluster (head + one node, loopback) per module.

Ray binds its nodes to 127.0.0.1 only with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; without it it
would pick the machine's own address, which these tests must not use. The cluster is started
and shut down by the handle the fixture holds. Ray's own processes (raylets, idle Ray workers)
come and go as Ray decides, so the leak check here is about snakepit's worker processes; the
cluster's shutdown at the end of the module checks that nothing of Ray's stays either.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# No usage reports, no dashboard: nothing here may leave loopback.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HERE = Path(__file__).resolve().parent
ADAPTER = "ray_adapters:RayTestAdapter"
CPUS_PER_NODE = 4
LEAK_GRACE = 15.0


def pytest_collection_modifyitems(items):
    for item in items:   # what runs on a real cluster carries the `ray` marker
        if Path(str(item.fspath)).parent == HERE and "cluster" in item.fixturenames:
            item.add_marker(pytest.mark.ray)


def import_ray():
    try:
        import ray
        import ray.cluster_utils  # noqa: F401
    except ImportError as exc:   # `make test` installs it wherever pip can
        pytest.skip(f"Ray is not installed (pip install 'snakepit[ray]'; make test installs "
                    f"it where it can be installed): {exc}")
    return ray


def worker_processes() -> list[psutil.Process]:
    """snakepit worker processes anywhere under this test process (through the raylets)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "snakepit_bridge" in " ".join(p.cmdline()) and p.status() != "zombie":
                out.append(p)
        except psutil.Error:
            pass
    return out


def wait_no_workers(pids, timeout):
    """Poll (with a deadline) until none of ``pids`` lives; the seconds it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        alive = [pid for pid in pids if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return time.monotonic() - t0
        time.sleep(0.05)   # not our processes to wait on: poll with a deadline
    return None


@pytest.fixture(autouse=True)
def no_leaked_processes():
    """Replaces the suite-wide check for this directory: no snakepit worker may outlive a
    test (Ray's raylets and idle workers belong to the module's cluster)."""
    before = {p.pid for p in worker_processes()}
    yield
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        leaked = [p for p in worker_processes() if p.pid not in before]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if leaked:
        for p in leaked:
            try:
                p.kill()
            except psutil.Error:
                pass
        pytest.fail(f"test left worker processes running: {[p.pid for p in leaked]}",
                    pytrace=False)


@pytest.fixture(scope="module")
def cluster():
    """A head and one more node, CPUS_PER_NODE CPUs each, on 127.0.0.1."""
    ray = import_ray()
    from ray.cluster_utils import Cluster

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    c = Cluster(initialize_head=True, shutdown_at_exit=False,
                head_node_args={"num_cpus": CPUS_PER_NODE, "include_dashboard": False})
    try:
        c.add_node(num_cpus=CPUS_PER_NODE)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
    deadline = time.monotonic() + LEAK_GRACE
    while time.monotonic() < deadline:
        left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        if not left:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the Ray cluster left processes: {[p.pid for p in left]}", pytrace=False)


@pytest.fixture
def ray_config(tmp_path, cluster):
    """``ray_config(size=4, **pool_kw)``: one pool placed on the module's cluster."""
    import snakepit

    def make(size=4, **pool_kw):
        placement = snakepit.RayPlacement(address=cluster.address,
                                          strategy=pool_kw.pop("strategy", "SPREAD"))
        pool_kw.setdefault("adapter", ADAPTER)
        pool_kw.setdefault("startup_timeout", 60.0)
        pool_kw.setdefault("env", {"PYTHONPATH": str(HERE)})
        return snakepit.Config(state_dir=str(tmp_path / "state"), pools=[snakepit.PoolConfig(
            name="remote", size=size, placement=placement, **pool_kw)])
    return make
