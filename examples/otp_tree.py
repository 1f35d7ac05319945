"""A supervision tree with snakepit.otp alone: a rest_for_one tree of a GenServer (a key-value
store), a task that depends on it, and a nested supervisor of two workers; one crash, one
restart, watched through an observer. Runs in well under a second and exits by itself.

    python examples/otp_tree.py
"""

import functools
import logging

import trio

from snakepit import otp

registry = otp.Registry()          # how siblings find each other: by name, resolved at each use


class Store(otp.GenServer):
    """A key-value store. ``init`` gets the start_link arguments; state is a dict."""

    async def init(self, initial):
        return dict(initial)

    async def handle_call(self, request, state):
        op, key = request
        if op == "get":
            return state[key], state      # a missing key raises KeyError: the server crashes
        raise ValueError(f"unknown call {request!r}")

    async def handle_cast(self, request, state):
        key, value = request
        return {**state, key: value}

    async def terminate(self, reason, state):
        print(f"  store terminates: reason={reason!r}, {len(state)} keys")


async def ticker(every, *, task_status=trio.TASK_STATUS_IGNORED):
    """Writes to the store; started after it (rest_for_one: restarted when it is)."""
    task_status.started()
    n = 0
    while True:
        n += 1
        await otp.cast(registry.via("store"), ("ticks", n))
        await trio.sleep(every)


async def worker(name, *, task_status=trio.TASK_STATUS_IGNORED):
    task_status.started(name)       # the started value is what which_children() shows
    await trio.sleep_forever()


restarted: dict[str, trio.Event] = {}


def show(event: otp.SupervisorEvent) -> None:
    """The observer: a plain function, called for every event of every supervisor in the app."""
    if event.kind in ("child_exited", "child_restarted", "supervisor_gave_up"):
        print(f"  [{event.supervisor}] {event.kind} {event.child_id!r} "
              f"{event.exit_kind or ''}".rstrip())
    if event.kind == "child_restarted" and event.child_id in restarted:
        restarted[event.child_id].set()


workers = otp.Supervisor([otp.ChildSpec(id=f"w{i}", start=functools.partial(worker, f"w{i}"))
                          for i in (1, 2)], strategy="one_for_one", name="workers")

app = otp.Application([
    otp.ChildSpec(id="store", start=Store.start_link({"ticks": 0}, name=registry.via("store"))),
    # arguments go in with functools.partial; the keyword-only task_status stays free
    otp.ChildSpec(id="ticker", start=functools.partial(ticker, 0.01)),
    workers.child_spec("workers"),   # a nested supervisor: its ChildInfo.value is its handle
], strategy="rest_for_one", max_restarts=3, max_seconds=5.0, name="app", observer=show)


async def main() -> None:
    # The supervisor logs every crash as a warning; here the observer reports them instead.
    logging.getLogger("snakepit.otp").setLevel(logging.ERROR)
    with trio.fail_after(10):
        async with app as handle:
            nested = next(c.value for c in handle.which_children() if c.id == "workers")
            print("tree:", [(c.id, c.state) for c in handle.which_children()])
            print("nested:", [(c.id, c.value) for c in nested.which_children()])
            await trio.sleep(0.05)
            print("ticks so far:", await otp.call(registry.via("store"), ("get", "ticks")))

            print("asking the store for a missing key crashes it:")
            restarted["workers"] = trio.Event()
            try:
                await otp.call(registry.via("store"), ("get", "missing"))
            except otp.ServerCrashed as exc:
                print("  caller got ServerCrashed, cause:", repr(exc.cause))
            await restarted["workers"].wait()   # rest_for_one: store, then ticker and workers
            print("after the restart:",
                  [(c.id, c.incarnation) for c in handle.which_children()])
            await trio.sleep(0.05)
            # the same name finds the new store: fresh init state, ticks counted again
            print("ticks after restart:", await otp.call(registry.via("store"), ("get", "ticks")))
        print("tree stopped; store registered:", registry.whereis("store") is not None)


if __name__ == "__main__":
    trio.run(main)
