"""A pipe worker serves before it imports numpy, grpc or OpenTelemetry (each is imported when
the first request that needs it arrives) and without attrs, argparse or ssl (imported when a
tool uses TLS): checked in a real worker process."""

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import call as grpc_call, pipe_worker, recv, result, send, worker

HEAVY = ("numpy", "grpc", "opentelemetry", "attr", "argparse")


def call(host, fid, tool, args=None, **kw):
    raw, blobs = serialization.encode(args or {})
    send(host, pb.Frame(id=fid, execute=pb.ExecuteRequest(tool=tool, args_json=raw,
                                                          blobs=blobs, **kw)))
    reply = recv(host)
    assert reply.id == fid and reply.result.success, reply
    return serialization.decode(reply.result.result_json, reply.result.blobs)


def heavy_loaded(host, fid):
    return sorted({h for m in call(host, fid, "loaded_modules") for h in HEAVY
                   if m == h or m.startswith(h + ".")})


@pytest.fixture
def host():
    with pipe_worker("bridge_adapters:ModulesAdapter") as (_, host):
        yield host


def test_a_pipe_worker_serves_without_numpy_grpc_opentelemetry_attrs_or_argparse(host):
    assert call(host, 1, "add", {"a": 2, "b": 3}) == 5
    assert heavy_loaded(host, 2) == []


def test_the_collector_is_on_once_the_worker_serves(host):
    # (off while the worker imports its code: python -m snakepit_bridge)
    assert call(host, 1, "gc_enabled") is True


def test_numpy_is_imported_when_an_array_arrives(host):
    assert call(host, 1, "array_sum", {"array": np.arange(4.0)}) == 6.0
    assert heavy_loaded(host, 2) == ["numpy"]


def test_opentelemetry_is_imported_when_the_host_sends_trace_context(host):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert call(host, 1, "add", {"a": 1, "b": 1}, metadata={"traceparent": traceparent}) == 2
    assert heavy_loaded(host, 2) == ["opentelemetry"]


# -- ssl: asyncio imports it for TLS connections only (snakepit_bridge.lazy_ssl) -----------------
TLS_ROUND_TRIP = """
import sys
from snakepit_bridge.lazy_ssl import import_asyncio
asyncio = import_asyncio()
assert "ssl" not in sys.modules, "import_asyncio imported ssl"
cert, key = sys.argv[1:3]

async def main():
    import ssl   # a tool's own import: the real module, as always
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=cert)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                   server_hostname="localhost")
    writer.write(b"over tls\\n")
    assert await reader.readline() == b"over tls\\n"
    writer.close()
    # asyncio's own default context (ssl=True), made through the stand-in: the self-signed
    # certificate is refused by a real handshake
    try:
        await asyncio.open_connection("127.0.0.1", port, ssl=True, server_hostname="localhost")
    except ssl.SSLCertVerificationError:
        pass
    else:
        raise AssertionError("a self-signed certificate was accepted")
    server.close()
    await server.wait_closed()

asyncio.run(main())
assert asyncio.sslproto.ssl is sys.modules["ssl"] and asyncio.base_events.ssl is sys.modules["ssl"]
assert asyncio.sslproto.SSLAgainErrors == (sys.modules["ssl"].SSLWantReadError,
                                           sys.modules["ssl"].SSLSyscallError)
print("ok")
"""


# imported when first needed: ssl by a TLS connection, random by sampled telemetry
LATER = ("ssl", "random")


def test_a_pipe_worker_serves_without_ssl_or_random(host):
    assert call(host, 1, "add", {"a": 2, "b": 3}) == 5
    assert sorted(set(LATER) & set(call(host, 2, "loaded_modules"))) == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_through_asyncio_works_when_ssl_was_held_back(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    proc = subprocess.run([sys.executable, "-c", TLS_ROUND_TRIP, str(cert), str(key)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


def test_a_sampling_rate_below_one_keeps_about_that_share_of_events():
    # (random is imported by the first sampled event)
    from snakepit_bridge.telemetry import _Buffer
    buf = _Buffer()
    buf.configure(True, 0.5, (), ())
    kept = sum(buf._wanted("demo.event") for _ in range(2000))
    assert 800 < kept < 1200


@pytest.mark.parametrize("transport", ["pipe", "grpc"])
def test_a_zygote_preloads_the_worker_without_ssl(transport):
    # (its forks share what it imported; the zygote imports the worker's lifetime first)
    code = ("import sys\n"
            "from snakepit_bridge.zygote import preload\n"
            f"preload('bridge_adapters:ModulesAdapter', {transport!r})\n"
            "assert 'asyncio' in sys.modules and 'ssl' not in sys.modules\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/<pid>/maps")
def test_the_showcase_worker_maps_libcrypto_with_its_first_checksum():
    with pipe_worker() as (proc, host):   # the showcase adapter (the pools' default)
        def hashlib_mapped():
            with open(f"/proc/{proc.pid}/maps") as maps:
                return "_hashlib" in maps.read()
        assert call(host, 1, "process_binary", {"data": b"ab", "operation": "length"}) == 2
        assert not hashlib_mapped()
        out = call(host, 2, "process_binary", {"data": b"ab", "operation": "checksum"})
        assert out == {"sha256": hashlib.sha256(b"ab").hexdigest(), "length": 2}
        assert hashlib_mapped()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/<pid>/maps")
def test_a_grpc_worker_checks_the_secret_without_openssl():
    # (grpcio has its own TLS; hmac's import of OpenSSL cost each worker ~0.5 MB)
    with worker() as (proc, _, stub):
        assert result(grpc_call(stub, "add", {"a": 1, "b": 2})) == 3
        with open(f"/proc/{proc.pid}/maps") as maps:
            assert "_hashlib" not in maps.read()
