"""A trio TCP server with supervision embedded: a Supervisor of a stats GenServer, a
DynamicSupervisor with one child per connection, and the listener; clients in the same
program talk to it, then everything stops. Loopback only (127.0.0.1, port 0); exits by
itself within a few seconds (a hard limit of 10 s).

    python examples/otp_embedded_server.py

Tree (rest_for_one: if the stats server dies, connections and listener restart after it):

    server
    ├── stats          GenServer: connections and lines seen
    ├── connections    DynamicSupervisor, one temporary child per connection
    └── listener       accepts, hands each stream to `connections`
"""

import functools
import logging

import trio

from snakepit import otp

MAX_CONNECTIONS = 8
registry = otp.Registry()


class Stats(otp.GenServer):
    async def init(self):
        return {"connections": 0, "lines": 0}

    async def handle_cast(self, request, state):
        return {**state, request: state[request] + 1}

    async def handle_call(self, request, state):
        return dict(state), state


async def connection(stream, *, task_status=trio.TASK_STATUS_IGNORED):
    """One client: answers each line in upper case; "stats" answers with the stats."""
    task_status.started()
    async with stream:          # closed on every exit: the peer left, a crash, a shutdown
        await otp.cast(registry.via("stats"), "connections")
        buffer = b""
        async for data in stream:
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                await otp.cast(registry.via("stats"), "lines")
                if line == b"stats":
                    reply = repr(await otp.call(registry.via("stats"), "get")).encode()
                else:
                    reply = line.upper()
                await stream.send_all(reply + b"\n")


async def connections(*, task_status=trio.TASK_STATUS_IGNORED):
    """The DynamicSupervisor, registered as "connections" for as long as it runs: the
    listener (a sibling) finds it by name. While the parent is still starting, the parent's
    own handle is not available to its children, so siblings use the registry."""
    dyn = otp.DynamicSupervisor(max_children=MAX_CONNECTIONS, name="connections")
    async with otp.running(dyn.run) as handle:
        with registry.register("connections", handle):
            task_status.started(handle)
            await trio.sleep_forever()


async def listener(*, task_status=trio.TASK_STATUS_IGNORED):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started(port)          # the port is this child's started value
        for sock in listeners:
            nursery.start_soon(accept_loop, sock)


async def accept_loop(sock):
    async with sock:
        n = 0
        while True:
            stream = await sock.accept()
            n += 1
            conns = registry.via("connections").resolve()
            spec = otp.ChildSpec(id=("conn", n), start=functools.partial(connection, stream),
                                 restart="temporary", shutdown=1.0)
            try:
                await conns.start_child(spec)
            except otp.MaxChildrenReached:
                async with stream:
                    await stream.send_all(b"busy\n")


server = otp.Supervisor([
    otp.ChildSpec(id="stats", start=Stats.start_link(name=registry.via("stats"))),
    otp.ChildSpec(id="connections", start=connections, type="supervisor", shutdown="infinity"),
    otp.ChildSpec(id="listener", start=listener),
], strategy="rest_for_one", max_restarts=3, max_seconds=5.0, name="server")


async def client(port, name, lines, results):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        received = b""
        for line in lines:
            await stream.send_all(line.encode() + b"\n")
            while not received.endswith(b"\n"):
                received += await stream.receive_some()
            results.append((name, received.decode().strip()))
            received = b""


async def main() -> None:
    logging.getLogger("snakepit.otp").setLevel(logging.ERROR)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:   # your existing trio program
            handle = await nursery.start(server.run)
            port = next(c.value for c in handle.which_children() if c.id == "listener")
            print(f"listening on 127.0.0.1:{port}")
            results = []
            async with trio.open_nursery() as clients:
                for name in ("ann", "bob", "cid"):
                    clients.start_soon(client, port, name, [f"hello from {name}", "bye"],
                                       results)
            for name, reply in sorted(results, key=lambda r: r[0]):   # each client's in order
                print(f"{name}: {reply}")
            await client(port, "dee", ["stats"], results)
            print("stats:", results[-1][1])
            conns = next(c.value for c in handle.which_children() if c.id == "connections")
            print("connections supervisor:", conns.name, "max_children", MAX_CONNECTIONS)
            nursery.cancel_scope.cancel()          # stops the tree: listener, connections, stats
    print("server stopped")


if __name__ == "__main__":
    trio.run(main)
