"""RayPlacement configuration and the per-run CA: no cluster needed."""

from __future__ import annotations

import pytest

import snakepit
from snakepit.config import Config
from snakepit.errors import ConfigError
from snakepit_bridge.server import GrpcCarrier
from snakepit_bridge.tls import Tls


def test_defaults_reserve_one_cpu_and_spread():
    p = snakepit.RayPlacement()
    assert p.address is None and p.strategy == "SPREAD"
    assert p.actor_options()["num_cpus"] == 1
    assert p.actor_options()["scheduling_strategy"] == "SPREAD"
    opts = snakepit.RayPlacement(resources={"GPU": 1, "accel": 2, "CPU": 2},
                                 strategy="PACK").actor_options()
    assert (opts["num_cpus"], opts["num_gpus"], opts["resources"],
            opts["scheduling_strategy"]) == (2, 1, {"accel": 2}, "DEFAULT")


@pytest.mark.parametrize("kw, field", [
    ({"strategy": "spread"}, "RayPlacement.strategy"),
    ({"resources": {"GPU": 0}}, "RayPlacement.resources"),
    ({"resources": {"GPU": float("nan")}}, "RayPlacement.resources"),
    ({"resources": ["GPU"]}, "RayPlacement.resources"),
    ({"address": ""}, "RayPlacement.address"),
    ({"address": 6379}, "RayPlacement.address"),
    ({"address": "ray://head:10001"}, "RayPlacement.address"),
])
def test_bad_placement_names_the_field(kw, field):
    with pytest.raises(ConfigError) as info:
        snakepit.RayPlacement(**kw)
    assert info.value.details["field"] == field and field in str(info.value)


def test_placement_needs_python_grpc_workers_without_preload(tmp_path):
    ray = snakepit.RayPlacement()
    (tmp_path / "x.js").write_text("")
    assert snakepit.PoolConfig(placement=ray).resolved_transport == "grpc"
    for kw, field in (({"transport": "pipe"}, "PoolConfig.transport"),
                      ({"preload": True}, "PoolConfig.preload"),
                      ({"worker_max_memory_mb": 100}, "PoolConfig.worker_max_memory_mb"),
                      ({"adapter": snakepit.adapters.NodeAdapter(script=tmp_path / "x.js")},
                       "PoolConfig.adapter"),
                      ({"placement": {"address": None}}, "PoolConfig.placement")):
        with pytest.raises(ConfigError) as info:
            snakepit.PoolConfig(**{"placement": ray, **kw})
        assert info.value.details["field"] == field


def test_one_ray_cluster_per_application():
    with pytest.raises(ConfigError, match="same"):
        snakepit.Config(pools=[
            snakepit.PoolConfig(name="a", placement=snakepit.RayPlacement(address="h:1")),
            snakepit.PoolConfig(name="b", placement=snakepit.RayPlacement(address="h:2"))])
    config = snakepit.Config(pools=[snakepit.PoolConfig(name="local"), snakepit.PoolConfig(
        name="b", placement=snakepit.RayPlacement(address="h:2"))])
    assert config.remote_placement() == snakepit.RayPlacement(address="h:2")
    assert snakepit.Config().remote_placement() is None


def test_toml_placement_table(tmp_path):
    path = tmp_path / "snakepit.toml"
    path.write_text('[[pools]]\nname = "gpu"\nsize = 8\n[pools.placement]\nkind = "ray"\n'
                    'address = "10.0.0.1:6379"\nresources = { GPU = 1 }\nstrategy = "PACK"\n')
    pool = Config.from_file(path).pool("gpu")
    assert pool.placement == snakepit.RayPlacement(address="10.0.0.1:6379",
                                                   resources={"GPU": 1}, strategy="PACK")
    path.write_text('[[pools]]\n[pools.placement]\nkind = "k8s"\n')
    with pytest.raises(ConfigError, match=r"placement.kind must be 'ray', got 'k8s'"):
        Config.from_file(path)
    path.write_text('[[pools]]\n[pools.placement]\nkind = "ray"\nnodes = 3\n')
    with pytest.raises(ConfigError, match="unknown key.*nodes"):
        Config.from_file(path)


def test_run_ca_certificates_chain_to_the_ca():
    pytest.importorskip("cryptography")
    from cryptography import x509

    from snakepit.placement.tls import RunCA
    ca = RunCA.create()
    assert ca.host.ca == ca.worker.ca and ca.host.key != ca.worker.key
    root = x509.load_pem_x509_certificate(ca.host.ca)
    for leaf, name in ((ca.host, "snakepit-host"), (ca.worker, "snakepit-worker")):
        cert = x509.load_pem_x509_certificate(leaf.cert)
        cert.verify_directly_issued_by(root)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == [name]
    assert "PRIVATE" not in repr(ca.worker)


def test_worker_tls_material_travels_whole_or_not_at_all():
    env = {"SNAKEPIT_TLS_CA": "x", "SNAKEPIT_TLS_CERT": "y", "OTHER": "1"}
    with pytest.raises(ValueError, match="SNAKEPIT_TLS_KEY"):
        Tls.pop_env(env)
    assert "SNAKEPIT_TLS_CA" not in env and env == {"OTHER": "1"}   # never left for user code
    assert Tls.pop_env({}) is None


def test_plaintext_worker_server_stays_on_loopback():
    with pytest.raises(ValueError, match="needs TLS"):
        GrpcCarrier("secret", None, bind_host="10.1.2.3")
    with pytest.raises(ValueError, match="one address"):
        GrpcCarrier("secret", None, tls=Tls(b"", b"", b""), bind_host="0.0.0.0")


def test_inspect_shows_the_node_of_remote_workers_only():
    from rich.console import Console

    from snakepit.cli.inspect import render

    def table(workers):
        snap = {"instance": "default", "pid": 1, "run_id": "r", "uptime": 1.0,
                "sessions": {}, "processes": {},
                "pools": [{"name": "p", "stats": {}, "workers": workers}]}
        console = Console(width=120, record=True)
        console.print(render(snap, detailed=True, advice=False))
        return console.export_text()

    worker = {"id": "p-1", "pid": 7, "state": "ready", "in_flight": 0, "requests": 3,
              "rss": None, "uptime": 2.0, "node_id": None}
    assert "node" not in table([worker])
    remote = table([worker, {**worker, "id": "p-2", "node_id": "a4d3a890dcc7b178db2f"}])
    assert "node" in remote and "a4d3a890" in remote and "a4d3a890d" not in remote


def test_worker_refuses_a_non_loopback_bind_without_tls():
    import os
    import subprocess
    import sys

    env = {**os.environ, "SNAKEPIT_SECRET": "s", "SNAKEPIT_BIND_HOST": "10.1.2.3"}
    done = subprocess.run([sys.executable, "-m", "snakepit_bridge", "--adapter",
                           "snakepit_bridge.adapters.showcase:ShowcaseAdapter"],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "SNAKEPIT_BIND_HOST='10.1.2.3' needs TLS material" in done.stderr
